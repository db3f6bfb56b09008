"""``model_outputs.csv`` rebuilt from the JSONL with the live CSV sink's own row functions."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import orjson

from gemmalog.queries._connect import QueryError, resolve
from gemmalog.queries._outputs import Progress, check_csv_output
from gemmalog.sinks.csvrows import write_csv

_MARKER = b'"kind":"model_output"'


def csv_options(manifest: Path) -> dict[str, Any]:
    """``columns``, ``raw`` and ``phases`` of the run's first CSV handler (empty without one)."""
    try:
        config = orjson.loads(manifest.read_bytes()).get("config") or {}
    except (OSError, orjson.JSONDecodeError):
        return {}
    for spec in (config.get("handlers") or {}).values():
        if isinstance(spec, Mapping) and spec.get("type") == "csv":
            opts = spec.get("options") or {}
            return {k: opts[k] for k in ("columns", "raw", "phases") if opts.get(k) is not None}
    return {}


def _model_outputs(shard: Path, progress: Progress | None) -> Iterator[dict[str, Any]]:
    size = shard.stat().st_size or 1
    done = 0
    with open(shard, "rb") as lines:
        for line in lines:
            done += len(line)
            if progress is not None and done % 1024 < len(line):  # about every few KiB
                progress(done / size)
            if _MARKER not in line:
                continue
            try:
                event = orjson.loads(line)
            except orjson.JSONDecodeError:  # a torn last line
                continue
            if isinstance(event, dict):
                yield event
    if progress is not None:
        progress(1.0)


def model_output_csv(
    run_path: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    root: str | os.PathLike[str] | None = None,
    progress: Progress | None = None,
) -> int:
    """Rebuild the live ``model_outputs.csv``: rank 0's model outputs in file order, the run's
    CSV handler options, the sink's row functions. Returns the number of rows."""
    source = resolve(run_path, root=root)
    if not source.run or source.directory is None:
        raise QueryError(
            f"{source.label}: to-csv --kind model_output needs one run directory or run id"
        )
    manifest = Path(source.directory) / "run.json"
    shard = manifest.parent / "events.0.jsonl"
    if not shard.exists():
        raise QueryError(f"{shard}: no rank-0 shard (the CSV is written by rank 0 only)")
    target = check_csv_output(source, out, root)
    with open(target, "w", encoding="utf-8", errors="backslashreplace", newline="") as fh:
        return write_csv(_model_outputs(shard, progress), fh, **csv_options(manifest))
