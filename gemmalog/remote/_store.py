"""How bytes land at a destination: appended after what is there, or a whole file replaced at
once so that a reader (or a second pusher) never sees half of it.

Three kinds of store: the local file system (appends in place at the known offset, replaces by
renaming a finished temporary file), S3 (a replace is one PUT or a completed multipart upload,
both atomic; an append composes the object already there, copied on the server, with the new
bytes, in one multipart upload), and any other fsspec store (every change a whole-file write,
which object stores make atomic).
"""

from __future__ import annotations

import contextlib
import errno
import os
import uuid
from collections.abc import Iterator
from typing import Any, BinaryIO

#: Bytes read and sent at a time.
CHUNK = 16 << 20
#: Bytes a remote file being copied is read ahead by: one GET each (a store's cost is much
#: per request; docs/performance.md).
READ_AHEAD = 128 << 20
#: S3's smallest part but the last: below this an object cannot be the first part of an append.
S3_MIN_PART = 5 << 20
#: S3's largest copied part.
S3_MAX_PART = 5 << 30
#: Marks the temporary files of a push (never pushed themselves, never read as run files).
TEMP_MARK = ".gemmalog-push-"


def ignored(rel: str) -> bool:
    """Whether a file (its path in its run or root, ``/``-separated) is one a push neither
    sends nor reads: hidden files (temporary files, the query cache, writer locks) and a
    push's own temporary files."""
    parts = rel.split("/")
    return any(part.startswith(".") for part in parts) or TEMP_MARK in parts[-1]


def chunks(src: BinaryIO, start: int, end: int, size: int = CHUNK) -> Iterator[bytes]:
    """The bytes ``[start, end)`` of ``src``, ``size`` at a time; short reads are an error
    (the source shrank under us: the push of that file is redone next time)."""
    src.seek(start)
    left = end - start
    while left > 0:
        data = src.read(min(size, left))
        if not data:
            raise OSError(f"the source ended {left} bytes early (truncated while pushing?)")
        left -= len(data)
        yield data


class Store:
    """Any fsspec file system: every change rewrites the whole file."""

    #: Whether :meth:`append` sends only the new bytes.
    appends = False

    def __init__(self, fs: Any) -> None:
        self.fs = fs

    def append(self, path: str, have: int, src: BinaryIO, end: int) -> int:
        """Make ``path`` hold ``src[0:end)`` when it holds ``src[0:have)`` now; the bytes sent."""
        return self.replace(path, src, end)

    def replace(self, path: str, src: BinaryIO, end: int) -> int:
        """Make ``path`` hold ``src[0:end)``, all at once; the bytes sent."""
        self.fs.pipe_file(path, b"".join(chunks(src, 0, end)))
        return end

    def prepare(self, directory: str) -> None:
        """Make ``directory`` exist where the store has directories."""


def _fileno(src: BinaryIO) -> int | None:
    """The OS file descriptor behind ``src`` (a local file), else None."""
    try:
        return src.fileno()
    except (AttributeError, OSError, ValueError):
        return None


def _copy(src: BinaryIO, fd: int, start: int, end: int) -> None:
    """Write ``src[start:end)`` to ``fd`` at the same offsets (the kernel copies between two
    local files; anything else goes through memory, CHUNK at a time)."""
    source = _fileno(src)
    offset = start
    if source is not None and hasattr(os, "copy_file_range"):
        try:
            while offset < end:
                done = os.copy_file_range(source, fd, end - offset, offset, offset)
                if done == 0:
                    raise OSError(f"the source ended {end - offset} bytes early")
                offset += done
            return
        except OSError as exc:
            if offset != start or exc.errno not in _NO_KERNEL_COPY:
                raise
    for data in chunks(src, start, end):
        view = memoryview(data)
        while view:
            written = os.pwrite(fd, view, offset)
            offset += written
            view = view[written:]


#: copy_file_range cannot copy between these two files: copy through memory instead.
_NO_KERNEL_COPY = frozenset(
    {errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EBADF}
)


