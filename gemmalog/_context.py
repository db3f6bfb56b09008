"""Per-context values (step, epoch, anything the caller binds) held in one ContextVar.

One ContextVar holding an immutable dict is cheaper to read on every event than one
ContextVar per key: the envelope processor does a single ``get()``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

_CONTEXT: ContextVar[dict[str, Any]] = ContextVar("gemmalog_context", default={})  # noqa: B039


def _clean(values: dict[str, Any]) -> dict[str, Any]:
    # Imported on the first bind, not by ``import gemmalog``.
    from gemmalog._sanitizer import DEFAULT
    from gemmalog.events import ENVELOPE_OWN, as_user_fields

    # Keywords are data: a bound field named like one only gemmalog sets is kept renamed
    # (the envelope's own are renamed by the envelope, given or bound).
    return {k: DEFAULT.clean(v) for k, v in as_user_fields(values, keep=ENVELOPE_OWN).items()}


def bind(**values: Any) -> None:
    """Bind values (``step=``, ``epoch=``, ...) to every later event of this context.

    Values are sanitized here, once, rather than on every event that carries them. A name
    only gemmalog sets (``event``, ``kind``, ``logger``, ``ts``, ...) is bound with ``_``
    appended (``event_``): it never changes an event's kind, logger or message.
    """
    _CONTEXT.set({**_CONTEXT.get(), **_clean(values)})


def unbind(*keys: str) -> None:
    """Remove keys bound with :func:`bind`; unknown keys are ignored."""
    current = _CONTEXT.get()
    _CONTEXT.set({k: v for k, v in current.items() if k not in keys})


def clear_context() -> None:
    """Remove everything bound in this context."""
    _CONTEXT.set({})


def get_context() -> dict[str, Any]:
    """Return a copy of what is bound in this context."""
    return dict(_CONTEXT.get())


@contextmanager
def bound(**values: Any) -> Iterator[None]:
    """Bind values for the duration of a ``with`` block, then restore the previous ones."""
    token = _CONTEXT.set({**_CONTEXT.get(), **_clean(values)})
    try:
        yield
    finally:
        _CONTEXT.reset(token)


def current() -> dict[str, Any]:
    """Return the bound dict itself (read-only by convention): the hot path's accessor."""
    return _CONTEXT.get()
