"""Processes started by a logging process: how they find and join its run.

- fork (multiprocessing, DataLoader workers): the parent's listener thread does not survive
  the fork; the child's first event starts a child pipeline on ``events.<rank>.<pid>.jsonl``
  (the state handling is in ``_pipeline``);
- spawn and plain subprocesses: ``initialize()`` describes the run in the ``GEMMALOG_PARENT``
  environment variable, and a child's first event joins that run on its own shard.

The environment is readable by every process the training starts (``sh -c env``, a shell a
tool opens) and often ends up in crash reports: the settings that name secrets
(``redact_patterns``) never go into it. They go into a file only the user can read, in a
directory of its own under the temporary directory, which the variable names and
``shutdown()`` deletes.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from gemmalog.config.loader import ConfigError
from gemmalog.config.model import Config, default_config
from gemmalog.config.overrides import apply_overrides
from gemmalog.notices import warn_once
from gemmalog.run._manifest import Run

if TYPE_CHECKING:
    from gemmalog.engine._pipeline import Pipeline

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
#: Inherited settings that may quote a secret: passed in a user-only file, never in the
#: environment.
SECRET = frozenset({"redact_patterns"})
#: What a child redacts with when it cannot read its parent's patterns: everything text.
REDACT_ALL = r"(?s).+"


def parent_description(pipeline: Pipeline) -> str:
    """The run, for ``GEMMALOG_PARENT``; its secret settings are written to a private file."""
    run = pipeline.run
    s = pipeline.config.settings
    data: dict[str, object] = {
        "pid": os.getpid(),
        "run": run.id,
        "name": run.name,
        "dir": str(run.dir.absolute()),
        "rank": run.rank,
        "world_size": run.world_size,
        "segment": run.segment,
        "level": pipeline.config.root.level,
        "settings": {k: getattr(s, k) for k in INHERITED if k not in SECRET},
    }
    secret = {k: getattr(s, k) for k in SECRET if getattr(s, k)}
    if secret:
        data["secrets"] = _write_secrets(secret)
    return json.dumps(data)


def _write_secrets(secret: dict[str, object]) -> str | None:
    """A file only this user can read (0600, in a fresh 0700 directory) holding ``secret``;
    None when it cannot be written (children then redact all their text, see spawned_from)."""
    try:
        folder = tempfile.mkdtemp(prefix="gemmalog-")
        path = os.path.join(folder, "settings.json")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(secret, f)
    except OSError as exc:
        warn_once(
            f"cannot write the redaction settings for child processes ({type(exc).__name__}: "
            f"{exc}); processes this run starts will write their text redacted"
        )
        return None
    return path


def _read_secrets(path: object) -> dict[str, object] | None:
    with contextlib.suppress(OSError, ValueError):
        if isinstance(path, str):
            with open(path, encoding="utf-8") as f:
                secret = json.load(f)
            if isinstance(secret, dict) and set(secret) <= SECRET:
                return secret
    return None


def _parent_secrets() -> tuple[object, dict[str, object] | None]:
    """Read at import, while the parent most likely still runs: a child that logs its first
    event after the parent's ``shutdown()`` deleted the file still has them."""
    with contextlib.suppress(Exception):
        data = json.loads(os.environ.get(PARENT_ENV, ""))
        if "secrets" in data and data["pid"] != os.getpid():
            return data["secrets"], _read_secrets(data["secrets"])
    return None, None


_early = _parent_secrets()


def _inherited_secrets(path: object) -> dict[str, object]:
    secret = _early[1] if _early[0] == path and path is not None else _read_secrets(path)
    if secret is None:
        # Fail closed: without the parent's patterns, no text of this process is written.
        warn_once(
            "cannot read the parent run's redaction settings (its run ended, or the file "
            "could not be written); this process's text values are written as [REDACTED]"
        )
        return {"redact_patterns": [REDACT_ALL]}
    return secret


def spawned_from() -> tuple[Config, Run] | None:
    """The run a spawned process (or any subprocess) of a logging process joins, if any."""
    text = os.environ.get(PARENT_ENV)
    if not text:
        return None
    try:
        data = json.loads(text)
        if data["pid"] == os.getpid():
            return None
        settings = dict(data["settings"])
        if "secrets" in data:
            settings |= _inherited_secrets(data["secrets"])
        config = default_config()
        apply_overrides(config, {**settings, "level": data.get("level")})
        run = Run(
            str(data["run"]),
            str(data["name"]),
            Path(data["dir"]),
            int(data["rank"]),
            int(data["world_size"]),
            segment=int(data["segment"]),
            private=bool(settings.get("private")),
        )
    except (ValueError, KeyError, TypeError, ConfigError) as exc:
        warn_once(f"ignoring {PARENT_ENV} ({type(exc).__name__}: {exc})")
        return None
    return config, run


def forget_parent_env() -> None:
    """At the parent's shutdown: no more children join, and the secrets file is deleted."""
    text = os.environ.get(PARENT_ENV)
    if text and f'"pid": {os.getpid()},' in text:
        del os.environ[PARENT_ENV]
        with contextlib.suppress(Exception):
            path = json.loads(text).get("secrets")
            if isinstance(path, str):
                os.unlink(path)
                os.rmdir(os.path.dirname(path))


def flush_at_child_exit(shutdown: Callable[[], None]) -> None:
    # multiprocessing children leave through os._exit(), which skips atexit; its own
    # finalizers still run, so register the shutdown there too.
    mp_util = sys.modules.get("multiprocessing.util")
    if mp_util is not None:
        mp_util.Finalize(None, shutdown, exitpriority=100)
