"""The envelope: schema version, time, kind, logger, level, run, rank and bound context."""

from __future__ import annotations

from time import time
from typing import Any

from gemmalog._context import current
from gemmalog.events import ENVELOPE_OWN, SCHEMA_VERSION, free_name
from gemmalog.levels import METHOD_LEVELS

#: Envelope fields only gemmalog sets. A user field of the same name (``log.info(..., ts=x)``,
#: ``bind(run=...)``) is kept under the name with ``_`` appended (``ts_``, ``run_``, ...).
RESERVED: tuple[str, ...] = tuple(sorted(ENVELOPE_OWN))
_RESERVED = frozenset(RESERVED)


class AddEnvelope:
    """Put the envelope first, then what is bound in the context, then the event's own keys.

    Run id and rank are process-wide (set once by ``initialize``), so events from any
    thread carry them; step, epoch and user keys come from the context (``gemmalog.bind``).
    Keys given on the call win over bound ones, which win over the defaults (``kind``,
    ``logger``, ``event``), except the :data:`RESERVED` fields: those are gemmalog's, and a
    user value for one is renamed rather than allowed to change the line's time, level,
    run or rank (or to lose the event).
    """

    __slots__ = ("rank", "run")

    def __init__(self, run: str, rank: int) -> None:
        self.run = run
        self.rank = rank

    def __call__(self, logger: Any, method_name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
        # One dict display: about half the cost of building the envelope, then update()-ing.
        ts = time()
        level = METHOD_LEVELS.get(method_name, method_name)
        context = current()
        out: dict[str, Any] = {
            "v": SCHEMA_VERSION,
            "ts": ts,
            "kind": "log",
            "logger": "gemmalog",
            "level": level,
            "run": self.run,
            "rank": self.rank,
            **context,
            **event_dict,
        }
        # A user field of a reserved name, bound or given: renamed where its value is another
        # object (an equal int or str that is the same object changes nothing anyway).
        if not _RESERVED.isdisjoint(event_dict) or (context and not _RESERVED.isdisjoint(context)):
            out = self._rename_reserved(out, ts, level)
        if "event" not in out:
            out["event"] = out["kind"]
        return out

    def _rename_reserved(self, out: dict[str, Any], ts: float, level: str) -> dict[str, Any]:
        ours = {"v": SCHEMA_VERSION, "ts": ts, "level": level, "run": self.run, "rank": self.rank}
        for key, value in ours.items():
            theirs = out[key]
            if theirs is not value:
                out[key] = value
                out[free_name(out, key)] = theirs
        return out
