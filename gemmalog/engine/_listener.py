"""The listener thread: take batches off the queue, process, render once, fan out to sinks.

A stdlib ``QueueListener`` whose ``dequeue`` returns a whole batch (possibly empty, which
doubles as the flush timer's tick) and whose ``handle`` never raises: what a sink, or a
write of the JSONL shard, raises goes to :class:`~gemmalog.engine._sink_health.SinkHealth` (a
failing sink is reported once and disabled, the others carry on; the JSONL sink is never
disabled).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Sequence
from logging.handlers import QueueListener
from typing import Any, Protocol

from gemmalog.engine._queue import EventQueue
from gemmalog.engine._router import Router
from gemmalog.engine._sink_health import Processor, SinkHealth
from gemmalog.events import CORE_FIELDS
from gemmalog.processors.render import render
from gemmalog.processors.sanitize import plain_key
from gemmalog.sinks.base import Record, Sink
from gemmalog.sinks.jsonl import JsonlSink


class Sampler(Protocol):
    """Something the listener reads on its tick (GPU counters): ``sample()`` returns events
    (kind and fields, no envelope) at most every ``interval`` seconds."""

    interval: float

    def sample(self) -> list[dict[str, Any]]: ...

    def close(self) -> None: ...


class FlushRequest:
    """Put on the queue by ``flush()``; set once everything before it is written."""

    __slots__ = ("done",)

    def __init__(self) -> None:
        self.done = threading.Event()


class StampSegment:
    """Listener-side processor: the ``segment`` of a resumed run on every line (see Run)."""

    __slots__ = ("segment",)

    def __init__(self, segment: int) -> None:
        self.segment = segment

    def __call__(self, logger: Any, method_name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
        event_dict["segment"] = self.segment
        return event_dict


def _plain_keys(value: Any, depth: int = 0) -> Any:
    """A copy whose dict keys are all str (see :func:`~gemmalog.processors.sanitize.plain_key`)."""
    if depth > 64:
        return "<nested too deep>"
    if type(value) is dict:
        return {plain_key(k): _plain_keys(v, depth + 1) for k, v in value.items()}
    if type(value) is list:
        return [_plain_keys(v, depth + 1) for v in value]
    return value


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
        segment: int = 0,
    ) -> None:
        super().__init__(queue)
        self.events = queue
        self.primary = primary
        self.router = router
        self.processors = tuple(processors)
        self.flush_interval = flush_interval
        self.events_handled = 0
        #: The sinks' failures and the shard's incidents, reported once (see _sink_health).
        self.health = SinkHealth(primary, self.processors, run=run, rank=rank, segment=segment)
        self._next_flush = time.monotonic() + flush_interval
        #: Events processed between two looks at the loss window (see _between_chunks).
        self.chunk = 32
        #: Read on the tick (see _sampled); ``prepare_sampled`` gives their events the envelope.
        self.samplers: list[Sampler] = []
        self.prepare_sampled: Callable[[dict[str, Any]], dict[str, Any]] = lambda event: event
        self._next_sample: dict[int, float] = {}
        self._step: Any = None  # the latest step seen when a sampler was due

    @property
    def sinks(self) -> list[Sink]:
        out: list[Sink] = [self.primary]
        out.extend(s for s in self.router.sinks.values() if s is not self.primary)
        return out

    def dequeue(self, block: bool) -> list[Any] | None:  # type: ignore[override]  # a batch, not one record
        """The next batch, once the work this thread must do unasked is due: the flush of
        the shard (and the sinks' tick with it) when its oldest unwritten event is
        ``flush_interval`` old, or the tick, ``flush_interval`` after the last flush;
        sooner when the queue wakes it (``wake_at`` events, a flush request, shutdown, a
        producer waiting for room)."""
        return self.events.get(block, self._until_due())

    def _until_due(self) -> float:
        # The tick (monotonic, reset at every flush) bounds the wait: a wall clock stepped
        # back, or a ts a processor rewrote (huge, infinite, NaN), never delays the flush
        # beyond flush_interval nor makes this thread spin.
        wait = min(self._next_flush - time.monotonic(), self.flush_interval)
        oldest = self.events.oldest()
        if oldest is not None:
            with contextlib.suppress(TypeError):  # a ts that is no number: the tick decides
                by_age = oldest + self.flush_interval - time.time()
                if by_age < wait:
                    wait = by_age
        return wait if wait > 0.0 else 0.0

    def handle(self, record: Any) -> None:
        try:
            self._handle(record)
        except BaseException as exc:  # the thread must survive anything
            self.health.sink_failed("listener", exc)

    def _sampled(self, batch: list[Any]) -> list[Any]:
        """``batch`` with the events of the samplers that are due, at the latest step the
        batch shows (this thread has no step of its own). A sampler that raises is reported
        once and dropped."""
        now = time.monotonic()
        due = [s for s in self.samplers if now >= self._next_sample.get(id(s), 0.0)]
        if not due:
            return batch
        for item in reversed(batch):
            if type(item) is dict and item.get("step") is not None:
                self._step = item["step"]
                break
        extra: list[Any] = []
        for sampler in due:
            self._next_sample[id(sampler)] = now + sampler.interval
            try:
                events = sampler.sample()
            except BaseException as exc:
                self.samplers.remove(sampler)
                self.health.sink_failed(type(sampler).__name__, exc)
                continue
            for event in events:
                if self._step is not None:
                    event.setdefault("step", self._step)
                extra.append(self.prepare_sampled(event))
        return [*batch, *extra] if extra else batch

    def close_samplers(self) -> None:
        for sampler in self.samplers:
            with contextlib.suppress(BaseException):
                sampler.close()
        self.samplers = []

    def _handle(self, batch: list[Any]) -> None:
        if self.samplers:
            batch = self._sampled(batch)
        requests: list[FlushRequest] = []
        buckets: dict[Sink, list[Record]] = {}
        primary_batch: list[Record] = []
        primary = self.primary
        sinks_for = self.router.sinks_for
        records_of = self._records
        chunk = self.chunk
        left = chunk
        last = len(batch) - 1
        for index, item in enumerate(batch):
            if type(item) is FlushRequest:
                requests.append(item)
                continue
            records = records_of(item)
            for record in records:
                event = record[0]
                primary_batch.append(record)
                for sink in sinks_for(event.get("logger") or "", event.get("level")):
                    if sink is primary:
                        continue
                    bucket = buckets.get(sink)
                    if bucket is None:
                        buckets[sink] = [record]
                    else:
                        bucket.append(record)
            left -= len(records)  # an expanded batch (rewards) counts all it became
            if left <= 0 and index < last:
                left = chunk
                self.events_handled += len(primary_batch)
                self._write_primary(primary_batch)
                primary_batch = []
                self._between_chunks(batch, index + 1)
        self.events_handled += len(primary_batch)
        if primary_batch:
            self._write_primary(primary_batch)
        self._deliver(buckets, requests)

    def _deliver(self, buckets: dict[Sink, list[Record]], requests: list[FlushRequest]) -> None:
        """After the batch's lines are in the shard: flush it when due, then the other sinks'
        records (a disabled sink's only counted), their tick, and the flush requests."""
        # The shard first: the loss window is about the JSONL, and the other sinks (a
        # console, TensorBoard) may take much longer to write than it does.
        now = time.monotonic()
        inflight = self.events.inflight_since
        # The shard's flush and the sinks' tick go together, in one wake-up (see dequeue):
        # the tick is reset at every flush, whichever of the two made it due.
        due = (
            bool(requests)
            or now >= self._next_flush
            or (inflight is not None and time.time() - inflight >= self.flush_interval)
        )
        if due:
            self._flush_primary()
        failures = self.health.failures
        for sink, records in buckets.items():
            failure = failures.get(sink.name)
            if failure is not None:
                failure.missed += len(records)
                continue
            self._call(sink, "write", records)
        if due:
            self.flush_all(now=bool(requests), primary=False)
            self._next_flush = now + self.flush_interval
            for request in requests:
                request.done.set()

    def _between_chunks(self, batch: list[Any], rest: int) -> None:
        """Between two chunks of a batch: keep the loss window.

        When the shard's oldest unwritten event is ``flush_interval`` old, the shard is
        flushed here rather than after the whole batch: a batch slowed down by a busy caller
        (the two share the GIL) or by slow sinks does not widen the window by its length.

        No GIL hand-off here: ``sched_yield`` (or ``sleep(0)``) lets a waiting caller in
        sooner than the switch interval, but it also hands this thread's CPU to any other
        runnable process (torch's threads, CPU burners in the tests) for a scheduler slice
        per chunk; with the machine busy the listener then fell so far behind that events
        older than the loss window were still unwritten.
        """
        inflight = self.events.inflight_since
        if inflight is None or time.time() - inflight < self.flush_interval:
            return
        since = None
        for item in batch[rest:]:
            if type(item) is dict:
                since = item.get("ts")
                break
        self._flush_primary(rest_since=since)

    def on_listener_thread(self) -> bool:
        """Whether the caller is this listener's thread (a sink or library logging from it)."""
        return threading.current_thread() is self._thread

    def _apply(self, event: Any, start: int) -> Any:
        """Run the processors from ``start``. One that returns a list (an event handed over
        to be expanded on this thread, see processors/expand.py) has each item of it run
        through the processors after it: the records of those come back instead of an event."""
        processors = self.processors
        for i in range(start, len(processors)):
            event = processors[i](None, "", event)
            if type(event) is list:
                return [record for e in event for record in self._records(e, i + 1)]
        return event

    def _records(self, item: dict[str, Any], start: int = 0) -> list[Record]:
        """The record(s) of one event: usually one, none or several for an expanded one."""
        try:
            try:
                event = self._apply(item, start)
            except Exception:  # e.g. a key whose str() raises: plain keys, then again
                event = self._apply(_plain_keys(item), start)
            if type(event) is list:
                return event
            return [(event, render(event))]
        except Exception as exc:  # a processor bug must not cost the event its line
            event = {k: item.get(k) for k in CORE_FIELDS}
            event["event"] = f"<event could not be processed: {type(exc).__name__}: {exc}>"
            return [(event, render(event))]

    def write_through(self, batch: list[Any]) -> None:
        """Process, write and flush ``batch`` on the calling thread (no listener thread).

        For processes that may end without running another line of Python (a forked child
        leaving through ``os._exit``, a pool worker terminated by its parent): when this
        returns, the lines are in the shard.
        """
        self.handle(batch)
        self._flush_primary()

    def _write_primary(self, records: list[Record]) -> None:
        try:
            self.primary.write(records)
        except BaseException as exc:
            self.health.primary_failed(exc)
        self.health.check_primary()

    def _flush_primary(self, rest_since: float | None = None) -> None:
        """Flush the shard; ``rest_since``: ``ts`` of the oldest event taken and not written yet."""
        try:
            self.primary.flush()
        except BaseException as exc:
            self.health.primary_failed(exc)
        # Written, or counted as lost: either way producers no longer wait for these.
        self.events.flushed(rest_since)
        self.health.check_primary()

    def flush_all(self, now: bool = False, primary: bool = True) -> None:
        """Flush every sink: a periodic tick (sinks may keep buffering) or, ``now``, everything."""
        if primary:
            self._flush_primary()
        method = "flush_now" if now else "flush"
        failures = self.health.failures
        for sink in self.sinks[1:]:
            if sink.name not in failures:
                self._call(sink, method if hasattr(sink, method) else "flush")

    def _call(self, sink: Sink, method: str, *args: Any) -> None:
        try:
            getattr(sink, method)(*args)
        except BaseException as exc:
            self.health.sink_failed(sink.name, exc)

    def close_sinks(self) -> None:
        """Flush and close every sink; failures are reported, never raised."""
        self.flush_all(now=True)
        for sink in self.sinks[1:]:
            self._call(sink, "close")
        try:
            self.primary.close()
        except BaseException as exc:
            self.health.primary_failed(exc)
