"""What the pipeline does to a run directory: create it, resume it, lock it down, record it."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gemmalog._run import Run, last_segment_in, read_manifest, segment_history
from gemmalog.notices import warn_once
from gemmalog.processors.redact import Redact


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
    """A private run: user-only modes on everything the sinks created (umask may allow more).

    Each path on its own: one that vanished or cannot be changed does not stop the others.
    """
    try:
        paths = [run_dir, *run_dir.rglob("*")]
    except OSError:
        return
    for path in paths:
        try:
            if not path.is_symlink():
                os.chmod(path, 0o700 if path.is_dir() else 0o600)
        except OSError:
            continue


# run.json fields that hold no user text: what is left when redaction itself fails.
_PLAIN_FIELDS = ("id", "status", "start", "start_iso", "end", "end_iso", "duration_s", "segment")


def _redactor(redact: Redact) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def manifest(data: dict[str, Any]) -> dict[str, Any]:
        try:
            return redact.manifest(data)
        except Exception as exc:  # never write what could not be checked
            warn_once(f"run.json written without argv, error and config ({type(exc).__name__})")
            return {k: data.get(k) for k in _PLAIN_FIELDS} | {"redaction_failed": True}

    return manifest


def write_manifest(run: Run, *, redact: Redact | None = None, **extra: Any) -> None:
    """Write run.json through ``redact`` (the listener's instance: argv, the error, the
    configuration and the TRL arguments can quote a credential); a failure (disk full,
    directory gone read-only) is warned, not raised.

    The first write of a private run (at ``initialize``, after the sinks opened their files)
    also sets user-only modes on what the sinks created, as ``shutdown`` does at the end.
    """
    try:
        run.write_manifest(redact=None if redact is None else _redactor(redact), **extra)
    except OSError as exc:
        warn_once(f"cannot write {run.manifest_path} ({type(exc).__name__}: {exc})")
    if run.private and run.status == "running":
        tighten(run.dir)
