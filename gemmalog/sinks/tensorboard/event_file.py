"""One TensorBoard event file, named and begun as tensorboard's ``EventFileWriter`` does.

The file is written by the listener thread itself, with no thread of its own: records wait in
memory until ``max_pending`` of them do, or until :meth:`EventFile.flush`.
"""

from __future__ import annotations

import errno
import itertools
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gemmalog.sinks.tensorboard.records import Framer, load_crc32c

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
