"""Whether a shard's cache still holds what the shard holds, and whether its parts are whole.

What the cache keeps per shard (``cache.json``, beside the watermark and the head/tail digests
of :func:`gemmalog.queries._cache_store._fingerprint`):

- ``blocks``: a digest of every :data:`BLOCK` bytes of the shard up to the watermark (a fixed
  grid from byte 0, the last block shorter), the bytes the parts were parsed from;
- ``seen``: the shard's size, ctime and mtime when the cache last checked it;
- per part, its file's size, a digest of its last :data:`TAIL` bytes (the Parquet footer)
  and of the whole file.

At every connect (:func:`problem`): the first and the last block and :data:`SAMPLES` blocks
drawn at random, every part's size and footer; and every block when the shard has the size
the cache last saw but another ctime or mtime (it was written in place: a shard only ever
grows). ``gemmalog cache verify`` (``full=True``) checks every block and every part's bytes.
"""

from __future__ import annotations

import hashlib
import os
import random
from collections.abc import Iterator
from typing import Any

#: Bytes of shard a block digest covers.
BLOCK = 1 << 18
#: Random blocks checked at each connect, besides the first and the last.
SAMPLES = 2
#: Bytes at the end of a part (its Parquet footer) checked at each connect.
TAIL = 1 << 13
_DIGEST_CHARS = 32
_random = random.Random()


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:_DIGEST_CHARS]


def _read(fd: int, size: int, offset: int) -> bytes:
    data = os.pread(fd, size, offset)
    while len(data) < size:
        more = os.pread(fd, size - len(data), offset + len(data))
        if not more:
            break
        data += more
    return data


def blocks(fd: int, end: int, known: list[str] | None = None, known_end: int = 0) -> list[str]:
    """The block digests of bytes ``[0, end)``; with ``known`` (those of ``[0, known_end)``,
    already checked) only the last, partial, known block and the new ones are read."""
    keep = list(known[: known_end // BLOCK]) if known is not None else []
    for start in range(len(keep) * BLOCK, end, BLOCK):
        keep.append(_digest(_read(fd, min(BLOCK, end - start), start)))
    return keep


def seen(st: os.stat_result) -> list[int]:
    """What :func:`problem` compares to tell a shard written in place: size, ctime, mtime."""
    return [st.st_size, st.st_ctime_ns, st.st_mtime_ns]


def part_record(path: str) -> dict[str, Any]:
    """Size and digests of a part file, as written."""
    size, tail, whole = _file_digests(path)
    return {"bytes": size, "tail": tail, "sha": whole}


def _file_digests(path: str) -> tuple[int, str, str]:
    """Size, digest of the last :data:`TAIL` bytes and digest of the whole file."""
    whole = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(BLOCK * 8):
            whole.update(chunk)
        size = fh.tell()
        tail = _digest(_read(fh.fileno(), min(TAIL, size), max(0, size - TAIL)))
    return size, tail, whole.hexdigest()[:_DIGEST_CHARS]


def entry_ok(entry: dict[str, Any]) -> bool:
    """Whether an entry has the content fields, each of the right type."""
    digests = entry.get("blocks")
    watermark = entry.get("watermark")
    if not isinstance(digests, list) or not all(isinstance(d, str) for d in digests):
        return False
    if type(watermark) is not int or len(digests) != -(-watermark // BLOCK):
        return False
    stamp = entry.get("seen")
    if not (isinstance(stamp, list) and len(stamp) == 3 and all(type(v) is int for v in stamp)):
        return False
    return all(
        type(p.get("bytes")) is int
        and isinstance(p.get("tail"), str)
        and isinstance(p.get("sha"), str)
        for p in entry["parts"]
    )


def _chosen(count: int, full: bool) -> Iterator[int]:
    if full or count <= SAMPLES + 2:
        yield from range(count)
        return
    yield from sorted({0, count - 1, *_random.sample(range(1, count - 1), SAMPLES)})


def problem(
    entry: dict[str, Any], fd: int, st: os.stat_result, parts: list[str], full: bool = False
) -> str | None:
    """Why the cache of this shard no longer holds what the shard holds, or None.

    ``parts`` are the paths of the entry's parts, in order. A shard with the size the cache
    last saw but another ctime or mtime has every block checked, as with ``full``.
    """
    size, ctime, mtime = entry["seen"]
    written_in_place = st.st_size == size and (st.st_ctime_ns, st.st_mtime_ns) != (ctime, mtime)
    watermark = entry["watermark"]
    digests = entry["blocks"]
    for i in _chosen(len(digests), full or written_in_place):
        start = i * BLOCK
        if _digest(_read(fd, min(BLOCK, watermark - start), start)) != digests[i]:
            return (
                f"its bytes {start}-{min(start + BLOCK, watermark)} changed since they were cached"
            )
    for part, path in zip(entry["parts"], parts, strict=True):
        why = _part_problem(part, path, full)
        if why is not None:
            return f"part {os.path.basename(path)} {why}"
    return None


def _part_problem(part: dict[str, Any], path: str, full: bool) -> str | None:
    try:
        if full:
            size, tail, whole = _file_digests(path)
        else:
            with open(path, "rb") as fh:
                size = os.fstat(fh.fileno()).st_size
                tail = _digest(_read(fh.fileno(), min(TAIL, size), max(0, size - TAIL)))
            whole = part["sha"]
    except OSError as exc:
        return f"cannot be read ({exc.strerror or type(exc).__name__})"
    if size != part["bytes"]:
        return f"has {size} bytes, not the {part['bytes']} written"
    if (tail, whole) != (part["tail"], part["sha"]):
        return "is damaged (its bytes differ from those written)"
    return None
