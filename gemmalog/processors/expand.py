"""Deferred events: handed over as plain data, turned into their lines on the listener thread.

A caller that would otherwise build many events on its own thread (one ``model_output`` per
sample of a reward batch, the reward events, the summary...) hands the pipeline one payload
instead, with ``Pipeline.defer(payload, logger)``: the one way to do so. The pipeline makes a
*carrier* event ``{"kind": payload.kind, "logger": logger}``, runs the caller's processors
over it like over any event (so it gets the envelope: time, level, run, rank, the context
bound on the caller's thread, the resources), and queues it with the payload in the private
field ``_expand``.

On the listener thread :class:`Expand` replaces the carrier with the events
``payload.events(context)`` returns, each given the carrier's envelope and sanitized as the
caller's ``Sanitize`` would have (:func:`with_envelope`); they then run through the
listener's processors after :class:`Expand` (derived statistics, the user's, redaction), so
no line is written that skipped them.

A payload is data, and its ``events`` is gemmalog's own code (``gemmalog.deferred``): the
listener reads what the caller handed over and never calls back into the caller's objects.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from gemmalog.processors.batch_sanitize import BatchSanitize

EXPAND = "_expand"

# Carrier fields the events it expands into do not inherit (their ``kind`` and ``logger``
# replace the carrier's in place, so the keys keep the order AddEnvelope gives them).
_OWN = frozenset({"event", EXPAND})
# Added by AddResources after the envelope: kept last on the expanded events, as on others.
_RESOURCES = ("device", "rss_mb", "gpu_mb")


class MetricsSection(Protocol):
    """The configuration's ``metrics`` section, as an expansion reads it."""

    logging_frequency: int

    def enabled(self, category: str) -> bool: ...


class ExpandContext:
    """What an expansion may read of the pipeline it runs in: fixed for the pipeline's life."""

    __slots__ = ("metrics", "role_names")

    def __init__(self, role_names: Mapping[str, str | None], metrics: MetricsSection) -> None:
        #: role -> logger name; None for a role whose logger is above INFO (nothing to log).
        self.role_names = role_names
        self.metrics = metrics


class Deferred(Protocol):
    """A payload for ``Pipeline.defer``: plain data, expanded on the listener thread.

    ``kind`` is the carrier's kind (what the caller's processors see); ``events`` returns
    the events to write instead of the carrier, as the logging helpers build them (``kind``,
    ``logger``, the fields; no envelope), and must not block or call back into the object
    that handed the payload over.
    """

    @property
    def kind(self) -> str: ...

    def events(self, context: ExpandContext) -> list[dict[str, Any]]: ...


class Expand:
    """Listener-side processor: a carrier event becomes the events its payload expands into."""

    __slots__ = ("context", "sanitize")

    def __init__(self, sanitize: Any, context: ExpandContext) -> None:
        self.sanitize = sanitize  # the pipeline's caller-side Sanitize
        self.context = context

    def __call__(self, logger: Any, method_name: str, event_dict: dict[str, Any]) -> Any:
        if EXPAND not in event_dict:
            return event_dict
        expand = getattr(event_dict.pop(EXPAND), "events", None)
        if not callable(expand):  # not a payload (a user's processor set the field)
            return event_dict
        return with_envelope(event_dict, expand(self.context), BatchSanitize(self.sanitize))


def with_envelope(
    carrier: dict[str, Any], events: list[dict[str, Any]], sanitize: Any
) -> list[dict[str, Any]]:
    """``events`` (as the logging helpers build them) with the carrier's envelope and bound
    context, their fields sanitized by ``sanitize`` (the pipeline's caller-side ``Sanitize``)."""
    base = {k: v for k, v in carrier.items() if k not in _OWN}
    resources = {k: base.pop(k) for k in _RESOURCES if k in base}
    out = []
    for event in events:
        event = sanitize(None, "info", event)
        full = {**base, **event}
        if "event" not in full:
            full["event"] = full["kind"]
        full.update(resources)
        out.append(full)
    return out
