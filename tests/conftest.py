"""Shared fixtures: every test gets its own run root and leaves no pipeline running."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

import gemmalog
from gemmalog import running


@pytest.fixture(autouse=True)
def _no_leftover_pipeline(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for var in (
        "GEMMALOG_ROOT",
        "GEMMALOG_RUN_NAME",
        "GEMMALOG_LEVEL",
        "GEMMALOG_RUN_ID",
        "RANK",
        "WORLD_SIZE",
    ):
        monkeypatch.delenv(var, raising=False)
    gemmalog.clear_context()
    yield
    if running() is not None:
        gemmalog.shutdown()
    gemmalog.clear_context()


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A fresh directory to hold runs."""
    path = tmp_path / "runs"
    path.mkdir()
    return path


def read_events(run_dir: Path) -> list[dict]:
    """Every event of every shard in a run directory, parsed with orjson (all lines must parse)."""
    events: list[dict] = []
    for shard in sorted(run_dir.glob("events.*.jsonl")):
        for line in shard.read_bytes().splitlines():
            events.append(orjson.loads(line))
    return events


def events_of(run_dir: Path, kind: str) -> list[dict]:
    return [e for e in read_events(run_dir) if e["kind"] == kind]
