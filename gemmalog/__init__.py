"""gemmalog: structured, non-blocking logging for GRPO fine-tuning of language models.

Every log call becomes a typed structlog event, enriched on the caller's thread, handed to
a background listener and written once as a JSON line; TensorBoard, CSV and text files are
fed from the same events, and DuckDB views answer questions about runs afterwards.

    import gemmalog
    run = gemmalog.initialize("configs/gemma_logging.yaml")
    log = gemmalog.get_training_logger()
    log.info("training started", model="tiny-gemma")
    gemmalog.log_training_progress(step=1, metrics={"loss": 0.42})
    gemmalog.shutdown()
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import os
import sys
from typing import TYPE_CHECKING, Any

from gemmalog._context import bind, bound, clear_context, get_context, unbind
from gemmalog._version import __version__

if TYPE_CHECKING:
    import duckdb

    from gemmalog._logger import BoundLogger, get_logger
    from gemmalog.api import (
        get_metrics_logger,
        get_model_logger,
        get_reward_logger,
        get_system_logger,
        get_training_logger,
        log_event,
        log_generation_metrics,
        log_memory_usage,
        log_model_output,
        log_reward,
        log_reward_metrics,
        log_training_progress,
    )
    from gemmalog.config import Config, ConfigError
    from gemmalog.lifecycle._lifecycle import flush, initialize, running, set_final_stats, shutdown
    from gemmalog.processors.textstats import extract_reasoning_and_answer
    from gemmalog.run._manifest import Run

# Where each public name lives. ``import gemmalog`` imports none of these modules: the
# pipeline, its sinks and processors, the configuration loader (yaml) and psutil load on
# the first use of a name (``gemmalog.initialize``, a logger, a helper), so a program that
# imports gemmalog and never logs, or logs later, does not pay for them at startup.
_LAZY = {
    "BoundLogger": "gemmalog._logger",
    "get_logger": "gemmalog._logger",
    "flush": "gemmalog.lifecycle._lifecycle",
    "initialize": "gemmalog.lifecycle._lifecycle",
    "set_final_stats": "gemmalog.lifecycle._lifecycle",
    "shutdown": "gemmalog.lifecycle._lifecycle",
    "running": "gemmalog.lifecycle._lifecycle",
    "Run": "gemmalog.run._manifest",
    "log_event": "gemmalog.api",
    "get_metrics_logger": "gemmalog.api",
    "get_model_logger": "gemmalog.api",
    "get_reward_logger": "gemmalog.api",
    "get_system_logger": "gemmalog.api",
    "get_training_logger": "gemmalog.api",
    "log_generation_metrics": "gemmalog.api",
    "log_memory_usage": "gemmalog.api",
    "log_model_output": "gemmalog.api",
    "log_reward": "gemmalog.api",
    "log_reward_metrics": "gemmalog.api",
    "log_training_progress": "gemmalog.api",
    "Config": "gemmalog.config",
    "ConfigError": "gemmalog.config",
    "extract_reasoning_and_answer": "gemmalog.processors.textstats",
}


def __getattr__(name: str) -> Any:
    """A public name on first use (see ``_LAZY``), or a submodule not imported yet
    (``gemmalog.queries`` after a bare ``import gemmalog``)."""
    module = _LAZY.get(name)
    if module is not None:
        value = getattr(importlib.import_module(module), name)
        globals()[name] = value  # later lookups do not come here
        return value
    if not name.startswith("__"):
        try:
            return importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":  # the submodule exists; its import failed
                raise
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _bind_public_names() -> None:
    """At exit, once a run was started: bind every public name here, so that code the
    interpreter runs while it finalizes (an object's ``__del__``) finds ``gemmalog.get_logger``
    and the helpers: by then imports fail (``sys.meta_path is None``)."""
    if "gemmalog.lifecycle._lifecycle" not in sys.modules:
        return
    for name in _LAZY:
        with contextlib.suppress(Exception):
            __getattr__(name)


atexit.register(_bind_public_names)  # runs after the exit hook initialize() registers


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


def connect(
    path: str | os.PathLike[str] = ".",
    *,
    root: str | os.PathLike[str] | None = None,
    cache: bool | None = None,
) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with gemmalog's views over a run, a root of runs or a glob.

    See :func:`gemmalog.queries.connect` (``cache=False``: read the JSONL only); duckdb is
    imported on first use, not by ``import gemmalog``.
    """
    from gemmalog.queries import connect as _connect

    return _connect(path, root=root, cache=cache)


__all__ = [
    "BoundLogger",
    "Config",
    "ConfigError",
    "Run",
    "__version__",
    "bind",
    "bound",
    "clear_context",
    "connect",
    "extract_reasoning_and_answer",
    "flush",
    "get_context",
    "get_logger",
    "get_metrics_logger",
    "get_model_logger",
    "get_reward_logger",
    "get_system_logger",
    "get_training_logger",
    "initialize",
    "log_event",
    "log_generation_metrics",
    "log_memory_usage",
    "log_model_output",
    "log_reward",
    "log_reward_metrics",
    "log_training_progress",
    "running",
    "set_final_stats",
    "shutdown",
    "unbind",
]
