"""Records from the standard library (transformers, trl, datasets, warnings) as ``log`` events.

A ``QueueHandler`` on the root logger (and on the library loggers that do not propagate,
such as ``transformers``) whose ``prepare`` builds an event dict instead of formatting the
record into a string: the stock ``prepare`` would stringify the message, arguments and
exception on the caller's thread, which is the known structlog + QueueHandler pitfall.
"""

from __future__ import annotations

import logging
import logging.handlers
import threading
import traceback
from typing import Any

from gemmalog._pipeline import _State, current, running
from gemmalog.config.model import Config

# Libraries that set propagate=False on their root logger and would otherwise bypass root.
LIBRARY_LOGGERS = ("transformers", "datasets", "accelerate", "trl", "huggingface_hub")


class StdlibBridge(logging.handlers.QueueHandler):
    """Hand stdlib records to gemmalog's pipeline as ``log`` events."""

    def __init__(self) -> None:
        super().__init__(None)  # type: ignore[arg-type]  # events go to the pipeline, not a queue

    def prepare(self, record: logging.LogRecord) -> dict[str, Any]:  # type: ignore[override]
        event: dict[str, Any] = {
            "kind": "log",
            "logger": record.name,
            "level": record.levelname.lower(),
            "ts": record.created,
            "event": record.getMessage(),
        }
        if record.exc_info and record.exc_info[0] is not None:
            event["exc"] = "".join(traceback.format_exception(*record.exc_info))
        return event

    def emit(self, record: logging.LogRecord) -> None:
        pipeline = running()
        if pipeline is None and _State.forked_from is not None:
            pipeline = current()  # a forked child's first record starts its pipeline
        if pipeline is None or getattr(record, "_gemmalog_seen", False):
            return
        record._gemmalog_seen = True  # a library logger and root both carry this handler
        try:
            event = self.prepare(record)
            if threading.current_thread() is pipeline.listener._thread:
                # A library logging from inside a sink: never block the listener on itself.
                for proc in pipeline.chain:
                    event = proc(None, event["level"], event)
                pipeline.queue.put_nowait(event)
            else:
                pipeline.emit(event["level"], event)
        except Exception:
            self.handleError(record)


class _Bridge:
    def __init__(self) -> None:
        self.handler: StdlibBridge | None = None
        self.saved_root_level = logging.WARNING
        self.captured_warnings = False

    def install(self, config: Config) -> None:
        self.uninstall()
        handler = StdlibBridge()
        self.handler = handler
        root = logging.getLogger()
        self.saved_root_level = root.level
        root.setLevel(config.root.level.upper())
        root.addHandler(handler)
        for name in LIBRARY_LOGGERS:
            logging.getLogger(name).addHandler(handler)
        if config.settings.capture_warnings:
            logging.captureWarnings(True)
            self.captured_warnings = True

    def uninstall(self) -> None:
        handler = self.handler
        if handler is None:
            return
        self.handler = None
        root = logging.getLogger()
        root.removeHandler(handler)
        root.setLevel(self.saved_root_level)
        for name in LIBRARY_LOGGERS:
            logging.getLogger(name).removeHandler(handler)
        if self.captured_warnings:
            logging.captureWarnings(False)
            self.captured_warnings = False


_bridge = _Bridge()
install = _bridge.install
uninstall = _bridge.uninstall
