"""The query cache: typed Parquet copies of the JSONL lines already parsed, kept beside them.

Each directory of shards gets a cache (``<dir>/.gemmalog-cache``, or a folder under
``$GEMMALOG_CACHE_DIR``) holding, per shard, Parquet parts for consecutive byte ranges of
complete lines, and a ``cache.json`` manifest: the byte-offset watermark (the end of the
last complete line parsed), the shard's device and inode, and SHA-256 digests of its first
bytes and of the bytes just before the watermark, and the content checks of
:mod:`gemmalog.queries._cache_check` (block digests, part digests). :func:`attach` (called by ``connect``)
brings the cache up to the last complete line of every shard under an exclusive ``flock``,
writing parts and manifest under temporary names and renaming them into place, so only new
bytes are parsed and a reader never sees half a cache. The unfinished tail after the last
newline is parsed from the JSONL into an in-memory table, exactly as the live views read it.

The JSONL stays the source of truth: a shard that was truncated, replaced, rotated or
edited, or whose part is damaged, no longer matches its entry and is parsed again (with a
notice for an edit or a damaged part); a shard that changes while a connection is
open is read live from the JSONL by that connection's next query (each query asks
:meth:`_Snapshot.sql` which files to read). Nothing here raises into the caller: a cache
that cannot be read or written falls back to reading the JSONL.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import hashlib
import os
import string
import tempfile
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from gemmalog import events
from gemmalog._version import __version__ as _version
from gemmalog.notices import warn_once
from gemmalog.queries._cache_config import FORMAT, cache_dir, enabled
from gemmalog.queries._cache_entry import segment_range
from gemmalog.queries._cache_store import _DirCache
from gemmalog.queries._paths import Source
from gemmalog.queries._sql import VIEWS, columns_literal, quote, source_select, sql_file, sql_list

__all__ = ["activate", "attach", "pin"]

_LIVE = "/* gemmalog: JSONL read live */"
#: Bytes after the watermark parsed into memory at connect; a read-only cache further behind
#: than this is not used for that shard (its JSONL is read as without the cache).
_TAIL_LIMIT = 1 << 26
_snapshots: weakref.WeakKeyDictionary[duckdb.DuckDBPyConnection, _Snapshot] = (
    weakref.WeakKeyDictionary()
)


@dataclass
class _Shard:
    """A shard as a connection sees it: its cached parts up to ``watermark``, and its size."""

    path: str
    ino: int
    size: int
    #: The shard's ctime at connect: a shard written in place since is read live.
    ctime_ns: int
    watermark: int
    parts: list[str]
    #: ``[lowest, highest]`` segment in the parts (``[]``: no rows), None if unknown.
    segments: list[int] | None
    tail: bool = False


def _entries(shard_dir: str, shards: list[str]) -> dict[str, tuple[dict[str, Any], list[str]]]:
    """Bring the directory's cache up to date where it can be written, else use it as it is."""
    try:
        store = _DirCache(shard_dir)
    except OSError:
        return {}
    try:
        return store.sync(shards)
    except (OSError, duckdb.Error) as exc:
        # A read-only run (permissions, a read-only file system) is expected: not worth a word.
        if not isinstance(exc, PermissionError) and getattr(exc, "errno", None) != errno.EROFS:
            warn_once(f"query cache {store.dir} not updated ({exc}); reading the JSONL instead")
    try:
        return store.usable(shards)
    except OSError:
        return {}


