"""One run, one directory; envelope fields are gemmalog's (issue 11 item 3; defects 2, 3, 8)."""

from __future__ import annotations

import datetime
import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

import gemmalog
from tests.helpers import read_events

REPO = Path(__file__).resolve().parents[1]
LONG = "grpo-gemma-3-1b-it-gsm8k-lr1e-6-beta0.04-num_generations8-max_completion_length256-seed1"


def test_long_names_started_in_the_same_second_get_their_own_directories(root: Path) -> None:
    runs = []
    for name in (LONG, LONG, "x" * 300):
        runs.append(gemmalog.initialize(root=root, run_name=name))
        gemmalog.shutdown()
    assert len({r.dir for r in runs}) == 3
    assert sorted(p.name for p in root.iterdir()) == sorted(r.id for r in runs)
    for run in runs:
        assert len(run.id) <= 100
        assert run.segment == 0
        manifest = orjson.loads((run.dir / "run.json").read_bytes())
        assert manifest["id"] == run.id and manifest["status"] == "completed"


@pytest.mark.parametrize(
    "ids", [("实验一", "实验二"), ("a b", "a/b", "a\x00b", "a-b"), ("run", "..", ".")]
)
def test_explicit_ids_that_sanitize_alike_never_share_a_directory(
    root: Path, ids: tuple[str, ...]
) -> None:
    dirs = {}
    for run_id in ids:
        run = gemmalog.initialize(root=root, run_id=run_id)
        gemmalog.log_training_progress(1, {"loss": 1.0})
        gemmalog.shutdown()
        assert run.segment == 0, run_id  # a new run, not a silent resume of another
        assert run.dir.parent == root
        dirs[run_id] = run.dir
    assert len(set(dirs.values())) == len(ids)
    # the same id finds its directory again: that is a resume
    again = gemmalog.initialize(root=root, run_id=ids[0])
    gemmalog.shutdown()
    assert again.dir == dirs[ids[0]] and again.segment == 1
    con = gemmalog.connect(root)
    assert sorted(
        r[0] for r in con.execute("SELECT DISTINCT run FROM events").fetchall()
    ) == sorted(ids)


def test_a_directory_owned_by_another_run_is_an_error_not_a_resume(root: Path) -> None:
    first = gemmalog.initialize(root=root, run_id="owned")
    gemmalog.shutdown()
    manifest = orjson.loads((first.dir / "run.json").read_bytes())
    manifest["id"] = "someone-else"
    (first.dir / "run.json").write_bytes(orjson.dumps(manifest))
    with pytest.raises(gemmalog.ConfigError, match="belongs to run 'someone-else'"):
        gemmalog.initialize(root=root, run_id="owned")


SLURM_SCRIPT = """
import sys, gemmalog
run = gemmalog.initialize(root=sys.argv[1], run_name=sys.argv[2])
for step in range(1, 4):
    gemmalog.log_training_progress(step, {"loss": float(sys.argv[3]) * step})
gemmalog.shutdown()
print(run.id)
"""


