"""The query cache: typed Parquet copies of the JSONL lines already parsed, kept beside them.

Each directory of shards gets a cache (``<dir>/.gemmalog-cache``, or a folder under
``$GEMMALOG_CACHE_DIR``) holding, per shard, Parquet parts for consecutive byte ranges of
complete lines, and a ``cache.json`` manifest: the byte-offset watermark (the end of the
last complete line parsed), the shard's device and inode, and SHA-256 digests of its first
bytes and of the bytes just before the watermark. :func:`attach` (called by ``connect``)
brings the cache up to the last complete line of every shard under an exclusive ``flock``,
writing parts and manifest under temporary names and renaming them into place, so only new
bytes are parsed and a reader never sees half a cache. The unfinished tail after the last
newline is parsed from the JSONL into an in-memory table, exactly as the live views read it.

The JSONL stays the source of truth: a shard that was truncated, replaced or rotated no
longer matches its entry and is parsed again; a shard that changes while a connection is
open is read live from the JSONL by that connection's next query (each query asks
:meth:`_Snapshot.sql` which files to read). Nothing here raises into the caller: a cache
that cannot be read or written falls back to reading the JSONL.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import glob
import hashlib
import json
import os
import re
import shutil
import string
import tempfile
import time
import uuid
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import duckdb
import orjson

from gemmalog._stderr import warn_once
from gemmalog._version import __version__ as _version
from gemmalog.queries._connect import VIEWS, Source, _columns_literal, _sql_list, sql_file

#: Bump when the layout of cache.json or of the parts changes.
FORMAT = 1
CACHE_NAME = ".gemmalog-cache"
MANIFEST = "cache.json"
_PREFIX_BYTES = 1 << 16
_WINDOW_BYTES = 1 << 12
_MAX_PARTS = 32  # a shard with more parts than this has them merged into one
_GRACE_S = 600.0  # a part no manifest names is deleted only this long after (open readers)
_SCAN = 1 << 20
_OFF = frozenset({"0", "off", "false", "no"})
_LIVE = "/* gemmalog: JSONL read live */"
_CREATE = re.compile(r"CREATE\s+VIEW\s+_events_source\s+AS", re.IGNORECASE)
_settings: dict[str, Any] = {}
_snapshots: weakref.WeakKeyDictionary[duckdb.DuckDBPyConnection, _Snapshot] = (
    weakref.WeakKeyDictionary()
)


@contextlib.contextmanager
def configured(*, enabled: bool | None = None, directory: str | None = None) -> Iterator[None]:
    """Within the block, use the cache or not (``enabled``) and keep it under ``directory``."""
    saved = dict(_settings)
    if enabled is not None:
        _settings["enabled"] = enabled
    if directory is not None:
        _settings["directory"] = directory
    try:
        yield
    finally:
        _settings.clear()
        _settings.update(saved)


def enabled() -> bool:
    """Whether ``connect`` uses the cache: not with ``$GEMMALOG_CACHE=off`` or ``--no-cache``."""
    if "enabled" in _settings:
        return bool(_settings["enabled"])
    return os.environ.get("GEMMALOG_CACHE", "").strip().lower() not in _OFF


def cache_root() -> str | None:
    """The folder holding every run's cache (``$GEMMALOG_CACHE_DIR``, ``--cache-dir``), if set."""
    value = _settings.get("directory") or os.environ.get("GEMMALOG_CACHE_DIR") or None
    return os.path.abspath(value) if value else None


def cache_dir(shard_dir: str) -> Path:
    """Where the cache of the shards in ``shard_dir`` lives."""
    base = cache_root()
    if base is None:
        return Path(shard_dir) / CACHE_NAME
    real = os.path.realpath(shard_dir)
    digest = hashlib.sha256(real.encode("utf-8", "surrogateescape")).hexdigest()[:16]
    return Path(base) / f"{os.path.basename(real)[:64]}-{digest}"


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def source_select(patterns: list[str]) -> str:
    """The SELECT of ``_source.sql`` over ``patterns`` (globs, escaped where literal)."""
    text = string.Template(sql_file("_source")).substitute(
        shards=_sql_list(tuple(patterns)), columns=_columns_literal()
    )
    parts = _CREATE.split(text, maxsplit=1)
    if len(parts) != 2:
        raise ValueError("_source.sql does not define the view _events_source")
    return parts[1].strip().rstrip(";")


