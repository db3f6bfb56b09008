"""The engine of one run: processors on the caller's thread, the queue, the listener and sinks.

A :class:`Pipeline` is built from a configuration, for a new run (:meth:`Pipeline.new_run`)
or for a child process writing into its parent's run (:meth:`Pipeline.child`). It knows
nothing of the process's global state: :mod:`gemmalog.lifecycle._lifecycle` decides which pipeline is
running, and :mod:`gemmalog.lifecycle._state` holds it.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from gemmalog.config.model import Config
from gemmalog.engine._assembly import (
    build_router,
    build_sinks,
    caller_chain,
    child_run,
    listener_chain,
    open_run,
    sample_gpus,
)
from gemmalog.engine._late import calls_on_this_thread, wait_for_turns
from gemmalog.engine._listener import EventListener, FlushRequest
from gemmalog.engine._queue import EventQueue
from gemmalog.engine._run_record import RunRecord
from gemmalog.engine._write_through import WriteThrough
from gemmalog.notices import say, warn_once
from gemmalog.processors import Redact
from gemmalog.processors.expand import EXPAND, Deferred, Expand, ExpandContext
from gemmalog.processors.isolated import Processor
from gemmalog.run._directory import WriterLock, tighten
from gemmalog.run._manifest import Run
from gemmalog.sinks.base import Sink
from gemmalog.sinks.jsonl import JsonlSink


class Pipeline:
    """Processors on the caller's thread, a bounded queue, the listener thread and its sinks."""

    @classmethod
    def new_run(
        cls,
        config: Config,
        *,
        processors: Sequence[Processor] = (),
        listener_processors: Sequence[Processor] = (),
        sinks: Sequence[Sink] = (),
    ) -> Pipeline:
        """The pipeline of a new run (or of a new segment of the run its id names).

        ``processors`` run on the caller's thread after gemmalog's own (the event has its
        envelope), ``listener_processors`` on the listener thread before redaction, and
        ``sinks`` receive every event (at or above their own level). Raises
        :class:`ConfigError` when the run directory belongs to another run id, or when
        another process is writing this rank of the run.
        """
        run, lock = open_run(config)
        try:
            pipeline = cls(
                config,
                run,
                run.jsonl_path,
                child=False,
                processors=processors,
                listener_processors=listener_processors,
                extra_sinks=sinks,
            )
        except BaseException:
            if lock is not None:
                lock.release()
            raise
        pipeline.writer_lock = lock
        return pipeline

    @classmethod
    def child(
        cls,
        config: Config,
        parent: Run,
        *,
        late: bool = False,
        processors: Sequence[Processor] = (),
        listener_processors: Sequence[Processor] = (),
    ) -> Pipeline:
        """A pipeline writing into ``parent``'s run from another process (fork, spawn) or
        after the run ended (``late``): its own shard, no other sinks, no manifest, and no
        listener thread (events are written before the log call returns). A late writer
        opens its shard on its first event and says once on stderr where late events go."""
        run, shard = child_run(parent)
        return cls(
            config,
            run,
            shard,
            child=True,
            late=late,
            processors=processors,
            listener_processors=listener_processors,
        )

    def __init__(
        self,
        config: Config,
        run: Run,
        shard: Path,
        *,
        child: bool,
        late: bool = False,
        processors: Sequence[Processor] = (),
        listener_processors: Sequence[Processor] = (),
        extra_sinks: Sequence[Sink] = (),
    ) -> None:
        """Use :meth:`new_run` or :meth:`child`."""
        s = config.settings
        self.config = config
        self.metrics = config.metrics
        self.roles = config.role_loggers()
        self.run = run
        self.is_child = child
        self.writer_lock: WriterLock | None = None
        #: A writer of the events logged after this process's run ended (see stop()).
        self.is_late = late
        self._processors = tuple(processors)
        self._listener_processors = tuple(listener_processors)
        self.started = time.time()
        # The time bound (see EventQueue and docs/reliability.md): the listener flushes the
        # shard once its oldest unwritten event is flush_interval old, and callers wait
        # while one is older than 1.5 flush intervals (the listener is starved of CPU).
        self.queue = EventQueue(
            s.queue_size,
            s.backpressure,  # type: ignore[arg-type]
            max_lag=1.5 * s.flush_interval,
        )
        self.chain: tuple[Processor, ...] = caller_chain(s, run, processors)
        primary = JsonlSink(shard, fsync=s.fsync, private=s.private, lazy=late)
        sinks, own, failed = ({}, (), {}) if child else build_sinks(config, run, extra_sinks)
        self.router = build_router(config, sinks, always=(primary, *own))
        # One instance for the events and run.json (argv, error, config): the same rules.
        self.redact = Redact(s.redact_patterns) if s.redact else None
        self._levels: dict[str, int] = {}
        # Role -> logger name when that logger takes INFO events, else None: the helpers'
        # one-lookup level check.
        self.role_names: dict[str, str | None] = {
            role: (name if self.levelno(name) <= 20 else None) for role, name in self.roles.items()
        }
        self.listener = self._make_listener(primary, listener_processors, failed)
        self._init_ending()
        gpus = self.role_names["system"]  # GPU counters read on the listener's tick
        if not child and gpus is not None and self.metrics.enabled("resource_metrics"):
            sample_gpus(self.listener, self.chain, gpus, s.gpu_interval)
        self._start_writing()

    def _make_listener(
        self,
        primary: JsonlSink,
        listener_processors: Sequence[Processor],
        failed: Mapping[str, Exception],
    ) -> EventListener:
        """The listener (not started), told what failed already: the shard's opening, the
        sinks that could not start."""
        run = self.run
        listener = EventListener(
            self.queue,
            primary,
            self.router,
            listener_chain(
                run,
                Expand(self.chain[0], ExpandContext(self.role_names, self.metrics)),
                self.redact,
                listener_processors,
            ),
            flush_interval=self.config.settings.flush_interval,
            run=run.id,
            rank=run.rank,
            segment=run.segment,
        )
        health = listener.health
        if primary.error is not None:  # counted and reported like a failed write
            health.primary_failed(primary.error)
        for name, error in failed.items():  # reported like any sink failure: stderr + JSONL
            health.sink_failed(name, error, starting=True)
        return listener

    def _init_ending(self) -> None:
        """The state of the run's end (see stop()): none of it has happened yet."""
        self.stopped = False
        self._stopping = False
        # (calls that took their turn, calls that handed over): shutdown() waits for those
        # under way on other threads (itertools.count: no lock, see _queue). stop() starts
        # a new pair when it switches the hand-over, so calls that go to the late writer
        # are never waited for.
        self._turns = (itertools.count(), itertools.count())
        #: Where the events logged once this run has ended go (set by stop()).
        self.late: Pipeline | None = None
        # Set once the listener has stopped: an event queued after that is taken by the
        # call that queued it (see emit) or by stop(), and goes to the late writer.
        self._stranded = False
        self.record = RunRecord(self.run, self.redact)

    def _start_writing(self) -> None:
        """Events to the queue and the listener thread, or, for a child, to the shard at once."""
        if self.is_child:
            # Written on the calling thread, at once (see _write_through); a late writer
            # says where the late events go at its first.
            notice = (
                f"logging after shutdown(): late events are appended to run {self.run.id} "
                f"({self.listener.primary.path.name}); call initialize() to start a new run"
                if self.is_late
                else None
            )
            self._write_now = WriteThrough(self.listener, notice)
            self._put: Callable[[dict[str, Any]], None] = self._write_now
            self._put_forced: Callable[[dict[str, Any]], None] = self._write_now
        else:
            self._put = self.queue.put
            self._put_forced = self.queue.put_nowait
            self.listener.start()

    # -- the hot path -------------------------------------------------------------------
    def levelno(self, logger: str) -> int:
        level = self._levels.get(logger)
        if level is None:
            level = self._levels[logger] = self.router.levelno_for(logger)
        return level

    def emit(self, method: str, event: dict[str, Any], *, force: bool = False) -> None:
        """Run the caller-side processors and hand the event to the listener; never raises.

        ``force`` bypasses the queue bound (run_start/run_end are never dropped). Once the
        run has ended the event goes to the late writer instead (see :meth:`stop`).
        """
        try:
            for proc in self.chain:
                event = proc(None, method, event)
            turns = self._turns
            next(turns[0])
            try:
                if force:
                    self._put_forced(event)
                else:
                    self._put(event)
            finally:
                next(turns[1])
                if self._stranded:  # queued after the listener's last take: write it now
                    self._rescue()
        except Exception as exc:
            warn_once(f"an event could not be logged ({type(exc).__name__})")

    def defer(self, payload: Deferred, logger: str) -> None:
        """Hand over ``payload``, turned into its events on the listener thread (the one way
        to move an event's work off the caller's thread); never raises. Its carrier event runs
        through the caller's processors here (its envelope, context and resources are its
        events') and queues in order with the others; :class:`Expand` writes its events."""
        try:
            event: dict[str, Any] = {"kind": payload.kind, "logger": logger}
            for proc in self.chain:
                event = proc(None, "info", event)
            # After the caller's processors: Sanitize would turn the payload into text.
            event[EXPAND] = payload
            turns = self._turns
            next(turns[0])
            try:
                self._put(event)
            finally:
                next(turns[1])
                if self._stranded:
                    self._rescue()
        except Exception as exc:
            warn_once(f"an event could not be logged ({type(exc).__name__})")

    def emit_on_listener(self, method: str, event: dict[str, Any]) -> None:
        """What :meth:`emit` does, for an event logged on the listener thread itself (a
        library logging from inside a sink): queued without waiting for room, which only
        this thread could make; may raise."""
        for proc in self.chain:
            event = proc(None, method, event)
        self.queue.put_nowait(event)

    def _divert(self, event: dict[str, Any]) -> None:
        """Hand an event logged after the run ended to the late writer (written at once)."""
        late = self.late
        if late is None:  # a forked child dropped its parent's (see _state)
            late = self.late = self.late_writer()
        late._write_now(event)

    def late_writer(self) -> Pipeline:
        """A writer of this run's late events in this process (its shard opened on first use)."""
        return Pipeline.child(
            self.config,
            self.run,
            late=True,
            processors=self._processors,
            listener_processors=self._listener_processors,
        )

    def _rescue(self) -> None:
        """Write what is still queued now that the listener has stopped (late writer)."""
        queue = self.queue
        while True:
            try:
                item = queue.leftover()
            except IndexError:
                return
            if type(item) is dict:
                self._divert(item)
            elif type(item) is FlushRequest:
                item.done.set()

    # -- lifecycle ----------------------------------------------------------------------
    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until everything logged before this call is written and flushed."""
        if self.stopped or self.is_child or self.listener.on_listener_thread():
            return True if self.is_child else self.stopped
        request = FlushRequest()
        self.queue.put_nowait(request)
        if self._stranded:  # queued after the listener's last take: nothing to wait for
            self._rescue()
        return request.done.wait(timeout)

    def stop(
        self, status: str, error: str | None = None, stats: Mapping[str, Any] | None = None
    ) -> None:
        """End the run: every event handed over before is written, ``run_end`` last, and
        whatever is logged afterwards, on any thread, goes to the late writer.

        The order holds against threads that keep logging: after the drain, new calls are
        switched to the late writer; the calls already under way are waited for, so their
        events are written before ``run_end`` and the counts in ``run_end`` and run.json
        are final; an event that still reaches the queue after the listener's last take
        (a call this thread interrupted) is written to the late shard by its own call.
        """
        if self.stopped or self._stopping:
            return
        self._stopping = True
        self.run.status = status
        ended = self.run.ended = time.time()
        if not self.is_child:
            self._end_with_run_end(status, error, stats, ended - self.started)
        self.stopped = True
        if not self.is_child:
            self.listener.stop()
            self.listener.close_samplers()
            self._put_forced = self._divert
            self._stranded = True
            self._rescue()
        self.queue.close()
        self.listener.close_sinks()
        if self.queue.drops:  # nothing is lost silently
            say(
                f"the 'drop' backpressure policy dropped {self.queue.drops} event(s) of run "
                f"{self.run.id} (rank {self.run.rank}); raise queue_size or use 'block' to keep them",
            )
        if self.run.private:
            tighten(self.run.dir)
        if not self.is_child:
            self.record.write_end(self.listener, self.queue.drops, error)
        # run.json is final: the run id may start again (a resumed segment). The late
        # events' count in run.json is only added while it is still this segment's.
        if self.writer_lock is not None:
            self.writer_lock.release()

    def _end_with_run_end(
        self, status: str, error: str | None, stats: Mapping[str, Any] | None, duration: float
    ) -> None:
        """Switch new calls to the late writer, wait for those under way, drain the queue,
        then hand over ``run_end`` (its counts final)."""
        self.late = self.late_writer()
        self._put = self._divert
        turns, self._turns = self._turns, (itertools.count(), itertools.count())
        self.queue.close()
        own = calls_on_this_thread(self, (Pipeline.emit.__code__, Pipeline.defer.__code__))
        wait_for_turns(turns, own, timeout=30.0)
        # Drain: a batch the listener holds is in neither count below.
        self.flush(timeout=30.0)
        self.emit(
            "info" if status == "completed" else "error",
            {
                "kind": "run_end",
                "logger": self.roles["system"],
                "event": f"run {status}",
                "status": status,
                "duration_s": duration,
                "events": self.listener.events_handled + len(self.queue) + 1,
                "drops": self.queue.drops,
                "error": error,
                "final_stats": dict(stats or {}),
            },
            force=True,
        )

    def record_late(self) -> None:
        """Count the events logged after this run ended in its run.json, and say so
        (when the process ends, and at the next ``initialize()``): see :mod:`gemmalog.engine._late`."""
        if self.late is not None:
            self.record.record_late(self.late.listener.primary)
