"""Starting and ending runs: initialize, flush, shutdown, and the process hooks around them.

The hooks (atexit, ``sys.excepthook``, ``sys.exit``, SIGTERM) are installed by the first
``initialize()`` and capture whatever was installed before them at that moment. Children
(fork, spawn, subprocesses) and late events find their pipeline through :func:`current`.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import sys
import threading
import traceback
from collections.abc import Iterator, Sequence
from types import FrameType, TracebackType
from typing import Any, Literal, NoReturn, overload

from gemmalog import _stdlib as _bridge
from gemmalog._children import (
    PARENT_ENV,
    flush_at_child_exit,
    forget_parent_env,
    parent_description,
    spawned_from,
)
from gemmalog._pipeline import Pipeline
from gemmalog._run import Run
from gemmalog._rundir import write_manifest
from gemmalog._state import State as _State
from gemmalog._state import running as _running
from gemmalog.config.loader import ConfigError, load
from gemmalog.config.model import Config, default_config
from gemmalog.config.overrides import apply_overrides, env_overrides
from gemmalog.config.resolve import processor
from gemmalog.notices import warn_once
from gemmalog.processors.isolated import Processor
from gemmalog.sinks.base import Sink


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
                _State.pipeline = Pipeline.child(parent.config, parent.run)
                flush_at_child_exit(shutdown)
            elif spawned is not None:
                config, run = spawned
                _State.pipeline = Pipeline.child(config, run)
                _install_hooks(sigterm=False)
                flush_at_child_exit(shutdown)
            elif _State.last is not None:
                # Late events (a library's teardown, a thread still logging after a SIGTERM
                # shutdown) join the run that just ended instead of starting a stray one.
                last = _State.last
                if last.late is None:  # a child process's run, or one forked after its end
                    last.late = last.late_writer()
                _State.pipeline = last.late
            else:
                warn_once(
                    "logging before initialize(): starting a run with the default configuration"
                )
                initialize()
        assert _State.pipeline is not None
        return _State.pipeline


@overload
def running(start: Literal[True]) -> Pipeline: ...


@overload
def running(start: bool = False) -> Pipeline | None: ...


def running(start: bool = False) -> Pipeline | None:
    """The pipeline logging in this process, or None when no run is on.

    With ``start=True`` a pipeline is started as any log call would start one (the
    default configuration before ``initialize()``, a child's writer in a forked or spawned
    process, the late writer after ``shutdown()``), so the result is never None. Its public
    attributes are ``run`` (:class:`gemmalog.Run`), ``config``, ``metrics`` (the
    configuration's ``metrics`` section) and ``role_names`` (role -> logger name, None for a
    role whose logger is above INFO); its ``flush()`` waits for what was logged before, and
    ``defer(payload, logger)`` hands over an event built on the listener thread
    (``gemmalog.deferred``, docs/architecture.md "Adding an integration").
    """
    return current() if start else _State.pipeline


def initialize(
    config_path: str | os.PathLike[str] | Config | None = None,
    *,
    processors: Sequence[Processor] = (),
    listener_processors: Sequence[Processor] = (),
    sinks: Sequence[Sink] = (),
    **overrides: Any,
) -> Run:
    """Start logging: validate the configuration, create the run directory, start the listener.

    ``config_path`` is a YAML file in the seed plan's format (or a :class:`Config`); without
    one, every event goes to ``events.<rank>.jsonl`` and training/system messages to the
    console. Keyword overrides (``root``, ``run_name``, ``run_id``, ``level``,
    ``flush_interval``, ``queue_size``, ``backpressure``, ``fsync``, ``redact``,
    ``memory_interval``, ``max_string_length``, ``capture_stdlib``, ``capture_warnings``,
    ``private``) win over ``GEMMALOG_*`` environment variables, which win over the file.
    Calling it again ends the current run first. Raises :class:`ConfigError` on a bad file.

    Extension points (docs/architecture.md): ``processors`` are structlog processors run on
    the caller's thread after gemmalog's own, ``listener_processors`` run on the listener
    thread before redaction (both after those the configuration names), and ``sinks`` are
    objects with ``name``, ``write(batch)``, ``flush()`` and ``close()`` that receive every
    event (at or above their ``level``, for a :class:`gemmalog.sinks.BaseSink`). A processor
    or sink that fails is isolated: reported once, the events and the other sinks go on.
    """
    if isinstance(config_path, Config):
        config = config_path
    elif config_path is None:
        config = default_config()
    else:
        config = load(config_path, import_user_code=True)  # the user runs their own code
    apply_overrides(config, env_overrides(), "environment")
    apply_overrides(config, {k: v for k, v in overrides.items() if v is not None})
    try:
        named = [processor(p) for p in config.settings.processors]
        named_listener = [processor(p) for p in config.settings.listener_processors]
    except ValueError as exc:
        raise ConfigError(f"gemmalog.processors: {exc}") from None
    processors = (*named, *processors)
    listener_processors = (*named_listener, *listener_processors)
    with _State.lock:
        shutdown()  # the run on (or the late events of the last one) is recorded first
        pipeline = Pipeline.new_run(
            config, processors=processors, listener_processors=listener_processors, sinks=sinks
        )
        pipeline.run.on_exit = end_run
        _State.pipeline = pipeline
        os.environ[PARENT_ENV] = parent_description(pipeline)
        _State.final_stats = {}
        _State.exit_status = None
        _install_hooks()
        _bridge.install(config, current)
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
    if config.sync.dest is not None:
        # The only import of remote/ below it: the sync: section's pusher, a background
        # thread that reads the run's files (docs/remote.md).
        from gemmalog.remote._sync import start

        _State.sync = start(
            run.dir,
            config.sync.dest,
            rank=run.rank,
            interval=config.sync.interval,
            final_timeout=config.sync.final_timeout,
        )
    return run


def flush(timeout: float = 30.0) -> bool:
    """Block until every event logged so far is written and flushed; True when it was."""
    pipeline = running()
    return True if pipeline is None else pipeline.flush(timeout)


def shutdown(status: str | None = None, error: str | None = None) -> None:
    """Write ``run_end``, flush and close every sink, finish ``run.json``. Safe to call twice.

    Events logged afterwards, on any thread and by the standard library too, are appended
    at once to this run's ``events.<rank>.<pid>.jsonl`` (with one notice on stderr) until
    ``initialize()`` starts another run; called again with no run on, it counts those late
    events in run.json (the exit hook does). See docs/reliability.md, "Late events".
    """
    with _State.lock, _interrupts_deferred():
        pipeline = _running()
        if pipeline is not None and pipeline.is_late:
            _State.pipeline = pipeline = None  # the late writer stays open: nothing to stop
        if pipeline is None:
            if _State.last is not None:
                _State.last.record_late()
            return
        if status is None:
            status, error = _State.exit_status or ("completed", None)
        if not pipeline.is_child:
            forget_parent_env()
        pipeline.stop(status, error, _State.final_stats)
        _State.pipeline = None
        sync, _State.sync = _State.sync, None
        if sync is not None and not pipeline.is_child:
            sync.finish()  # the last push, after run.json got its end; bounded in time
        _State.last = pipeline


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


def _install_hooks(sigterm: bool = True) -> None:
    """The process hooks; ``sigterm``: also the SIGTERM handler (not in a child process).

    A child's events are written before its log calls return, so it needs no handler to
    keep them, and one would cost it its SIGTERM now and then: CPython runs a Python
    handler only between bytecodes, and a SIGTERM that arrives just as the main thread
    enters a blocking wait in C (a ``multiprocessing`` pool worker taking the task queue's
    lock) is never handled, so ``Pool.terminate()`` (and leaving ``with Pool()``) waits for
    that worker forever. With the default action the signal ends the child at once.
    """
    if not _State.hooks_installed:
        _State.hooks_installed = True
        _State.last_value_at_start = getattr(sys, "last_value", None)
        atexit.register(_at_exit)
        _previous["excepthook"] = sys.excepthook
        sys.excepthook = _excepthook
        _previous["exit"] = sys.exit
        sys.exit = _exit
    if not sigterm:
        return
    if threading.current_thread() is threading.main_thread():
        _install_sigterm()
    else:
        _install_sigterm_on_the_main_thread()


def _install_sigterm() -> None:
    """gemmalog's SIGTERM handler, where SIGTERM has its default action (on the main thread)."""
    try:
        if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
            signal.signal(signal.SIGTERM, _on_sigterm)
    except (ValueError, OSError):
        pass