@cache
def _schema() -> str:
    """What a part holds depends on: the source SELECT, the declared types, DuckDB's reader."""
    text = f"{FORMAT}\n{source_select(['x'])}\n{duckdb.__version__}"
    return hashlib.sha256(text.encode()).hexdigest()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _fingerprint(fd: int, end: int) -> dict[str, Any]:
    """Digests that tell whether the first ``end`` bytes are still the ones that were parsed."""
    head = min(end, _PREFIX_BYTES)
    start = max(0, end - _WINDOW_BYTES)
    return {
        "prefix_len": head,
        "prefix": _sha(os.pread(fd, head, 0)),
        "window": _sha(os.pread(fd, end - start, start)),
    }


def _entry_ok(entry: Any) -> bool:
    """A manifest entry with every field of the right type (a damaged manifest is ignored)."""
    if not isinstance(entry, dict):
        return False
    ints = ("dev", "ino", "watermark", "prefix_len")
    if not all(type(entry.get(k)) is int for k in ints) or entry["watermark"] <= 0:
        return False
    if not all(isinstance(entry.get(k), str) for k in ("prefix", "window")):
        return False
    parts = entry.get("parts")
    return isinstance(parts, list) and all(
        isinstance(p, dict)
        and isinstance(p.get("file"), str)
        and type(p.get("rows")) is int
        and type(p.get("end")) is int
        for p in parts
    )


def _matches(entry: dict[str, Any], fd: int, st: os.stat_result) -> bool:
    """Same file (device, inode), not shorter, and the same bytes at its start and watermark."""
    if (st.st_dev, st.st_ino) != (entry["dev"], entry["ino"]):
        return False
    if st.st_size < entry["watermark"]:
        return False
    now = _fingerprint(fd, entry["watermark"])
    return all(now[k] == entry[k] for k in ("prefix_len", "prefix", "window"))


def _last_newline(fd: int, start: int, end: int) -> int:
    """The offset just after the last newline in ``[start, end)``; ``start`` when there is none."""
    pos = end
    while pos > start:
        low = max(start, pos - _SCAN)
        found = os.pread(fd, pos - low, low).rfind(b"\n")
        if found >= 0:
            return low + found + 1
        pos = low
    return start


def _copy_range(fd: int, start: int, end: int, dest: Path, mode: int) -> None:
    """Copy bytes ``[start, end)`` of ``fd`` to a new file ``dest``."""
    out = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    try:
        pos = start
        while pos < end:
            data = os.pread(fd, min(_SCAN * 16, end - pos), pos)
            if not data:
                raise OSError(f"{dest}: the shard ended before byte {end}")
            os.write(out, data)
            pos += len(data)
    finally:
        os.close(out)


@dataclass
class _Shard:
    """A shard as a connection sees it: its cached parts up to ``watermark``, and its size."""

    path: str
    ino: int
    size: int
    watermark: int
    parts: list[str]
    tail: bool = False


