"""The text line's format: the standard-library formatters and the console handler gemmalog
builds, and :class:`LineFormat`, which writes the lines they would write without a
``LogRecord`` per event.
"""

from __future__ import annotations

import logging
import logging.handlers
import math
import re
import sys
import time
from typing import Any

from gemmalog._terminal import visible
from gemmalog.formats import STANDARD_DATEFMT, STANDARD_FORMAT
from gemmalog.sinks.message import describe_once

_COLORS = {
    "DEBUG": "\x1b[2m",
    "INFO": "\x1b[32m",
    "WARNING": "\x1b[33m",
    "ERROR": "\x1b[31m",
    "CRITICAL": "\x1b[1;31m",
}


class TextFormatter(logging.Formatter):
    """The stdlib formatter, with coloured level names when writing to a terminal."""

    def __init__(
        self,
        fmt: str = STANDARD_FORMAT,
        datefmt: str | None = STANDARD_DATEFMT,
        color: bool = False,
    ) -> None:
        super().__init__(fmt, datefmt)
        self.color = color

    def format(self, record: logging.LogRecord) -> str:
        if not self.color:
            return super().format(record)
        plain = record.levelname
        record.levelname = f"{_COLORS.get(plain, '')}{plain}\x1b[0m"
        try:
            return super().format(record)
        finally:
            record.levelname = plain


class JsonFormatter(logging.Formatter):
    """``format: json`` with the configured ``fields`` (timestamp, level, name, message)."""

    def __init__(self, fields: tuple[str, ...]) -> None:
        super().__init__()
        self.fields = fields

    def format(self, record: logging.LogRecord) -> str:
        import orjson

        values = {
            "timestamp": record.created,
            "level": record.levelname,
            "name": record.name,
            "message": record.getMessage(),
        }
        return orjson.dumps({f: values.get(f) for f in self.fields}).decode()


class ConsoleHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A ``StreamHandler`` on ``sys.stderr`` (or ``sys.stdout``) as it is when a line is written.

    Redirections made after ``initialize()`` (pytest's capture, a notebook, a wrapper that
    swaps ``sys.stderr``) are followed instead of writing to a stream that may be closed.
    """

    def __init__(self, stream_name: str = "stderr") -> None:
        self.stream_name = stream_name
        super().__init__()

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return getattr(sys, self.stream_name)

    @stream.setter
    def stream(self, value: Any) -> None:
        """StreamHandler's constructor assigns a stream; the property ignores it."""

    def format(self, record: logging.LogRecord) -> str:
        # Logged text is data: the terminal shows its control characters instead of obeying
        # them (an ESC sequence in a completion could retitle or clear the screen). The
        # record is this sink's own, so changing it touches no other sink.
        record.msg = visible(str(record.msg))
        record.name = visible(record.name)
        return super().format(record)


#: LogRecord attributes the batch formatter fills in; a format naming any other attribute
#: (``%(process)d``, ``%(lineno)d``) goes through ``logging.LogRecord`` and ``handle``.
_FIELDS = frozenset({"name", "levelno", "levelname", "message", "asctime", "created", "msecs"})
_FIELD = re.compile(r"%\((\w+)\)")
#: Handlers whose ``emit`` is a write of ``format(record) + terminator`` to ``stream``.
_STREAMING = (logging.StreamHandler, logging.FileHandler, logging.handlers.RotatingFileHandler)


class _Time:
    """What ``Formatter.formatTime`` reads of a record."""

    __slots__ = ("created", "msecs")

    def __init__(self, created: float, msecs: float) -> None:
        self.created = created
        self.msecs = msecs