def _pending_install(_arg: object) -> int:
    _install_sigterm()
    return 0


#: The pending calls handed to the interpreter (ctypes callbacks must outlive their call).
_pending: list[object] = []


def _install_sigterm_on_the_main_thread() -> None:
    """``initialize()`` on another thread: Python lets only the main thread set a signal
    handler, so ask the main thread to install it (``Py_AddPendingCall``, the way CPython
    runs signal handlers: when the main thread next executes Python code), and say so."""
    try:
        if signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, None):
            return  # someone else's handler: left alone, as on the main thread
    except (ValueError, OSError):
        return
    try:
        import ctypes

        callback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p)(_pending_install)
        if ctypes.pythonapi.Py_AddPendingCall(callback, None) == 0:
            _pending.append(callback)
    except Exception:  # no ctypes or no CPython API (another interpreter): the notice stands
        pass
    warn_once(
        f"initialize() ran on thread {threading.current_thread().name!r}, not the main thread: "
        "the SIGTERM handler that ends the run cleanly is installed once the main thread "
        "runs Python code again (until then, e.g. while it waits in Thread.join(), SIGTERM "
        "kills the process and run.json stays 'running'); call initialize() on the main "
        "thread to be sure",
        key="initialize off the main thread",
    )


def _default_sigterm_in_child() -> None:
    """After a fork: the child ends on SIGTERM by the default action (see _install_hooks);
    an ``initialize()`` of its own installs the handler again for its own run."""
    try:
        if signal.getsignal(signal.SIGTERM) is _on_sigterm:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
    except (ValueError, OSError):
        pass


os.register_at_fork(after_in_child=_default_sigterm_in_child)


__all__ = ["current", "end_run", "flush", "initialize", "running", "set_final_stats", "shutdown"]
