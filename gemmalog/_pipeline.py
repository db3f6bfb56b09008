"""The engine of one run: processors on the caller's thread, the queue, the listener and sinks.

A :class:`Pipeline` is built from a configuration, for a new run (:meth:`Pipeline.new_run`)
or for a child process writing into its parent's run (:meth:`Pipeline.child`). It knows
nothing of the process's global state: :mod:`gemmalog._lifecycle` decides which pipeline is
running, and :mod:`gemmalog._state` holds it.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from gemmalog._listener import EventListener, FlushRequest, StampSegment
from gemmalog._queue import EventQueue
from gemmalog._run import Run, read_manifest
from gemmalog._rundir import make_run_dir, resumed_segment, tighten, write_manifest
from gemmalog.config.build import build_sink
from gemmalog.config.loader import ConfigError
from gemmalog.config.model import Config
from gemmalog.notices import say, warn_once
from gemmalog.processors import AddEnvelope, AddResources, Redact, Sanitize, Sanitizer
from gemmalog.processors.conform import ConformToSchema
from gemmalog.processors.derive import DeriveGenerationStats
from gemmalog.processors.expand import Expand
from gemmalog.processors.gpu import GpuCounters
from gemmalog.processors.isolated import Isolated, Processor
from gemmalog.router import Route, Router
from gemmalog.run_identity import distributed_env, new_run_id, run_dir_for, shared_run_id
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
        :class:`ConfigError` when the run directory belongs to another run id.
        """
        s = config.settings
        rank, world = distributed_env()
        run_id = s.run_id or shared_run_id(s.run_name) or new_run_id(s.run_name)
        run_dir = run_dir_for(Path(s.root).expanduser(), run_id)
        owner = read_manifest(run_dir / "run.json")
        if owner is not None and owner.get("id") not in (None, run_id):
            raise ConfigError(
                f"run directory {run_dir} belongs to run {owner.get('id')!r}, not "
                f"{run_id!r}: choose another run_id (or root)"
            )
        run = Run(
            run_id,
            s.run_name or run_id,
            run_dir,
            rank,
            world,
            config=config.snapshot(),
            private=s.private,
        )
        run.segment, run.history = resumed_segment(run_dir, rank)
        make_run_dir(run_dir, s.private)
        return cls(
            config,
            run,
            run.jsonl_path,
            child=False,
            processors=processors,
            listener_processors=listener_processors,
            extra_sinks=sinks,
        )

    @classmethod
    def child(cls, config: Config, parent: Run) -> Pipeline:
        """A pipeline writing into ``parent``'s run from another process (fork, spawn) or
        after the run ended (late events): its own shard, no other sinks, no manifest, and
        no listener thread (events are written before the log call returns)."""
        run = Run(
            parent.id,
            parent.name,
            parent.dir,
            parent.rank,
            parent.world_size,
            config=parent.config,
            segment=parent.segment,
            private=parent.private,
        )
        shard = parent.dir / f"events.{parent.rank}.{os.getpid()}.jsonl"
        return cls(config, run, shard, child=True)

    def __init__(
        self,
        config: Config,
        run: Run,
        shard: Path,
        *,
        child: bool,
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
        self.started = time.time()
        # The time bound (see EventQueue and docs/reliability.md): the listener flushes the
        # shard once its oldest unwritten event is flush_interval old, and callers wait
        # while one is older than 1.5 flush intervals (the listener is starved of CPU).
        self.queue = EventQueue(
            s.queue_size,
            s.backpressure,  # type: ignore[arg-type]
            max_lag=1.5 * s.flush_interval,
        )
        # Sanitize first: it then walks only the fields of the call (the envelope's own
        # values are plain, and bound context values were sanitized by bind()).
        self.chain: tuple[Processor, ...] = (
            Sanitize(Sanitizer(max_string_length=s.max_string_length)),
            AddEnvelope(run.id, run.rank),
            AddResources(s.memory_interval),
            *(Isolated(p, "caller") for p in processors),
        )
        primary = JsonlSink(shard, fsync=s.fsync, private=s.private)
        sinks, failed = ({}, {}) if child else self._build_sinks(config, extra_sinks)
        routes = {
            name: Route(lc.level, lc.handlers, lc.propagate) for name, lc in config.loggers.items()
        }
        root = config.root
        # The user's sinks take every event their own level lets through, whatever the
        # loggers' routes (as the JSONL does).
        always = (primary, *(sink for sink in extra_sinks if sink.name in sinks))
        self.router = Router(
            sinks, routes, Route(root.level, root.handlers, root.propagate), always=always
        )
        # One instance for the events and run.json (argv, error, config): the same rules.
        self.redact = Redact(s.redact_patterns) if s.redact else None
        self.listener = EventListener(
            self.queue,
            primary,
            self.router,
            self._listener_chain(config, listener_processors),
            flush_interval=s.flush_interval,
            run=run.id,
            rank=run.rank,
            segment=run.segment,
        )
        if primary.error is not None:
            self.listener.report_primary_failure(primary.error)
        for name, error in failed.items():  # reported like any sink failure: stderr + JSONL
            self.listener.report_start_failure(name, error)
        self._levels: dict[str, int] = {}
        # Role -> logger name when that logger takes INFO events, else None: the helpers'
        # one-lookup level check.
        self.role_names: dict[str, str | None] = {
            role: (name if self.levelno(name) <= 20 else None) for role, name in self.roles.items()
        }
        self.stopped = False
        self._stopping = False
        if not child:
            self._sample_gpus(s.gpu_interval)
        if child:
            # Written on the calling thread, at once: a child may leave through os._exit()
            # or be terminated by its parent (multiprocessing.Pool.terminate, SIGTERM), and
            # then no thread or exit hook of its own runs again.
            self._put: Callable[[dict[str, Any]], None] = self._write_now
            self._put_forced: Callable[[dict[str, Any]], None] = self._write_now
            self._backlog: deque[dict[str, Any]] = deque()
            self._write_lock = threading.Lock()
            self._writer: int | None = None
        else:
            self._put = self.queue.put
            self._put_forced = self.queue.put_nowait
            self.listener.start()

    def _sample_gpus(self, interval: float) -> None:
        """GPU counters on the listener's tick, as ``system`` events, when NVML sees a
        device (``processors/gpu.py``); with several devices visible, local rank 0 samples
        them for its node. Nothing at all without NVML."""
        name = self.role_names["system"]
        if name is None or not self.metrics.enabled("resource_metrics"):
            return
        several = "," in os.environ.get("CUDA_VISIBLE_DEVICES", ",")  # unset: every device
        if several and os.environ.get("LOCAL_RANK", "0") not in ("", "0"):
            return
        counters = GpuCounters.open(interval)
        if counters is None:
            return
        chain = self.chain

        def prepare(event: dict[str, Any]) -> dict[str, Any]:
            event["logger"] = name
            for proc in chain:
                event = proc(None, "info", event)
            return event

        self.listener.prepare_sampled = prepare
        self.listener.samplers.append(counters)

    def _build_sinks(
        self, config: Config, extra: Sequence[Sink]
    ) -> tuple[dict[str, Sink], dict[str, Exception]]:
        """The configured handlers' sinks (CSV and TensorBoard on rank 0 only) and the user's;
        a handler that cannot start is returned with its error, to be reported."""
        sinks: dict[str, Sink] = {}
        failed: dict[str, Exception] = {}
        for name, spec in config.handlers.items():
            if self.run.rank != 0 and spec.type in ("csv", "tensorboard"):
                continue
            try:
                sink = build_sink(config, spec, self.run.dir)
            except Exception as exc:  # e.g. permission denied: report, carry on without it
                failed[name] = exc
                continue
            if sink is not None:
                sinks[name] = sink
        for sink in extra:
            if sink.name in sinks:
                failed[sink.name] = ValueError(f"a handler is already named {sink.name!r}")
                continue
            sinks[sink.name] = sink
        return sinks, failed

    def _listener_chain(self, config: Config, user: Sequence[Processor]) -> tuple[Processor, ...]:
        """Listener-side processors: batches expanded, derived statistics, the user's, fields
        made castable, redaction (after those, so it sees what they added), the segment
        stamp, the live doctor."""
        # Expand first: the events a handed-over batch becomes go through all the others.
        chain: list[Processor] = [
            Expand(),
            DeriveGenerationStats(),
            *(Isolated(p, "listener") for p in user),
            # After everything that adds fields, before redaction and rendering.
            ConformToSchema(),
        ]
        if self.redact is not None:
            chain.append(self.redact)
        if self.run.segment:
            chain.append(StampSegment(self.run.segment))
        if config.doctor.live and not self.is_child and self.run.rank == 0:
            from gemmalog.doctor._live import LiveDoctor  # duckdb and the checks: only if asked

            chain.append(LiveDoctor(config.doctor, self.run.id, self.run.dir))
        return tuple(chain)

    # -- the hot path -------------------------------------------------------------------
    def levelno(self, logger: str) -> int:
        level = self._levels.get(logger)
        if level is None:
            level = self._levels[logger] = self.router.levelno_for(logger)
        return level

    def emit(self, method: str, event: dict[str, Any], *, force: bool = False) -> None:
        """Run the caller-side processors and hand the event to the listener; never raises.

        ``force`` bypasses the queue bound (run_start/run_end are never dropped).
        """
        try:
            for proc in self.chain:
                event = proc(None, method, event)
            if force:
                self._put_forced(event)
            else:
                self._put(event)
        except Exception as exc:
            warn_once(f"an event could not be logged ({type(exc).__name__})")

    def _write_now(self, event: dict[str, Any]) -> None:
        """Write an event to this process's shard before returning (children, late events).

        A signal handler that logs while this thread is writing leaves its event in the
        backlog, which the interrupted call writes before it returns: one lock, never
        taken twice by one thread.
        """
        self._backlog.append(event)
        me = threading.get_ident()
        if self._writer == me:
            return
        with self._write_lock:
            self._writer = me
            try:
                backlog = self._backlog
                while backlog:
                    batch = []
                    while backlog:
                        batch.append(backlog.popleft())
                    self.listener.write_through(batch)
            finally:
                self._writer = None

    # -- lifecycle ----------------------------------------------------------------------
    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until everything logged before this call is written and flushed."""
        if self.stopped or self.is_child or self.listener.on_listener_thread():
            return True if self.is_child else self.stopped
        request = FlushRequest()
        self.queue.put_nowait(request)
        return request.done.wait(timeout)

    def stop(
        self, status: str, error: str | None = None, stats: Mapping[str, Any] | None = None
    ) -> None:
        if self.stopped or self._stopping:
            return
        self._stopping = True
        self.run.status = status
        self.run.ended = time.time()
        if not self.is_child:
            # Drain first: a batch the listener holds is in neither count below.
            self.flush(timeout=30.0)
            self.emit(
                "info" if status == "completed" else "error",
                {
                    "kind": "run_end",
                    "logger": self.roles["system"],
                    "event": f"run {status}",
                    "status": status,
                    "duration_s": self.run.ended - self.started,
                    "events": self.listener.events_handled + len(self.queue) + 1,
                    "drops": self.queue.drops,
                    "error": error,
                    "final_stats": dict(stats or {}),
                },
                force=True,
            )
        self.stopped = True
        if not self.is_child:
            self.listener.stop()
            self.listener.close_samplers()
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
            primary = self.listener.primary
            write_manifest(
                self.run,
                redact=self.redact,
                events_written=primary.lines_written,
                events_lost=primary.lines_lost,
                drops=self.queue.drops,
                sink_errors=self.listener.sink_errors(),
                error=error,
            )
