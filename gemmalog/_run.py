"""A run on disk: its id, its directory and its ``run.json`` manifest.

```
<root>/<run id>/
  run.json              manifest (written by rank 0; rewritten atomically at the end)
  events.<rank>.jsonl   the source of truth, one shard per rank
```
"""

from __future__ import annotations

import datetime as _dt
import functools
import os
import platform
import re
import secrets
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import orjson

from gemmalog._version import __version__

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(name: str) -> str:
    """A run name made safe as one path component: no separators, no traversal, no dotfiles."""
    cleaned = re.sub(r"\.{2,}", ".", _UNSAFE.sub("-", name)).strip("-.")
    return cleaned[:100] or "run"


def new_run_id(name: str | None = None) -> str:
    """``<name>-<YYYYmmdd-HHMMSS>-<hex>``, sortable by start time and unique per start."""
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    suffix = secrets.token_hex(3)
    return f"{safe_name(name)}-{stamp}-{suffix}" if name else f"{stamp}-{suffix}"


def distributed_env() -> tuple[int, int]:
    """(rank, world_size) from the launcher's environment (torchrun, accelerate, SLURM, MPI)."""
    for rank_key, size_key in (
        ("RANK", "WORLD_SIZE"),
        ("SLURM_PROCID", "SLURM_NTASKS"),
        ("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE"),
        ("PMI_RANK", "PMI_SIZE"),
    ):
        if rank_key in os.environ:
            try:
                return int(os.environ[rank_key]), int(os.environ.get(size_key, "1"))
            except ValueError:
                continue
    return 0, 1


def shared_run_id() -> str | None:
    """A run id every rank of one job agrees on, from the environment, when there is one."""
    explicit = os.environ.get("GEMMALOG_RUN_ID")
    if explicit:
        return safe_name(explicit)
    elastic = os.environ.get("TORCHELASTIC_RUN_ID")
    if elastic and elastic != "none" and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return safe_name(f"job-{elastic}")
    slurm = os.environ.get("SLURM_JOB_ID")
    if slurm and int(os.environ.get("SLURM_NTASKS", "1")) > 1:
        return safe_name(f"slurm-{slurm}-{os.environ.get('SLURM_STEP_ID', '0')}")
    return None


@functools.lru_cache(maxsize=1)
def package_versions() -> dict[str, str]:
    """Versions of python, gemmalog and the logging/training stack that is installed."""
    out = {"python": platform.python_version(), "gemmalog": __version__}
    for dist in (
        "structlog",
        "orjson",
        "duckdb",
        "torch",
        "transformers",
        "trl",
        "datasets",
        "accelerate",
        "tensorboard",
    ):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return out


@functools.lru_cache(maxsize=8)
def git_commit(cwd: Path | None = None) -> str | None:
    """The commit of the working directory's git checkout, if there is one (fast, no shell)."""
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=2,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = result.stdout.strip()
    return commit if result.returncode == 0 and len(commit) == 40 else None


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Write JSON through a temporary file and a rename: readers never see half a file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(
        orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS, default=str)
    )
    os.replace(tmp, path)


@dataclass
class Run:
    """The run this process logs into. Returned by :func:`gemmalog.initialize`."""

    id: str
    name: str
    dir: Path
    rank: int = 0
    world_size: int = 1
    started: float = field(default_factory=time.time)
    config: dict[str, Any] = field(default_factory=dict)
    status: str = "running"
    ended: float | None = None

    @property
    def jsonl_path(self) -> Path:
        return self.dir / f"events.{self.rank}.jsonl"

    @property
    def manifest_path(self) -> Path:
        return self.dir / "run.json"

    def manifest(self, **extra: Any) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "status": self.status,
            "start": self.started,
            "start_iso": _dt.datetime.fromtimestamp(self.started, _dt.UTC).isoformat(),
            "end": self.ended,
            "end_iso": None
            if self.ended is None
            else _dt.datetime.fromtimestamp(self.ended, _dt.UTC).isoformat(),
            "duration_s": None if self.ended is None else self.ended - self.started,
            "world_size": self.world_size,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "argv": list(sys.argv),
            "cwd": os.getcwd(),
            "git_commit": git_commit(),
            "versions": dict(package_versions()),
            "config": self.config,
        }
        data.update(extra)
        return data

    def write_manifest(self, **extra: Any) -> None:
        """Rank 0 owns ``run.json``; the other ranks leave it alone."""
        if self.rank == 0:
            write_json_atomic(self.manifest_path, self.manifest(**extra))