class _DirCache:
    """The cache of one directory of shards: its manifest, parts and lock."""

    def __init__(self, shard_dir: str) -> None:
        self.shard_dir = shard_dir
        self.dir = cache_dir(shard_dir)
        mode = os.stat(shard_dir).st_mode
        self.dir_mode = mode & 0o777
        self.file_mode = mode & 0o666
        self._con: duckdb.DuckDBPyConnection | None = None

    # -- manifest ---------------------------------------------------------------------------

    def load(self) -> dict[str, Any]:
        """The manifest, or an empty one when missing, damaged, or of another format."""
        fresh: dict[str, Any] = {"format": FORMAT, "schema": _schema(), "shards": {}}
        try:
            data = orjson.loads((self.dir / MANIFEST).read_bytes())
        except (OSError, orjson.JSONDecodeError):
            return fresh
        if (
            not isinstance(data, dict)
            or data.get("format") != FORMAT
            or data.get("schema") != _schema()
            or not isinstance(data.get("shards"), dict)
        ):
            return fresh
        data["shards"] = {k: v for k, v in data["shards"].items() if _entry_ok(v)}
        return data

    def save(self, manifest: dict[str, Any]) -> None:
        tmp = self.dir / f".{MANIFEST}.{uuid.uuid4().hex}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, self.file_mode)
        try:
            os.write(fd, orjson.dumps(manifest, option=orjson.OPT_INDENT_2))
        finally:
            os.close(fd)
        os.replace(tmp, self.dir / MANIFEST)

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the cache's exclusive lock (another builder waits for this one to finish)."""
        self.dir.mkdir(parents=True, exist_ok=True, mode=self.dir_mode)
        fd = os.open(self.dir / "lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, self.file_mode)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    # -- reading -----------------------------------------------------------------------------

    def usable(self, shards: list[str]) -> dict[str, tuple[dict[str, Any], list[str]]]:
        """Entries that still match their shard, without writing (a read-only directory)."""
        manifest = self.load()
        out: dict[str, tuple[dict[str, Any], list[str]]] = {}
        for shard in shards:
            entry = manifest["shards"].get(os.path.basename(shard))
            if entry is None:
                continue
            try:
                with open(shard, "rb") as fh:
                    if not _matches(entry, fh.fileno(), os.fstat(fh.fileno())):
                        continue
            except OSError:
                continue
            parts = [str(self.dir / p["file"]) for p in entry["parts"]]
            if all(os.path.exists(p) for p in parts):
                out[shard] = (entry, parts)
        return out

    # -- writing -----------------------------------------------------------------------------

    def sync(self, shards: list[str]) -> dict[str, tuple[dict[str, Any], list[str]]]:
        """Parse what is new in ``shards`` up to their last complete line; return the entries."""
        with self.locked():
            manifest = self.load()
            entries: dict[str, Any] = manifest["shards"]
            before = orjson.dumps(manifest)
            for shard in shards:
                name = os.path.basename(shard)
                with open(shard, "rb") as fh:
                    entry = self._catch_up(shard, fh.fileno(), entries.get(name))
                if entry is None:
                    entries.pop(name, None)
                else:
                    entries[name] = entry
            for name in [n for n in entries if not os.path.exists(os.path.join(self.shard_dir, n))]:
                del entries[name]  # the shard is gone
            if orjson.dumps(manifest) != before:
                self.save(manifest)
            self.collect(manifest)
        if self._con is not None:
            self._con.close()
            self._con = None
        return self.usable(shards)

    def _scratch(self) -> duckdb.DuckDBPyConnection:
        if self._con is None:
            self._con = duckdb.connect(":memory:")
        return self._con

    def _write_part(self, name: str, select: str, start: int, end: int) -> dict[str, Any]:
        """COPY ``select`` to a new part of shard ``name``; the part appears only when complete."""
        folder = self.dir / "parts" / name
        folder.mkdir(parents=True, exist_ok=True, mode=self.dir_mode)
        tag = uuid.uuid4().hex[:12]
        tmp = folder / f".tmp-{tag}.parquet"
        final = folder / f"{start:015d}-{end:015d}-{tag}.parquet"
        try:
            rows = (
                self._scratch()
                .execute(
                    f"COPY ({select}) TO {_quote(str(tmp))} (FORMAT parquet, COMPRESSION zstd)"
                )
                .fetchall()
            )
            os.chmod(tmp, self.file_mode)
            os.replace(tmp, final)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        return {
            "file": str(final.relative_to(self.dir)),
            "start": start,
            "end": end,
            "rows": int(rows[0][0]),
        }

    def _parse(self, shard: str, fd: int, start: int, end: int) -> dict[str, Any]:
        """A part holding the lines in bytes ``[start, end)`` of ``shard``."""
        name = os.path.basename(shard)
        if start == 0 and end == os.fstat(fd).st_size:
            # The whole file: read it in place, then make sure nothing was appended meanwhile.
            select = f"SELECT * EXCLUDE (filename) FROM ({source_select([glob.escape(shard)])})"
            part = self._write_part(name, select, start, end)
            if os.fstat(fd).st_size == end:
                return part
            with contextlib.suppress(OSError):
                (self.dir / part["file"]).unlink()
        tmp = self.dir / f".tmp-{uuid.uuid4().hex[:12]}.jsonl"
        try:
            _copy_range(fd, start, end, tmp, self.file_mode)
            select = f"SELECT * EXCLUDE (filename) FROM ({source_select([glob.escape(str(tmp))])})"
            return self._write_part(name, select, start, end)
        finally:
            with contextlib.suppress(OSError):
                tmp.unlink()

    def _catch_up(self, shard: str, fd: int, entry: dict[str, Any] | None) -> dict[str, Any] | None:
        st = os.fstat(fd)
        if entry is not None and not _matches(entry, fd, st):
            entry = None  # truncated, replaced or rotated: parse it again
        watermark = entry["watermark"] if entry is not None else 0
        end = _last_newline(fd, watermark, st.st_size)
        if end == watermark:
            return entry
        part = self._parse(shard, fd, watermark, end)
        parts = [*(entry["parts"] if entry is not None else []), part]
        if len(parts) > _MAX_PARTS:
            files = _sql_list(tuple(glob.escape(str(self.dir / p["file"])) for p in parts))
            merged = self._write_part(
                os.path.basename(shard), f"SELECT * FROM read_parquet({files})", 0, end
            )
            parts = [merged]
        return {
            "dev": st.st_dev,
            "ino": st.st_ino,
            "watermark": end,
            **_fingerprint(fd, end),
            "parts": parts,
        }

    def collect(self, manifest: dict[str, Any]) -> None:
        """Delete parts and temporary files no manifest names, once no reader can still use them."""
        named = {p["file"] for e in manifest["shards"].values() for p in e["parts"]}
        old = time.time() - _GRACE_S
        for path in [*self.dir.glob("parts/*/*"), *self.dir.glob(".tmp-*")]:
            rel = str(path.relative_to(self.dir))
            with contextlib.suppress(OSError):
                if rel not in named and path.lstat().st_mtime < old:
                    path.unlink()
        for folder in self.dir.glob("parts/*"):
            with contextlib.suppress(OSError):
                folder.rmdir()  # only when empty


def _by_dir(files: list[str]) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for f in files:
        groups.setdefault(os.path.dirname(f), []).append(f)
    return groups


def _entries(shard_dir: str, shards: list[str]) -> dict[str, tuple[dict[str, Any], list[str]]]:
    """Bring the directory's cache up to date where it can be written, else use it as it is."""
    try:
        store = _DirCache(shard_dir)
    except OSError:
        return {}
    try:
        return store.sync(shards)
    except (OSError, duckdb.Error) as exc:
        if not isinstance(exc, PermissionError | FileNotFoundError) and getattr(
            exc, "errno", None
        ) not in (30,):  # EROFS: a read-only file system is expected, not worth a word
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
        #: Set by :func:`pin`: where results may be remembered, and the state they belong to.
        self.memo: tuple[Path, str] | None = None

    def build(self, con: duckdb.DuckDBPyConnection) -> None:
        tails: list[tuple[str, bytes]] = []
        for shard_dir, shards in _by_dir(self.source.files()).items():
            for shard, (entry, parts) in _entries(shard_dir, shards).items():
                try:
                    with open(shard, "rb") as fh:
                        st = os.fstat(fh.fileno())
                        if st.st_ino != entry["ino"] or st.st_size < entry["watermark"]:
                            continue  # replaced since: read live
                        tail = os.pread(
                            fh.fileno(), st.st_size - entry["watermark"], entry["watermark"]
                        )
                except OSError:
                    continue
                if len(tail) != st.st_size - entry["watermark"]:
                    continue
                self.shards[shard] = _Shard(
                    shard, st.st_ino, st.st_size, entry["watermark"], parts, bool(tail)
                )
                if tail:
                    tails.append((shard, tail))
        digest = hashlib.sha256()
        for shard, tail in tails:
            digest.update(f"{shard}\0{len(tail)}\0".encode("utf-8", "surrogateescape") + tail)
        self.tails_digest = digest.hexdigest()
        self._load_tails(con, tails)

    def _load_tails(self, con: duckdb.DuckDBPyConnection, tails: list[tuple[str, bytes]]) -> None:
        """Parse the bytes after each watermark, as read at connect, into ``_gemmalog_tail``."""
        if not tails:
            con.execute(
                "CREATE TEMP TABLE _gemmalog_tail AS SELECT * FROM _gemmalog_live WHERE false"
            )
            return
        with tempfile.TemporaryDirectory(prefix="gemmalog-tail-") as tmp:
            names: list[tuple[str, str]] = []
            for i, (shard, data) in enumerate(tails):
                path = os.path.join(tmp, f"{i}.jsonl")
                with open(path, "wb") as fh:
                    fh.write(data)
                names.append((path, shard))
            cases = " ".join(f"WHEN {_quote(p)} THEN {_quote(s)}" for p, s in names)
            select = source_select([glob.escape(p) for p, _ in names])
            con.execute(
                "CREATE TEMP TABLE _gemmalog_tail AS "
                f"SELECT * REPLACE (CASE filename {cases} END AS filename) FROM ({select})"
            )

    def sql(self) -> str:
        """The SELECT for the shards as they are now: cache where unchanged, JSONL elsewhere."""
        branches: list[str] = []
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
            if (st.st_ino, st.st_size) != (shard.ino, shard.size) or not all(
                os.path.exists(p) for p in shard.parts
            ):
                live.append(path)
                continue
            if shard.parts:
                files = _sql_list(tuple(glob.escape(p) for p in shard.parts))
                branches.append(f"SELECT *, {_quote(path)} AS filename FROM read_parquet({files})")
            if shard.tail:
                tails.append(path)
        live += [f for f in self.source.files() if f not in self.shards]
        if live:
            branches.append(f"{_LIVE} {source_select([glob.escape(f) for f in live])}")
        if tails:
            branches.append(
                f"SELECT * FROM _gemmalog_tail WHERE filename IN ({', '.join(map(_quote, tails))})"
            )
        return "\nUNION ALL\n".join(branches) or "SELECT * FROM _gemmalog_tail WHERE false"


def attach(
    con: duckdb.DuckDBPyConnection, source: Source, *, use_cache: bool | None = None
) -> None:
    """Create ``_events_source`` in ``con``: over the cache and the JSONL, or the JSONL only."""
    if not (enabled() if use_cache is None else use_cache):
        con.execute(
            string.Template(sql_file("_source")).substitute(
                shards=_sql_list(source.shards), columns=_columns_literal()
            )
        )
        return
    con.execute(f"CREATE VIEW _gemmalog_live AS {source_select(list(source.shards))}")
    snapshot = _Snapshot(source)
    try:
        snapshot.build(con)
    except (OSError, duckdb.Error) as exc:
        warn_once(f"query cache not used ({exc}); reading the JSONL instead")
        con.execute("CREATE OR REPLACE VIEW _events_source AS SELECT * FROM _gemmalog_live")
        return
    con.execute("SET parquet_metadata_cache = true")  # every view binds the parts again
    con.create_function("gemmalog_source", snapshot.sql, [], "VARCHAR", side_effects=False)
    con.execute("CREATE VIEW _events_source AS SELECT * FROM query(gemmalog_source())")
    _snapshots[con] = snapshot


# -- the `gemmalog cache` command's work ---------------------------------------------------------


def _dirs(source: Source) -> dict[str, list[str]]:
    return _by_dir(source.files())


def build(source: Source) -> list[dict[str, Any]]:
    """Bring the cache of every shard of ``source`` up to date; return :func:`status`."""
    for shard_dir, shards in _dirs(source).items():
        store = _DirCache(shard_dir)
        store.sync(shards)
    return status(source)


def status(source: Source) -> list[dict[str, Any]]:
    """Per shard: its size, the bytes and rows cached, the parts, where the cache is, its state."""
    out: list[dict[str, Any]] = []
    for shard_dir, shards in _dirs(source).items():
        store = _DirCache(shard_dir)
        manifest = store.load()
        usable = store.usable(shards)
        for shard in shards:
            entry = manifest["shards"].get(os.path.basename(shard))
            size = os.stat(shard).st_size
            if shard in usable:
                cached = usable[shard][0]
                state = "fresh" if cached["watermark"] >= size else "behind"
            else:
                state = "none" if entry is None else "stale"
            parts = usable[shard][1] if shard in usable else []
            out.append(
                {
                    "shard": shard,
                    "size": size,
                    "cached_bytes": usable[shard][0]["watermark"] if shard in usable else 0,
                    "rows": sum(p["rows"] for p in usable[shard][0]["parts"])
                    if shard in usable
                    else 0,
                    "parts": len(parts),
                    "parquet_bytes": sum(os.path.getsize(p) for p in parts),
                    "state": state,
                    "cache": str(store.dir),
                }
            )
    return out


def drop(source: Source) -> list[str]:
    """Delete the caches of ``source``'s directories; return the folders removed."""
    removed: list[str] = []
    for shard_dir in _dirs(source):
        folder = cache_dir(shard_dir)
        if folder.is_dir() and not folder.is_symlink():
            shutil.rmtree(folder)
            removed.append(str(folder))
    return removed


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


class _Unsupported(Exception):
    """A value the result memo does not store (computed again instead)."""


def _encode(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, datetime.datetime) and value.tzinfo is None:
        return {"timestamp": value.isoformat()}
    raise _Unsupported(type(value).__name__)


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        return datetime.datetime.fromisoformat(value["timestamp"])
    return value


def remembered(con: duckdb.DuckDBPyConnection, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Column names and rows of ``sql``; on a pinned connection, kept in the cache and given
    back while the run's cached data, its torn tails and its run.json are what they were."""
    snapshot = _snapshots.get(con)
    memo = snapshot.memo if snapshot is not None else None
    path = None
    if memo is not None:
        folder, state = memo
        path = folder / f"{state[:32]}-{hashlib.sha256(sql.encode()).hexdigest()[:32]}.json"
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            data = json.loads(path.read_bytes())
            return list(data["names"]), [tuple(_decode(v) for v in r) for r in data["rows"]]
    cur = con.execute(sql)
    names = [str(d[0]) for d in cur.description or ()]
    rows = cur.fetchall()
    if path is not None:
        with contextlib.suppress(OSError, _Unsupported, ValueError):
            text = json.dumps({"names": names, "rows": [[_encode(v) for v in r] for r in rows]})
            _write_result(path, text.encode())
    return names, rows


def _write_result(path: Path, data: bytes) -> None:
    folder = path.parent
    store = folder.parent
    folder.mkdir(exist_ok=True, mode=store.stat().st_mode & 0o777)
    tmp = folder / f".tmp-{uuid.uuid4().hex[:12]}"
    tmp.write_bytes(data)
    os.chmod(tmp, (store / "lock").stat().st_mode & 0o666)
    os.replace(tmp, path)
    old = time.time() - _GRACE_S
    state = path.name.split("-", 1)[0]
    for other in folder.iterdir():  # results of earlier states of the run
        with contextlib.suppress(OSError):
            if not other.name.startswith(state) and other.lstat().st_mtime < old:
                other.unlink()
