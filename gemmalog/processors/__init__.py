"""structlog processors: each a plain callable ``(logger, method_name, event_dict) -> event_dict``.

Caller's thread, in this order: :class:`Sanitize`, :class:`AddEnvelope`, :class:`AddResources`.
Listener thread: :class:`DeriveGenerationStats` (batch statistics from raw texts), then
:class:`Redact` (text scanning belongs with serialization).
"""

from gemmalog.processors.envelope import AddEnvelope
from gemmalog.processors.redact import REDACTED, Redact
from gemmalog.processors.resources import AddResources
from gemmalog.processors.sanitize import Sanitize, Sanitizer

__all__ = ["REDACTED", "AddEnvelope", "AddResources", "Redact", "Sanitize", "Sanitizer"]
