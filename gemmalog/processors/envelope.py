"""The envelope: schema version, time, kind, logger, level, run, rank and bound context."""

from __future__ import annotations

from time import time
from typing import Any

from gemmalog._context import current
from gemmalog.events import SCHEMA_VERSION

LEVELS = {
    "debug": "debug",
    "info": "info",
    "msg": "info",
    "warning": "warning",
    "warn": "warning",
    "error": "error",
    "exception": "error",
    "critical": "critical",
    "fatal": "critical",
}


class AddEnvelope:
    """Put the envelope first, then what is bound in the context, then the event's own keys.

    Run id and rank are process-wide (set once by ``initialize``), so events from any
    thread carry them; step, epoch and user keys come from the context (``gemmalog.bind``).
    Keys given on the call win over bound ones, which win over the defaults.
    """

    __slots__ = ("rank", "run")

    def __init__(self, run: str, rank: int) -> None:
        self.run = run
        self.rank = rank

    def __call__(self, logger: Any, method_name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
        # One dict display: about half the cost of building the envelope, then update()-ing.
        out: dict[str, Any] = {
            "v": SCHEMA_VERSION,
            "ts": time(),
            "kind": "log",
            "logger": "gemmalog",
            "level": LEVELS.get(method_name, method_name),
            "run": self.run,
            "rank": self.rank,
            **current(),
            **event_dict,
        }
        if "event" not in out:
            out["event"] = out["kind"]
        return out
