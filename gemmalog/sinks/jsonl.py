"""The canonical sink: every event, one JSON line, append-only, one shard per rank."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from gemmalog.sinks.base import BaseSink, Record


class JsonlSink(BaseSink):
    """Append rendered lines to ``path``; one ``write`` syscall per flush.

    Lines are collected in memory and written when :meth:`flush` runs (the listener calls it
    every ``flush_interval`` seconds and at shutdown) or when more than ``max_buffer`` bytes
    wait. A line is written whole or, when the process dies mid-write, left as a torn tail
    that the readers skip. With ``fsync=True`` every flush also reaches the disk.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        fsync: bool = False,
        max_buffer: int = 1 << 20,
        name: str = "jsonl",
    ) -> None:
        super().__init__(name)
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fsync = fsync
        self.max_buffer = max_buffer
        self._file = open(self.path, "ab", buffering=0)  # noqa: SIM115 - closed in _close
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self.lines_written = 0
        self.lines_lost = 0

    def write(self, batch: Sequence[Record]) -> None:
        pending = self._pending
        for _event, line in batch:
            pending.append(line)
            self._pending_bytes += len(line)
        if self._pending_bytes >= self.max_buffer:
            self.flush()

    def flush(self) -> None:
        if not self._pending:
            return
        data = b"".join(self._pending)
        count = len(self._pending)
        self._pending = []
        self._pending_bytes = 0
        try:
            view = memoryview(data)
            while view:
                written = self._file.write(view)
                view = view[written or 0 :]
            if self.fsync:
                os.fsync(self._file.fileno())
        except BaseException:
            self.lines_lost += count
            raise
        self.lines_written += count

    def _close(self) -> None:
        try:
            self.flush()
        finally:
            self._file.close()
