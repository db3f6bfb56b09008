"""The newest lines of a live run, parsed on the server: what answers a watching page.

A page that watches a run asks, after each change, for the curves' new points
(``/metrics?since_step=N``) and for the newest step's rollouts. Opening the run's query
connection again for each change (the query cache takes the new lines) and querying it
costs a fraction of a second each time; these answers come instead from the lines the
server parses itself (the shards are append-only and a complete line ends in ``"\\n"``):

* when the run's connection is opened, the last :data:`WINDOW_BYTES` of each shard are
  parsed with orjson, and ``floor`` is set one step above the lowest step they hold. The
  connection counts its events from ``floor`` on; when that count equals the window's,
  every event of a step from ``floor`` on is in the window, and the window is kept;
* afterwards only the bytes appended to each shard since are read (up to the last
  complete line) and parsed;
* a question about steps from ``floor`` on is answered from the window, with the same
  rules as the views (``series.sql``, ``rollouts.sql``). Anything else (an older step, a
  value of a type the views would convert, a resumed run's second segment in the window,
  more points than the curves keep, a shard replaced or cut) is :class:`Unsupported`, and
  the caller asks DuckDB, which builds a new window.

The answers themselves are in :mod:`._tail_answers`, the values read as the views read them
in :mod:`._tail_values`.
"""

from __future__ import annotations

import bisect
import glob
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import duckdb
import orjson

from gemmalog.serve._tail_values import Unsupported, integer

#: Bytes parsed back from the end of each shard when the window is built.
WINDOW_BYTES = 4 << 20
#: A window that has grown past this is dropped (the next question builds a smaller one).
MAX_WINDOW_BYTES = 32 << 20
_SHARDS = "events.*.jsonl"


@dataclass
class _Shard:
    ino: int
    offset: int  # the first byte not parsed yet (a line start)
    # the bytes after the last newline are a whole event: the views read it, the window not
    pending: bool = False


