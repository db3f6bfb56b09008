"""Processes started by a logging process: how they find and join its run.

- fork (multiprocessing, DataLoader workers): the parent's listener thread does not survive
  the fork; the child's first event starts a child pipeline on ``events.<rank>.<pid>.jsonl``
  (the state handling is in ``_pipeline``);
- spawn and plain subprocesses: ``initialize()`` describes the run in the ``GEMMALOG_PARENT``
  environment variable, and a child's first event joins that run on its own shard.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from gemmalog._run import Run
from gemmalog.config.loader import ConfigError, apply_overrides
from gemmalog.config.model import Config, default_config
from gemmalog.notices import warn_once

if TYPE_CHECKING:
    from gemmalog._pipeline import Pipeline

#: Set by initialize() for the processes it starts (spawn, subprocess): which run to join.
PARENT_ENV = "GEMMALOG_PARENT"
INHERITED = (
    "flush_interval",
    "queue_size",
    "backpressure",
    "fsync",
    "redact",
    "redact_patterns",
    "max_string_length",
    "memory_interval",
    "private",
)


def parent_description(pipeline: Pipeline) -> str:
    run = pipeline.run
    s = pipeline.config.settings
    return json.dumps(
        {
            "pid": os.getpid(),
            "run": run.id,
            "name": run.name,
            "dir": str(run.dir.absolute()),
            "rank": run.rank,
            "world_size": run.world_size,
            "segment": run.segment,
            "level": pipeline.config.root.level,
            "settings": {k: getattr(s, k) for k in INHERITED},
        }
    )


def spawned_from() -> tuple[Config, Run] | None:
    """The run a spawned process (or any subprocess) of a logging process joins, if any."""
    text = os.environ.get(PARENT_ENV)
    if not text:
        return None
    try:
        data = json.loads(text)
        if data["pid"] == os.getpid():
            return None
        config = default_config()
        apply_overrides(config, {**data["settings"], "level": data.get("level")})
        run = Run(
            str(data["run"]),
            str(data["name"]),
            Path(data["dir"]),
            int(data["rank"]),
            int(data["world_size"]),
            segment=int(data["segment"]),
            private=bool(data["settings"].get("private")),
        )
    except (ValueError, KeyError, TypeError, ConfigError) as exc:
        warn_once(f"ignoring {PARENT_ENV} ({type(exc).__name__}: {exc})")
        return None
    return config, run


def forget_parent_env() -> None:
    text = os.environ.get(PARENT_ENV)
    if text and f'"pid": {os.getpid()},' in text:
        del os.environ[PARENT_ENV]


def flush_at_child_exit(shutdown: Callable[[], None]) -> None:
    # multiprocessing children leave through os._exit(), which skips atexit; its own
    # finalizers still run, so register the shutdown there too.
    mp_util = sys.modules.get("multiprocessing.util")
    if mp_util is not None:
        mp_util.Finalize(None, shutdown, exitpriority=100)
