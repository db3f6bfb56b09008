"""Human-readable sinks: any standard-library handler (console, rotating file) fed from events.

The listener turns each event into a ``LogRecord`` with a one-line message and hands it to
the wrapped handler, so the stdlib's own formatting (``%(asctime)s - %(name)s ...`` with a
``datefmt``) and rotation (``RotatingFileHandler``: ``maxBytes``/``backupCount``) apply as
the seed configuration writes them.
"""

from __future__ import annotations

import contextlib
import logging
import logging.handlers
import math
import os
import re
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Final

from gemmalog._terminal import visible
from gemmalog.sinks.base import LEVEL_NUMBERS, BaseSink, Record

STANDARD_FORMAT = "%(asctime)s - %(name)s - %(levelname)s - %(message)s"
STANDARD_DATEFMT = "%Y-%m-%d %H:%M:%S"

# Envelope keys a reader does not need repeated on every text line.
_HIDDEN = frozenset(
    {
        "v",
        "ts",
        "kind",
        "logger",
        "level",
        "run",
        "rank",
        "event",
        "device",
        "rss_mb",
        "gpu_mb",
        "epoch",
        "step",
        "exc",
    }
)
# Nested values worth a line of text; others (config, versions, training_args) stay in the JSONL.
_EXPANDED = frozenset({"metrics", "rewards", "stats"})
_TEXT_FIELDS = frozenset(
    {"question", "true_answer", "model_output", "reasoning", "answer", "prompt"}
)


def short_text(value: Any, width: int = 80) -> str:
    if type(value) is float:  # ".6g" is at most 13 characters: never cut
        return format(value, ".6g")
    text: str
    if isinstance(value, str):
        if len(value) > width:  # cut before escaping: the escaped prefix is the same
            return value[:width].replace("\n", "\\n")[: width - 1] + "…"
        text = value.replace("\n", "\\n")
    elif isinstance(value, float):
        text = f"{value:.6g}"
    else:
        text = str(value)
    return text if len(text) <= width else text[: width - 1] + "…"


_FLOAT: Final = frozenset({float})
#: keys of an all-float dict -> "k1=%.6g k2=%.6g ..." (one C formatting call for a metrics dict)
_FORMATS: dict[tuple[Any, ...], str] = {}


def _expand(value: dict[Any, Any], append: Callable[[str], None]) -> None:
    """``k=v`` for each item of a nested dict (metrics, rewards, stats)."""
    values = tuple(value.values())
    if values and set(map(type, values)) == _FLOAT:
        keys = tuple(value)
        fmt = _FORMATS.get(keys)
        if fmt is None:
            if len(_FORMATS) >= 1024:
                _FORMATS.clear()
            fmt = _FORMATS[keys] = " ".join(f"{k}".replace("%", "%%") + "=%.6g" for k in keys)
        append(fmt % values)
        return
    for k, v in value.items():
        append(f"{k}={short_text(v, 40)}")


def describe(event: dict[str, Any]) -> str:
    """One line for a person: the message, the step, then the payload as ``key=value``."""
    parts = [str(event.get("event", ""))]
    if event.get("step") is not None and event.get("kind") != "log":
        parts.append(f"step={event['step']}")
    append = parts.append
    for key, value in event.items():
        if value is None or key in _HIDDEN:
            continue
        t = type(value)  # exact types first: most values are plain str, float, int, bool
        if t is str:
            append(
                f"{key}={short_text(value, 60)!r}"
                if key in _TEXT_FIELDS
                else f"{key}={short_text(value)}"
            )
        elif t is float:
            append(f"{key}={format(value, '.6g')}")
        elif t is dict or t is list or isinstance(value, dict | list):
            if key in _EXPANDED and isinstance(value, dict):
                _expand(value, append)
            elif isinstance(value, list) and len(value) <= 8:
                append(f"{key}={short_text(value)}")
        elif key in _TEXT_FIELDS and isinstance(value, str):
            append(f"{key}={short_text(value, 60)!r}")
        else:
            append(f"{key}={short_text(value)}")
    text = " ".join([p for p in parts if p])
    exc = event.get("exc")
    return f"{text}\n{exc}" if exc else text


