"""The process hooks that end a run however the program ends: atexit, ``sys.excepthook``,
``sys.exit`` and SIGTERM, and a Ctrl-C that lands during the shutdown.

The hooks are installed by the first ``initialize()`` (:func:`install`) and capture whatever
was installed before them at that moment. They end the run with the lifecycle's
``shutdown()``, handed to :func:`install` (:mod:`gemmalog.lifecycle._lifecycle` imports this module).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Iterator
from types import FrameType, TracebackType
from typing import TYPE_CHECKING, Any, NoReturn

from gemmalog.lifecycle._state import State as _State
from gemmalog.lifecycle._state import running as _running
from gemmalog.notices import warn_once

if TYPE_CHECKING:
    from gemmalog.engine._pipeline import Pipeline


@contextlib.contextmanager
def interrupts_deferred() -> Iterator[None]:
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


def record_exception(
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


# Each hook keeps what was installed before it, captured when it is installed (a hook a
# user set between ``import gemmalog`` and ``initialize()`` is called, not dropped).
_previous: dict[str, Any] = {}


def _not_installed() -> None:
    """Stands for the lifecycle's ``shutdown`` until :func:`install` is given it."""


#: What ends the run, given by :func:`install`: the lifecycle imports this module, not the
#: other way round.
_shutdown: Callable[[], None] = _not_installed


def _excepthook(
    exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None
) -> None:
    # The status first: a second Ctrl-C may cut the rest of this hook short.
    interrupted = issubclass(exc_type, KeyboardInterrupt)
    _State.exit_status = (
        ("interrupted", "KeyboardInterrupt") if interrupted else ("failed", exc_type.__name__)
    )
    pipeline = _running()
    if pipeline is not None:
        _State.exit_status = record_exception(pipeline, exc_type, exc, tb, "uncaught exception")
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
            _shutdown()
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
        _shutdown()
    finally:
        # Whatever happened above (this handler may have interrupted anything, even a
        # logging call deep in a stack), the signal still ends the process.
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)


def install(shutdown: Callable[[], None], *, sigterm: bool = True) -> None:
    """The process hooks, ending the run with ``shutdown`` (the lifecycle's); ``sigterm``:
    also the SIGTERM handler (not in a child process).

    A child's events are written before its log calls return, so it needs no handler to
    keep them, and one would cost it its SIGTERM now and then: CPython runs a Python
    handler only between bytecodes, and a SIGTERM that arrives just as the main thread
    enters a blocking wait in C (a ``multiprocessing`` pool worker taking the task queue's
    lock) is never handled, so ``Pool.terminate()`` (and leaving ``with Pool()``) waits for
    that worker forever. With the default action the signal ends the child at once.
    """
    global _shutdown
    _shutdown = shutdown
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
    """After a fork: the child ends on SIGTERM by the default action (see install);
    an ``initialize()`` of its own installs the handler again for its own run."""
    try:
        if signal.getsignal(signal.SIGTERM) is _on_sigterm:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
    except (ValueError, OSError):
        pass


os.register_at_fork(after_in_child=_default_sigterm_in_child)
