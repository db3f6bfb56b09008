"""Resume as users do it: a real GRPOTrainer run, killed, resumed from its checkpoint.

Three processes (tests/_trl_resume_child.py) train one run id, 9 steps, a checkpoint every
3 steps:

- segment 0 pauses after logging step 5 (checkpoint-3 exists) and gets SIGTERM;
- segment 1 resumes from checkpoint-3, re-runs steps 4 and 5, pauses after step 8
  (checkpoint-6 exists) and gets SIGKILL;
- segment 2 resumes from checkpoint-6, re-runs steps 7 and 8 and finishes step 9.

Each kill waits for the child's own "paused" file, written after gemmalog.flush() once the
step's metrics were logged: no sleep decides what is on disk. Everything is read back with
its own reader: the DuckDB views (gemmalog.connect), the CSV with csv, the rebuilt CSV from
`gemmalog to-csv`, TensorBoard with its EventAccumulator, run.json and the JSONL with orjson.
"""

from __future__ import annotations

import csv
import json
import math
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

pytest.importorskip("trl")
pytestmark = pytest.mark.slow

import gemmalog  # noqa: E402
from tests.helpers import read_events  # noqa: E402

CHILD = Path(__file__).with_name("_trl_resume_child.py")
RUN_ID = "grpo-resume"
MAX_STEPS = 9
SAVE_STEPS = 3
BATCH = 4  # completions a step (per_device_train_batch_size)
PAUSES = ((5, signal.SIGTERM), (8, signal.SIGKILL))
CHILD_TIMEOUT = 600.0  # seconds; a loaded 2-core machine imports trl in ~10-30 s


