"""TensorBoard's classic histograms: the buckets of a step's values and their
``HistogramProto``, serialized without building a proto (as :mod:`.protos` does scalars).

One histogram is written per reward function (and per completion measure) and step.
"""

from __future__ import annotations

import bisect
import math
import struct

from gemmalog.sinks.tensorboard.protos import F64, varint

_BUCKETS = 30
# HistogramProto's double fields 1-5 (min, max, num, sum, sum_squares): key bytes, wire type 1.
_HISTO_KEYS = (b"\x09", b"\x11", b"\x19", b"\x21", b"\x29")
_HISTO_HEAD = struct.Struct("<BdBdBdBdBd")  # count >= 1: num is never left out
_HISTO_TAIL = struct.Struct("<BdBdBdBd")


def _double_field(key: bytes, value: float) -> bytes:
    """A proto3 double: left out when its bits are all zero (0.0, not -0.0), as upb does."""
    packed = F64.pack(value)
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


def histogram_value(tag: bytes, histo: bytes) -> bytes:
    """A ``Summary.value`` entry ``Value(tag=..., histo=...)`` from :func:`.protos.tag_field`
    bytes and :func:`histogram_bytes`: ``histo`` is in a oneof, so it is written even when
    empty."""
    body = tag + b"\x2a" + varint(len(histo)) + histo
    return b"\x0a" + varint(len(body)) + body
