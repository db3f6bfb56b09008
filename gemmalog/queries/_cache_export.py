"""Incremental ``to-parquet``: each export appends only the events written since the last one.

``OUT/run=<id>/kind=<kind>/<shard tag>-<start>-<end>-<i>.parquet`` holds the complete lines
of bytes ``[start, end)`` of one shard, and ``OUT/_gemmalog_export.json`` records, per
shard, what was exported (the same watermark, device/inode and digests as the query cache).
A shard that no longer matches (truncated, replaced, rotated) has its files replaced. The
new lines come from the query cache's parts when they line up, else from the JSONL.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import hashlib
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import duckdb
import orjson

from gemmalog.queries._cache_config import FORMAT, enabled
from gemmalog.queries._cache_entry import fingerprint, last_newline, matches, schema, well_formed
from gemmalog.queries._cache_store import _DirCache
from gemmalog.queries._paths import Source
from gemmalog.queries._sql import quote, source_select, sql_file, sql_list
from gemmalog.queries._summary import named_queries

STATE = "_gemmalog_export.json"
_LOCK = ".gemmalog-export.lock"


def is_export(folder: Path) -> bool:
    """Whether ``folder`` holds an export this module can continue."""
    return (folder / STATE).is_file()


def forget(folder: Path) -> None:
    """Drop the record of an earlier export (its files are being removed)."""
    with contextlib.suppress(FileNotFoundError):
        (folder / STATE).unlink()


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    fd = os.open(folder / _LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _tag(shard: str) -> str:
    return hashlib.sha256(os.path.abspath(shard).encode("utf-8", "surrogateescape")).hexdigest()[
        :16
    ]


def _load(folder: Path) -> dict[str, Any]:
    fresh: dict[str, Any] = {"format": FORMAT, "schema": schema(), "shards": {}}
    try:
        data = orjson.loads((folder / STATE).read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return fresh
    if not isinstance(data, dict) or data.get("schema") != schema():
        return fresh
    shards = data.get("shards")
    if not isinstance(shards, dict):
        return fresh
    data["shards"] = {
        k: v for k, v in shards.items() if isinstance(v, dict) and well_formed({**v, "parts": []})
    }
    return data


def _save(folder: Path, state: dict[str, Any]) -> None:
    tmp = folder / f".{STATE}.{uuid.uuid4().hex[:12]}"
    tmp.write_bytes(orjson.dumps(state, option=orjson.OPT_INDENT_2))
    os.replace(tmp, folder / STATE)


def _remove_files(folder: Path, tag: str) -> None:
    for path in folder.glob(f"run=*/kind=*/{glob.escape(tag)}-*.parquet"):
        with contextlib.suppress(OSError):
            path.unlink()


def _events_select(con: duckdb.DuckDBPyConnection, source_sql: str) -> str:
    """The export's SELECT over ``source_sql`` (rows of ``_events_source``), via the views."""
    con.execute(f"CREATE OR REPLACE TEMP VIEW _events_source AS {source_sql}")
    con.execute(sql_file("events").replace("CREATE VIEW", "CREATE OR REPLACE TEMP VIEW", 1))
    return named_queries("export")["parquet"]


def export(source: Source, out: Path, progress: Callable[[float], None] | None = None) -> int:
    """Append the events of ``source`` written since the last export to ``out``; return how
    many events were written now."""
    files = source.files()
    total = sum(os.path.getsize(f) for f in files) or 1
    done = 0
    written = 0
    con = duckdb.connect(":memory:")
    try:
        with _locked(out):
            state = _load(out)
            for shard in files:
                with open(shard, "rb") as fh:
                    written += _export_shard(con, shard, fh.fileno(), state, out)
                    done += os.fstat(fh.fileno()).st_size
                _save(out, state)
                if progress is not None:
                    progress(done / total)
    finally:
        con.close()
    return written


def _cache_parts(shard: str, start: int, end: int) -> list[str] | None:
    """The query cache's parts covering exactly ``[start, end)`` of ``shard``, when they do."""
    if not enabled():
        return None
    with contextlib.suppress(OSError, duckdb.Error):
        store = _DirCache(os.path.dirname(shard))
        entry, paths = store.sync([shard]).get(shard, ({}, []))
        chosen = [
            path
            for part, path in zip(entry.get("parts", []), paths, strict=True)
            if part["start"] >= start and part["end"] <= end
        ]
        starts = [p["start"] for p in entry.get("parts", []) if p["start"] >= start]
        if chosen and starts and min(starts) == start and entry["watermark"] == end:
            return chosen
    return None


def _export_shard(
    con: duckdb.DuckDBPyConnection, shard: str, fd: int, state: dict[str, Any], out: Path
) -> int:
    key = os.path.abspath(shard)
    tag = _tag(shard)
    st = os.fstat(fd)
    entry = state["shards"].get(key)
    if entry is not None and not matches({**entry, "parts": []}, fd, st):
        _remove_files(out, tag)  # truncated, replaced or rotated: export it again
        entry = None
    start = entry["watermark"] if entry is not None else 0
    end = last_newline(fd, start, st.st_size)
    if end == start:
        return 0
    parts = _cache_parts(shard, start, end)
    tmp: Path | None = None
    if parts is not None:
        rows = f"SELECT * FROM read_parquet({sql_list(tuple(glob.escape(p) for p in parts))})"
    else:  # the cache is off or does not line up: parse the new bytes from the JSONL
        tmp = out / f".tmp-{uuid.uuid4().hex[:12]}.jsonl"
        with open(tmp, "wb") as dest:
            pos = start
            while pos < end:
                chunk = os.pread(fd, min(1 << 24, end - pos), pos)
                if not chunk:
                    raise OSError(f"{shard}: ended before byte {end}")
                dest.write(chunk)
                pos += len(chunk)
        rows = f"SELECT * EXCLUDE (filename) FROM ({source_select([glob.escape(str(tmp))])})"
    try:
        select = _events_select(con, f"SELECT *, {quote(shard)} AS filename FROM ({rows})")
        options = (
            "FORMAT parquet, PARTITION_BY (run, kind), COMPRESSION zstd, OVERWRITE_OR_IGNORE true, "
            f"FILENAME_PATTERN '{tag}-{start:015d}-{end:015d}-{{i}}'"
        )
        result = con.execute(f"COPY ({select}) TO {quote(str(out))} ({options})").fetchall()
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                tmp.unlink()
    state["shards"][key] = {
        "dev": st.st_dev,
        "ino": st.st_ino,
        "watermark": end,
        **fingerprint(fd, end),
    }
    return int(result[0][0]) if result and result[0] else 0
