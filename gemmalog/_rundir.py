"""What the pipeline does to a run directory: create it, resume it, lock it down, record it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from gemmalog._run import Run, last_segment_in, read_manifest, segment_history
from gemmalog._stderr import warn_once


def resumed_segment(run_dir: Path, rank: int) -> tuple[int, list[dict[str, Any]]]:
    """(segment, earlier segments) for a run directory: (0, []) for a new run.

    A rank continues after the last segment its own shard records; rank 0 also after the
    last one run.json records (a segment killed before its first line was written).
    """
    last = last_segment_in(run_dir / f"events.{rank}.jsonl")
    history: list[dict[str, Any]] = []
    if rank == 0:
        history = segment_history(read_manifest(run_dir / "run.json"))
        recorded = [e["segment"] for e in history if type(e.get("segment")) is int]
        if recorded:
            last = max(last if last is not None else -1, *recorded)
    return (0, []) if last is None else (last + 1, history)


def make_run_dir(run_dir: Path, private: bool) -> None:
    try:
        run_dir.mkdir(parents=True, exist_ok=True, mode=0o700 if private else 0o777)
        if private:
            os.chmod(run_dir, 0o700)
    except OSError as exc:  # the JSONL sink retries; the training must not stop here
        warn_once(
            f"cannot create the run directory {run_dir} ({type(exc).__name__}: {exc}); "
            "events are counted as lost until it can be written (check the root setting)"
        )


def tighten(run_dir: Path) -> None:
    """A private run: user-only modes on everything the sinks created (umask may allow more)."""
    try:
        for path in (run_dir, *run_dir.rglob("*")):
            if path.is_symlink():
                continue
            os.chmod(path, 0o700 if path.is_dir() else 0o600)
    except OSError:
        pass


def write_manifest(run: Run, **extra: Any) -> None:
    """Write run.json; a failure (disk full, directory gone read-only) is warned, not raised."""
    try:
        run.write_manifest(**extra)
    except OSError as exc:
        warn_once(f"cannot write {run.manifest_path} ({type(exc).__name__}: {exc})")
