"""Helpers the tests share: read a run's events back (every line must parse)."""

from __future__ import annotations

from pathlib import Path

import orjson


def read_events(run_dir: Path) -> list[dict]:
    """Every event of every shard in a run directory, parsed with orjson (all lines must parse)."""
    events: list[dict] = []
    for shard in sorted(run_dir.glob("events.*.jsonl")):
        for line in shard.read_bytes().splitlines():
            events.append(orjson.loads(line))
    return events


def events_of(run_dir: Path, kind: str) -> list[dict]:
    return [e for e in read_events(run_dir) if e["kind"] == kind]