class LocalStore(Store):
    """The local file system: appends write at the offset checked, replaces are renames."""

    appends = True

    def prepare(self, directory: str) -> None:
        os.makedirs(directory, exist_ok=True)

    def append(self, path: str, have: int, src: BinaryIO, end: int) -> int:
        # Written at the offset checked, never O_APPEND: a second pusher of the same run
        # writes the same bytes at the same offsets, and a push killed halfway leaves a prefix.
        fd = os.open(path, os.O_WRONLY)
        try:
            _copy(src, fd, have, end)
        finally:
            os.close(fd)
        return end - have

    def replace(self, path: str, src: BinaryIO, end: int) -> int:
        directory, name = os.path.split(path)
        os.makedirs(directory, exist_ok=True)
        temp = os.path.join(directory, f".{name}{TEMP_MARK}{uuid.uuid4().hex[:12]}")
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                _copy(src, fd, 0, end)
            finally:
                os.close(fd)
            os.replace(temp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise
        return end


class S3Store(Store):
    """S3 and compatible stores (through s3fs)."""

    appends = True

    def _split(self, path: str) -> tuple[str, str]:
        bucket, key, _ = self.fs.split_path(path)
        return bucket, key

    def replace(self, path: str, src: BinaryIO, end: int) -> int:
        if end <= CHUNK:
            self.fs.pipe_file(path, b"".join(chunks(src, 0, end)))
            self.fs.invalidate_cache(path)
            return end
        self._multipart(path, [], src, 0, end)
        return end

    def append(self, path: str, have: int, src: BinaryIO, end: int) -> int:
        if have < S3_MIN_PART:  # too small to be a part: S3 cannot append to it
            return self.replace(path, src, end)
        pieces: list[tuple[int, int]] = []
        start = 0
        while start < have:
            stop = min(have, start + (4 << 30))
            if have - stop < S3_MIN_PART:
                stop = have
            pieces.append((start, stop))
            start = stop
        self._multipart(path, pieces, src, have, end)
        return end - have

    def _multipart(
        self, path: str, copied: list[tuple[int, int]], src: BinaryIO, start: int, end: int
    ) -> None:
        """One upload: the byte ranges ``copied`` of the object as it is (copied on the
        server), then ``src[start:end)``. Aborted on any failure: the object is unchanged."""
        bucket, key = self._split(path)
        call = self.fs.call_s3
        upload = call("create_multipart_upload", Bucket=bucket, Key=key)["UploadId"]
        parts: list[dict[str, Any]] = []
        try:
            for first, stop in copied:
                answer = call(
                    "upload_part_copy",
                    Bucket=bucket,
                    Key=key,
                    UploadId=upload,
                    PartNumber=len(parts) + 1,
                    CopySource={"Bucket": bucket, "Key": key},
                    CopySourceRange=f"bytes={first}-{stop - 1}",
                )
                parts.append(
                    {"PartNumber": len(parts) + 1, "ETag": answer["CopyPartResult"]["ETag"]}
                )
            for data in chunks(src, start, end):
                answer = call(
                    "upload_part",
                    Bucket=bucket,
                    Key=key,
                    UploadId=upload,
                    PartNumber=len(parts) + 1,
                    Body=data,
                )
                parts.append({"PartNumber": len(parts) + 1, "ETag": answer["ETag"]})
            call(
                "complete_multipart_upload",
                Bucket=bucket,
                Key=key,
                UploadId=upload,
                MultipartUpload={"Parts": parts},
            )
        except BaseException:
            # if even the abort fails, the store's lifecycle rule clears uploads left over
            with contextlib.suppress(Exception):
                call("abort_multipart_upload", Bucket=bucket, Key=key, UploadId=upload)
            raise
        finally:
            self.fs.invalidate_cache(path)


def is_local(fs: Any) -> bool:
    """Whether ``fs`` is the local file system."""
    protocols = fs.protocol if isinstance(fs.protocol, tuple | list) else (fs.protocol,)
    return "file" in protocols or "local" in protocols


def store_for(fs: Any) -> Store:
    """The store that writes to ``fs`` best."""
    protocols = fs.protocol if isinstance(fs.protocol, tuple | list) else (fs.protocol,)
    if is_local(fs):
        return LocalStore(fs)
    if "s3" in protocols and hasattr(fs, "call_s3"):
        return S3Store(fs)
    return Store(fs)


__all__ = [
    "CHUNK",
    "READ_AHEAD",
    "TEMP_MARK",
    "LocalStore",
    "S3Store",
    "Store",
    "chunks",
    "ignored",
    "is_local",
    "store_for",
]
