"""TensorBoard event files: tensorboard's record format and ``Event`` protos, checksummed in C.

A record is what ``tensorboard.summary.writer.record_writer.RecordWriter`` writes: the
payload's length (uint64, little-endian), its masked CRC32C, the payload (a serialized
``tensorboard.Event``), the payload's masked CRC32C. tensorboard computes CRC32C in pure
Python (~70 µs for a 600-byte record); here the ``crc32c`` package's C code does it (~0.1 µs),
and without that package tensorboard's own Python function is used after one warning.

Scalars are the bulk of a training log, and building a ``Summary.Value`` proto per scalar
costs more than everything else a scalar needs. :class:`ScalarEncoder` writes the bytes
``Event(wall_time=..., step=..., summary=Summary(value=[Value(tag=..., simple_value=...)]))
.SerializeToString()`` gives (the tests compare them), with each tag's bytes encoded once.
Histograms (one per reward function and step) and text samples are encoded the same way
(:func:`histogram_bytes`, :func:`histogram_value`, :func:`text_value`).

The file is written by the listener thread itself, with no thread of its own: records wait in
memory until ``max_pending`` of them do, or until :meth:`EventFile.flush`.
"""

from __future__ import annotations

import bisect
import errno
import itertools
import math
import os
import socket
import struct
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gemmalog.notices import warn_once


def _python_crc32c() -> Callable[[bytes], int]:
    from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import crc32c

    warn_once(
        "the crc32c package is not installed: TensorBoard checksums are computed in pure "
        "Python (about 70 µs a record, on the listener thread); pip install crc32c"
    )
    return crc32c  # type: ignore[no-any-return]


def load_crc32c() -> Callable[[bytes], int]:
    """The C ``crc32c`` function, else tensorboard's pure-Python one (saying so once)."""
    try:
        from crc32c import crc32c
    except ImportError:
        return _python_crc32c()
    return crc32c  # type: ignore[no-any-return]


_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
FLOAT32 = struct.Struct("<f")
_F64 = struct.Struct("<d")
_WALL = struct.Struct("<Bd")  # Event.wall_time: key byte and double
_INT64_MIN = -(1 << 63)
_INT64_MAX = (1 << 63) - 1


def masked(crc: int) -> int:
    """TFRecord's checksum masking of a CRC32C (rotate right by 15, add a constant)."""
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


