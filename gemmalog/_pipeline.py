"""The running pipeline: one per process, created by ``initialize`` and ended by ``shutdown``.

All global state sits here (structlog's ``_config`` is the model): the current
:class:`Pipeline`, and the functions that start, flush and stop it.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any, NoReturn

from gemmalog._children import (
    PARENT_ENV,
    flush_at_child_exit,
    forget_parent_env,
    parent_description,
    spawned_from,
)
from gemmalog._listener import EventListener, FlushRequest, StampSegment
from gemmalog._queue import EventQueue
from gemmalog._router import Route, Router
from gemmalog._run import (
    Run,
    distributed_env,
    new_run_id,
    read_manifest,
    run_dir_for,
    shared_run_id,
)
from gemmalog._rundir import make_run_dir, resumed_segment, tighten, write_manifest
from gemmalog._stderr import warn_once
from gemmalog.config.build import build_sink
from gemmalog.config.loader import ConfigError, apply_overrides, env_overrides, load
from gemmalog.config.model import Config, default_config
from gemmalog.processors import AddEnvelope, AddResources, Redact, Sanitize, Sanitizer
from gemmalog.processors.conform import ConformToSchema
from gemmalog.processors.derive import DeriveGenerationStats
from gemmalog.processors.expand import Expand
from gemmalog.sinks.base import LEVEL_NUMBERS, Sink
from gemmalog.sinks.jsonl import JsonlSink


class Pipeline:
    """Processors on the caller's thread, a bounded queue, the listener thread and its sinks."""

    def __init__(self, config: Config, *, child_of: Run | None = None) -> None:
        s = config.settings
        self.config = config
        self.metrics = config.metrics
        self.roles = config.role_loggers()
        rank, world = distributed_env()
        if child_of is None:
            run_id = s.run_id or shared_run_id(s.run_name) or new_run_id(s.run_name)
            run_dir = run_dir_for(Path(s.root).expanduser(), run_id)
            self.run = Run(
                run_id,
                s.run_name or run_id,
                run_dir,
                rank,
                world,
                config=config.snapshot(),
                private=s.private,
            )
            owner = read_manifest(run_dir / "run.json")
            if owner is not None and owner.get("id") not in (None, run_id):
                raise ConfigError(
                    f"run directory {run_dir} belongs to run {owner.get('id')!r}, not "
                    f"{run_id!r}: choose another run_id (or root)"
                )
            self.run.segment, self.run.history = resumed_segment(run_dir, rank)
            make_run_dir(run_dir, s.private)
            shard = self.run.jsonl_path
        else:
            # A forked or spawned child, or an event after shutdown(): its own shard, no
            # other sinks, no manifest, and no listener thread (see _write_now).
            parent = child_of
            self.run = Run(
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
        self.is_child = child_of is not None
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
        self.chain = (
            Sanitize(Sanitizer(max_string_length=s.max_string_length)),
            AddEnvelope(self.run.id, self.run.rank),
            AddResources(s.memory_interval),
        )
        primary = JsonlSink(shard, fsync=s.fsync, private=s.private)
        sinks: dict[str, Sink] = {}
        failed: dict[str, Exception] = {}
        if child_of is None:
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
        routes = {
            name: Route(lc.level, lc.handlers, lc.propagate) for name, lc in config.loggers.items()
        }
        root = config.root
        self.router = Router(
            sinks, routes, Route(root.level, root.handlers, root.propagate), always=(primary,)
        )
        # Expand first: the events a handed-over batch becomes go through all the others.
        # Conform after the processors that add fields, before redaction and rendering.
        listener_chain: tuple[Any, ...] = (Expand(), DeriveGenerationStats(), ConformToSchema())
        # One instance for the events and run.json (argv, error, config): the same rules.
        self.redact = Redact(s.redact_patterns) if s.redact else None
        if self.redact is not None:
            listener_chain = (*listener_chain, self.redact)
        if self.run.segment:
            listener_chain = (*listener_chain, StampSegment(self.run.segment))
        if config.doctor.live and child_of is None and self.run.rank == 0:
            from gemmalog.doctor._live import LiveDoctor  # duckdb and the checks: only if asked

            listener_chain = (*listener_chain, LiveDoctor(config.doctor, self.run.id, self.run.dir))
        self.listener = EventListener(
            self.queue,
            primary,
            self.router,
            listener_chain,
            flush_interval=s.flush_interval,
            run=self.run.id,
            rank=self.run.rank,
            segment=self.run.segment,
        )
        if primary.error is not None:
            self.listener._primary_failed(primary.error)
        for name, error in failed.items():  # reported like any sink failure: stderr + JSONL
            self.listener._report(name, error, starting=True)
        self._levels: dict[str, int] = {}
        # Role -> logger name when that logger takes INFO events, else None: the helpers'
        # one-lookup level check.
        self.role_names: dict[str, str | None] = {
            role: (name if self.levelno(name) <= 20 else None) for role, name in self.roles.items()
        }
        self.stopped = False
        self._stopping = False
        if self.is_child:
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
        if self.stopped or self.is_child or threading.current_thread() is self.listener._thread:
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
        self.queue.close()
        self.listener.close_sinks()
        if self.queue.drops:  # nothing is lost silently
            print(
                f"gemmalog: the 'drop' backpressure policy dropped {self.queue.drops} event(s) of run "
                f"{self.run.id} (rank {self.run.rank}); raise queue_size or use 'block' to keep them",
                file=sys.stderr,
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


class _State:
    pipeline: Pipeline | None = None
    lock = threading.RLock()
    final_stats: dict[str, Any] = {}  # noqa: RUF012
    exit_status: tuple[str, str | None] | None = None
    #: What sys.exit() was called with, for the exit hook (see _exit).
    exit_code: tuple[str, str | None] | None = None
    #: sys.last_value when the hooks were installed (an interactive session's old error).
    last_value_at_start: object = None
    forked_from: Pipeline | None = None
    #: The configuration and run of the last pipeline shut down: where late events go.
    last: tuple[Config, Run] | None = None
    hooks_installed = False


def current() -> Pipeline:
    """The running pipeline; starts one with the defaults if nothing was initialized.

    In a forked child the parent's pipeline is unusable (its listener thread did not survive
    the fork): the child's first event starts a child pipeline writing its own shard.
    """
    pipeline = _State.pipeline
    if pipeline is not None:
        return pipeline
    with _State.lock:
        if _State.pipeline is None:
            parent = _State.forked_from
            spawned = None if parent is not None else spawned_from()
            if parent is not None:
                _State.pipeline = Pipeline(parent.config, child_of=parent.run)
                flush_at_child_exit(shutdown)
            elif spawned is not None:
                config, run = spawned
                _State.pipeline = Pipeline(config, child_of=run)
                _install_hooks()
                flush_at_child_exit(shutdown)
            elif _State.last is not None:
                # Late events (a library's teardown, a thread still logging after a SIGTERM
                # shutdown) join the run that just ended instead of starting a stray one.
                config, run = _State.last
                _State.pipeline = Pipeline(config, child_of=run)
                warn_once(
                    f"logging after shutdown(): late events are appended to run {run.id} "
                    f"(events.{run.rank}.{os.getpid()}.jsonl); call initialize() to start a new run"
                )
            else:
                warn_once(
                    "logging before initialize(): starting a run with the default configuration"
                )
                initialize()
        assert _State.pipeline is not None
        return _State.pipeline


def running() -> Pipeline | None:
    """The running pipeline of this process, or None (no syscall: fork is tracked by a hook)."""
    return _State.pipeline


def initialize(config_path: str | os.PathLike[str] | Config | None = None, **overrides: Any) -> Run:
    """Start logging: validate the configuration, create the run directory, start the listener.

    ``config_path`` is a YAML file in the seed plan's format (or a :class:`Config`); without
    one, every event goes to ``events.<rank>.jsonl`` and training/system messages to the
    console. Keyword overrides (``root``, ``run_name``, ``run_id``, ``level``,
    ``flush_interval``, ``queue_size``, ``backpressure``, ``fsync``, ``redact``,
    ``memory_interval``, ``max_string_length``, ``capture_stdlib``, ``capture_warnings``,
    ``private``) win over ``GEMMALOG_*`` environment variables, which win over the file.
    Calling it again ends the current run first. Raises :class:`ConfigError` on a bad file.
    """
    if isinstance(config_path, Config):
        config = config_path
    elif config_path is None:
        config = default_config()
    else:
        config = load(config_path)
    apply_overrides(config, env_overrides(), "environment")
    apply_overrides(config, {k: v for k, v in overrides.items() if v is not None})
    with _State.lock:
        if running() is not None:
            shutdown()
        pipeline = Pipeline(config)
        _State.pipeline = pipeline
        os.environ[PARENT_ENV] = parent_description(pipeline)
        _State.final_stats = {}
        _State.exit_status = None
        _install_hooks()
        _bridge.install(config)
    run = pipeline.run
    write_manifest(run, redact=pipeline.redact)
    pipeline.emit(
        "info",
        {
            "kind": "run_start",
            "logger": pipeline.roles["system"],
            "event": f"run {run.id} started",
            "name": run.name,
            "run_dir": str(run.dir),
            "config": run.config,
            "versions": run.manifest()["versions"],
            "host": run.manifest()["host"],
            "pid": os.getpid(),
            "world_size": run.world_size,
        },
        force=True,
    )
    return run


def flush(timeout: float = 30.0) -> bool:
    """Block until every event logged so far is written and flushed; True when it was."""
    pipeline = running()
    return True if pipeline is None else pipeline.flush(timeout)


def shutdown(status: str | None = None, error: str | None = None) -> None:
    """Write ``run_end``, flush and close every sink, finish ``run.json``. Safe to call twice.

    Events logged afterwards are appended at once to this run's
    ``events.<rank>.<pid>.jsonl`` (with one notice on stderr) until ``initialize()`` starts
    another run.
    """
    with _State.lock, _interrupts_deferred():
        pipeline = running()
        if pipeline is None:
            return
        if status is None:
            status, error = _State.exit_status or ("completed", None)
        _bridge.uninstall()
        if not pipeline.is_child:
            forget_parent_env()
        pipeline.stop(status, error, _State.final_stats)
        _State.pipeline = None
        _State.last = (pipeline.config, pipeline.run)


@contextlib.contextmanager
def _interrupts_deferred() -> Iterator[None]:
    """A Ctrl-C during shutdown is noted (the run is interrupted) instead of cutting it short.

    Only the main thread can change signal handlers; elsewhere this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []

    def note(signum: int, frame: FrameType | None) -> None:
        received.append(signum)
        if _State.exit_status is None or _State.exit_status[0] == "completed":
            _State.exit_status = ("interrupted", "KeyboardInterrupt")

    try:
        previous = signal.signal(signal.SIGINT, note)
    except (ValueError, OSError, TypeError):
        yield
        return
    try:
        yield
    finally:
        with contextlib.suppress(ValueError, OSError, TypeError):
            signal.signal(signal.SIGINT, previous)


def end_run(
    run: Run,
    exc_type: type[BaseException] | None,
    exc: BaseException | None,
    tb: TracebackType | None,
) -> None:
    """End ``run`` as a ``with`` block ends: completed, or failed/interrupted with the exception."""
    pipeline = running()
    if pipeline is None or pipeline.run is not run:
        return  # already shut down, or another run has started since
    if exc_type is None:
        shutdown()
    elif issubclass(exc_type, SystemExit):
        code = getattr(exc, "code", None)
        if code is None or code == 0:
            shutdown("completed")
        else:
            shutdown("failed", f"SystemExit: {code}")
    else:
        shutdown(*_record_exception(pipeline, exc_type, exc, tb, "run failed"))


def _record_exception(
    pipeline: Pipeline,
    exc_type: type[BaseException],
    exc: BaseException | None,
    tb: TracebackType | None,
    event: str,
) -> tuple[str, str]:
    """Log the traceback as an error event; return the run's (status, error) for run.json."""
    interrupted = issubclass(exc_type, KeyboardInterrupt)
    pipeline.emit(
        "error",
        {
            "kind": "log",
            "logger": pipeline.roles["training"],
            "event": "run interrupted" if interrupted else event,
            "exc": "".join(traceback.format_exception(exc_type, exc, tb)),
        },
    )
    return ("interrupted" if interrupted else "failed", f"{exc_type.__name__}: {exc}")


def set_final_stats(**stats: Any) -> None:
    """Statistics for ``run_end`` (the TRL integration's accuracy, correct/total answers, ...)."""
    _State.final_stats.update(stats)


# -- exit, signals, uncaught exceptions --------------------------------------------------
# Each hook keeps what was installed before it, captured when it is installed (a hook a
# user set between ``import gemmalog`` and ``initialize()`` is called, not dropped).
_previous: dict[str, Any] = {}


def _excepthook(
    exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None
) -> None:
    # The status first: a second Ctrl-C may cut the rest of this hook short.
    interrupted = issubclass(exc_type, KeyboardInterrupt)
    _State.exit_status = (
        ("interrupted", "KeyboardInterrupt") if interrupted else ("failed", exc_type.__name__)
    )
    pipeline = running()
    if pipeline is not None:
        _State.exit_status = _record_exception(pipeline, exc_type, exc, tb, "uncaught exception")
    _previous["excepthook"](exc_type, exc, tb)


def _exit(status: object = None) -> NoReturn:
    """``sys.exit`` that first notes the code: a non-zero exit ends the run as failed.

    Python does not tell exit hooks the exit code, so the code is noted here and used by
    :func:`_at_exit` only (an explicit ``shutdown()`` after catching the SystemExit still
    completes the run).
    """
    if status is None or status == 0:
        _State.exit_code = ("completed", None)
    else:
        _State.exit_code = ("failed", f"SystemExit: {status}")
    _previous["exit"](status)
    raise SystemExit(status)  # only if the previous sys.exit returned


def _at_exit() -> None:
    """The interpreter is exiting: end the run with what we know of how the program ended."""
    for _attempt in range(3):  # a Ctrl-C during the shutdown starts it again
        try:
            if _State.exit_status is None:
                _State.exit_status = _State.exit_code or _uncaught()
            shutdown()
            return
        except KeyboardInterrupt:
            _State.exit_status = ("interrupted", "KeyboardInterrupt")


def _uncaught() -> tuple[str, str | None] | None:
    """The exception that ended the program, when gemmalog's excepthook never saw it run (a
    second Ctrl-C can land on its first line): Python keeps it in ``sys.last_value``."""
    last = getattr(sys, "last_value", None)
    if last is None or last is _State.last_value_at_start:
        return None
    if isinstance(last, KeyboardInterrupt):
        return ("interrupted", "KeyboardInterrupt")
    return ("failed", type(last).__name__)


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    _State.exit_status = ("interrupted", f"signal {signal.Signals(signum).name}")
    try:
        shutdown()
    finally:
        # Whatever happened above (this handler may have interrupted anything, even a
        # logging call deep in a stack), the signal still ends the process.
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)


def _install_hooks() -> None:
    if _State.hooks_installed:
        return
    _State.hooks_installed = True
    _State.last_value_at_start = getattr(sys, "last_value", None)
    atexit.register(_at_exit)
    _previous["excepthook"] = sys.excepthook
    sys.excepthook = _excepthook
    _previous["exit"] = sys.exit
    sys.exit = _exit
    if threading.current_thread() is threading.main_thread():
        try:
            if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
                signal.signal(signal.SIGTERM, _on_sigterm)
        except (ValueError, OSError):
            pass


def _after_fork_in_child() -> None:
    # The parent's listener thread does not exist here and its locks may be held: replace
    # the lock, and let the next event start a child pipeline on its own shard.
    _State.lock = threading.RLock()
    if _State.pipeline is not None:
        _State.forked_from = _State.pipeline
        _State.pipeline = None


os.register_at_fork(after_in_child=_after_fork_in_child)

from gemmalog import _stdlib as _bridge  # noqa: E402  (imports this module)

__all__ = [
    "LEVEL_NUMBERS",
    "ConfigError",
    "Pipeline",
    "current",
    "flush",
    "initialize",
    "running",
    "shutdown",
]