class _DescribeOnce:
    """:func:`describe` computed once per event for all text sinks (console and file lines carry
    the same message). Entries hold their event, so an id is never reused while cached."""

    __slots__ = ("_memo",)

    SIZE = 256

    def __init__(self) -> None:
        self._memo: dict[int, tuple[dict[str, Any], str]] = {}

    def __call__(self, event: dict[str, Any]) -> str:
        memo = self._memo
        entry = memo.get(id(event))
        if entry is not None and entry[0] is event:
            return entry[1]
        text = describe(event)
        if len(memo) >= self.SIZE:
            memo.clear()
        memo[id(event)] = (event, text)
        return text


describe_once = _DescribeOnce()


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


def _reraise(record: logging.LogRecord) -> None:
    # Called by Handler.emit inside its ``except``: re-raise, so the listener reports the sink
    # once and disables it, instead of the stdlib printing a traceback for every record.
    raise


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


class HandlerSink(BaseSink):
    """Feed events to a standard-library ``logging.Handler`` as one-line records.

    For the handlers gemmalog builds (console, file, rotating file) with a ``%``-style
    format, a batch is formatted line by line without ``LogRecord`` objects and written with
    one ``write`` and one ``flush``; a rotating file checks its size once per batch (and rolls
    over between the lines where the stdlib would). Any other handler or format gets one
    ``LogRecord`` per event through ``handler.handle``. Which events arrive is the router's
    decision (handler and logger levels); this sink writes every event it is given.

    An error inside the handler (disk full, closed stream) propagates to the listener, which
    reports it once and disables this sink for the rest of the run.
    """

    def __init__(self, name: str, handler: logging.Handler, level: str = "debug") -> None:
        super().__init__(name, level)
        self.handler = handler
        handler.handleError = _reraise  # type: ignore[method-assign]
        self._lines = LineFormat.for_handler(handler)
        self._formatter = handler.formatter  # what _lines was built for
        # A rotating file's size, counted (see _write_rotating) for the stream it was read for.
        self._counted: Any = None
        self._size: int | None = 0
        self._encoding = "utf-8"
        self._exact = True

    def write(self, batch: Sequence[Record]) -> None:
        if not batch:
            return
        if self.handler.formatter is not self._formatter:  # setFormatter() since: follow it
            self._lines = LineFormat.for_handler(self.handler)
            self._formatter = self.handler.formatter
        lines = self._lines
        if lines is None:
            self._counted = None  # the stdlib's emit writes: a rotating file's size is read again
            self._handle(batch)
            return
        line = lines.line
        terminator = getattr(self.handler, "terminator", "\n")
        text = [line(event, _levelno(event)) + terminator for event, _line in batch]
        handler = self.handler
        with handler.lock:  # type: ignore[union-attr]
            if isinstance(handler, logging.handlers.RotatingFileHandler):
                self._write_rotating(handler, text)
            else:
                self._write(handler, "".join(text))

    def _handle(self, batch: Sequence[Record]) -> None:
        with _whole_lines(self.handler):
            self._handle_each(batch)

    def _handle_each(self, batch: Sequence[Record]) -> None:
        handle = self.handler.handle
        for event, _line in batch:
            record = logging.LogRecord(
                str(event.get("logger", "")), _levelno(event), "", 0, describe(event), None, None
            )
            ts = event.get("ts")
            if isinstance(ts, float):
                record.created = ts
                record.msecs = (ts - int(ts)) * 1000
            handle(record)

    @staticmethod
    def _write(handler: logging.Handler, text: str) -> None:
        if isinstance(handler, logging.FileHandler) and handler.stream is None:
            if handler.mode == "w" and handler._closed:  # type: ignore[attr-defined]
                return  # as FileHandler.emit: a closed 'w' file is not reopened
            handler.stream = handler._open()
        stream = handler.stream  # type: ignore[attr-defined]
        with _whole_lines(handler):
            try:
                stream.write(text)
            except UnicodeEncodeError:
                # A lone surrogate (or a character the file's encoding lacks) in logged text:
                # written escaped, as the JSONL's repair writes it, instead of losing the sink.
                # A text stream encodes the whole string before writing: nothing was written.
                encoding = getattr(stream, "encoding", None) or "utf-8"
                stream.write(text.encode(encoding, "backslashreplace").decode(encoding))
            handler.flush()

    def _write_rotating(
        self, handler: logging.handlers.RotatingFileHandler, text: list[str]
    ) -> None:
        """Write ``text`` (lines), rolling over before a line that would reach ``maxBytes``.

        The stdlib stats the path twice and seeks for every record (``shouldRollover``); here
        the file's size is read when its stream is first seen (after an open or a rollover)
        and then counted from what this sink writes, so a batch costs no system call but its
        write. Sizes are counted in encoded bytes; a file is never rolled over while empty.
        Bytes another writer appends to the same file are not counted (the stdlib's rotation
        does not support several writers either). Whether the file is a regular one (bpo-45401:
        only those roll over) is also decided when its stream is first seen.
        """
        if handler.maxBytes <= 0:
            self._write(handler, "".join(text))
            return
        try:
            self._rotate_and_write(handler, text)
        except BaseException:
            self._counted = None  # part of the batch may be on disk: read the size again
            raise

    def _rotate_and_write(
        self, handler: logging.handlers.RotatingFileHandler, text: list[str]
    ) -> None:
        size = self._size_of(handler)
        if size is None:  # not a regular file: never rolled over
            self._write(handler, "".join(text))
            return
        limit = handler.maxBytes
        encoding = self._encoding  # what the bytes on disk are
        start = 0
        for i, line in enumerate(text):
            n = len(line) if line.isascii() else len(line.encode(encoding, "backslashreplace"))
            if size + n >= limit and size > 0:
                if i > start:
                    self._write(handler, "".join(text[start:i]))
                handler.doRollover()
                start = i
                size = self._size_of(handler)
                if size is None:
                    self._write(handler, "".join(text[start:]))
                    return
            size += n
        self._write(handler, "".join(text[start:]))
        self._size = size
        if not self._exact:
            # The per-line count is an estimate in this encoding (UTF-16 takes two bytes a
            # character, a BOM is counted per line): read the size on disk next batch, so the
            # error stays within one batch instead of adding up.
            self._counted = None

    def _size_of(self, handler: logging.handlers.RotatingFileHandler) -> int | None:
        """Bytes in the handler's file (None for a file that is not regular), read from disk
        only for a stream this sink has not counted yet."""
        stream = handler.stream
        if stream is not None and stream is self._counted:
            return self._size
        base = handler.baseFilename
        if os.path.exists(base) and not os.path.isfile(base):  # as shouldRollover checks
            size = None
        else:
            if stream is None:
                stream = handler.stream = handler._open()
            stream.seek(0, 2)
            size = stream.tell()
            self._encoding = getattr(stream, "encoding", None) or "utf-8"
            # Counting is exact where ASCII text is one byte a character and no BOM is written.
            self._exact = "a\n".encode(self._encoding) == b"a\n"
        # A non-regular path is looked at again only when the stream changes (stream None:
        # it is opened by the first write, and then counted).
        self._counted = handler.stream
        self._size = size
        return size

    def flush(self) -> None:
        self.handler.flush()

    def _close(self) -> None:
        # StreamHandler.close() leaves its stream open; FileHandler.close() closes its file.
        self.handler.flush()
        self.handler.close()


