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

import os
from typing import TYPE_CHECKING

from gemmalog._context import bind, bound, clear_context, get_context, unbind
from gemmalog._lifecycle import flush, initialize, set_final_stats, shutdown
from gemmalog._logger import BoundLogger, get_logger
from gemmalog._run import Run
from gemmalog._state import running
from gemmalog._version import __version__
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
from gemmalog.textstats import extract_reasoning_and_answer

if TYPE_CHECKING:
    import duckdb


def connect(
    path: str | os.PathLike[str] = ".", *, root: str | os.PathLike[str] | None = None
) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with gemmalog's views over a run, a root of runs or a glob.

    See :func:`gemmalog.queries.connect`; duckdb is imported on first use, not by
    ``import gemmalog``.
    """
    from gemmalog.queries import connect as _connect

    return _connect(path, root=root)


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
