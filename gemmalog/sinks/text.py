"""Human-readable sinks: any standard-library handler (console, rotating file) fed from events.

Each event becomes a one-line message (:mod:`gemmalog.sinks.message`) in a ``LogRecord``
handed to the wrapped handler, so the stdlib's own formatting (``%(asctime)s - %(name)s ...``
with a ``datefmt``) and rotation (``RotatingFileHandler``: ``maxBytes``/``backupCount``) apply
as the seed configuration writes them. For the handlers and formats gemmalog builds, a batch
is written as lines without records (:class:`gemmalog.sinks.textformat.LineFormat`).
"""

from __future__ import annotations

import contextlib
import logging
import logging.handlers
import os
from collections.abc import Iterator, Sequence
from typing import Any

from gemmalog.levels import LEVEL_NUMBERS
from gemmalog.sinks.base import BaseSink, Record
from gemmalog.sinks.message import describe
from gemmalog.sinks.textformat import LineFormat


def _reraise(record: logging.LogRecord) -> None:
    # Called by Handler.emit inside its ``except``: re-raise, so the listener reports the sink
    # once and disables it, instead of the stdlib printing a traceback for every record.
    raise


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
