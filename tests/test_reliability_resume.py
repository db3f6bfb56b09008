"""Resume: initialize(run_id=<existing>) continues the run as a new segment; the views give
one history in which the later segment wins for steps logged twice.

Simulated here with the public logging API (two segments, the first one dying mid-run);
tests/test_resume_trl.py does it with a real GRPOTrainer killed by SIGTERM and SIGKILL and
resumed from its checkpoints (slow).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson

import gemmalog
from tests.helpers import read_events

CRASH = """
import os, gemmalog
gemmalog.initialize(root={root!r}, run_id="resumed", capture_stdlib=False)
for step in range(10):
    gemmalog.log_training_progress(step, {{"loss": float(step)}})
    gemmalog.log_model_output(question="q", true_answer="1", model_output="0", correct=False,
                              rewards={{"acc": 0.0}}, step=step)
gemmalog.flush()
os._exit(137)  # dies like an OOM kill: no shutdown, run.json still says running
"""


def segment_one(root: Path) -> None:
    # the checkpoint was at step 6: steps 6..9 are logged again, then 10..11 are new
    run = gemmalog.initialize(root=str(root), run_id="resumed", capture_stdlib=False)
    assert run.segment == 1
    for step in range(6, 12):
        gemmalog.log_training_progress(step, {"loss": 100.0 + step})
        gemmalog.log_model_output(
            question="q",
            true_answer="1",
            model_output="1",
            correct=True,
            rewards={"acc": 1.0},
            step=step,
        )
    gemmalog.shutdown()


def test_resume_continues_the_run_as_a_new_segment(root: Path) -> None:
    subprocess.run([sys.executable, "-c", CRASH.format(root=str(root))], timeout=60, check=False)
    segment_one(root)
    run_dir = root / "resumed"
    assert [p.name for p in run_dir.glob("events.*.jsonl")] == ["events.0.jsonl"]
    events = read_events(run_dir)
    assert [e.get("segment", 0) for e in events if e["kind"] == "run_start"] == [0, 1]
    assert all(e["segment"] == 1 for e in events if e["kind"] == "run_end")
    m = orjson.loads((run_dir / "run.json").read_bytes())
    assert m["segment"] == 1 and m["status"] == "completed"
    assert [(s["segment"], s["status"]) for s in m["segments"]] == [
        (0, "unfinished"),
        (1, "completed"),
    ]
    assert m["start"] == m["segments"][0]["start"] < m["segments"][1]["start"]
    con = gemmalog.connect(run_dir)
    loss = con.execute(
        "SELECT step, value FROM metrics WHERE name = 'loss' ORDER BY step"
    ).fetchall()
    assert loss == [(s, float(s)) for s in range(6)] + [(s, 100.0 + s) for s in range(6, 12)]
    assert con.execute("SELECT count(*), count(DISTINCT step) FROM completions").fetchone() == (
        12,
        12,
    )
    assert con.execute("SELECT sum(correct), sum(total) FROM accuracy").fetchone() == (6, 12)
    assert con.execute("SELECT count(*) FROM rewards").fetchone() == (12,)
    # the raw history is still there: every line of both segments
    assert con.execute(
        "SELECT segment, count(*) FROM events WHERE kind = 'metrics' GROUP BY ALL ORDER BY ALL"
    ).fetchall() == [(0, 10), (1, 6)]
    assert con.execute("SELECT status, steps FROM runs").fetchone() == ("completed", 11)
    con.close()


def test_a_new_run_id_is_segment_zero_and_writes_no_segment_field(root: Path) -> None:
    run = gemmalog.initialize(root=str(root), run_id="fresh")
    gemmalog.log_training_progress(1, {"loss": 1.0})
    gemmalog.shutdown()
    assert run.segment == 0
    assert all("segment" not in e for e in read_events(run.dir))
    m = orjson.loads((run.dir / "run.json").read_bytes())
    assert [s["segment"] for s in m["segments"]] == [0]
    con = gemmalog.connect(run.dir)
    assert con.execute("SELECT DISTINCT segment FROM events").fetchall() == [(0,)]
    con.close()


def test_tensorboard_of_a_resumed_run_is_one_curve(root: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    config = str(Path(__file__).resolve().parents[1] / "configs" / "gemma_logging.yaml")
    gemmalog.initialize(config, root=str(root), run_id="tb", capture_stdlib=False)
    for step in range(1, 7):
        gemmalog.log_training_progress(step, {"loss": float(step)})
    gemmalog.shutdown()
    run = gemmalog.initialize(config, root=str(root), run_id="tb", capture_stdlib=False)
    assert run.segment == 1
    for step in range(4, 9):  # the checkpoint was at step 3
        gemmalog.log_training_progress(step, {"loss": 100.0 + step})
    gemmalog.shutdown()
    acc = EventAccumulator(str(run.dir / "logs" / "tensorboard"), size_guidance={"scalars": 0})
    acc.Reload()
    loss = [(s.step, s.value) for s in acc.Scalars("train/loss")]
    assert loss == [(s, float(s)) for s in range(1, 4)] + [(s, 100.0 + s) for s in range(4, 9)]
    con = gemmalog.connect(run.dir)
    assert (
        con.execute("SELECT step, value FROM metrics WHERE name = 'loss' ORDER BY step").fetchall()
        == loss
    )
    con.close()
