"""Shared fixtures: every test gets its own run root and leaves no pipeline running."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import gemmalog
from gemmalog import running
from tests.s3server import bucket, s3  # noqa: F401  (one S3 server for the session)


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
