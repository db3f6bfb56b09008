"""One run, one writer per rank and segment (D4): processes started at the same instant with one
run id never share a segment; a killed writer's lock goes with it."""

from __future__ import annotations

import contextlib
import json
import multiprocessing as mp
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

import gemmalog
from tests.helpers import read_events

FORK = mp.get_context("fork")
WRITERS = 4
ROUNDS = 5


def _start(root: str, who: int, out: str, ready: Any, tried: Any) -> None:
    """Start run 'same' at the barrier; hold it (or the refusal) until every process tried."""
    ready.wait()
    try:
        run = gemmalog.initialize(root=root, run_id="same", capture_stdlib=False)
    except gemmalog.ConfigError as exc:
        Path(out).write_text(json.dumps({"pid": os.getpid(), "refused": str(exc)}))
        tried.wait()
        os._exit(0)
    for step in range(1, 21):
        gemmalog.log_training_progress(step, {"who": float(who)})
    tried.wait()  # every other process tried while this one held the run
    gemmalog.shutdown()
    Path(out).write_text(json.dumps({"pid": os.getpid(), "segment": run.segment, "who": who}))
    os._exit(0)


def test_concurrent_starts_of_one_run_id_get_one_writer_each_segment(root: Path) -> None:
    winners = []
    for round_ in range(ROUNDS):
        ready, tried = FORK.Barrier(WRITERS), FORK.Barrier(WRITERS)
        outs = [root.parent / f"out-{round_}-{who}.json" for who in range(WRITERS)]
        procs = [
            FORK.Process(target=_start, args=(str(root), who, str(outs[who]), ready, tried))
            for who in range(WRITERS)
        ]
        for p in procs:
            p.start()
        for p in procs:
            p.join(120)
            assert p.exitcode == 0
        results = [json.loads(o.read_text()) for o in outs]
        wrote = [r for r in results if "segment" in r]
        refused = [r for r in results if "refused" in r]
        assert len(wrote) == 1 and len(refused) == WRITERS - 1, results
        winner = wrote[0]
        assert winner["segment"] == round_  # each round resumes the run as its next segment
        for r in refused:
            assert "run 'same' (rank 0) is being written by process" in r["refused"]
            assert f"process {winner['pid']} on" in r["refused"]
        winners.append(winner)
    run_dir = root / "same"
    manifest = orjson.loads((run_dir / "run.json").read_bytes())
    assert [(s["segment"], s["pid"], s["status"]) for s in manifest["segments"]] == [
        (w["segment"], w["pid"], "completed") for w in winners
    ]
    # each segment holds the metrics of its one writer, each step once
    by_segment: dict[int, list[tuple[int, float]]] = {}
    for e in read_events(run_dir):
        if e["kind"] == "metrics":
            by_segment.setdefault(e.get("segment", 0), []).append((e["step"], e["metrics"]["who"]))
    assert by_segment == {
        w["segment"]: [(step, float(w["who"])) for step in range(1, 21)] for w in winners
    }
    assert sorted(p.name for p in run_dir.glob("events.*.jsonl")) == ["events.0.jsonl"]
    con = gemmalog.connect(run_dir)
    rows = con.execute(
        "SELECT step, count(*) FROM metrics WHERE name = 'who' GROUP BY step ORDER BY step"
    ).fetchall()
    assert rows == [(step, 1) for step in range(1, 21)]  # the latest segment's value wins


HOLDER = """
import os, sys, time, gemmalog
run = gemmalog.initialize(root=sys.argv[1], run_id="held", capture_stdlib=False)
gemmalog.log_training_progress(1, {"loss": 1.0})
gemmalog.flush()
if os.fork() == 0:  # a worker that outlives the trainer
    time.sleep(60)
    os._exit(0)
print("holding", flush=True)
time.sleep(60)
"""


def test_a_killed_writer_leaves_no_stale_lock_even_with_a_live_forked_worker(
    root: Path,
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GEMMALOG_")}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(root)],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "holding\n"
        with pytest.raises(gemmalog.ConfigError, match=f"process {holder.pid} on"):
            gemmalog.initialize(root=root, run_id="held")
        holder.kill()  # SIGKILL: no shutdown, no release; the forked worker lives on
        holder.wait(30)
        run = gemmalog.initialize(root=root, run_id="held")
        gemmalog.log_training_progress(2, {"loss": 0.5})
        gemmalog.shutdown()
    finally:
        with contextlib.suppress(ProcessLookupError):  # the forked worker, in its session
            os.killpg(holder.pid, signal.SIGKILL)
        holder.wait(30)
    assert run.segment == 1
    manifest = orjson.loads((run.dir / "run.json").read_bytes())
    assert [s["status"] for s in manifest["segments"]] == ["unfinished", "completed"]
    steps = [
        (e.get("segment", 0), e["step"]) for e in read_events(run.dir) if e["kind"] == "metrics"
    ]
    assert steps == [(0, 1), (1, 2)]
    # nothing holds the run now: a third start resumes it again
    again = gemmalog.initialize(root=root, run_id="held")
    gemmalog.shutdown()
    assert again.segment == 2
