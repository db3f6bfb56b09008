"""The query cache on disk: per directory of shards, Parquet parts of byte ranges of complete
lines and a ``cache.json`` manifest, written under an exclusive lock, renamed into place.

Per shard the manifest keeps the byte-offset watermark (the end of the last complete line
parsed), the shard's device and inode, and SHA-256 digests of its first bytes and of the
bytes just before the watermark: a shard that was truncated, replaced or rotated no longer
matches and is parsed again from its first byte. The block and part digests of
:mod:`gemmalog.queries._cache_check` catch a shard edited in place and a damaged part. See :mod:`gemmalog.queries._cache` for how
connections read it.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import hashlib
import os
import re
import string
import time
import uuid
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import duckdb
import orjson

from gemmalog.notices import warn_once
from gemmalog.queries import _cache_check as check
from gemmalog.queries._sql import columns_literal, sql_file, sql_list

#: Bump when the layout of cache.json or of the parts changes.
FORMAT = 1
#: cache.json's ``content``: the entries carry the content checks of :mod:`._cache_check`
#: (a cache without them is built again; FORMAT is shared with the Parquet export's state).
CONTENT = 1
CACHE_NAME = ".gemmalog-cache"
MANIFEST = "cache.json"
GRACE_S = 600.0  # a file no manifest names is deleted only this long after (open readers)
_PREFIX_BYTES = 1 << 16
_WINDOW_BYTES = 1 << 12
#: How parts are written (measured in docs/performance.md, "The query cache").
_PARQUET = "FORMAT parquet, COMPRESSION zstd"
_MAX_PARTS = 32  # a shard with more parts than this has them merged into one
_SCAN = 1 << 20
_OFF = frozenset({"0", "off", "false", "no"})
_CREATE = re.compile(r"CREATE\s+VIEW\s+_events_source\s+AS", re.IGNORECASE)
_settings: dict[str, Any] = {}


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


def quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def source_select(patterns: list[str]) -> str:
    """The SELECT of ``_source.sql`` over ``patterns`` (globs, escaped where literal)."""
    text = string.Template(sql_file("_source")).substitute(
        shards=sql_list(tuple(patterns)), columns=columns_literal()
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
        and p["file"].startswith("parts/")
        and ".." not in Path(p["file"]).parts
        and type(p.get("rows")) is int
        and type(p.get("end")) is int
        and ("segments" not in p or _segments_ok(p["segments"]))
        for p in parts
    )


def _segments_ok(value: Any) -> bool:
    """``[min, max]`` of a part's segments, or ``[]`` for a part without rows."""
    return isinstance(value, list) and (
        value == [] or (len(value) == 2 and all(type(v) is int for v in value))
    )


def segment_range(parts: list[dict[str, Any]]) -> list[int] | None:
    """``[lowest, highest]`` segment in ``parts`` (``[]``: no rows); None when a part does
    not say (written before parts recorded it)."""
    known: list[int] = []
    for part in parts:
        seg = part.get("segments")
        if not isinstance(seg, list):
            return None
        known += seg
    return [min(known), max(known)] if known else []


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


