"""gemmalog's structlog bound logger.

A ``structlog.BoundLoggerBase`` (so ``bind``/``unbind``/``new`` work as in structlog) whose
level methods check the logger's configured level first and hand the event dict to the
running pipeline, which runs the processor chain and puts the event on the queue. The
pipeline is looked up at call time: a module-level ``log = gemmalog.get_logger(__name__)``
made before ``initialize()`` logs into whatever run is current when it is called.
"""

from __future__ import annotations

import contextlib
import sys
import traceback
from typing import Any

from structlog import BoundLoggerBase

from gemmalog._coerce import text, type_name
from gemmalog.events import SET_BY_GEMMALOG, as_user_fields, free_name
from gemmalog.levels import LEVEL_NUMBERS, METHOD_LEVELS, NUMBER_LEVELS
from gemmalog.lifecycle._lifecycle import current
from gemmalog.notices import warn_once


class _Target:
    """The wrapped "logger" at the end of the chain: only carries the logger's name."""

    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    @property
    def name(self) -> str:
        return self._name

    def __repr__(self) -> str:
        return f"<gemmalog logger {self.name}>"


def _format_exc(exc_info: Any) -> str | None:
    """The traceback text of ``exc_info`` (True, an exception or a sys.exc_info() tuple)."""
    try:
        if exc_info is True:
            exc_info = sys.exc_info()
        elif isinstance(exc_info, BaseException):
            exc_info = (type(exc_info), exc_info, exc_info.__traceback__)
        if isinstance(exc_info, tuple) and exc_info and exc_info[0] is not None:
            return "".join(traceback.format_exception(*exc_info))
    except Exception as exc:
        return f"<exc_info {text(exc_info)[:200]} could not be formatted: {type_name(exc)}>"
    return None


class BoundLogger(BoundLoggerBase):
    """``log.info("message", key=value)``: one ``log`` event.

    Keywords are data: every keyword (and every value bound with ``bind``) is stored, and
    one named like a field only gemmalog sets (``event``, ``kind``, ``logger``, ``level``,
    ``ts``, ...: :data:`gemmalog.events.SET_BY_GEMMALOG`) is stored under its name with
    ``_`` appended; it never changes the event's kind, logger or message. Only with no
    positional message is ``event=`` the message, as in structlog.
    """

    _logger: _Target

    @property
    def name(self) -> str:
        return self._logger.name

    def _emit(
        self, method: str, levelno: int, event: Any, args: tuple[Any, ...], kw: dict[str, Any]
    ) -> None:
        # Never raises into the caller: whatever goes wrong here leaves a notice instead.
        try:
            pipeline = current()
            if levelno < pipeline.levelno(self._logger.name):
                return
            event_dict = self._context.copy()
            event_dict.update(kw)
            if not SET_BY_GEMMALOG.isdisjoint(event_dict):  # keywords are data: renamed
                if event is None and "event" in kw:  # structlog's log.info(event="message")
                    event = event_dict.pop("event")
                event_dict = as_user_fields(event_dict)
            event_dict["logger"] = self._logger.name
            if event is not None:
                if type(event) is not str:
                    event = text(event)
                if args:
                    try:
                        event = event % args
                    except Exception:
                        event = f"{event} {text(args)}"
                event_dict["event"] = event
            exc_info = event_dict.pop("exc_info", None)
            if method == "exception" and exc_info is None:
                exc_info = True
            if exc_info is not None and exc_info is not False:  # never truth-test a value
                formatted = _format_exc(exc_info)
                if formatted:
                    if "exc" in event_dict:  # the caller's own exc field is data too
                        event_dict[free_name(event_dict, "exc")] = event_dict["exc"]
                    event_dict["exc"] = formatted
            pipeline.emit(method, event_dict)
        except Exception as exc:
            warn_once(f"a log call could not be logged ({type_name(exc)})", key="log call failed")
            with contextlib.suppress(Exception):  # the line still lands, saying what happened
                current().emit(
                    "warning",
                    {
                        "logger": "gemmalog",
                        "event": f"a call to {text(self._logger.name)}.{method}() could not be "
                        f"logged: {type_name(exc)}",
                    },
                )

    def debug(self, event: Any = None, /, *args: Any, **kw: Any) -> None:
        self._emit("debug", 10, event, args, kw)

    def info(self, event: Any = None, /, *args: Any, **kw: Any) -> None:
        self._emit("info", 20, event, args, kw)

    def warning(self, event: Any = None, /, *args: Any, **kw: Any) -> None:
        self._emit("warning", 30, event, args, kw)

    warn = warning

    def error(self, event: Any = None, /, *args: Any, **kw: Any) -> None:
        self._emit("error", 40, event, args, kw)

    def critical(self, event: Any = None, /, *args: Any, **kw: Any) -> None:
        self._emit("critical", 50, event, args, kw)

    fatal = critical

    def exception(self, event: Any = None, /, *args: Any, **kw: Any) -> None:
        self._emit("exception", 40, event, args, kw)

    msg = info

    def log(self, level: int | str, event: Any = None, /, *args: Any, **kw: Any) -> None:
        """Log at ``level``: a number (10 ... 50) or a name; anything else logs at info."""
        if isinstance(level, int):
            name = NUMBER_LEVELS.get(level, "info")
        else:
            name = METHOD_LEVELS.get(text(level).lower(), "info")
        self._emit(name, LEVEL_NUMBERS[name], event, args, kw)


def get_logger(name: str = "gemmalog", /, **initial: Any) -> BoundLogger:
    """A structlog bound logger named ``name``; ``initial`` values are bound to every event.

    A name that is not a str is logged as its text.
    """
    return BoundLogger(_Target(text(name)), processors=(), context=dict(initial))
