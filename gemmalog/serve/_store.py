"""Where the server's data comes from: the runs under the roots, one query connection a run.

A run's connection is opened with :func:`gemmalog.queries.connect` (which brings the query
cache up to the last complete line, parsing only the bytes added since) and pinned with
:func:`~gemmalog.queries.freeze`; it is reused while the run's files are unchanged and
opened again when they grow, so a refresh never parses a whole shard again. Only a few
connections stay open (least recently used first out): a root of a thousand runs does
not hold a thousand DuckDB databases.
"""

from __future__ import annotations

import datetime
import glob
import json
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import duckdb

from gemmalog.queries import QueryError, connect, freeze, list_runs
from gemmalog.serve._errors import ServeError, first_line, unknown_run
from gemmalog.serve._remote import FIRST_WAIT_S, Followed
from gemmalog.serve._sql import queries
from gemmalog.serve._tail import Window
from gemmalog.serve._tail_values import Unsupported

#: Columns of the ``runs`` view the runs page shows.
RUN_COLUMNS = (
    "run", "name", "status", "start", '"end"', "steps", "duration_s", "last_reward",
    "accuracy", "events", "ranks", "error", "dir",
)  # fmt: skip
_OPEN_CONNECTIONS = 16
_SHARDS = "events.*.jsonl"


State = tuple[tuple[str, int, int, int], ...]
T = TypeVar("T")


def run_state(run_dir: str) -> State | None:
    """Name, size, inode and mtime of every shard and of run.json; None once the folder is gone."""
    if not os.path.isdir(run_dir):
        return None
    out = []
    names = glob.glob(os.path.join(glob.escape(run_dir), _SHARDS))
    for path in sorted([*names, os.path.join(run_dir, "run.json")]):
        try:
            st = os.stat(path)
        except OSError:
            continue
        out.append((os.path.basename(path), st.st_size, st.st_ino, st.st_mtime_ns))
    return tuple(out)


def state_size(state: State | None) -> int:
    """Bytes in the run's shards (what grows while it writes)."""
    return sum(size for name, size, _, _ in state or () if name != "run.json")


@dataclass
class _Run:
    run_id: str
    dir: str
    lock: threading.Lock = field(default_factory=threading.Lock)
    con: duckdb.DuckDBPyConnection | None = None
    state: State | None = None
    window: Window | None = None
    no_window: State | None = None  # the state at which no window could be built

    def close(self) -> None:
        if self.con is not None:
            self.con.close()
            self.con = None
            self.state = None


def _plain(value: Any) -> Any:
    """A value of a DuckDB row as JSON can carry it (the views' times are UTC: ISO text with Z)."""
    if isinstance(value, datetime.datetime) and value.tzinfo is None:
        return value.isoformat() + "Z"
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


