"""A run on disk: its directory and its ``run.json`` manifest (ids: :mod:`gemmalog.run._identity`).

```
<root>/<run id>/
  run.json              manifest (written by rank 0; rewritten atomically at the end)
  events.<rank>.jsonl   the source of truth, one shard per rank
```
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import functools
import os
import platform
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from types import TracebackType
from typing import Any

import orjson

from gemmalog._version import __version__
from gemmalog.processors.render import repair


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


def write_json_atomic(path: Path, data: dict[str, Any], *, mode: int = 0o666) -> None:
    """Write JSON through a temporary file and a rename: readers never see half a file.

    ``mode`` is the new file's permission bits (before the umask): 0o600 for a private run.
    Text orjson refuses (a non-UTF-8 byte of argv, the working directory, a path or an
    environment variable arrives as a lone surrogate) is written escaped, as the JSONL writes it.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    options = orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS
    try:
        payload = orjson.dumps(data, option=options, default=str)
    except TypeError:
        payload = orjson.dumps(repair(data), option=options, default=str)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def read_manifest(path: Path) -> dict[str, Any] | None:
    """A run.json as a dict, or None when it is missing or unreadable."""
    try:
        data = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def last_segment_in(shard: Path, limit: int = 1 << 24) -> int | None:
    """The ``segment`` of the last readable line of a shard; None when it holds no line.

    Reads the shard backwards in growing chunks (a torn last line is skipped); lines of the
    first segment carry no ``segment`` field and count as 0.
    """
    try:
        size = shard.stat().st_size
    except OSError:
        return None
    chunk = 1 << 16
    with contextlib.suppress(OSError), open(shard, "rb") as f:
        while True:
            start = max(0, size - chunk)
            f.seek(start)
            lines = f.read(size - start).split(b"\n")
            if start > 0:
                lines = lines[1:]  # may begin mid-line
            for line in reversed(lines):
                try:
                    event = orjson.loads(line)
                except orjson.JSONDecodeError:
                    continue
                if isinstance(event, dict):
                    segment = event.get("segment", 0)
                    return segment if type(segment) is int else 0
            if start == 0 or chunk >= limit:
                return None
            chunk *= 4
    return None


def segment_history(manifest: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The segments an earlier run.json records; a segment that never ended is 'unfinished'."""
    if not manifest:
        return []
    recorded = manifest.get("segments")
    if not isinstance(recorded, list) or not recorded:
        recorded = [
            {
                "segment": 0,
                "start": manifest.get("start"),
                "end": manifest.get("end"),
                "status": manifest.get("status"),
                "pid": manifest.get("pid"),
                "host": manifest.get("host"),
            }
        ]
    out = []
    for entry in recorded:
        if isinstance(entry, dict):
            entry = dict(entry)
            if entry.get("status") == "running":
                entry["status"] = "unfinished"
            out.append(entry)
    return out


@dataclass
class Run:
    """The run this process logs into. Returned by :func:`gemmalog.initialize`.

    Also a context manager: ``with gemmalog.initialize(...) as run:`` ends the run when the
    block ends, as ``completed``, or ``failed``/``interrupted`` with the exception recorded.
    """

    id: str
    name: str
    dir: Path
    rank: int = 0
    world_size: int = 1
    started: float = field(default_factory=time.time)
    config: dict[str, Any] = field(default_factory=dict)
    status: str = "running"
    ended: float | None = None
    #: 0 for a new run; n for the n-th resumption of it (``initialize(run_id=<existing>)``).
    segment: int = 0
    #: Earlier segments, from the run.json this run resumed.
    history: list[dict[str, Any]] = field(default_factory=list)
    #: Create files user-only (0o600) and directories 0o700.
    private: bool = False
    #: What ends the run when a ``with`` block over it ends (set by ``initialize()``).
    on_exit: (
        Callable[
            [Run, type[BaseException] | None, BaseException | None, TracebackType | None], None
        ]
        | None
    ) = field(default=None, repr=False, compare=False)

    @property
    def jsonl_path(self) -> Path:
        return self.dir / f"events.{self.rank}.jsonl"

    @property
    def manifest_path(self) -> Path:
        return self.dir / "run.json"

    @property
    def first_start(self) -> float:
        """When the run's first segment started (this segment's start for a new run)."""
        first = self.history[0].get("start") if self.history else None
        return first if isinstance(first, int | float) else self.started

    def manifest(self, **extra: Any) -> dict[str, Any]:
        start = self.first_start
        data: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "status": self.status,
            "start": start,
            "start_iso": _dt.datetime.fromtimestamp(start, _dt.UTC).isoformat(),
            "end": self.ended,
            "end_iso": None
            if self.ended is None
            else _dt.datetime.fromtimestamp(self.ended, _dt.UTC).isoformat(),
            "duration_s": None if self.ended is None else self.ended - start,
            "segment": self.segment,
            "segments": [
                *self.history,
                {
                    "segment": self.segment,
                    "start": self.started,
                    "end": self.ended,
                    "status": self.status,
                    "pid": os.getpid(),
                    "host": socket.gethostname(),
                },
            ],
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

    def __enter__(self) -> Run:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.on_exit is not None:
            self.on_exit(self, exc_type, exc, tb)

    def write_manifest(
        self, *, redact: Callable[[dict[str, Any]], dict[str, Any]] | None = None, **extra: Any
    ) -> None:
        """Rank 0 owns ``run.json``; the other ranks leave it alone.

        ``redact`` (the pipeline's ``Redact.manifest``) runs over the whole manifest: argv,
        the error and the configuration can all quote a credential. Recreates the run
        directory if it was removed; raises OSError when it cannot write.
        """
        if self.rank == 0:
            self.dir.mkdir(parents=True, exist_ok=True, mode=0o700 if self.private else 0o777)
            mode = 0o600 if self.private else 0o666
            data = self.manifest(**extra)
            write_json_atomic(
                self.manifest_path, data if redact is None else redact(data), mode=mode
            )
