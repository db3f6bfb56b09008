"""Sink health: which sinks failed, and what became of the JSONL shard's writes.

A sink that fails is reported once, on stderr and as a ``log`` event in the JSONL, then
disabled (the listener skips it and counts what it missed). The JSONL sink is never
disabled: its first failure is reported on stderr, its events are counted as lost until a
write succeeds again, and then a ``log`` event in the JSONL says how many were lost
meanwhile. A shard deleted under the sink (the run directory removed) is reported the same
way, with the lines that went with it. :meth:`SinkHealth.sink_errors` is what run.json keeps.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Sequence
from typing import Any

from gemmalog.events import CORE_FIELDS, SCHEMA_VERSION
from gemmalog.notices import say
from gemmalog.processors.render import render
from gemmalog.sinks.base import Record
from gemmalog.sinks.jsonl import JsonlSink

#: At most this many JSONL incident events per run (a flapping disk must not flood the log).
MAX_NOTICES = 10

#: The listener's processors (see ``EventListener``), which gemmalog's own reports go through.
Processor = Callable[[Any, str, dict[str, Any]], Any]


class SinkFailure:
    """What went wrong with one sink and how many events it missed afterwards."""

    __slots__ = ("error", "missed", "when")

    def __init__(self, error: str) -> None:
        self.error = error
        self.missed = 0
        self.when = time.time()

    def as_dict(self) -> dict[str, Any]:
        return {"error": self.error, "missed": self.missed, "when": self.when}


class SinkHealth:
    """The failures of one listener's sinks, reported once each, and its shard's incidents.

    ``processors`` are the listener's: gemmalog's own reports go through them (redaction:
    an error text can quote a credential) like any event.
    """

    def __init__(
        self,
        primary: JsonlSink,
        processors: Sequence[Processor],
        *,
        run: str,
        rank: int,
        segment: int = 0,
    ) -> None:
        self.primary = primary
        self.processors = tuple(processors)
        self.run = run
        self.rank = rank
        self.segment = segment
        #: The disabled sinks by name (the listener skips them and counts what they missed).
        self.failures: dict[str, SinkFailure] = {}
        self.primary_errors = 0
        #: The JSONL shard's first failure (what run.json reports), None while it never failed.
        self.primary_failure: SinkFailure | None = None
        self._primary_down = False
        self._lost_ok = 0  # lines_lost when writes last succeeded
        self._notices = 0

    def sink_failed(self, name: str, exc: BaseException, *, starting: bool = False) -> None:
        """Disable sink ``name``, reported once: on stderr and as an error event in the JSONL
        (``starting``: it could not be built)."""
        if name in self.failures:
            return
        message = f"{type(exc).__name__}: {exc}"
        self.failures[name] = SinkFailure(message)
        when = "could not start" if starting else "failed"
        say(
            f"sink {name!r} {when} and is disabled for this run: {message}",
        )
        event = self._event(
            "error",
            f"sink {name} {when} and was disabled",
            sink=name,
            error=message,
            exc="".join(traceback.format_exception(exc)),
        )
        try:
            self.primary.write([self._incident(event)])
        except BaseException as primary_exc:
            self.primary_failed(primary_exc)

    def primary_failed(self, exc: BaseException) -> None:
        """A write, flush or open of the JSONL shard failed: counted, reported on stderr once."""
        self.primary_errors += 1
        self._primary_down = True
        if self.primary_failure is None:
            self.primary_failure = SinkFailure(f"{type(exc).__name__}: {exc}")
            say(
                f"writing {self.primary.path} failed ({type(exc).__name__}: {exc}); "
                "events are counted as lost until a write succeeds again",
            )

    def check_primary(self) -> None:
        """Turn what the JSONL sink noticed (recovery, a deleted shard) into reports."""
        primary = self.primary
        if primary.removed_lines is not None:
            removed, primary.removed_lines = primary.removed_lines, None
            message = (
                f"{primary.path} was deleted during the run (run directory removed?): "
                f"{removed} events written to it are lost; writing a new shard at that path"
            )
            if self.primary_failure is None:
                self.primary_failure = SinkFailure(f"FileNotFoundError: {message}")
                say(message)
            self._notice(message, lost=removed, error=f"FileNotFoundError: {message}")
        if self._primary_down and primary.error is None:
            self._primary_down = False
            lost = primary.lines_lost - self._lost_ok
            failure = self.primary_failure
            error = failure.error if failure is not None else "unknown error"
            self._notice(
                f"writing {primary.path.name} failed ({error}); {lost} events were lost "
                "before writes succeeded again",
                lost=lost,
                error=error,
            )
        if not self._primary_down:
            self._lost_ok = primary.lines_lost

    def sink_errors(self) -> dict[str, dict[str, Any]]:
        """Every sink's failure for run.json, the JSONL shard's with all the events it lost."""
        out = {name: f.as_dict() for name, f in self.failures.items()}
        if self.primary_failure is not None:
            entry = self.primary_failure.as_dict()
            entry["missed"] = self.primary.lines_lost
            out[self.primary.name] = entry
        return out

    def _incident(self, event: dict[str, Any]) -> Record:
        """gemmalog's own report as a record: through the listener's processors like any
        event, then rendered."""
        try:
            for proc in self.processors:
                event = proc(None, "", event)
        except Exception:
            event = {k: event.get(k) for k in CORE_FIELDS}
            event["event"] = "gemmalog incident (details withheld: redaction failed)"
        return (event, render(event))

    def _notice(self, message: str, *, lost: int, error: str) -> None:
        self._notices += 1
        if self._notices > MAX_NOTICES:
            return
        event = self._event(
            "warning", message, sink=self.primary.name, error=error, events_lost=lost
        )
        try:
            self.primary.write([self._incident(event)])
        except BaseException as exc:
            self.primary_failed(exc)

    def _event(self, level: str, message: str, **fields: Any) -> dict[str, Any]:
        event: dict[str, Any] = {
            "v": SCHEMA_VERSION,
            "ts": time.time(),
            "kind": "log",
            "logger": "gemmalog",
            "level": level,
            "run": self.run,
            "rank": self.rank,
            "event": message,
            **fields,
        }
        if self.segment:
            event["segment"] = self.segment
        return event
