"""Human-readable sinks: any standard-library handler (console, rotating file) fed from events.

The listener turns each event into a ``LogRecord`` with a one-line message and hands it to
the wrapped handler, so the stdlib's own formatting (``%(asctime)s - %(name)s ...`` with a
``datefmt``) and rotation (``RotatingFileHandler``: ``maxBytes``/``backupCount``) apply as
the seed configuration writes them.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from typing import Any

from gemmalog._terminal import visible
from gemmalog.sinks.base import LEVEL_NUMBERS, BaseSink, Record

STANDARD_FORMAT = "%(asctime)s - %(name)s - %(levelname)s - %(message)s"
STANDARD_DATEFMT = "%Y-%m-%d %H:%M:%S"

# Envelope keys a reader does not need repeated on every text line.
_HIDDEN = frozenset(
    {
        "v",
        "ts",
        "kind",
        "logger",
        "level",
        "run",
        "rank",
        "event",
        "device",
        "rss_mb",
        "gpu_mb",
        "epoch",
        "step",
        "exc",
    }
)
# Nested values worth a line of text; others (config, versions, training_args) stay in the JSONL.
_EXPANDED = frozenset({"metrics", "rewards", "stats"})
_TEXT_FIELDS = frozenset(
    {"question", "true_answer", "model_output", "reasoning", "answer", "prompt"}
)


def _short(value: Any, width: int = 80) -> str:
    if isinstance(value, float):
        text = f"{value:.6g}"
    elif isinstance(value, str):
        text = value.replace("\n", "\\n")
    else:
        text = str(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def describe(event: dict[str, Any]) -> str:
    """One line for a person: the message, the step, then the payload as ``key=value``."""
    parts = [str(event.get("event", ""))]
    if event.get("step") is not None and event.get("kind") != "log":
        parts.append(f"step={event['step']}")
    for key, value in event.items():
        if key in _HIDDEN or value is None:
            continue
        if isinstance(value, dict | list):
            if key in _EXPANDED and isinstance(value, dict):
                parts.extend(f"{k}={_short(v, 40)}" for k, v in value.items())
            elif isinstance(value, list) and len(value) <= 8:
                parts.append(f"{key}={_short(value)}")
        elif key in _TEXT_FIELDS:
            parts.append(
                f"{key}={_short(value, 60)!r}"
                if isinstance(value, str)
                else f"{key}={_short(value)}"
            )
        else:
            parts.append(f"{key}={_short(value)}")
    text = " ".join(p for p in parts if p)
    exc = event.get("exc")
    return f"{text}\n{exc}" if exc else text


_COLORS = {
    "DEBUG": "\x1b[2m",
    "INFO": "\x1b[32m",
    "WARNING": "\x1b[33m",
    "ERROR": "\x1b[31m",
    "CRITICAL": "\x1b[1;31m",
}


class TextFormatter(logging.Formatter):
    """The stdlib formatter, with coloured level names when writing to a terminal."""

    def __init__(
        self,
        fmt: str = STANDARD_FORMAT,
        datefmt: str | None = STANDARD_DATEFMT,
        color: bool = False,
    ) -> None:
        super().__init__(fmt, datefmt)
        self.color = color

    def format(self, record: logging.LogRecord) -> str:
        if not self.color:
            return super().format(record)
        plain = record.levelname
        record.levelname = f"{_COLORS.get(plain, '')}{plain}\x1b[0m"
        try:
            return super().format(record)
        finally:
            record.levelname = plain


def _reraise(record: logging.LogRecord) -> None:
    # Called by Handler.emit inside its ``except``: re-raise, so the listener reports the sink
    # once and disables it, instead of the stdlib printing a traceback for every record.
    raise


class ConsoleHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A ``StreamHandler`` on ``sys.stderr`` (or ``sys.stdout``) as it is when a line is written.

    Redirections made after ``initialize()`` (pytest's capture, a notebook, a wrapper that
    swaps ``sys.stderr``) are followed instead of writing to a stream that may be closed.
    """

    def __init__(self, stream_name: str = "stderr") -> None:
        self.stream_name = stream_name
        super().__init__()

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return getattr(sys, self.stream_name)

    @stream.setter
    def stream(self, value: Any) -> None:
        """StreamHandler's constructor assigns a stream; the property ignores it."""

    def format(self, record: logging.LogRecord) -> str:
        # Logged text is data: the terminal shows its control characters instead of obeying
        # them (an ESC sequence in a completion could retitle or clear the screen). The
        # record is this sink's own, so changing it touches no other sink.
        record.msg = visible(str(record.msg))
        record.name = visible(record.name)
        return super().format(record)


class HandlerSink(BaseSink):
    """Feed events to a standard-library ``logging.Handler`` as one-line records.

    An error inside the handler (disk full, closed stream) propagates to the listener, which
    reports it once and disables this sink for the rest of the run.
    """

    def __init__(self, name: str, handler: logging.Handler, level: str = "debug") -> None:
        super().__init__(name, level)
        self.handler = handler
        handler.handleError = _reraise  # type: ignore[method-assign]

    def write(self, batch: Sequence[Record]) -> None:
        handle = self.handler.handle
        minimum = self.levelno
        for event, _line in batch:
            levelno = LEVEL_NUMBERS.get(event.get("level", "info"), 20)
            if levelno < minimum:
                continue
            record = logging.LogRecord(
                str(event.get("logger", "")), levelno, "", 0, describe(event), None, None
            )
            ts = event.get("ts")
            if isinstance(ts, float):
                record.created = ts
                record.msecs = (ts - int(ts)) * 1000
            handle(record)

    def flush(self) -> None:
        self.handler.flush()

    def _close(self) -> None:
        # StreamHandler.close() leaves its stream open; FileHandler.close() closes its file.
        self.handler.flush()
        self.handler.close()
