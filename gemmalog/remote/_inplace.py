"""Runs read in place: DuckDB reads a remote run's files through fsspec
(``duckdb.register_filesystem``), with no local copy and no query cache. What ``--no-cache``
asks of a URL (docs/remote.md, "Read where it lies", has both paths and their costs).

DuckDB's JSON reader asks for 2 MiB at a time, from several threads at once, each a ``seek``
then a ``read`` on one shared file object. An fsspec file (s3fs's among them) keeps one
position and one read-ahead buffer, so threads move each other's position (a ``read`` waits
for the network without the GIL) and discard each other's buffer (the same bytes are fetched
many times over). :class:`Reader` gives DuckDB files whose position is each thread's own,
over blocks of 64 MiB fetched once with one ranged GET each and shared by every reader of
the connection.
"""

from __future__ import annotations

import glob
import os
import threading
from collections import OrderedDict
from typing import Any

from fsspec import AbstractFileSystem

from gemmalog.queries import Source
from gemmalog.remote._fs import RemoteError, explained, filesystem, is_url, public
from gemmalog.remote._push import _runs, _Side

#: Bytes fetched with one request (a store's cost is much per request: docs/performance.md).
BLOCK = 64 << 20
#: Blocks kept for a connection: one per DuckDB thread (each reads its own shard, or its
#: own place in one) and two more, so that no thread's block goes before it is read.
KEPT = (os.cpu_count() or 2) + 2


class _Blocks:
    """The blocks of a file system's files fetched so far: each fetched once, even when
    several threads want it at the same time; the least recently read dropped first."""

    def __init__(self, fs: Any) -> None:
        self.fs = fs
        self._lock = threading.Lock()
        self._kept: OrderedDict[tuple[str, int], bytes] = OrderedDict()
        self._fetching: dict[tuple[str, int], threading.Event] = {}

    def read(self, path: str, start: int, end: int, size: int) -> bytes:
        out = []
        for index in range(start // BLOCK, (max(start, end - 1)) // BLOCK + 1):
            block = self._block(path, index, size)
            lo = max(start - index * BLOCK, 0)
            hi = min(end - index * BLOCK, len(block))
            out.append(block[lo:hi])
        return b"".join(out)

    def _block(self, path: str, index: int, size: int) -> bytes:
        key = (path, index)
        while True:
            with self._lock:
                if key in self._kept:
                    self._kept.move_to_end(key)
                    return self._kept[key]
                waiting = self._fetching.get(key)
                if waiting is None:
                    done = self._fetching[key] = threading.Event()
                    break
            waiting.wait()  # another thread fetches it; then it is kept (or failed: try)
        try:
            first = index * BLOCK
            data = bytes(self.fs.cat_file(path, start=first, end=min(first + BLOCK, size)))
            with self._lock:
                self._kept[key] = data
                while len(self._kept) > KEPT:
                    self._kept.popitem(last=False)
            return data
        finally:
            with self._lock:
                del self._fetching[key]
            done.set()


class _File:
    """A read-only file whose position is each thread's own (DuckDB's ``seek`` then
    ``read``, from several threads)."""

    def __init__(self, blocks: _Blocks, path: str, size: int) -> None:
        self.blocks = blocks
        self.path = path
        self.size = size
        self._at = threading.local()

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self.tell(), os.SEEK_END: self.size}[whence]
        self._at.pos = base + offset
        return int(self._at.pos)

    def tell(self) -> int:
        return int(getattr(self._at, "pos", 0))

    def read(self, length: int = -1) -> bytes:
        start = self.tell()
        end = self.size if length is None or length < 0 else min(self.size, start + length)
        data = self.blocks.read(self.path, start, end, self.size) if end > start else b""
        self._at.pos = start + len(data)
        return data

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def close(self) -> None:
        pass


class Reader(AbstractFileSystem):  # type: ignore[misc]  # fsspec is untyped
    """``fs`` as DuckDB should read it: the same files, listings and protocol, and files
    read through shared blocks with a position per thread (see the module's docstring)."""

    cachable = False

    def __init__(self, fs: Any) -> None:
        super().__init__()
        self.fs = fs
        self.protocol = fs.protocol
        self._blocks = _Blocks(fs)

    def unstrip_protocol(self, name: str) -> str:
        return str(self.fs.unstrip_protocol(name))

    def glob(self, path: str, **kwargs: Any) -> Any:
        return self.fs.glob(path, **kwargs)

    def ls(self, path: str, detail: bool = True, **kwargs: Any) -> Any:
        return self.fs.ls(path, detail=detail, **kwargs)

    def info(self, path: str, **kwargs: Any) -> Any:
        return self.fs.info(path, **kwargs)

    def exists(self, path: str, **kwargs: Any) -> bool:
        return bool(self.fs.exists(path, **kwargs))

    def isfile(self, path: str) -> bool:
        return bool(self.fs.isfile(path))

    def isdir(self, path: str) -> bool:
        return bool(self.fs.isdir(path))

    def size(self, path: str) -> int:
        return int(self.fs.size(path))

    def modified(self, path: str) -> Any:
        return self.fs.modified(path)

    def open(self, path: str, mode: str = "rb", **kwargs: Any) -> _File:  # type: ignore[override]
        if "r" not in mode or "+" in mode:
            raise PermissionError(f"{public(path)}: read in place, never written")
        return _File(self._blocks, self.fs._strip_protocol(path), self.size(path))


def remote_source(run: str, root: str | None = None) -> Source:
    """The run (or root of runs) ``run`` as a :class:`gemmalog.queries.Source` that
    ``gemmalog.connect`` reads in place, through DuckDB's fsspec file system (no copy, no
    query cache); ``run`` may be a run id under the URL ``root``. Raises
    :class:`RemoteError` (one sentence, no secret) when the location cannot be read."""
    if root is not None and is_url(root) and not is_url(run):
        if "/" in run or run in ("", ".", ".."):
            raise RemoteError(f"{run!r}: give a run id under the remote root {public(root)}")
        run = root.rstrip("/") + "/" + run
    fs, path = filesystem(run)
    single = _runs(_Side(run, fs, path)) == [path]
    with explained(run, "listing the runs"):
        url = str(fs.unstrip_protocol(path)).rstrip("/")
    literal = glob.escape(url)
    below = literal if single else f"{literal}/*"
    return Source(
        public(run),
        (f"{below}/events.*.jsonl",),
        (f"{below}/run.json",),
        url,
        run=single,
        fs=Reader(fs),
    )


__all__ = ["Reader", "remote_source"]
