"""The listener thread: take batches off the queue, redact, render once, fan out to sinks.

A stdlib ``QueueListener`` whose ``dequeue`` returns a whole batch (possibly empty, which
doubles as the flush timer's tick) and whose ``handle`` never raises: a sink that fails is
reported once, on stderr and as a ``log`` event in the JSONL, then disabled, and every other
sink carries on. The JSONL sink is never disabled: a failed write is counted and the next
flush tries again (a disk that was full may have room again).
"""

from __future__ import annotations

import sys
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from logging.handlers import QueueListener
from typing import Any

from gemmalog._queue import EventQueue
from gemmalog._render import render
from gemmalog._router import Router
from gemmalog.events import SCHEMA_VERSION
from gemmalog.sinks.base import Record, Sink
from gemmalog.sinks.jsonl import JsonlSink

Processor = Callable[[Any, str, dict[str, Any]], dict[str, Any]]


class FlushRequest:
    """Put on the queue by ``flush()``; set once everything before it is written."""

    __slots__ = ("done",)

    def __init__(self) -> None:
        self.done = threading.Event()


class SinkFailure:
    """What went wrong with one sink and how many events it missed afterwards."""

    __slots__ = ("error", "missed", "when")

    def __init__(self, error: str) -> None:
        self.error = error
        self.missed = 0
        self.when = time.time()

    def as_dict(self) -> dict[str, Any]:
        return {"error": self.error, "missed": self.missed, "when": self.when}


class EventListener(QueueListener):
    """Drain the :class:`EventQueue` in batches on a background thread."""

    def __init__(
        self,
        queue: EventQueue,
        primary: JsonlSink,
        router: Router,
        processors: Sequence[Processor],
        *,
        flush_interval: float,
        run: str,
        rank: int,
    ) -> None:
        super().__init__(queue)
        self.events = queue
        self.primary = primary
        self.router = router
        self.processors = tuple(processors)
        self.flush_interval = flush_interval
        self.run = run
        self.rank = rank
        self.events_handled = 0
        self.failures: dict[str, SinkFailure] = {}
        self.primary_errors = 0
        self._next_flush = time.monotonic() + flush_interval

    @property
    def sinks(self) -> list[Sink]:
        out: list[Sink] = [self.primary]
        out.extend(s for s in self.router.sinks.values() if s is not self.primary)
        return out

    def dequeue(self, block: bool) -> list[Any] | None:  # type: ignore[override]  # a batch, not one record
        return self.events.get(block)

    def handle(self, record: Any) -> None:
        try:
            self._handle(record)
        except BaseException as exc:  # the thread must survive anything
            self._report("listener", exc)

    def _handle(self, batch: list[Any]) -> None:
        requests: list[FlushRequest] = []
        buckets: dict[Sink, list[Record]] = {}
        primary_batch: list[Record] = []
        processors = self.processors
        sinks_for = self.router.sinks_for
        for item in batch:
            if type(item) is FlushRequest:
                requests.append(item)
                continue
            event = item
            try:
                for proc in processors:
                    event = proc(None, "", event)
                record = (event, render(event))
            except Exception as exc:  # a processor bug must not cost the event its line
                event = {
                    k: item.get(k)
                    for k in ("v", "ts", "kind", "logger", "level", "run", "rank", "step")
                }
                event["event"] = f"<event could not be processed: {type(exc).__name__}: {exc}>"
                record = (event, render(event))
            primary_batch.append(record)
            for sink in sinks_for(event.get("logger") or ""):
                if sink is self.primary:
                    continue
                bucket = buckets.get(sink)
                if bucket is None:
                    buckets[sink] = [record]
                else:
                    bucket.append(record)
        self.events_handled += len(primary_batch)
        if primary_batch:
            self._write_primary(primary_batch)
        for sink, records in buckets.items():
            failure = self.failures.get(sink.name)
            if failure is not None:
                failure.missed += len(records)
                continue
            self._call(sink, "write", records)
        now = time.monotonic()
        if requests or now >= self._next_flush:
            self.flush_all(now=bool(requests))
            self._next_flush = now + self.flush_interval
            for request in requests:
                request.done.set()

    def _write_primary(self, records: list[Record]) -> None:
        try:
            self.primary.write(records)
        except BaseException as exc:
            self._primary_failed(exc)

    def _primary_failed(self, exc: BaseException) -> None:
        self.primary_errors += 1
        if self.primary_errors == 1:
            print(
                f"gemmalog: writing {self.primary.path} failed ({type(exc).__name__}: {exc}); "
                "events are counted as lost until a write succeeds again",
                file=sys.stderr,
            )

    def flush_all(self, now: bool = False) -> None:
        """Flush every sink: a periodic tick (sinks may keep buffering) or, ``now``, everything."""
        try:
            self.primary.flush()
        except BaseException as exc:
            self._primary_failed(exc)
        method = "flush_now" if now else "flush"
        for sink in self.sinks[1:]:
            if sink.name not in self.failures:
                self._call(sink, method if hasattr(sink, method) else "flush")

    def _call(self, sink: Sink, method: str, *args: Any) -> None:
        try:
            getattr(sink, method)(*args)
        except BaseException as exc:
            self._report(sink.name, exc)

    def _report(self, name: str, exc: BaseException, *, starting: bool = False) -> None:
        if name in self.failures:
            return
        message = f"{type(exc).__name__}: {exc}"
        self.failures[name] = SinkFailure(message)
        when = "could not start" if starting else "failed"
        print(
            f"gemmalog: sink {name!r} {when} and is disabled for this run: {message}",
            file=sys.stderr,
        )
        event = {
            "v": SCHEMA_VERSION,
            "ts": time.time(),
            "kind": "log",
            "logger": "gemmalog",
            "level": "error",
            "run": self.run,
            "rank": self.rank,
            "event": f"sink {name} {when} and was disabled",
            "sink": name,
            "error": message,
            "exc": "".join(traceback.format_exception(exc)),
        }
        try:
            self.primary.write([(event, render(event))])
        except BaseException as primary_exc:
            self._primary_failed(primary_exc)

    def close_sinks(self) -> None:
        """Flush and close every sink; failures are reported, never raised."""
        self.flush_all(now=True)
        for sink in self.sinks[1:]:
            self._call(sink, "close")
        try:
            self.primary.close()
        except BaseException as exc:
            self._primary_failed(exc)
