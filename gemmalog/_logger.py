"""gemmalog's structlog bound logger.

A ``structlog.BoundLoggerBase`` (so ``bind``/``unbind``/``new`` work as in structlog) whose
level methods check the logger's configured level first and hand the event dict to the
running pipeline, which runs the processor chain and puts the event on the queue. The
pipeline is looked up at call time: a module-level ``log = gemmalog.get_logger(__name__)``
made before ``initialize()`` logs into whatever run is current when it is called.
"""

from __future__ import annotations

import sys
import traceback
from typing import Any

from structlog import BoundLoggerBase

from gemmalog._pipeline import current


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
    if exc_info is True:
        exc_info = sys.exc_info()
    elif isinstance(exc_info, BaseException):
        exc_info = (type(exc_info), exc_info, exc_info.__traceback__)
    if isinstance(exc_info, tuple) and exc_info[0] is not None:
        return "".join(traceback.format_exception(*exc_info))
    return None


class BoundLogger(BoundLoggerBase):
    """``log.info("message", key=value)``: one ``log`` event (or the ``kind=`` you pass)."""

    _logger: _Target

    @property
    def name(self) -> str:
        return self._logger.name

    def _emit(
        self, method: str, levelno: int, event: Any, args: tuple[Any, ...], kw: dict[str, Any]
    ) -> None:
        pipeline = current()
        if levelno < pipeline.levelno(self._logger.name):
            return
        event_dict = self._context.copy()
        event_dict.update(kw)
        event_dict["logger"] = self._logger.name
        if event is not None:
            if args:
                try:
                    event = event % args
                except Exception:
                    event = f"{event} {args!r}"
            event_dict["event"] = event if type(event) is str else str(event)
        exc_info = event_dict.pop("exc_info", None)
        if method == "exception" and exc_info is None:
            exc_info = True
        if exc_info:
            formatted = _format_exc(exc_info)
            if formatted:
                event_dict["exc"] = formatted
        pipeline.emit(method, event_dict)

    def debug(self, event: Any = None, *args: Any, **kw: Any) -> None:
        self._emit("debug", 10, event, args, kw)

    def info(self, event: Any = None, *args: Any, **kw: Any) -> None:
        self._emit("info", 20, event, args, kw)

    def warning(self, event: Any = None, *args: Any, **kw: Any) -> None:
        self._emit("warning", 30, event, args, kw)

    warn = warning

    def error(self, event: Any = None, *args: Any, **kw: Any) -> None:
        self._emit("error", 40, event, args, kw)

    def critical(self, event: Any = None, *args: Any, **kw: Any) -> None:
        self._emit("critical", 50, event, args, kw)

    fatal = critical

    def exception(self, event: Any = None, *args: Any, **kw: Any) -> None:
        self._emit("exception", 40, event, args, kw)

    msg = info

    def log(self, level: int | str, event: Any = None, *args: Any, **kw: Any) -> None:
        names = {10: "debug", 20: "info", 30: "warning", 40: "error", 50: "critical"}
        name = names.get(level, "info") if isinstance(level, int) else str(level).lower()
        numbers = {v: k for k, v in names.items()}
        self._emit(name, numbers.get(name, 20), event, args, kw)


def get_logger(name: str = "gemmalog", **initial: Any) -> BoundLogger:
    """A structlog bound logger named ``name``; ``initial`` values are bound to every event."""
    return BoundLogger(_Target(name), processors=(), context=dict(initial))