class _DirCache:
    """The cache of one directory of shards: its manifest, parts and lock."""

    def __init__(self, shard_dir: str) -> None:
        self.shard_dir = shard_dir
        self.dir = cache_dir(shard_dir)
        mode = os.stat(shard_dir).st_mode
        self.dir_mode = mode & 0o777
        self.file_mode = mode & 0o666
        self._con: duckdb.DuckDBPyConnection | None = None
        #: Shard -> why its cache did not hold what the shard holds (found by the last check).
        self.problems: dict[str, str] = {}

    # -- manifest ---------------------------------------------------------------------------

    def load(self) -> dict[str, Any]:
        """The manifest, or an empty one when missing, damaged, or of another format."""
        fresh: dict[str, Any] = {
            "format": FORMAT,
            "content": CONTENT,
            "schema": _schema(),
            "shards": {},
        }
        try:
            data = orjson.loads((self.dir / MANIFEST).read_bytes())
        except (OSError, orjson.JSONDecodeError):
            return fresh
        if (
            not isinstance(data, dict)
            or data.get("format") != FORMAT
            or data.get("content") != CONTENT
            or data.get("schema") != _schema()
            or not isinstance(data.get("shards"), dict)
        ):
            return fresh
        data["shards"] = {
            k: v for k, v in data["shards"].items() if _entry_ok(v) and check.entry_ok(v)
        }
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

    def usable(
        self, shards: list[str], *, full: bool = False, quiet: bool = False
    ) -> dict[str, tuple[dict[str, Any], list[str]]]:
        """Entries that still match their shard, without writing (a read-only directory).

        A shard whose bytes or parts fail :func:`._cache_check.problem` is left out (it is
        read from the JSONL) with a notice, unless ``quiet``; ``full`` checks every byte.
        """
        manifest = self.load()
        out: dict[str, tuple[dict[str, Any], list[str]]] = {}
        for shard in shards:
            entry = manifest["shards"].get(os.path.basename(shard))
            if entry is None:
                continue
            parts = [str(self.dir / p["file"]) for p in entry["parts"]]
            try:
                with open(shard, "rb") as fh:
                    st = os.fstat(fh.fileno())
                    if not _matches(entry, fh.fileno(), st):
                        continue
                    why = check.problem(entry, fh.fileno(), st, parts, full)
            except OSError:
                continue
            if why is not None:
                self.problems[shard] = why
                if not quiet:
                    warn_once(f"query cache of {shard}: {why}; reading the JSONL instead")
                continue
            out[shard] = (entry, parts)
        return out

    # -- writing -----------------------------------------------------------------------------

    def sync(
        self, shards: list[str], *, full: bool = False
    ) -> dict[str, tuple[dict[str, Any], list[str]]]:
        """Parse what is new in ``shards`` up to their last complete line; return the entries.

        A shard whose cache no longer holds what it holds (:func:`._cache_check.problem`;
        every byte with ``full``) is parsed again from its first byte, with one notice.
        """
        done: dict[str, tuple[dict[str, Any], list[str]]] = {}
        with self.locked():
            manifest = self.load()
            entries: dict[str, Any] = manifest["shards"]
            before = orjson.dumps(manifest)
            for shard in shards:
                name = os.path.basename(shard)
                try:
                    fh = open(shard, "rb")  # noqa: SIM115 - closed below
                except FileNotFoundError:
                    continue  # deleted since it was listed
                with fh:
                    entry = self._catch_up(shard, fh.fileno(), entries.get(name), full)
                if entry is None:
                    entries.pop(name, None)
                else:
                    entries[name] = entry
                    done[shard] = (entry, [str(self.dir / p["file"]) for p in entry["parts"]])
            for name in [n for n in entries if not os.path.exists(os.path.join(self.shard_dir, n))]:
                del entries[name]  # the shard is gone
            if orjson.dumps(manifest) != before:
                self.save(manifest)
            self.collect(manifest)
        if self._con is not None:
            self._con.close()
            self._con = None
        return done

    def _scratch(self) -> duckdb.DuckDBPyConnection:
        if self._con is None:
            self._con = duckdb.connect(":memory:")
            # A COPY from read_json that keeps the lines' order runs on one thread and spends
            # a third more CPU than DuckDB's parse into a table; without that it is parallel
            # and costs about what the parse alone costs (docs/performance.md, "The query
            # cache"). The parts' row groups are then in the order the threads finish them:
            # the views promise rows, not their order (ORDER BY says it).
            self._con.execute("SET preserve_insertion_order = false")
        return self._con

    def _write_part(self, name: str, select: str, start: int, end: int) -> dict[str, Any]:
        """COPY ``select`` to a new part of shard ``name``; the part appears only when complete."""
        folder = self.dir / "parts" / name
        folder.mkdir(parents=True, exist_ok=True, mode=self.dir_mode)
        tag = uuid.uuid4().hex[:12]
        tmp = folder / f".tmp-{tag}.parquet"
        final = folder / f"{start:015d}-{end:015d}-{tag}.parquet"
        try:
            con = self._scratch()
            rows = con.execute(f"COPY ({select}) TO {quote(str(tmp))} ({_PARQUET})").fetchall()
            # Which segments the part holds: the views skip their resumed-run dedupe (a
            # window over every row) when all the data a query reads is of one segment.
            low, high = con.execute(
                f"SELECT min(segment), max(segment) FROM read_parquet({quote(str(tmp))})"
            ).fetchone() or (None, None)
            os.chmod(tmp, self.file_mode)
            written = check.part_record(str(tmp))
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
            "segments": [] if low is None or high is None else [int(low), int(high)],
            **written,
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

    def _catch_up(
        self, shard: str, fd: int, entry: dict[str, Any] | None, full: bool = False
    ) -> dict[str, Any] | None:
        st = os.fstat(fd)
        if entry is not None and not _matches(entry, fd, st):
            entry = None  # truncated, replaced or rotated: parse it again
        if entry is not None:
            paths = [str(self.dir / p["file"]) for p in entry["parts"]]
            why = check.problem(entry, fd, st, paths, full)
            if why is not None:  # edited in place, or a part damaged or lost
                self.problems[shard] = why
                warn_once(f"query cache of {shard}: {why}; rebuilt from the JSONL")
                entry = None
        watermark = entry["watermark"] if entry is not None else 0
        end = _last_newline(fd, watermark, st.st_size)
        if end == watermark:
            if entry is not None and entry["seen"] != check.seen(st):
                entry = {**entry, "seen": check.seen(st)}  # checked as it is now
            return entry
        part = self._parse(shard, fd, watermark, end)
        parts = [*(entry["parts"] if entry is not None else []), part]
        if len(parts) > _MAX_PARTS:
            files = sql_list(tuple(glob.escape(str(self.dir / p["file"])) for p in parts))
            merged = self._write_part(
                os.path.basename(shard), f"SELECT * FROM read_parquet({files})", 0, end
            )
            parts = [merged]
        return {
            "dev": st.st_dev,
            "ino": st.st_ino,
            "watermark": end,
            **_fingerprint(fd, end),
            "blocks": check.blocks(
                fd, end, entry["blocks"] if entry is not None else None, watermark
            ),
            "seen": check.seen(st),
            "parts": parts,
        }

    def collect(self, manifest: dict[str, Any]) -> None:
        """Delete parts and temporary files no manifest names, once no reader can still use them."""
        named = {p["file"] for e in manifest["shards"].values() for p in e["parts"]}
        old = time.time() - GRACE_S
        for path in [*self.dir.glob("parts/*/*"), *self.dir.glob(".tmp-*")]:
            rel = str(path.relative_to(self.dir))
            with contextlib.suppress(OSError):
                if rel not in named and path.lstat().st_mtime < old:
                    path.unlink()
        for folder in self.dir.glob("parts/*"):
            with contextlib.suppress(OSError):
                folder.rmdir()  # only when empty