class Framer:
    """Frame TFRecords: length, masked CRC of the length, data, masked CRC of the data. The
    record head (length and its checksum) is remembered per length: a training log's records
    come in few lengths (one per metrics key set)."""

    __slots__ = ("_crc32c", "_heads")

    MAX_HEADS = 4096

    def __init__(self, crc32c: Callable[[bytes], int]) -> None:
        self._crc32c = crc32c
        self._heads: dict[int, bytes] = {}

    def __call__(self, data: bytes) -> bytes:
        size = len(data)
        head = self._heads.get(size)
        if head is None:
            header = _U64.pack(size)
            if len(self._heads) >= self.MAX_HEADS:
                self._heads.clear()
            head = self._heads[size] = header + _U32.pack(masked(self._crc32c(header)))
        crc = self._crc32c(data)
        return b"".join(
            (head, data, _U32.pack((((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF))
        )


#: varint of 0..127: one byte, the value itself.
_SMALL = tuple(bytes((i,)) for i in range(0x80))


def varint(value: int) -> bytes:
    """Protobuf base-128 varint of a non-negative integer below 2**64."""
    if value < 0x80:
        return _SMALL[value]
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def valid_step(step: int) -> bool:
    """Whether ``step`` fits ``Event.step`` (int64)."""
    return _INT64_MIN <= step <= _INT64_MAX


def float32(value: float) -> bytes:
    """``value`` as protobuf's ``float`` field stores it (a too-large double becomes ±inf)."""
    try:
        return FLOAT32.pack(value)
    except OverflowError:
        return FLOAT32.pack(math.copysign(math.inf, value))


class ScalarEncoder:
    """Serialized ``Event`` protos of scalar summaries, byte for byte as protobuf writes them."""

    __slots__ = ("_prefixes",)

    #: Distinct tags remembered; past this the cache starts over (tags are few in practice).
    MAX_TAGS = 10_000

    def __init__(self) -> None:
        self._prefixes: dict[str, bytes] = {}

    def prefix(self, tag: str) -> bytes:
        """A ``Summary.value`` entry up to its float: field 1, length, tag, field 2's key."""
        cached = self._prefixes.get(tag)
        if cached is not None:
            return cached
        # A lone surrogate cannot be a proto string; written escaped instead of failing.
        body = tag_field(tag) + b"\x15"
        cached = b"\x0a" + varint(len(body) + 4) + body
        if len(self._prefixes) >= self.MAX_TAGS:
            self._prefixes.clear()
        self._prefixes[tag] = cached
        return cached

    def event(self, wall_time: float, step: int, values: list[bytes]) -> bytes:
        """The serialized Event for the ``Summary.value`` entries in ``values``.

        ``step`` must satisfy :func:`valid_step`. proto3 leaves a zero ``wall_time`` or
        ``step`` out; ``summary`` is in a oneof, so it is written even when empty.
        """
        summary = b"".join(values)
        head = b""
        if wall_time != 0.0 or math.copysign(1.0, wall_time) < 0:  # -0.0 is not the default
            head = b"\x09" + _F64.pack(wall_time)
        if step:
            head += b"\x10" + varint(step & 0xFFFFFFFFFFFFFFFF)
        return head + b"\x2a" + varint(len(summary)) + summary

    def value(self, tag: str, number: float) -> bytes:
        """One ``Summary.value`` entry: ``Value(tag=tag, simple_value=number)``."""
        return self.prefix(tag) + float32(number)


_ENCODER = ScalarEncoder()  # for its event(), which needs no tags


class ScalarPlan:
    """A ``Summary`` of fixed tags packed in one ``struct`` call: tag bytes and floats interleaved.

    For the dict of metrics a training loop logs every step with the same keys.
    """

    __slots__ = ("_head", "_struct", "_template")

    def __init__(self, prefixes: list[bytes]) -> None:
        self._struct = struct.Struct("<" + "".join(f"{len(p)}sf" for p in prefixes))
        self._template: list[Any] = [x for p in prefixes for x in (p, 0.0)]
        # Event.summary's key and length: the packed entries always have the same size
        self._head = b"\x2a" + varint(self._struct.size)

    def pack(self, values: Any) -> bytes | None:
        """The entries for ``values`` (one per tag, in order); None when one is not a number."""
        args = self._template.copy()
        try:
            args[1::2] = values
            return self._struct.pack(*args)
        except (struct.error, OverflowError, TypeError, ValueError):
            return None  # text, None, a list, a too-large value: the careful path decides

    def event(self, wall_time: float, step: int, values: Any) -> bytes | None:
        """``ScalarEncoder().event(wall_time, step, [self.pack(values)])`` (None when
        :meth:`pack` gives None), in one join for the usual non-zero time and positive step."""
        summary = self.pack(values)
        if summary is None:
            return None
        if wall_time and step > 0:  # both written (0.0 and -0.0 are falsy: the general path)
            return b"".join(
                (_WALL.pack(0x09, wall_time), b"\x10", varint(step), self._head, summary)
            )
        return _ENCODER.event(wall_time, step, [summary])


_BUCKETS = 30
# HistogramProto's double fields 1-5 (min, max, num, sum, sum_squares): key bytes, wire type 1.
_HISTO_KEYS = (b"\x09", b"\x11", b"\x19", b"\x21", b"\x29")
_HISTO_HEAD = struct.Struct("<BdBdBdBdBd")  # count >= 1: num is never left out
_HISTO_TAIL = struct.Struct("<BdBdBdBd")


def _double_field(key: bytes, value: float) -> bytes:
    """A proto3 double: left out when its bits are all zero (0.0, not -0.0), as upb does."""
    packed = _F64.pack(value)
    return b"" if packed == b"\0\0\0\0\0\0\0\0" else key + packed


def _fsum(values: list[float]) -> float:
    """The exact sum; past the largest double (fsum raises there) the plain sum, ±inf."""
    try:
        return math.fsum(values)
    except OverflowError:
        return sum(values)


def histogram_parts(
    values: list[float],
) -> tuple[float, float, int, float, float, list[float], list[float]]:
    """min, max, count, sum, sum of squares, bucket limits and counts of a classic histogram:
    up to 30 equal-width buckets, or one when every value is the same. ``values`` not empty."""
    lo, hi = min(values), max(values)
    count = len(values)
    if lo == hi:
        limits, counts = [hi], [float(count)]
    else:
        n = min(_BUCKETS, count)
        width = (hi - lo) / n
        limits = [lo + width * (i + 1) for i in range(n)]
        limits[-1] = hi
        counts = [0.0] * n
        last = n - 1
        if 0.0 < width < math.inf:
            for v in values:
                i = int((v - lo) / width)
                counts[i if i < last else last] += 1
        else:  # the spread's n-th underflows to 0, or the spread overflows: bucket by the limits
            width = hi / n - lo / n
            limits = [min(lo + width * (i + 1), hi) for i in range(n)]
            limits[-1] = hi
            for v in values:
                i = bisect.bisect_left(limits, v)
                counts[i if i < last else last] += 1
    return (
        lo,
        hi,
        count,
        _fsum(values),
        _fsum([v * v for v in values]),
        limits,
        counts,
    )


def histogram_bytes(values: list[float]) -> bytes:
    """``HistogramProto(min=..., max=..., num=..., sum=..., sum_squares=..., bucket_limit=...,
    bucket=...).SerializeToString()`` for the finite ``values`` (not empty), without a proto."""
    lo, hi, count, total, squares, limits, counts = histogram_parts(values)
    if 0.0 not in (lo, hi, total, squares):  # (-0.0 == 0.0) all five written, in one call
        head = _HISTO_HEAD.pack(0x09, lo, 0x11, hi, 0x19, count, 0x21, total, 0x29, squares)
    elif lo == 0.0 and 0.0 not in (hi, total, squares) and math.copysign(1.0, lo) > 0:
        # the usual reward histogram: min 0.0, left out; the other four in one call
        head = _HISTO_TAIL.pack(0x11, hi, 0x19, count, 0x21, total, 0x29, squares)
    else:  # a field that is zero (left out) or -0.0 (written): one by one
        k = _HISTO_KEYS
        head = b"".join(
            (
                _double_field(k[0], lo),
                _double_field(k[1], hi),
                _double_field(k[2], float(count)),
                _double_field(k[3], total),
                _double_field(k[4], squares),
            )
        )
    # bucket_limit and bucket, both packed and never empty (len(limits) == len(counts) >= 1)
    return head + _buckets(len(limits)).pack(limits, counts)


class _Buckets:
    """``bucket_limit`` then ``bucket`` (fields 6 and 7, packed, ``n`` doubles each) in one
    ``struct`` call: the field keys and lengths go in as ``s`` arguments."""

    __slots__ = ("_counts_key", "_limits_key", "_struct")

    def __init__(self, n: int) -> None:
        size = varint(8 * n)
        self._limits_key = b"\x32" + size
        self._counts_key = b"\x3a" + size
        k = len(size) + 1
        self._struct = struct.Struct(f"<{k}s{n}d{k}s{n}d")

    def pack(self, limits: list[float], counts: list[float]) -> bytes:
        return self._struct.pack(self._limits_key, *limits, self._counts_key, *counts)


_BUCKET_PACKERS: dict[int, _Buckets] = {}  # n <= 30 buckets: at most 30 entries


def _buckets(n: int) -> _Buckets:
    packer = _BUCKET_PACKERS.get(n)
    if packer is None:
        packer = _BUCKET_PACKERS[n] = _Buckets(n)
    return packer


def tag_field(tag: str) -> bytes:
    """``Summary.Value.tag`` (field 1) as protobuf writes it; a lone surrogate written escaped."""
    raw = tag.encode("utf-8", "backslashreplace")
    return b"\x0a" + varint(len(raw)) + raw if raw else b""


def histogram_value(tag: bytes, histo: bytes) -> bytes:
    """A ``Summary.value`` entry ``Value(tag=..., histo=...)`` from :func:`tag_field` bytes and
    :func:`histogram_bytes`: ``histo`` is in a oneof, so it is written even when empty."""
    body = tag + b"\x2a" + varint(len(histo)) + histo
    return b"\x0a" + varint(len(body)) + body


def text_value(tag: bytes, text: bytes, metadata: bytes) -> bytes:
    """A ``Summary.value`` entry ``Value(tag=..., metadata=..., tensor=TensorProto(
    dtype=DT_STRING, tensor_shape=TensorShapeProto(), string_val=[text]))`` from
    :func:`tag_field` bytes, the UTF-8 ``text`` and the serialized ``SummaryMetadata``."""
    # TensorProto: dtype (1) = DT_STRING (7), an empty tensor_shape (2), string_val (8)
    tensor = b"\x08\x07\x12\x00\x42" + varint(len(text)) + text
    # Value: tag (1), tensor (8), metadata (9), in field order as protobuf writes them
    body = b"".join(
        (tag, b"\x42", varint(len(tensor)), tensor, b"\x4a", varint(len(metadata)), metadata)
    )
    return b"\x0a" + varint(len(body)) + body


#: The last part of an event file's name, as tensorboard's writer counts its files.
_uids = itertools.count()


class EventFile:
    """One ``events.out.tfevents.*`` file in ``log_dir``, named as tensorboard names them.

    :meth:`add` takes a serialized ``Event``; records are written to the file when
    ``max_pending`` of them wait and at :meth:`flush`. Write errors propagate.
    """

    def __init__(
        self,
        log_dir: str | os.PathLike[str],
        *,
        max_pending: int = 100,
        writer_name: str = "gemmalog",
        crc32c: Callable[[bytes], int] | None = None,
    ) -> None:
        self.log_dir = Path(log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.crc32c = crc32c or load_crc32c()
        self._frame = Framer(self.crc32c)
        self.max_pending = max(1, int(max_pending))
        self._pending: list[bytes] = []
        self.path, self._file = self._create()
        from tensorboard.compat.proto import event_pb2

        first = event_pb2.Event(
            wall_time=time.time(),
            file_version="brain.Event:2",
            source_metadata=event_pb2.SourceMetadata(writer=writer_name),
        )
        self.add(first.SerializeToString())
        self.flush()  # tensorboard lists the run as soon as the file has its version record

    def _create(self) -> tuple[Path, Any]:
        host = socket.gethostname()
        while True:
            name = f"events.out.tfevents.{int(time.time()):010d}.{host}.{os.getpid()}.{next(_uids)}"
            path = self.log_dir / name
            try:
                # exclusive: two writers in one process and second never share a file
                return path, open(path, "xb", buffering=0)
            except FileExistsError:
                continue

    def add(self, event: bytes) -> None:
        self._pending.append(self._frame(event))
        if len(self._pending) >= self.max_pending:
            self.flush()

    def flush(self) -> None:
        if not self._pending:
            return
        data = memoryview(b"".join(self._pending))
        self._pending = []
        while data:
            written = self._file.write(data)
            if not written:
                raise OSError(errno.EIO, f"no progress writing {self.path}")
            data = data[written:]

    def close(self) -> None:
        if self._file.closed:
            return
        try:
            self.flush()
        finally:
            self._file.close()