class RunStore:
    """The runs under ``roots`` (and under the copies of the ``remotes``), and a cached,
    refreshed query connection for each."""

    def __init__(
        self, roots: Sequence[str | os.PathLike[str]], remotes: Sequence[Followed] = ()
    ) -> None:
        self.remotes = list(remotes)
        local = [os.path.abspath(os.fspath(r)) for r in roots]
        #: The folders read: the local roots, then the copies of the remote ones.
        self.roots = [*local, *(f.path for f in self.remotes)]
        #: The roots as the user named them (a remote one by its URL).
        self.shown_roots = [*local, *(f.url for f in self.remotes)]
        self._runs: dict[str, _Run] = {}
        self._open: OrderedDict[str, _Run] = OrderedDict()
        self._lock = threading.Lock()
        self._memo: dict[str, tuple[State, dict[Hashable, Any]]] = {}
        self._busy: dict[tuple[str, Hashable], threading.Lock] = {}
        self._answers: dict[tuple[str, Hashable], int] = {}  # answers computed, by key

    # -- the runs ---------------------------------------------------------------------------

    def listing(self) -> tuple[list[dict[str, Any]], list[str]]:
        """Every run's row of the ``runs`` view (newest first) and the problems met on the way."""
        rows: list[dict[str, Any]] = []
        problems: list[str] = []
        for root in self.roots:
            remote = self.remote(root)
            if remote is not None:
                remote.ready(FIRST_WAIT_S)
                problem = remote.problem()
                if problem is not None:
                    problems.append(problem)
                if not remote.ready(0) or not remote.copied():
                    continue
            elif not os.path.isdir(root):
                problems.append(f"{root}: no such directory")
                continue
            try:
                found = list_runs(root, RUN_COLUMNS, ("start", "run"))
                if found is None:  # one run, runs sharing an id, or the cache off
                    found = _query_runs(root)
            except QueryError as exc:
                problems.append(str(exc))
                continue
            except duckdb.Error as exc:
                problems.append(f"{root}: the runs could not be read ({first_line(exc)})")
                continue
            names, values, skipped = found
            problems += [f"{file}: {problem}; skipped" for file, problem in skipped]
            keys = [n.strip('"') for n in names]
            rows += [{n: _plain(v) for n, v in zip(keys, row, strict=True)} for row in values]
        seen: dict[str, dict[str, Any]] = {}
        for row in rows:
            if row["run"] is None or row["dir"] is None:
                continue
            if row["run"] in seen and seen[row["run"]]["dir"] != row["dir"]:
                problems.append(
                    f"run id {row['run']} is in both {seen[row['run']]['dir']} and {row['dir']}; "
                    "the second is not served"
                )
                continue
            seen[row["run"]] = row
        with self._lock:
            for run_id, row in seen.items():
                known = self._runs.get(run_id)
                if known is None or known.dir != row["dir"]:
                    self._runs[run_id] = _Run(run_id, str(row["dir"]))
        out = sorted(seen.values(), key=lambda r: (r["start"] or "", r["run"]), reverse=True)
        return out, problems

    def remote(self, path: str) -> Followed | None:
        """The remote root whose copy holds ``path``, if any."""
        return next((f for f in self.remotes if f.owns(path)), None)

    def shown(self, path: str) -> str:
        """``path`` as the user knows it: a file or run of a remote root's copy by its URL."""
        remote = self.remote(path)
        return path if remote is None else remote.where(path)

    def locate(self, run_id: str) -> str:
        """The directory of ``run_id``; :class:`ServeError` 404 when no served run has it."""
        return self._entry(run_id).dir

    def _entry(self, run_id: str) -> _Run:
        with self._lock:
            entry = self._runs.get(run_id)
        if entry is not None:
            return entry
        # A run started after the last listing: its folder is named by its id.
        safe = run_id and "/" not in run_id and "\\" not in run_id and not run_id.startswith(".")
        if safe and "\0" not in run_id:
            for root in self.roots:
                candidate = os.path.join(root, run_id)
                if glob.glob(os.path.join(glob.escape(candidate), _SHARDS)):
                    with self._lock:
                        return self._runs.setdefault(run_id, _Run(run_id, candidate))
        self.listing()
        with self._lock:
            entry = self._runs.get(run_id)
        if entry is None:
            raise unknown_run(run_id)
        return entry

    def state(self, run_id: str) -> State:
        """The run's file state now; :class:`ServeError` 410 when its folder was deleted."""
        entry = self._entry(run_id)
        state = run_state(entry.dir)
        if state is None:
            raise _gone(entry)
        return state

    # -- queries ----------------------------------------------------------------------------

    def remembered(self, run_id: str, key: Hashable, compute: Callable[[], T]) -> T:
        """``compute()``, or its last answer while the run's files are as they were then
        (a page reloaded, a second browser, an unchanged run asked again). Browsers asking
        the same at once wait for one answer rather than each computing it (an answer
        computed while they waited is theirs, though a live run changed meanwhile)."""
        with self._lock:
            busy = self._busy.setdefault((run_id, key), threading.Lock())
            asked = self._answers.get((run_id, key), 0)
        with busy:
            state = self.state(run_id)
            with self._lock:
                memo = self._memo.get(run_id)
                waited = self._answers.get((run_id, key), 0) != asked  # answered meanwhile
                if memo is not None and key in memo[1] and (memo[0] == state or waited):
                    return memo[1][key]  # type: ignore[no-any-return]
            value = compute()
            with self._lock:
                memo = self._memo.get(run_id)
                if memo is None or memo[0] != state:
                    memo = self._memo[run_id] = (state, {})
                    # a new state: what was kept for the old one goes
                    for other in [k for k in self._busy if k[0] == run_id and k[1] != key]:
                        if not self._busy[other].locked():
                            del self._busy[other]
                            self._answers.pop(other, None)
                memo[1][key] = value
                self._answers[(run_id, key)] = self._answers.get((run_id, key), 0) + 1
            return value

    def from_window(self, run_id: str, answer: Callable[[Window], T]) -> T | None:
        """``answer(window)`` from the run's newest lines parsed on the server (a watching
        page's questions: see :mod:`gemmalog.serve._tail`); None when the window cannot
        answer it, and the caller asks DuckDB."""
        entry = self._entry(run_id)
        with entry.lock:
            window = entry.window
            if window is not None and not window.follow():
                window = entry.window = None
            if window is None:
                state = run_state(entry.dir)
                if state is None or state == entry.no_window:
                    return None
                self._refresh(entry, state)
                assert entry.con is not None
                sizes = {n: (size, ino) for n, size, ino, _ in state if n != "run.json"}
                try:
                    rows = entry.con.execute(queries("rollouts")["training_args"]).fetchall()
                except duckdb.Error:
                    return None
                args = arguments(rows[0][0] if rows else None)
                window = entry.window = Window.build(entry.dir, sizes, entry.con, args)
                if window is None:
                    entry.no_window = state
                    return None
                if not window.follow():  # what was written while it was built
                    entry.window = None
                    return None
            try:
                return answer(window)
            except Unsupported:
                return None

    def _refresh(self, entry: _Run, state: State) -> None:
        """Open the run's connection again unless it is at ``state`` (the entry's lock held)."""
        if entry.con is None or state != entry.state:
            entry.close()
            entry.con = _open(entry)
            entry.state = state
        self._touch(entry)

    @contextmanager
    def connection(self, run_id: str) -> Iterator[duckdb.DuckDBPyConnection]:
        """The run's connection, up to date with its files, held for this thread alone."""
        entry = self._entry(run_id)
        with entry.lock:
            state = run_state(entry.dir)
            if state is None:
                entry.close()
                raise _gone(entry)
            self._refresh(entry, state)
            assert entry.con is not None
            try:
                yield entry.con
            except duckdb.Error as exc:
                entry.close()  # the next request opens a fresh one
                if run_state(entry.dir) is None:
                    raise _gone(entry) from None
                raise ServeError(
                    500, f"run {run_id}: its data could not be read ({first_line(exc)})"
                ) from None

    def query(
        self, run_id: str, sql: str, params: dict[str, Any] | None = None
    ) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Column names and rows of ``sql`` over the run's views."""
        with self.connection(run_id) as con:
            cur = con.execute(sql, params or {})
            names = [str(d[0]) for d in cur.description or ()]
            return names, cur.fetchall()

    def records(
        self, run_id: str, sql: str, params: dict[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        names, rows = self.query(run_id, sql, params)
        return [dict(zip(names, row, strict=True)) for row in rows]

    def _touch(self, entry: _Run) -> None:
        with self._lock:
            self._open[entry.run_id] = entry
            self._open.move_to_end(entry.run_id)
            while len(self._open) > _OPEN_CONNECTIONS:
                _, old = self._open.popitem(last=False)
                if old is not entry and old.lock.acquire(blocking=False):
                    try:
                        old.close()
                        old.window = None  # a run no longer asked about: its lines go too
                    finally:
                        old.lock.release()

    def close(self) -> None:
        """Close every open connection (the server is stopping)."""
        with self._lock:
            entries = list(self._runs.values())
            self._open.clear()
        for entry in entries:
            with entry.lock:
                entry.close()
                entry.window = None


def _open(entry: _Run) -> duckdb.DuckDBPyConnection:
    try:
        con = connect(entry.dir)
    except QueryError as exc:
        raise ServeError(404, str(exc)) from None
    except duckdb.Error as exc:
        raise ServeError(
            500, f"run {entry.run_id}: its files could not be read ({first_line(exc)})"
        ) from None
    try:
        freeze(con)
    except duckdb.Error as exc:
        con.close()
        raise ServeError(
            500, f"run {entry.run_id}: its files could not be read ({first_line(exc)})"
        ) from None
    return con


def arguments(value: Any) -> dict[str, Any]:
    """The logged GRPOConfig snapshot (a JSON text or a map) as a dict; empty without one."""
    if value is None:
        return {}
    try:
        value = json.loads(value) if isinstance(value, str) else value
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _query_runs(root: str) -> tuple[list[str], list[tuple[Any, ...]], list[tuple[str, str]]]:
    from gemmalog.queries import connect as open_root

    con = open_root(root)
    try:
        cur = con.execute(f"SELECT {', '.join(RUN_COLUMNS)} FROM runs")
        names = [str(d[0]) for d in cur.description or ()]
        rows = cur.fetchall()
        problems = con.execute(
            "SELECT file, problem FROM _manifest_problems ORDER BY file"
        ).fetchall()
        return names, rows, [(str(f), str(p)) for f, p in problems]
    finally:
        con.close()


def _gone(entry: _Run) -> ServeError:
    return ServeError(
        410, f"run {entry.run_id} was deleted: its folder {entry.dir} no longer exists"
    )