def _start(tmp: Path, pause_at: int) -> subprocess.Popen[bytes]:
    log = (tmp / f"child-{pause_at}.log").open("wb")
    return subprocess.Popen(
        [
            sys.executable,
            str(CHILD),
            str(tmp / "runs"),
            RUN_ID,
            str(tmp / "trainer"),
            str(MAX_STEPS),
            str(SAVE_STEPS),
            str(pause_at),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=Path(__file__).resolve().parents[1],
        env=_child_env(),
    )


def _child_env() -> dict[str, str]:
    """The parent's environment without what would change the run or the ranks."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("GEMMALOG_") and k not in {"RANK", "WORLD_SIZE", "LOCAL_RANK"}
    }
    return {**env, "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1"}


def _fail(tmp: Path, pause_at: int, why: str) -> None:
    tail = (tmp / f"child-{pause_at}.log").read_text(errors="replace")[-4000:]
    pytest.fail(f"segment pausing at {pause_at}: {why}\n{tail}")


def _kill_when_paused(tmp: Path, pause_at: int, sig: signal.Signals) -> int:
    child = _start(tmp, pause_at)
    marker = tmp / "trainer" / f"paused-{pause_at}"
    deadline = time.monotonic() + CHILD_TIMEOUT
    while not marker.exists():
        if child.poll() is not None:
            _fail(tmp, pause_at, f"exited with {child.returncode} before pausing")
        if time.monotonic() > deadline:
            child.kill()
            _fail(tmp, pause_at, "did not pause in time")
        time.sleep(0.05)
    # the pause is after on_log(pause_at), before that step's save: the last checkpoint
    # is the one before it, and training will restart from there
    checkpoint = tmp / "trainer" / f"checkpoint-{pause_at // SAVE_STEPS * SAVE_STEPS}"
    assert (checkpoint / "trainer_state.json").is_file()
    child.send_signal(sig)
    return child.wait(timeout=120)


@pytest.fixture(scope="module")
def resumed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, list[Any]]]:
    tmp = tmp_path_factory.mktemp("resume")
    codes = [_kill_when_paused(tmp, step, sig) for step, sig in PAUSES]
    assert codes == [-signal.SIGTERM, -signal.SIGKILL]
    last = _start(tmp, 0)
    if last.wait(timeout=CHILD_TIMEOUT) != 0:
        _fail(tmp, 0, f"exited with {last.returncode}")
    history = json.loads((tmp / "trainer" / "log_history.json").read_text())
    yield tmp / "runs" / RUN_ID, history


#: The steps each segment logged; the later segment wins a step logged twice.
SEGMENT_STEPS = {0: range(1, 6), 1: range(4, 9), 2: range(7, MAX_STEPS + 1)}
WINNER = {step: max(s for s, r in SEGMENT_STEPS.items() if step in r) for step in range(1, 10)}


def test_segments_and_statuses(resumed: Any) -> None:
    run_dir, _ = resumed
    manifest = orjson.loads((run_dir / "run.json").read_bytes())
    assert [(s["segment"], s["status"]) for s in manifest["segments"]] == [
        (0, "interrupted"),  # SIGTERM: gemmalog shut the segment down
        (1, "unfinished"),  # SIGKILL: nothing ran
        (2, "completed"),
    ]
    outputs = [e for e in read_events(run_dir) if e["kind"] == "model_output"]
    per_segment: dict[int, set[int]] = defaultdict(set)
    for e in outputs:
        per_segment[e.get("segment", 0)].add(e["step"])
    assert {s: sorted(v) for s, v in per_segment.items()} == {
        s: list(r) for s, r in SEGMENT_STEPS.items()
    }


def test_metrics_view_is_the_final_log_history_once(resumed: Any) -> None:
    run_dir, history = resumed
    con = gemmalog.connect(run_dir)
    assert (
        con.execute(
            "SELECT phase, step, name, count(*) FROM metrics GROUP BY ALL HAVING count(*) > 1"
        ).fetchall()
        == []
    )
    logged = {
        (step, name): value
        for step, name, value in con.execute(
            "SELECT step, name, value FROM metrics WHERE phase = 'train'"
        ).fetchall()
    }
    expected = {}
    for entry in history:  # the checkpoints carried the earlier segments' entries
        for key, value in entry.items():
            if key != "step" and isinstance(value, int | float) and not isinstance(value, bool):
                expected[(entry["step"], key)] = float(value)
    assert set(logged) == set(expected)
    for key, value in expected.items():
        assert logged[key] == pytest.approx(value, rel=1e-9, nan_ok=True), key
    assert sorted({s for s, _ in logged}) == list(range(1, MAX_STEPS + 1))
    # the progress counts continue across the resumes: 4 completions a step, each once
    totals = con.execute(
        "SELECT step, value FROM metrics WHERE phase = 'progress' AND name = 'total_answers' "
        "ORDER BY step"
    ).fetchall()
    assert totals == [(s, float(BATCH * s)) for s in range(1, MAX_STEPS + 1)]
    con.close()


def test_completions_and_rewards_of_rerun_steps_are_not_doubled(resumed: Any) -> None:
    run_dir, _ = resumed
    events = read_events(run_dir)
    con = gemmalog.connect(run_dir)
    rows = con.execute(
        "SELECT step, sample, model_output, rewards FROM completions ORDER BY step, sample"
    ).fetchall()
    assert [(step, sample) for step, sample, _, _ in rows] == [
        (step, i) for step in range(1, MAX_STEPS + 1) for i in range(BATCH)
    ]
    # each step's rows are those its last segment logged
    logged = {
        (e["step"], e["sample"], e.get("segment", 0)): e
        for e in events
        if e["kind"] == "model_output"
    }
    for step, sample, text, rewards in rows:
        event = logged[(step, sample, WINNER[step])]
        assert text == event["model_output"]
        assert dict(rewards) == pytest.approx(
            {k: math.nan if v == "NaN" else v for k, v in event["rewards"].items()}, nan_ok=True
        )
    names = {k for e in logged.values() for k in e["rewards"]}
    counts = con.execute("SELECT step, reward_fn, count(*) FROM rewards GROUP BY ALL").fetchall()
    assert sorted(counts) == sorted(
        (step, name, BATCH) for step in range(1, MAX_STEPS + 1) for name in names
    )
    correct = sum(
        1
        for e in logged.values()
        if e.get("segment", 0) == WINNER[e["step"]] and e["correct"] is True
    )
    total = BATCH * MAX_STEPS
    assert con.execute("SELECT sum(correct), sum(total) FROM accuracy").fetchone() == (
        correct,
        total,
    )
    # the final statistics count every step once too (restored from the logs at each resume)
    final = [e for e in events if e["kind"] == "run_end"][-1]["final_stats"]
    assert (final["correct_answers"], final["total_answers"]) == (correct, total)
    con.close()


def test_live_csv_keeps_every_segment_and_equals_to_csv(resumed: Any, tmp_path: Path) -> None:
    run_dir, _ = resumed
    live = run_dir / "logs" / "model_outputs.csv"
    with live.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    outputs = [e for e in read_events(run_dir) if e["kind"] == "model_output"]
    assert len(outputs) == sum(len(r) for r in SEGMENT_STEPS.values()) * BATCH
    # the seed configuration's columns: the question, its reference answer, then step and
    # correct; one row per model_output line of every segment, in the JSONL's order
    assert [(int(r["step"]), r["question"], r["answer"], r["correct"]) for r in rows] == [
        (e["step"], e["question"], e["true_answer"], str(e["correct"]).lower()) for e in outputs
    ]
    rebuilt = tmp_path / "rebuilt.csv"
    subprocess.run(
        [sys.executable, "-m", "gemmalog", "to-csv", str(run_dir), "-o", str(rebuilt)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    assert rebuilt.read_bytes() == live.read_bytes()


def test_tensorboard_shows_one_curve(resumed: Any) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_dir, history = resumed
    acc = EventAccumulator(
        str(run_dir / "logs" / "tensorboard"), size_guidance={"scalars": 0, "histograms": 0}
    )
    acc.Reload()
    tags = acc.Tags()
    assert "train/loss" in tags["scalars"] and "completion/length_chars" in tags["histograms"]
    for tag in tags["scalars"]:
        steps = [s.step for s in acc.Scalars(tag)]
        assert steps == sorted(set(steps)), tag  # each step once, in order
    for tag in tags["histograms"]:
        steps = [h.step for h in acc.Histograms(tag)]
        assert steps == sorted(set(steps)), tag
    loss = {s.step: s.value for s in acc.Scalars("train/loss")}
    assert sorted(loss) == list(range(1, MAX_STEPS + 1))
    for entry in history:
        if "loss" in entry:  # the values the final checkpointed history holds
            assert loss[entry["step"]] == pytest.approx(entry["loss"], abs=1e-6)
    lengths = [h.step for h in acc.Histograms("completion/length_chars")]
    assert lengths == list(range(1, MAX_STEPS + 1))
