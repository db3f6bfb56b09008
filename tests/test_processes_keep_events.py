"""Every process that logs keeps its events, however it ends (issue 11, defects note 14).

Each way of fanning out work runs in a real child process (tests/_children_driver.py);
the shards are read back with orjson and through the views.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import gemmalog
from tests.helpers import read_events

pytestmark = pytest.mark.faults

REPO = Path(__file__).resolve().parents[1]
DRIVER = REPO / "tests" / "_children_driver.py"
ENV = {k: v for k, v in os.environ.items() if not k.startswith("GEMMALOG_")}
ENV["PYTHONPATH"] = str(REPO)
PER_WORKER = 100

WAYS = [
    # multiprocessing.Pool: closed, terminated, and left by `with` (which terminates)
    *(
        f"{method}-{how}"
        for method in ("fork", "forkserver", "spawn")
        for how in ("with", "terminate", "close")
    ),
    "fork-executor",
    "forkserver-executor",
    "spawn-executor",
    "raw-fork",  # os.fork() whose child leaves with os._exit(0)
    "dataloader-once",
    "dataloader-persistent",
]


@pytest.mark.parametrize("way", WAYS)
def test_every_worker_event_is_on_disk_after_shutdown(root: Path, way: str) -> None:
    result = subprocess.run(
        [sys.executable, str(DRIVER), str(root), way],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr
    run_dir = root / "fanout"
    events = read_events(run_dir)  # every line parses
    work = [(e["task"], e["j"]) for e in events if e.get("event") == "work"]
    tasks = (1,) if way == "raw-fork" else (1, 2)
    expected = sorted((task, j) for task in tasks for j in range(PER_WORKER))
    assert sorted(work) == expected  # each once, none lost
    # each worker wrote its own shard, and the views read them as one run
    worker_shards = [p for p in run_dir.glob("events.0.*.jsonl")]
    assert worker_shards
    con = gemmalog.connect(run_dir)
    assert con.execute("SELECT count(*) FROM events WHERE event = 'work'").fetchone() == (
        len(expected),
    )
    assert con.execute("SELECT count(DISTINCT run) FROM events").fetchone() == (1,)


def test_children_end_on_sigterm_by_the_default_action(root: Path) -> None:
    """A pool worker (fork, forkserver, spawn) that logged keeps SIGTERM's default action:
    its events are already on disk, and a Python-level handler can miss a SIGTERM that
    arrives as the worker enters a blocking wait (the pool's task-queue lock), which left
    ``with Pool()`` waiting forever for it. A forked child that starts a run of its own gets
    the handler for that run; the parent keeps it."""
    result = subprocess.run(
        [sys.executable, str(DRIVER), str(root), "sigterm-actions"],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr
    actions = dict(line.split() for line in result.stdout.splitlines())
    assert actions == {
        "parent": "handler",
        "fork": "default",
        "forkserver": "default",
        "spawn": "default",
        "own-run": "handler",
    }
    # the workers' events joined the parent's run
    assert len([e for e in read_events(root / "fanout") if e.get("j") == -1]) == 3