class LineFormat:
    """The lines ``handler.format(record)`` would give for events, without a ``LogRecord``.

    Built only for the stdlib's own ``Formatter`` (or :class:`TextFormatter`) in ``%`` style
    naming the fields in ``_FIELDS``; :meth:`for_handler` returns None otherwise. The date is
    formatted once per second of event time when ``datefmt`` is set (it has no sub-second
    field: ``time.strftime`` has none). A format ending in ``%(message)s`` whose start names
    only ``asctime`` (with a ``datefmt``), ``name``, ``levelname`` and ``levelno`` (the seed's
    standard format) formats that start once per second, logger and level.
    """

    __slots__ = (
        "_asctime",
        "_color",
        "_escape",
        "_fmt",
        "_formatter",
        "_head",
        "_heads",
        "_last",
        "_uses_time",
    )

    def __init__(self, formatter: logging.Formatter, escape: bool) -> None:
        self._formatter = formatter
        self._fmt: str = formatter._style._fmt or "%(message)s"
        self._uses_time = formatter.usesTime()
        self._color = isinstance(formatter, TextFormatter) and formatter.color
        self._escape = escape
        self._last = -1  # the event-time second whose asctime is cached
        self._asctime = ""
        self._head = self._message_last(self._fmt, formatter.datefmt)
        self._heads: dict[tuple[int, str, int], str] = {}

    @staticmethod
    def _message_last(fmt: str, datefmt: str | None) -> str | None:
        """The format before a final ``%(message)s`` when that start can be cached, else None."""
        tail = "%(message)s"
        if not fmt.endswith(tail) or fmt.count("%(message)") != 1:
            return None
        head = fmt[: -len(tail)]
        if (len(head) - len(head.rstrip("%"))) % 2:  # "%%(message)s" is a literal "%(message)s"
            return None
        fields = set(_FIELD.findall(head))
        if not fields <= {"asctime", "name", "levelname", "levelno"}:
            return None
        if "asctime" in fields and datefmt is None:  # the default date carries milliseconds
            return None
        return head

    @classmethod
    def for_handler(cls, handler: logging.Handler) -> LineFormat | None:
        formatter = handler.formatter or logging.Formatter()  # what Handler.format falls back to
        if (
            (type(handler) not in _STREAMING and not isinstance(handler, ConsoleHandler))
            or handler.filters
            or type(formatter) not in (logging.Formatter, TextFormatter)
            or type(formatter._style) is not logging.PercentStyle
            or getattr(formatter._style, "_defaults", None)
            or not set(_FIELD.findall(formatter._style._fmt or "")) <= _FIELDS
        ):
            return None
        return cls(formatter, escape=isinstance(handler, ConsoleHandler))

    def line(self, event: dict[str, Any], levelno: int) -> str:
        """One event's text, as ``Formatter.format`` writes the record HandlerSink would build."""
        name = str(event.get("logger", ""))
        message = describe_once(event)
        if self._escape:  # ConsoleHandler.format: the terminal shows control characters
            message = visible(message)
            name = visible(name)
        ts = event.get("ts")
        if isinstance(ts, float):
            created = ts
            msecs = (ts - int(ts)) * 1000
        else:  # as LogRecord does for a record made now
            created = time.time()
            msecs = int((created - int(created)) * 1000) + 0.0
        head = self._head
        if head is not None:
            key = (math.floor(created) if self._uses_time else 0, name, levelno)
            start = self._heads.get(key)
            if start is None:
                if len(self._heads) >= 256:
                    self._heads.clear()
                start = self._heads[key] = head % self._values(name, levelno, created, msecs)
            return start + message
        values = self._values(name, levelno, created, msecs)
        values["message"] = message
        return self._fmt % values

    def _values(self, name: str, levelno: int, created: float, msecs: float) -> dict[str, Any]:
        """The record attributes a format may name, but the message."""
        levelname = logging.getLevelName(levelno)
        if self._color:
            levelname = f"{_COLORS.get(levelname, '')}{levelname}\x1b[0m"
        values = {
            "name": name,
            "levelno": levelno,
            "levelname": levelname,
            "created": created,
            "msecs": msecs,
        }
        if self._uses_time:
            values["asctime"] = self._time(created, msecs)
        return values

    def _time(self, created: float, msecs: float) -> str:
        formatter = self._formatter
        if formatter.datefmt is None:  # the default format carries milliseconds
            return formatter.formatTime(_Time(created, msecs), None)  # type: ignore[arg-type]
        second = math.floor(created)
        if second != self._last:
            self._asctime = formatter.formatTime(_Time(created, msecs), formatter.datefmt)  # type: ignore[arg-type]
            self._last = second
        return self._asctime