def _slurm_run(root: Path, name: str, lr: str, env: dict[str, str]) -> str:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("GEMMALOG_", "SLURM_"))}
    result = subprocess.run(
        [sys.executable, "-c", SLURM_SCRIPT, str(root), name, lr],
        env={**base, "PYTHONPATH": str(REPO), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout.strip()


def test_sequential_runs_in_one_slurm_allocation_stay_separate(root: Path) -> None:
    """Defects note 3: two trainings in one `sbatch --ntasks=2` script, without srun."""
    env = {"SLURM_JOB_ID": "4242", "SLURM_NTASKS": "2", "SLURM_PROCID": "0"}
    first = _slurm_run(root, "lr1", "1", env)
    second = _slurm_run(root, "lr2", "2", env)
    assert first != second and first.startswith("lr1-") and second.startswith("lr2-")
    con = gemmalog.connect(root)
    curves = con.execute(
        "SELECT r.name, list(m.value ORDER BY m.step) FROM metrics m JOIN runs r USING (run) "
        "GROUP BY ALL ORDER BY 1"
    ).fetchall()
    assert curves == [("lr1", [1.0, 2.0, 3.0]), ("lr2", [2.0, 4.0, 6.0])]


def test_the_ranks_of_one_srun_step_share_a_run_named_after_run_name(root: Path) -> None:
    step = {
        "SLURM_JOB_ID": "77",
        "SLURM_STEP_ID": "3",
        "SLURM_NTASKS": "2",
        "SLURM_STEP_NUM_TASKS": "2",
    }
    ids = {_slurm_run(root, "sweep", "1", {**step, "SLURM_PROCID": str(rank)}) for rank in (0, 1)}
    assert ids == {"sweep-slurm-77-3"}
    shards = sorted(p.name for p in (root / "sweep-slurm-77-3").glob("events.*.jsonl"))
    assert shards == ["events.0.jsonl", "events.1.jsonl"]
    # a later step of the same job is another run
    assert _slurm_run(root, "sweep", "1", {**step, "SLURM_STEP_ID": "4", "SLURM_PROCID": "0"}) == (
        "sweep-slurm-77-4"
    )


def test_user_fields_never_replace_the_envelope_and_never_lose_the_event(root: Path) -> None:
    """Defects note 8: ts=, run=, level=, rank=, v= and bind(ts=...)."""
    run = gemmalog.initialize(root=root, run_name="envelope")
    log = gemmalog.get_training_logger()
    stamp = datetime.datetime(2026, 1, 2, 3, 4, 5)
    log.info("stamp", ts=stamp)
    log.info("starting experiment", run="exp-3")
    log.warning("curriculum advanced", level=3)
    log.info("worker", rank="local-0", v="2")
    with gemmalog.bound(ts="bound-stamp", step=5):
        log.info("bound")
        log.info("bound again")
    gemmalog.shutdown()
    logs = {e["event"]: e for e in read_events(run.dir) if e["kind"] == "log"}
    for event in logs.values():
        assert event["run"] == run.id and event["rank"] == 0 and event["v"] == 1
        assert isinstance(event["ts"], float)
    assert logs["stamp"]["ts_"] == stamp.isoformat()
    assert logs["starting experiment"]["run_"] == "exp-3"
    assert logs["curriculum advanced"]["level"] == "warning"
    assert logs["curriculum advanced"]["level_"] == 3
    assert logs["worker"]["rank_"] == "local-0" and logs["worker"]["v_"] == "2"
    assert logs["bound"]["ts_"] == "bound-stamp" and logs["bound again"]["step"] == 5
    con = gemmalog.connect(run.dir)
    assert con.execute(
        "SELECT count(*), count(DISTINCT run) FROM events WHERE kind = 'log'"
    ).fetchone() == (
        6,
        1,
    )
    assert con.execute("SELECT count(*) FROM runs").fetchone() == (1,)


def test_fields_named_like_columns_with_values_the_views_cannot_read_are_renamed(
    root: Path,
) -> None:
    """A user field named like a declared column (`step="warmup"`, `rewards=[0.1]`,
    `kind=None`) used to make DuckDB drop the whole line."""
    run = gemmalog.initialize(root=root, run_name="columns")
    log = gemmalog.get_training_logger()
    log.info("warming up", step="warmup", rewards=[0.1], values="abc", kind=None)
    log.info("fine", step=3, rewards={"f": 0.5}, epoch=1.5)
    with gemmalog.bound(epoch="first"):
        log.info("bound epoch")
    gemmalog.log_model_output("q", "4", "<answer>4</answer>", step=2, length_chars="long")
    gemmalog.shutdown()
    by_event = {e["event"]: e for e in read_events(run.dir)}
    warm = by_event["warming up"]
    assert warm["step_"] == "warmup" and "step" not in warm
    assert warm["rewards_"] == [0.1] and warm["values_"] == "abc"
    assert warm["kind"] == "log" and warm["kind_"] is None
    assert by_event["fine"]["step"] == 3 and by_event["fine"]["rewards"] == {"f": 0.5}
    assert by_event["bound epoch"]["epoch_"] == "first"
    con = gemmalog.connect(run.dir)
    lines = sum(1 for shard in run.dir.glob("events.*.jsonl") for _ in shard.open("rb"))
    assert con.execute("SELECT count(*) FROM events").fetchone() == (lines,)
    assert con.execute("SELECT count(*) FROM gemmalog_read_errors").fetchone() == (0,)
    assert con.execute("SELECT count(*) FROM completions").fetchone() == (1,)
