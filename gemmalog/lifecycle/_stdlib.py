"""Records from the standard library (transformers, trl, datasets, warnings) as ``log`` events.

A ``QueueHandler`` on the root logger (and on the library loggers that do not propagate,
such as ``transformers``) whose ``prepare`` builds an event dict instead of a formatted
record: the stock ``prepare`` formats the whole record into ``msg`` and drops its
arguments, the known structlog + QueueHandler pitfall. The record's message is merged with
its arguments here (``getMessage()``, as any handler must, since the arguments may change
later) and a traceback is formatted; rendering and writing happen on the listener thread.
With ``capture_stdlib`` off and ``capture_warnings`` on, the handler sits on ``py.warnings``
alone. Records below the level gemmalog's configuration gives their logger are dropped.
"""

from __future__ import annotations

import logging
import logging.handlers
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from gemmalog.config.model import Config
from gemmalog.events import as_user_fields, free_name
from gemmalog.lifecycle._state import State, running

if TYPE_CHECKING:
    from gemmalog.engine._pipeline import Pipeline
    from gemmalog.processors.redact import Redact

# What every LogRecord has; anything else was given with ``extra={...}``.
_RECORD_FIELDS = frozenset(
    {
        *logging.LogRecord("", 0, "", 0, "", (), None).__dict__,
        *("message", "asctime", "taskName", "_gemmalog_seen"),
    }
)
_RECORD_SIZE = len(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) + 1  # + ours

# Libraries that set propagate=False on their root logger and would otherwise bypass root.
LIBRARY_LOGGERS = ("transformers", "datasets", "accelerate", "trl", "huggingface_hub")


class StdlibBridge(logging.handlers.QueueHandler):
    """Hand stdlib records to gemmalog's pipeline as ``log`` events."""

    def __init__(self, current: Callable[[], Pipeline]) -> None:
        super().__init__(None)  # type: ignore[arg-type]  # events go to the pipeline, not a queue
        #: The lifecycle's current(): starts a forked child's pipeline on its first record.
        self.current = current

    def prepare(self, record: logging.LogRecord) -> dict[str, Any]:  # type: ignore[override]
        # The level travels as the method name and the time is the envelope's (a few µs
        # after record.created): both are fields only the envelope sets.
        event: dict[str, Any] = {"kind": "log", "logger": record.name, "event": record.getMessage()}
        if record.exc_info and record.exc_info[0] is not None:
            event["exc"] = "".join(traceback.format_exception(*record.exc_info))
        if len(record.__dict__) > _RECORD_SIZE:  # fields given with extra={...}: data
            extra = {k: v for k, v in record.__dict__.items() if k not in _RECORD_FIELDS}
            if extra:
                extra = as_user_fields(extra)
                if "exc" in event and "exc" in extra:
                    extra[free_name(extra, "exc")] = extra.pop("exc")
                event.update(extra)
        return event

    def emit(self, record: logging.LogRecord) -> None:
        pipeline = running()
        if pipeline is None and (State.forked_from is not None or State.last is not None):
            # A forked child's first record starts its pipeline; after shutdown() a record
            # is a late event of the run that ended (the bridge stays until initialize()).
            pipeline = self.current()
        if pipeline is None or getattr(record, "_gemmalog_seen", False):
            return
        record._gemmalog_seen = True  # a library logger and root both carry this handler
        if record.levelno < pipeline.levelno(record.name):
            return
        try:
            event = self.prepare(record)
            method = record.levelname.lower()
            if pipeline.listener.on_listener_thread():
                # A library logging from inside a sink: never block the listener on itself.
                pipeline.emit_on_listener(method, event)
            else:
                pipeline.emit(method, event)
            if pipeline.is_late:
                _as_without_gemmalog(record, self, pipeline.redact)
        except Exception:
            self.handleError(record)


def _as_without_gemmalog(
    record: logging.LogRecord, bridge: logging.Handler, redact: Redact | None
) -> None:
    """After the run: show ``record`` on stderr when no handler but the bridge takes it, as
    the standard library does without gemmalog (``logging.lastResort``), redacted like the
    run's own lines (the text, its arguments and any traceback)."""
    last_resort = logging.lastResort
    if last_resort is None or record.levelno < last_resort.level:
        return
    logger: logging.Logger | None = logging.getLogger(record.name)
    while logger is not None:
        if any(h is not bridge for h in logger.handlers):
            return
        logger = logger.parent if logger.propagate else None
    if redact is not None:
        shown = logging.makeLogRecord(record.__dict__)
        shown.msg, shown.args = redact.text(last_resort.format(record)), None
        shown.exc_info, shown.exc_text, shown.stack_info = None, None, None
        record = shown
    last_resort.handle(record)


class _Bridge:
    def __init__(self) -> None:
        self.handler: StdlibBridge | None = None
        self.saved_root_level = logging.WARNING
        self.captured_warnings = False
        self.loggers: list[logging.Logger] = []

    def install(self, config: Config, current: Callable[[], Pipeline]) -> None:
        """Attach the bridge as the settings ask: every stdlib record, or warnings only."""
        self.uninstall()
        settings = config.settings
        if not (settings.capture_stdlib or settings.capture_warnings):
            return
        handler = StdlibBridge(current)
        self.handler = handler
        root = logging.getLogger()
        self.saved_root_level = root.level
        self.loggers = (
            [root, *(logging.getLogger(n) for n in LIBRARY_LOGGERS)]
            if settings.capture_stdlib
            else []
        )
        if settings.capture_stdlib:
            root.setLevel(config.root.level.upper())
        elif settings.capture_warnings:
            self.loggers = [logging.getLogger("py.warnings")]
        for logger in self.loggers:
            logger.addHandler(handler)
        if settings.capture_warnings:
            logging.captureWarnings(True)
            self.captured_warnings = True

    def uninstall(self) -> None:
        handler = self.handler
        if handler is None:
            return
        self.handler = None
        for logger in self.loggers:
            logger.removeHandler(handler)
        logging.getLogger().setLevel(self.saved_root_level)
        self.loggers = []
        if self.captured_warnings:
            logging.captureWarnings(False)
            self.captured_warnings = False


_bridge = _Bridge()
install = _bridge.install
uninstall = _bridge.uninstall