@contextlib.contextmanager
def _whole_lines(handler: logging.Handler) -> Iterator[None]:
    """A file handler's write, whole or not at all: when it fails part-way (disk full, I/O
    error), the file is cut back to where it ended before, so it never ends in a torn line.

    The stream is closed first (its buffer may still hold the rest of the batch, which a later
    flush would append after the cut) and reopened by the next write; the error is raised
    (the listener reports it and disables the sink). Other handlers are left as they are.
    """
    stream = getattr(handler, "stream", None)
    path = getattr(handler, "baseFilename", None)
    before = None
    if isinstance(handler, logging.FileHandler) and stream is not None and path is not None:
        with contextlib.suppress(OSError, ValueError, AttributeError):
            stream.flush()
            before = os.fstat(stream.fileno())
    try:
        yield
    except OSError:
        if before is not None:
            with contextlib.suppress(OSError, ValueError):
                handler.stream.close()  # type: ignore[attr-defined]
            handler.stream = None  # type: ignore[attr-defined]
            with contextlib.suppress(OSError):
                now = os.stat(path)  # type: ignore[arg-type]
                # the same file (not one a rollover started since), grown by the torn part
                same = (now.st_dev, now.st_ino) == (before.st_dev, before.st_ino)
                if same and now.st_size > before.st_size:
                    os.truncate(path, before.st_size)  # type: ignore[arg-type]
        raise


def _levelno(event: dict[str, Any]) -> int:
    return LEVEL_NUMBERS.get(event.get("level", "info"), 20)