@dataclass
class Window:
    """The parsed events of the last lines of every shard of one run (see the module)."""

    dir: str
    floor: int
    shards: dict[str, _Shard]
    by_step: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    steps: list[int] = field(default_factory=list)  # the keys of by_step, in order
    size: int = 0  # bytes parsed
    training_args: dict[str, Any] = field(default_factory=dict)
    segment: int | None = None

    # -- building and following ---------------------------------------------------------------

    @classmethod
    def build(
        cls,
        run_dir: str,
        sizes: dict[str, tuple[int, int]],
        con: duckdb.DuckDBPyConnection,
        training_args: dict[str, Any],
    ) -> Window | None:
        """The window over the shards as they were (``sizes``: name -> size, inode) when
        ``con`` was opened; None when it cannot be proven to hold every event from its floor."""
        shards: dict[str, _Shard] = {}
        events: list[dict[str, Any]] = []
        parsed = 0
        for name, (size, ino) in sorted(sizes.items()):
            try:
                with open(os.path.join(run_dir, name), "rb") as fh:
                    if os.fstat(fh.fileno()).st_ino != ino:
                        return None
                    start = max(0, size - WINDOW_BYTES)
                    fh.seek(start)
                    data = fh.read(size - start)
            except OSError:
                return None
            end = data.rfind(b"\n") + 1
            first = 0 if start == 0 else data.find(b"\n") + 1
            if start and first == 0:  # one line longer than the window
                return None
            first = min(first, end)
            events += _parse(data[first:end])
            parsed += end - first
            shards[name] = _Shard(ino, start + end, _whole(data[end:]))
        steps = [e["step"] for e in events if type(e.get("step")) is int]
        if not steps:
            return None
        floor = min(steps) + 1
        counted = sum(1 for e in events if _counted(e) and e["step"] >= floor)
        try:
            row = con.execute("SELECT count(*) FROM events WHERE step >= $f", {"f": floor})
            found = row.fetchone()
        except duckdb.Error:
            return None
        if found is None or found[0] != counted:
            return None  # an older event of a newer step lies before the window: not provable
        window = cls(run_dir, floor, shards, training_args=training_args)
        try:
            window._take(events, parsed, following=False)
        except Unsupported:
            return None
        return window

    def follow(self) -> bool:
        """Parse what was appended since; False when the window no longer describes the
        shards (one replaced, cut or gone, a line the window cannot take, or grown too big)."""
        try:
            names = {
                os.path.basename(p) for p in glob.glob(os.path.join(glob.escape(self.dir), _SHARDS))
            }
        except OSError:
            return False
        if not set(self.shards) <= names:
            return False
        new: list[dict[str, Any]] = []
        parsed = 0
        for name in sorted(names):
            shard = self.shards.get(name)
            try:
                with open(os.path.join(self.dir, name), "rb") as fh:
                    st = os.fstat(fh.fileno())
                    if shard is None:  # a shard begun after the window was built
                        shard = self.shards[name] = _Shard(st.st_ino, 0)
                    if st.st_ino != shard.ino or st.st_size < shard.offset:
                        return False
                    if st.st_size == shard.offset:
                        continue
                    if st.st_size - shard.offset > MAX_WINDOW_BYTES:
                        return False
                    fh.seek(shard.offset)
                    data = fh.read(st.st_size - shard.offset)
            except OSError:
                return False
            end = data.rfind(b"\n") + 1
            new += _parse(data[:end])
            parsed += end
            shard.offset += end
            shard.pending = _whole(data[end:])
        try:
            self._take(new, parsed, following=True)
        except Unsupported:
            return False
        return self.size <= MAX_WINDOW_BYTES

    def _take(self, events: list[dict[str, Any]], parsed: int, *, following: bool) -> None:
        for e in events:
            if not _counted(e):
                if _event(e) and e.get("step") is not None:  # a step the views would cast
                    raise Unsupported(f"step {e.get('step')!r} is not an integer")
                continue
            segment = integer(e.get("segment")) or 0
            if self.segment is None:
                self.segment = segment
            elif segment != self.segment:
                raise Unsupported("a second segment (a resumed run): the views keep the latest")
            if following and e["kind"] == "run_start":
                raise Unsupported("a new run_start: the training arguments may have changed")
            step = e["step"]
            if step not in self.by_step:
                self.by_step[step] = []
                bisect.insort(self.steps, step)
            self.by_step[step].append(e)
        self.size += parsed

    def after(self, since_step: int) -> Iterator[dict[str, Any]]:
        """The events of the steps after ``since_step``, a step at a time, as written."""
        for step in self.steps[bisect.bisect_right(self.steps, since_step) :]:
            yield from self.by_step[step]

    def covers(self, since_step: int) -> bool:
        """Whether every event of a step after ``since_step`` is in the window."""
        if any(shard.pending for shard in self.shards.values()):
            return False  # a last line without its newline that the views read
        return since_step >= self.floor - 1


def _parse(data: bytes) -> Iterator[dict[str, Any]]:
    for line in data.split(b"\n"):
        if not line.strip():
            continue
        try:
            value = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue  # a torn or malformed line: the views count it as a read error
        if isinstance(value, dict):
            yield value


def _whole(rest: bytes) -> bool:
    """Whether the bytes after a shard's last newline hold an event the views would read."""
    if not rest.strip():
        return False
    try:
        value = orjson.loads(rest)
    except orjson.JSONDecodeError:
        return False  # a line being written, or torn: a read error for the views too
    return isinstance(value, dict) and _event(value)


def _event(e: dict[str, Any]) -> bool:
    """A line the ``events`` view keeps: a kind and a run."""
    return e.get("kind") is not None and e.get("run") is not None


def _counted(e: dict[str, Any]) -> bool:
    """An event of the ``events`` view with an integer step (a text kind)."""
    return _event(e) and isinstance(e["kind"], str) and type(e.get("step")) is int