class _Snapshot:
    """What one connection reads: cached parts of shards unchanged since it was opened, the
    JSONL of everything else. :meth:`sql` is asked again by every query."""

    def __init__(self, source: Source) -> None:
        self.source = source
        self.shards: dict[str, _Shard] = {}
        self.tails_digest = ""
        #: ``[lowest, highest]`` segment of the cached parts and tails read at connect
        #: (``[]``: no rows), None when a part does not say.
        self.segments: list[int] | None = None
        #: Set once a query read a shard live (changed since connect): from then on the
        #: views always dedupe segments.
        self.read_live = False
        #: Set by :func:`pin`: the connection reads the parts and tails only, whatever happens
        #: to the shards.
        self.pinned = False
        #: False while connect() creates the views (see :func:`activate`).
        self.active = False
        #: Set by :func:`pin`: where results may be remembered, and the state they belong to.
        self.memo: tuple[Path, str] | None = None

    def build(self, con: duckdb.DuckDBPyConnection) -> None:
        tails: list[tuple[str, bytes]] = []
        for shard_dir, shards in self.source.by_dir().items():
            for shard, (entry, parts) in _entries(shard_dir, shards).items():
                try:
                    with open(shard, "rb") as fh:
                        st = os.fstat(fh.fileno())
                        behind = st.st_size - entry["watermark"]
                        if st.st_ino != entry["ino"] or not 0 <= behind <= _TAIL_LIMIT:
                            continue  # replaced since, or a cache far behind: read live
                        tail = os.pread(
                            fh.fileno(), st.st_size - entry["watermark"], entry["watermark"]
                        )
                except OSError:
                    continue
                if len(tail) != st.st_size - entry["watermark"]:
                    continue
                self.shards[shard] = _Shard(
                    shard,
                    st.st_ino,
                    st.st_size,
                    st.st_ctime_ns,
                    entry["watermark"],
                    parts,
                    segment_range(entry["parts"]),
                    bool(tail),
                )
                if tail:
                    tails.append((shard, tail))
        digest = hashlib.sha256()
        for shard, tail in tails:
            digest.update(f"{shard}\0{len(tail)}\0".encode("utf-8", "surrogateescape") + tail)
        self.tails_digest = digest.hexdigest()
        self._load_tails(con, tails)
        low, high = con.execute(
            "SELECT min(segment), max(segment) FROM _gemmalog_tail"
        ).fetchone() or (None, None)
        known = [] if low is None or high is None else [int(low), int(high)]
        for cached in self.shards.values():
            if cached.segments is None:
                self.segments = None
                return
            known += cached.segments
        self.segments = [min(known), max(known)] if known else []

    def _load_tails(self, con: duckdb.DuckDBPyConnection, tails: list[tuple[str, bytes]]) -> None:
        """Parse the bytes after each watermark, as read at connect, into ``_gemmalog_tail``."""
        if not tails:
            # The columns the live SELECT gives (binding it would glob and open the shards).
            columns = ", ".join(
                f"{quote_identifier(name)} {sql}" for name, sql in events.all_columns().items()
            )
            con.execute(
                f"CREATE TEMP TABLE _gemmalog_tail ({columns}, _rewards_sum DOUBLE, "
                "filename VARCHAR)"
            )
            return
        with tempfile.TemporaryDirectory(prefix="gemmalog-tail-") as tmp:
            names: list[tuple[str, str]] = []
            for i, (shard, data) in enumerate(tails):
                path = os.path.join(tmp, f"{i}.jsonl")
                with open(path, "wb") as fh:
                    fh.write(data)
                names.append((path, shard))
            cases = " ".join(f"WHEN {quote(p)} THEN {quote(s)}" for p, s in names)
            select = source_select([glob.escape(p) for p, _ in names])
            con.execute(
                "CREATE TEMP TABLE _gemmalog_tail AS "
                f"SELECT * REPLACE (CASE filename {cases} END AS filename) FROM ({select})"
            )

    def mixed_segments(self) -> bool:
        """Whether the rows a query reads now may belong to more than one segment of a
        resumed run (the views then keep the latest segment of each step; when every row
        is of one segment, that dedupe keeps every row and is skipped)."""
        if self.segments is None or len(set(self.segments)) > 1:
            return True
        if self.pinned:
            return False
        return bool(self._now()[2]) or self.read_live

    def _now(self) -> tuple[list[_Shard], list[str], list[str]]:
        """The shards whose parts are read (unchanged since connect), those whose tail is
        read, and the files read live from the JSONL."""
        cached: list[_Shard] = []
        live: list[str] = []
        tails: list[str] = []
        for path, shard in self.shards.items():
            try:
                st = os.stat(path)
            except FileNotFoundError:
                continue  # deleted: the live glob would not find it either
            except OSError:
                live.append(path)
                continue
            if (st.st_ino, st.st_size, st.st_ctime_ns) != (
                shard.ino,
                shard.size,
                shard.ctime_ns,
            ) or not all(os.path.exists(p) for p in shard.parts):
                live.append(path)
                continue
            if shard.parts:
                cached.append(shard)
            if shard.tail:
                tails.append(path)
        live += [f for f in self.source.files() if f not in self.shards]
        if live:
            self.read_live = True
        return cached, tails, live

    def sql(self) -> str:
        """The SELECT for the shards as they are now: cache where unchanged, JSONL elsewhere."""
        if not self.active:  # creating a view binds it: no need to open every part for that
            return "SELECT * FROM _gemmalog_tail WHERE false"
        cached, tails, live = self._now()
        branches: list[str] = []
        for shard in cached:
            files = sql_list(tuple(glob.escape(p) for p in shard.parts))
            branches.append(f"SELECT *, {quote(shard.path)} AS filename FROM read_parquet({files})")
        if live:
            branches.append(f"{_LIVE} {source_select([glob.escape(f) for f in live])}")
        if tails:
            branches.append(
                f"SELECT * FROM _gemmalog_tail WHERE filename IN ({', '.join(map(quote, tails))})"
            )
        return "\nUNION ALL\n".join(branches) or "SELECT * FROM _gemmalog_tail WHERE false"


