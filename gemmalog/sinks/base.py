"""The sink protocol: ``write(batch)``, ``flush()``, ``close()``, all on the listener thread.

A batch is a list of ``(event, line)`` records: the sanitized, redacted event dict and its
rendered JSON line. Sinks read what they need and never modify the dict.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType
from typing import Any, Protocol, runtime_checkable

from gemmalog.levels import LEVEL_NUMBERS

Record = tuple[dict[str, Any], bytes]


@runtime_checkable
class Sink(Protocol):
    """What the listener needs of a sink."""

    name: str

    def write(self, batch: Sequence[Record]) -> None: ...

    def flush(self) -> None: ...

    def flush_now(self) -> None: ...

    def close(self) -> None: ...


class BaseSink:
    """Convenience base: a name, a minimum level, an idempotent ``close`` and ``with`` support."""

    def __init__(self, name: str, level: str = "debug") -> None:
        self.name = name
        self.level = level
        self.levelno = LEVEL_NUMBERS.get(level, 0)
        self.closed = False

    def write(self, batch: Sequence[Record]) -> None:
        raise NotImplementedError

    def flush(self) -> None:
        """The listener's periodic tick: a sink may keep buffering (its own interval)."""

    def flush_now(self) -> None:
        """An explicit ``gemmalog.flush()``: write everything buffered now."""
        self.flush()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._close()

    def _close(self) -> None:
        """Release resources; called once."""

    def __enter__(self) -> BaseSink:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


__all__ = ["LEVEL_NUMBERS", "BaseSink", "Record", "Sink"]
