"""The canonical sink: every event, one JSON line, append-only, one shard per rank."""

from __future__ import annotations

import errno
import io
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from gemmalog.sinks.base import BaseSink, Record

#: ``os.writev`` where the platform has it (not on Windows), and how many buffers it takes.
_writev: Callable[[int, Sequence[Any]], int] | None = getattr(os, "writev", None)
try:
    _IOV_MAX = max(16, min(1024, os.sysconf("SC_IOV_MAX")))
except (AttributeError, OSError, ValueError):
    _IOV_MAX = 16


class _Partial(Exception):
    """A write that failed after ``done`` bytes had been written."""

    def __init__(self, done: int, error: BaseException) -> None:
        super().__init__(done, error)
        self.done = done
        self.error = error


class JsonlSink(BaseSink):
    """Append rendered lines to ``path``; one ``writev`` syscall per flush (per 1,024 lines).

    Lines are collected in memory and written when :meth:`flush` runs (the listener calls it
    every ``flush_interval`` seconds and at shutdown) or when more than ``max_buffer`` bytes
    wait. A line is written whole or, when the process dies mid-write, left as a torn tail
    that the readers skip. With ``fsync=True`` every flush also reaches the disk.

    Faults never stop the sink: a write that fails (disk full, permission denied, I/O
    error) counts its lines in ``lines_lost`` and raises, and the next flush tries again;
    a shard that was deleted under it (the run directory removed) is noticed on the next
    flush, its lines are counted as lost and a new shard is opened at the same path. The
    listener reports both. An existing shard that ends in a torn line (a killed earlier
    segment) gets a newline first, so the torn fragment never swallows a new line.
    ``lazy``: the file is opened by the first flush with lines (the late writer's shard,
    which most runs never need), and only in a directory that exists: a run directory
    deleted after the run ended is not made again by a late event (its lines are lost,
    and counted).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        fsync: bool = False,
        max_buffer: int = 1 << 20,
        name: str = "jsonl",
        private: bool = True,
        lazy: bool = False,
    ) -> None:
        super().__init__(name)
        self.path = Path(path)
        self.fsync = fsync
        self.max_buffer = max_buffer
        self.private = private
        self._file: io.FileIO | None = None
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._in_file = 0  # lines this sink wrote into the file now open
        self._torn = False  # the file may end mid-line: start the next write with a newline
        self.lines_written = 0
        self.lines_lost = 0
        #: The error of the last failed write or open; None while writes succeed.
        self.error: BaseException | None = None
        #: Set when the open shard was found deleted: how many written lines went with it.
        self.removed_lines: int | None = None
        self._make_dir = not lazy
        if lazy:  # opened by the first flush that has lines (a shard that may stay empty)
            return
        try:
            self._open()
        except OSError as exc:  # e.g. permission denied: counted, retried on every flush
            self.error = exc

    def _open(self) -> io.FileIO:
        if self._make_dir:
            mode = 0o700 if self.private else 0o777
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=mode)
        # io.FileIO, not open(): the interpreter removes the builtin open() while it
        # finalizes, and a late writer may open its shard then (an object's __del__ logs).
        file = io.FileIO(self.path, "ab", opener=self._opener)
        self._file = file
        self._in_file = 0
        size = os.fstat(file.fileno()).st_size
        if size:
            with io.FileIO(self.path, "rb") as tail:
                tail.seek(size - 1)
                self._torn = tail.read(1) != b"\n"
        return file

    def _opener(self, path: str, flags: int) -> int:
        return os.open(path, flags | os.O_CLOEXEC, 0o600 if self.private else 0o666)

    def write(self, batch: Sequence[Record]) -> None:
        pending = self._pending
        for _event, line in batch:
            pending.append(line)
            self._pending_bytes += len(line)
        if self._pending_bytes >= self.max_buffer:
            self.flush()

    def _current_file(self) -> io.FileIO:
        file = self._file
        if file is None:
            return self._open()
        # One fstat per flush: a deleted shard still accepts writes, into nothing.
        if os.fstat(file.fileno()).st_nlink == 0:
            removed = self._in_file
            self.lines_written -= removed
            self.lines_lost += removed
            self.removed_lines = (self.removed_lines or 0) + removed
            self._file = None
            file.close()
            return self._open()
        return file

    def flush(self) -> None:
        if not self._pending:
            return
        lines = self._pending
        count = len(lines)
        self._pending = []
        self._pending_bytes = 0
        prefix = 0
        done = 0
        buffers = lines
        try:
            file = self._current_file()
            if self._torn:
                buffers = [b"\n", *lines]
                prefix = 1
            if _writev is not None and type(file) is io.FileIO:
                done = self._write_lines(file, buffers)
            else:  # a stand-in file object (tests, wrappers): its own write
                view = memoryview(b"".join(buffers))
                while view:
                    written = file.write(view) or 0
                    if not written:
                        raise OSError(errno.EIO, f"no progress writing {self.path}")
                    view = view[written:]
                    done += written
            self._torn = False
            if self.fsync:
                os.fsync(file.fileno())
        except BaseException as exc:
            error = exc
            if isinstance(exc, _Partial):
                done, error = exc.done, exc.error
            data = b"".join(buffers)
            full = data.count(b"\n", prefix, done) if done > prefix else 0
            if done > 0 and data[done - 1 : done] != b"\n":
                self._torn = True
            self._in_file += full
            self.lines_written += full
            self.lines_lost += count - full
            self.error = error
            if error is exc:
                raise
            raise error from None  # the write's own error, as the stand-in path raises it
        self._in_file += count
        self.lines_written += count
        self.error = None

    def _write_lines(self, file: io.FileIO, buffers: list[bytes]) -> int:
        """Write ``buffers`` with ``writev``: the lines go to the kernel as they are, with no
        joined copy (a megabyte of fresh memory per flush, the larger part of the sink's CPU
        for long lines). Returns the bytes written; a failure after some bytes raises
        :class:`_Partial` with the count."""
        assert _writev is not None
        fd = file.fileno()
        n = len(buffers)
        i = 0  # the first buffer not wholly written
        offset = 0  # bytes of buffers[i] already written
        done = 0
        try:
            while i < n:
                if offset:
                    chunk: list[Any] = [memoryview(buffers[i])[offset:]]
                    chunk += buffers[i + 1 : i + _IOV_MAX]
                else:
                    chunk = buffers[i : i + _IOV_MAX]
                written = _writev(fd, chunk)
                if not written:
                    raise OSError(errno.EIO, f"no progress writing {self.path}")
                done += written
                written += offset
                while i < n and written >= len(buffers[i]):
                    written -= len(buffers[i])
                    i += 1
                offset = written
        except BaseException as exc:
            if done:
                raise _Partial(done, exc) from exc
            raise
        return done

    def _close(self) -> None:
        try:
            self.flush()
        finally:
            if self._file is not None:
                self._file.close()