def attach(
    con: duckdb.DuckDBPyConnection, source: Source, *, use_cache: bool | None = None
) -> None:
    """Create ``_events_source`` in ``con``: over the cache and the JSONL, or the JSONL only."""
    if not (enabled() if use_cache is None else use_cache):
        con.execute(
            string.Template(sql_file("_source")).substitute(
                shards=sql_list(source.shards), columns=columns_literal()
            )
        )
        _segments_function(con, _always)
        return
    snapshot = _Snapshot(source)
    try:
        snapshot.build(con)
    except Exception as exc:  # never in the user's way: the JSONL answers as without a cache
        warn_once(f"query cache not used ({exc}); reading the JSONL instead")
        live = source_select(list(source.shards))
        con.execute(f"CREATE OR REPLACE VIEW _events_source AS {live}")
        _segments_function(con, _always)
        return
    con.execute("SET parquet_metadata_cache = true")  # every view binds the parts again
    con.create_function("gemmalog_source", snapshot.sql, [], "VARCHAR", side_effects=False)
    _segments_function(con, snapshot.mixed_segments)
    con.execute("CREATE VIEW _events_source AS SELECT * FROM query(gemmalog_source())")
    _snapshots[con] = snapshot


def quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _always() -> bool:
    return True


def _segments_function(con: duckdb.DuckDBPyConnection, fn: Any) -> None:
    """``gemmalog_mixed_segments()``, which the views ask before their resumed-run dedupe.
    Without side effects DuckDB folds it into a constant when it plans a query, so the
    branch of the view not taken is pruned before anything is read."""
    con.create_function("gemmalog_mixed_segments", fn, [], "BOOLEAN", side_effects=False)


def activate(con: duckdb.DuckDBPyConnection) -> None:
    """Let ``con``'s views read the data (until now an empty stand-in of the same columns)."""
    snapshot = _snapshots.get(con)
    if snapshot is not None:
        snapshot.active = True


def pin(con: duckdb.DuckDBPyConnection) -> bool:
    """Fix ``_events_source`` to what it reads now when that is only cached data (no JSONL to
    parse again on each query); False when it is not (no cache, or shards read live)."""
    snapshot = _snapshots.get(con)
    if snapshot is None:
        return False
    select = snapshot.sql()
    if _LIVE in select:
        return False
    con.execute(f"CREATE OR REPLACE VIEW _events_source AS {select}")
    snapshot.pinned = True
    dirs = {os.path.dirname(s) for s in snapshot.shards}
    if len(dirs) == 1:
        state = hashlib.sha256()
        for text in (str(FORMAT), duckdb.__version__, _version, select, snapshot.tails_digest):
            state.update(text.encode("utf-8", "surrogateescape") + b"\0")
        for name in ("_manifests", "_manifests_empty", *VIEWS):
            state.update(sql_file(name).encode() + b"\0")
        for manifest in sorted({m for p in snapshot.source.manifests for m in glob.glob(p)}):
            with contextlib.suppress(OSError):
                state.update(
                    manifest.encode("utf-8", "surrogateescape") + Path(manifest).read_bytes()
                )
        snapshot.memo = (cache_dir(dirs.pop()) / "results", state.hexdigest())
    return True
