"""The query cache on disk: per directory of shards, Parquet parts of byte ranges of complete
lines and a ``cache.json`` manifest, written under an exclusive lock, renamed into place.

Each shard's manifest entry (:mod:`._cache_entry`) tells whether the shard still holds what
was parsed: a shard that was truncated, replaced or rotated is parsed again from its first
byte. The block and part digests of :mod:`gemmalog.queries._cache_check` catch a shard edited
in place and a damaged part. See :mod:`gemmalog.queries._cache` for how connections read it.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import orjson

from gemmalog.notices import warn_once
from gemmalog.queries import _cache_check as check
from gemmalog.queries._cache_config import CONTENT, FORMAT, GRACE_S, MANIFEST, cache_dir
from gemmalog.queries._cache_entry import (
    SCAN,
    fingerprint,
    last_newline,
    matches,
    schema,
    well_formed,
)
from gemmalog.queries._sql import quote, source_select, sql_list

#: How parts are written (measured in docs/performance.md, "The query cache").
_PARQUET = "FORMAT parquet, COMPRESSION zstd"
_MAX_PARTS = 32  # a shard with more parts than this has them merged into one


def _copy_range(fd: int, start: int, end: int, dest: Path, mode: int) -> None:
    """Copy bytes ``[start, end)`` of ``fd`` to a new file ``dest``."""
    out = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    try:
        pos = start
        while pos < end:
            data = os.pread(fd, min(SCAN * 16, end - pos), pos)
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
            "schema": schema(),
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
            or data.get("schema") != schema()
            or not isinstance(data.get("shards"), dict)
        ):
            return fresh
        data["shards"] = {
            k: v for k, v in data["shards"].items() if well_formed(v) and check.entry_ok(v)
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
                    if not matches(entry, fh.fileno(), st):
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
        if entry is not None and not matches(entry, fd, st):
            entry = None  # truncated, replaced or rotated: parse it again
        if entry is not None:
            paths = [str(self.dir / p["file"]) for p in entry["parts"]]
            why = check.problem(entry, fd, st, paths, full)
            if why is not None:  # edited in place, or a part damaged or lost
                self.problems[shard] = why
                warn_once(f"query cache of {shard}: {why}; rebuilt from the JSONL")
                entry = None
        watermark = entry["watermark"] if entry is not None else 0
        end = last_newline(fd, watermark, st.st_size)
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
            **fingerprint(fd, end),
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
