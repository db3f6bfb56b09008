"""TensorBoard's ``Event`` and ``Summary`` protos, serialized without building a proto.

Scalars are the bulk of a training log, and building a ``Summary.Value`` proto per scalar
costs more than everything else a scalar needs. :class:`ScalarEncoder` writes the bytes
``Event(wall_time=..., step=..., summary=Summary(value=[Value(tag=..., simple_value=...)]))
.SerializeToString()`` gives (the tests compare them), with each tag's bytes encoded once.
Text samples are encoded the same way (:func:`text_value`), histograms in
:mod:`gemmalog.sinks.tensorboard.histogram`.
"""

from __future__ import annotations

import math
import struct
from typing import Any

FLOAT32 = struct.Struct("<f")
F64 = struct.Struct("<d")  # a double field's eight bytes
_WALL = struct.Struct("<Bd")  # Event.wall_time: key byte and double
_INT64_MIN = -(1 << 63)
_INT64_MAX = (1 << 63) - 1


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
            head = b"\x09" + F64.pack(wall_time)
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


def tag_field(tag: str) -> bytes:
    """``Summary.Value.tag`` (field 1) as protobuf writes it; a lone surrogate written escaped."""
    raw = tag.encode("utf-8", "backslashreplace")
    return b"\x0a" + varint(len(raw)) + raw if raw else b""


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
