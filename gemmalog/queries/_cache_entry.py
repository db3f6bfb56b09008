"""A shard's entry in a cache manifest: whether the shard still holds the bytes that were
parsed, and up to where its complete lines go.

Per shard the manifest keeps the byte-offset watermark (the end of the last complete line
parsed), the shard's device and inode, and SHA-256 digests of its first bytes and of the
bytes just before the watermark: a shard that was truncated, replaced or rotated no longer
matches. The query cache (:mod:`._cache_store`) and the Parquet export
(:mod:`._cache_export`) both keep such entries.
"""

from __future__ import annotations

import hashlib
import os
from functools import cache
from pathlib import Path
from typing import Any

import duckdb

from gemmalog.queries._cache_config import FORMAT
from gemmalog.queries._sql import source_select

_PREFIX_BYTES = 1 << 16
_WINDOW_BYTES = 1 << 12
#: Bytes read at a time looking back for a newline (and copying a range, 16 times this).
SCAN = 1 << 20


@cache
def schema() -> str:
    """What a part holds depends on: the source SELECT, the declared types, DuckDB's reader."""
    text = f"{FORMAT}\n{source_select(['x'])}\n{duckdb.__version__}"
    return hashlib.sha256(text.encode()).hexdigest()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fingerprint(fd: int, end: int) -> dict[str, Any]:
    """Digests that tell whether the first ``end`` bytes are still the ones that were parsed."""
    head = min(end, _PREFIX_BYTES)
    start = max(0, end - _WINDOW_BYTES)
    return {
        "prefix_len": head,
        "prefix": _sha(os.pread(fd, head, 0)),
        "window": _sha(os.pread(fd, end - start, start)),
    }


def well_formed(entry: Any) -> bool:
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


def matches(entry: dict[str, Any], fd: int, st: os.stat_result) -> bool:
    """Same file (device, inode), not shorter, and the same bytes at its start and watermark."""
    if (st.st_dev, st.st_ino) != (entry["dev"], entry["ino"]):
        return False
    if st.st_size < entry["watermark"]:
        return False
    now = fingerprint(fd, entry["watermark"])
    return all(now[k] == entry[k] for k in ("prefix_len", "prefix", "window"))


def last_newline(fd: int, start: int, end: int) -> int:
    """The offset just after the last newline in ``[start, end)``; ``start`` when there is none."""
    pos = end
    while pos > start:
        low = max(start, pos - SCAN)
        found = os.pread(fd, pos - low, low).rfind(b"\n")
        if found >= 0:
            return low + found + 1
        pos = low
    return start
