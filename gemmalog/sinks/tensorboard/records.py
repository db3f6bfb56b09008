"""TFRecord framing, as ``tensorboard.summary.writer.record_writer.RecordWriter`` writes it.

A record is the payload's length (uint64, little-endian), its masked CRC32C, the payload (a
serialized ``tensorboard.Event``), the payload's masked CRC32C. tensorboard computes CRC32C
in pure Python (~70 µs for a 600-byte record); here the ``crc32c`` package's C code does it
(~0.1 µs), and without that package tensorboard's own Python function is used after one
warning.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from gemmalog.notices import warn_once

_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")


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
