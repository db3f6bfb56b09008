"""Events handed over whole to be turned into their lines on the listener thread.

A caller that would otherwise build many events (one ``model_output`` per sample of a reward
batch, the reward events, the summary...) emits one *carrier* event instead: it goes through
the caller's processors like any event (so it gets the envelope: time, level, run, rank and
the context bound on the caller's thread) and carries, in the private field ``_expand``, a
function that the listener calls with it. The function returns the events to write; each
of them then runs through the listener's processors after :class:`Expand` (derived
statistics, redaction), so no line is written that skipped them.

The events a function returns are partial, as a logging helper builds them (``kind``,
``logger``, the fields): :func:`with_envelope` gives them the carrier's envelope and runs
the pipeline's ``Sanitize`` over their fields, which is what the caller's processors would
have done.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gemmalog._pipeline import Pipeline

EXPAND = "_expand"

#: What an expansion returns: the events (without envelope) to write instead of the carrier.
Expansion = Callable[[dict[str, Any]], list[dict[str, Any]]]

# Carrier fields the events it expands into do not inherit (their ``kind`` and ``logger``
# replace the carrier's in place, so the keys keep the order AddEnvelope gives them).
_OWN = frozenset({"event", EXPAND})
# Added by AddResources after the envelope: kept last on the expanded events, as on others.
_RESOURCES = ("device", "rss_mb", "gpu_mb")


class Expand:
    """Listener-side processor: a carrier event becomes the list its ``_expand`` returns."""

    __slots__ = ()

    def __call__(self, logger: Any, method_name: str, event_dict: dict[str, Any]) -> Any:
        if EXPAND not in event_dict:
            return event_dict
        expand = event_dict.pop(EXPAND)
        if not callable(expand):
            return event_dict
        return expand(event_dict)


def emit_expanding(pipeline: Pipeline, event: dict[str, Any], expand: Expansion) -> None:
    """``pipeline.emit("info", event)``, with ``expand`` attached to be run on the listener.

    ``expand`` is attached after the caller's processors: ``Sanitize`` would turn a callable
    (and whatever it holds) into text. Never raises, like ``Pipeline.emit``.
    """
    try:
        for proc in pipeline.chain:
            event = proc(None, "info", event)
        event[EXPAND] = expand
        pipeline.hand_over(event)
    except Exception as exc:
        from gemmalog.notices import warn_once

        warn_once(f"an event could not be logged ({type(exc).__name__})")


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
