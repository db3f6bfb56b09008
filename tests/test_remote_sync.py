"""The `sync:` section: a background worker pushes the run while it trains and once more at
the end; its failures are counted in run.json and never reach training."""

from __future__ import annotations

import os
import time
from pathlib import Path

import orjson
import pytest

import gemmalog
from gemmalog.config import ConfigError, load
from tests import s3server
from tests.test_remote_push import files_of, objects


def config(tmp_path: Path, dest: str, interval: float = 0.2, final_timeout: float = 30) -> Path:
    path = tmp_path / "logging.yaml"
    path.write_text(
        f"sync:\n  dest: {dest}\n  interval: {interval}\n  final_timeout: {final_timeout}\n"
    )
    return path


def wait_for(condition: object, timeout: float = 30.0) -> None:
    """Poll ``condition`` (a callable) until it is true; the timeout only ends a broken test."""
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not met"
        time.sleep(0.05)


def test_the_section_is_checked(tmp_path: Path) -> None:
    assert load(config(tmp_path, "s3://bucket/runs")).sync.dest == "s3://bucket/runs"
    bad = tmp_path / "bad.yaml"
    bad.write_text("sync:\n  dest: https://me:hunter2-secret@host/x\n  interval: 0\n  every: 1\n")
    with pytest.raises(ConfigError) as caught:
        load(bad)
    message = str(caught.value)
    assert "sync.dest: must not carry a user or password" in message
    assert "sync.interval: must be a positive number of seconds" in message
    assert "sync.every: unknown key" in message
    assert "hunter2" not in message
    bad.write_text("sync:\n  interval: 5\n")
    with pytest.raises(ConfigError, match=r"sync\.dest: missing"):
        load(bad)


def test_the_run_is_pushed_while_it_trains_and_at_the_end(root: Path, tmp_path: Path) -> None:
    dest = tmp_path / "remote"
    run = gemmalog.initialize(
        config(tmp_path, str(dest)), root=str(root), run_id="synced", capture_stdlib=False
    )
    gemmalog.log_training_progress(1, {"loss": 1.0})
    gemmalog.flush()
    shard = dest / "synced" / "events.0.jsonl"
    wait_for(lambda: shard.exists() and b'"loss"' in shard.read_bytes())  # while it runs
    for step in range(2, 50):
        gemmalog.log_training_progress(step, {"loss": 1.0 / step})
    gemmalog.shutdown()
    assert files_of(dest / "synced") == files_of(run.dir)  # everything, at the end
    manifest = orjson.loads((run.dir / "run.json").read_bytes())
    assert manifest["status"] == "completed"
    sync = manifest["sync"]
    assert sync["errors"] == 0 and sync["pushes"] >= 2 and sync["last_error"] is None
    assert sync["dest"] == str(dest) and sync["bytes_sent"] > 0
    s = gemmalog.queries.summary(dest / "synced")
    assert s["run"]["steps"] == 49 and s["skipped_manifests"] == []


def test_a_dead_store_never_reaches_training(
    s3: s3server.S3Server, root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in s3.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{s3server.free_port()}")
    run = gemmalog.initialize(
        config(tmp_path, f"s3://{s3server.BUCKET}/dead", final_timeout=60),
        root=str(root),
        run_id="unsynced",
        capture_stdlib=False,
    )
    for step in range(1, 201):
        gemmalog.log_training_progress(step, {"loss": 1.0 / step})
    gemmalog.shutdown()
    manifest = orjson.loads((run.dir / "run.json").read_bytes())
    assert manifest["status"] == "completed" and manifest["events_written"] >= 201
    lines = (run.dir / "events.0.jsonl").read_bytes().splitlines()
    assert sum(b'"kind":"metrics"' in line for line in lines) == 200
    sync = manifest["sync"]
    assert sync["pushes"] == 0 and sync["errors"] >= 1
    assert "cannot reach the store" in sync["last_error"]
    text = (run.dir / "run.json").read_text()
    assert os.environ["AWS_SECRET_ACCESS_KEY"] not in text
    assert os.environ["AWS_ACCESS_KEY_ID"] not in text


def test_sync_to_s3(bucket: str, s3: s3server.S3Server, root: Path, tmp_path: Path) -> None:
    run = gemmalog.initialize(
        config(tmp_path, bucket), root=str(root), run_id="to-s3", capture_stdlib=False
    )
    for step in range(1, 20):
        gemmalog.log_training_progress(step, {"loss": 1.0 / step})
    gemmalog.shutdown()
    assert objects(s3, f"{bucket}/to-s3") == files_of(run.dir)
    assert orjson.loads((run.dir / "run.json").read_bytes())["sync"]["errors"] == 0


def test_each_rank_pushes_its_own_shard(
    root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dest = tmp_path / "remote"
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    gemmalog.initialize(
        config(tmp_path, str(dest)), root=str(root), run_id="ranks", capture_stdlib=False
    )
    gemmalog.log_training_progress(1, {"loss": 1.0})
    gemmalog.shutdown()
    assert sorted(p.name for p in (dest / "ranks").iterdir()) == ["events.1.jsonl"]
