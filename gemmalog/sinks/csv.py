"""``model_outputs.csv``: one row per ``model_output`` event, derived, rebuildable from the JSONL.

Rows are built by :mod:`gemmalog.sinks.csvrows` (the same functions ``gemmalog to-csv`` uses), so the
live file equals the one rebuilt afterwards. A file already there (a resumed run's earlier
segments, or an absolute ``filename`` another run wrote) is appended to, with its reward
columns, when its header starts with this handler's columns; a file with other columns (the
configuration changed) is kept as ``<stem>.<n><suffix>`` and a new file is started.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from gemmalog.formats import REWARD_PREFIX
from gemmalog.notices import warn_once
from gemmalog.sinks.base import BaseSink, Record
from gemmalog.sinks.csvrows import (
    base_columns,
    csv_header,
    new_writer,
    reward_names,
    row_maker,
    selected,
)


def _open(path: Path, mode: str) -> IO[str]:
    # backslashreplace: a lone surrogate is written as the JSONL's repair writes it
    return open(path, mode, encoding="utf-8", errors="backslashreplace", newline="")


def _append_whole(path: Path, data: bytes) -> None:
    """Append ``data`` (whole rows) to ``path``, all of it or none of it.

    A write that fails part-way (disk full, I/O error) leaves the file cut back to where it
    ended before, so it never ends in a torn row that a reader would take for data; the
    error is raised (the listener reports it and disables the sink). Whatever a kill leaves
    torn is normalized when a later segment takes the file over (see ``_resume``).
    """
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o666)
    try:
        start = os.fstat(fd).st_size
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, start)
            raise
    finally:
        os.close(fd)


class CsvSink(BaseSink):
    """Buffer model outputs and append them to ``path`` as CSV rows, on the listener thread.

    Rows are written when ``buffer_size`` of them wait, when ``flush_interval`` seconds have
    passed since the last write (checked on the listener's flush tick), and at close. A reward
    function first seen halfway extends the header: the file is rewritten once, through a
    temporary file and an atomic rename, with an empty cell in the earlier rows.
    ``raw=True`` turns off spreadsheet-formula neutralizing; ``phases`` (e.g. ``["train"]``)
    keeps only those phases.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        name: str = "csv",
        level: str = "debug",
        columns: Sequence[str] | None = None,
        buffer_size: int = 100,
        flush_interval: float = 5.0,
        raw: bool = False,
        phases: Collection[str] | None = None,
    ) -> None:
        super().__init__(name, level)
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.base = base_columns(columns)
        self.buffer_size = max(1, int(buffer_size))
        self.flush_interval = float(flush_interval)
        self.raw = raw
        self.phases = None if phases is None else frozenset(phases)
        self.rewards: list[str] = []  # reward functions in first-appearance order
        self.rows_written = 0
        self._pending: list[dict[str, Any]] = []
        self._started = False  # the header is on disk
        self._resumed = False  # a file already there was looked at
        self._last_write = time.monotonic()
        self._row: Callable[[Mapping[str, Any]], list[str]] | None = None  # for self.rewards

    def write(self, batch: Sequence[Record]) -> None:
        phases = self.phases
        pending = self._pending
        for event, _line in batch:
            if selected(event, phases):
                pending.append(event)
        if len(pending) >= self.buffer_size:
            self._write_pending()

    def flush(self) -> None:
        if self._pending and time.monotonic() - self._last_write >= self.flush_interval:
            self._write_pending()

    def flush_now(self) -> None:
        self._write_pending()

    def _close(self) -> None:
        self._write_pending()
        if not self._resumed:
            self._resume()
        if not self._started:  # no rows: the header alone, as a rebuild of no events gives
            self._rewrite()

    def _resume(self) -> None:
        """Take over a file already at ``path`` when its header fits, else set it aside.

        Looked at once, at the first write, so a sink that never writes never touches it.
        """
        self._resumed = True
        try:
            with _open(self.path, "r") as old:
                header = next(csv.reader(old), None)
        except FileNotFoundError:
            return
        if not header:
            return  # empty: written anew
        base = len(self.base)
        extra = header[base:]
        if header[:base] == self.base and all(h.startswith(REWARD_PREFIX) for h in extra):
            self.rewards = [h[len(REWARD_PREFIX) :] for h in extra]
            self._started = True
            with open(self.path, "rb") as raw:
                raw.seek(max(0, raw.seek(0, os.SEEK_END) - 2))
                torn = raw.read() != b"\r\n"
            if torn:  # an earlier segment killed mid-row: normalized by a rewrite
                self._rewrite()
            return
        n = 1
        while (kept := self.path.with_name(f"{self.path.stem}.{n}{self.path.suffix}")).exists():
            n += 1
        os.replace(self.path, kept)
        warn_once(
            f"{self.path} has other columns than CSV handler {self.name!r} writes (was the "
            f"configuration changed?); it is kept as {kept.name} and a new file is started"
        )

    def _write_pending(self) -> None:
        self._last_write = time.monotonic()
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        if not self._resumed:
            self._resume()
        known = set(self.rewards)
        grew = False
        for event in pending:
            scores = event.get("rewards")
            if scores is None or (type(scores) is dict and known.issuperset(scores)):
                continue  # no reward function new to the header
            for fn in reward_names(event):
                if fn not in known:
                    known.add(fn)
                    self.rewards.append(fn)
                    grew = True
        if grew or not self._started:
            self._rewrite()
        if self._row is None or grew:
            self._row = row_maker(self.base, self.rewards, self.raw)
        rows = io.StringIO(newline="")
        new_writer(rows).writerows(map(self._row, pending))
        _append_whole(self.path, rows.getvalue().encode("utf-8", "backslashreplace"))
        self.rows_written += len(pending)

    def _rewrite(self) -> None:
        """Write the current header and pad the rows already on disk to its width."""
        header = csv_header(self.base, self.rewards)
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            with _open(tmp, "w") as out:
                writer = new_writer(out)
                writer.writerow(header)
                if self._started:
                    with _open(self.path, "r") as old:
                        rows = csv.reader(old)
                        next(rows, None)  # the old header
                        width = len(header)
                        for row in rows:
                            writer.writerow(row + [""] * (width - len(row)))
            os.replace(tmp, self.path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        self._started = True
