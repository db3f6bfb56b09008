"""Ranks of one launch share one run whatever the launcher (W1): real launcher processes start
real rank processes with each launcher's environment, and the runs are read back."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

import gemmalog
from gemmalog.run import LAUNCH_WINDOW
from tests.helpers import read_events

REPO = Path(__file__).resolve().parents[1]

# A rank stays until every rank its launcher started has started its run, as the ranks of
# a training do (they meet at the rendezvous): a rank that ended before another started is
# no sibling of it.
RANK = """
import os, sys, time, gemmalog
run = gemmalog.initialize(root=sys.argv[1], run_name="train", capture_stdlib=False)
barrier = os.environ["TEST_BARRIER"]
open(os.path.join(barrier, str(os.getpid())), "w").close()
end = time.monotonic() + 120
while len(os.listdir(barrier)) < int(os.environ["TEST_PEERS"]) and time.monotonic() < end:
    time.sleep(0.05)
for step in (1, 2, 3):
    gemmalog.log_training_progress(step, {"loss": float(run.rank + 1) * step})
gemmalog.shutdown()
print(run.id, run.rank)
"""

# Stands in for torchrun's agent, DeepSpeed's launch.py, mpirun: the ranks' parent process.
LAUNCHER = """
import json, os, subprocess, sys, tempfile, psutil
root, rank_code, envs = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
meet = {"TEST_BARRIER": tempfile.mkdtemp(), "TEST_PEERS": str(len(envs))}
procs = [
    subprocess.Popen([sys.executable, "-c", rank_code, root], env={**os.environ, **env, **meet},
                     stdout=subprocess.PIPE, text=True)
    for env in envs
]
ranks = [p.communicate(timeout=120)[0].split() for p in procs]
print(json.dumps({"start": psutil.Process().create_time(), "ranks": ranks,
                  "codes": [p.returncode for p in procs]}))
"""

SCRUB = ("GEMMALOG_", "RANK", "LOCAL_", "WORLD_SIZE", "MASTER_", "TORCHELASTIC", "SLURM_", "OMPI_")


def _base_env() -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith((*SCRUB, "PMI", "MPI_", "GROUP_", "ROLE_"))
    }
    return {**env, "PYTHONPATH": str(REPO)}


def start_launcher(root: Path, envs: list[dict[str, str]]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", LAUNCHER, str(root), RANK, json.dumps(envs)],
        env=_base_env(),
        stdout=subprocess.PIPE,
        text=True,
    )


def finish(launcher: subprocess.Popen[str]) -> dict[str, object]:
    out, _ = launcher.communicate(timeout=300)
    assert launcher.returncode == 0
    result = json.loads(out)
    assert result["codes"] == [0] * len(result["ranks"]), result
    return dict(result)


def launch(root: Path, envs: list[dict[str, str]]) -> dict[str, object]:
    return finish(start_launcher(root, envs))


Env = Callable[[int, int], dict[str, str]]  # (rank, launch) -> the launcher's variables


def _torch(rank: int, launch: int) -> dict[str, str]:
    return {
        "RANK": str(rank),
        "LOCAL_RANK": str(rank),
        "WORLD_SIZE": "2",
        "LOCAL_WORLD_SIZE": "2",
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": "29517",  # the same port for both launches, as a fixed config has
    }


LAUNCHERS: dict[str, Env] = {
    "deepspeed": _torch,
    "accelerate": lambda r, n: (
        {k: v for k, v in _torch(r, n).items() if k != "LOCAL_WORLD_SIZE"}
        | {"MASTER_ADDR": "localhost", "ACCELERATE_MIXED_PRECISION": "no"}
    ),
    "torchrun-static": lambda r, n: _torch(r, n) | {"TORCHELASTIC_RUN_ID": "none"},
    "torchrun": lambda r, n: _torch(r, n) | {"TORCHELASTIC_RUN_ID": f"c0ffee{n}"},
    "slurm-srun": lambda r, n: {
        "SLURM_JOB_ID": "91",
        "SLURM_STEP_ID": str(n),
        "SLURM_PROCID": str(r),
        "SLURM_LOCALID": str(r),
        "SLURM_NTASKS": "2",
        "SLURM_STEP_NUM_TASKS": "2",
    },
    "openmpi": lambda r, n: {
        "OMPI_COMM_WORLD_RANK": str(r),
        "OMPI_COMM_WORLD_LOCAL_RANK": str(r),
        "OMPI_COMM_WORLD_SIZE": "2",
        "OMPI_COMM_WORLD_LOCAL_SIZE": "2",
    },
    "openmpi-pmix": lambda r, n: {
        "OMPI_COMM_WORLD_RANK": str(r),
        "OMPI_COMM_WORLD_SIZE": "2",
        "PMIX_NAMESPACE": f"prterun-vm-{4000 + n}@1",
    },
    "mpich": lambda r, n: {
        "PMI_RANK": str(r),
        "PMI_SIZE": "2",
        "MPI_LOCALRANKID": str(r),
        "MPI_LOCALNRANKS": "2",
    },
}


@pytest.mark.parametrize("name", sorted(LAUNCHERS))
def test_the_ranks_of_each_launch_share_one_run(root: Path, name: str) -> None:
    env = LAUNCHERS[name]
    runs = []
    for n in range(2):  # two launches, one after the other: two runs
        result = launch(root, [env(rank, n) for rank in (0, 1)])
        ranks = result["ranks"]
        assert isinstance(ranks, list)
        assert sorted(int(r) for _, r in ranks) == [0, 1]
        ids = {run_id for run_id, _ in ranks}
        assert len(ids) == 1, (name, ranks)  # one run for both ranks
        runs.append(ids.pop())
    assert runs[0] != runs[1]
    assert all(r.startswith("train-") for r in runs)
    assert sorted(p.name for p in root.iterdir()) == sorted(runs)
    for run_id in runs:
        run_dir = root / run_id
        shards = sorted(p.name for p in run_dir.glob("events.*.jsonl"))
        assert shards == ["events.0.jsonl", "events.1.jsonl"]
        manifest = orjson.loads((run_dir / "run.json").read_bytes())
        assert manifest["id"] == run_id and manifest["world_size"] == 2
        assert manifest["status"] == "completed" and manifest["segment"] == 0
        losses = sorted(
            (e["rank"], e["step"], e["metrics"]["loss"])
            for e in read_events(run_dir)
            if e["kind"] == "metrics"
        )
        assert losses == [(r, s, float(r + 1) * s) for r in (0, 1) for s in (1, 2, 3)]
    con = gemmalog.connect(root)
    assert con.execute("SELECT run, name FROM runs ORDER BY run").fetchall() == [
        (r, "train") for r in sorted(runs)
    ]
    assert con.execute(
        "SELECT run, count(DISTINCT rank) FROM metrics GROUP BY run ORDER BY run"
    ).fetchall() == [(r, 2) for r in sorted(runs)]


def _node(rank: int, port: str) -> dict[str, str]:
    return {
        "RANK": str(rank),
        "LOCAL_RANK": "0",
        "WORLD_SIZE": "2",
        "LOCAL_WORLD_SIZE": "1",
        "MASTER_ADDR": "10.1.2.3",
        "MASTER_PORT": port,
    }


def test_ranks_on_two_nodes_share_a_run_by_rendezvous_and_launch_window(root: Path) -> None:
    """Two launchers (one per node) started together, each with one rank: the rule of
    docs/reliability.md. They share a run when both launchers started in one
    LAUNCH_WINDOW (the limit: a launch straddling a window's edge splits in two)."""
    nodes = [start_launcher(root, [_node(rank, "29600")]) for rank in (0, 1)]
    results = [finish(node) for node in nodes]
    ids = [r["ranks"][0][0] for r in results]  # type: ignore[index]
    windows = [int(float(r["start"]) // LAUNCH_WINDOW) for r in results]  # type: ignore[arg-type]
    if windows[0] == windows[1]:
        assert ids[0] == ids[1]
        run_dir = root / str(ids[0])
        assert sorted(p.name for p in run_dir.glob("events.*.jsonl")) == [
            "events.0.jsonl",
            "events.1.jsonl",
        ]
    else:
        assert ids[0] != ids[1]
    # another rendezvous port is another launch, in the same window or not
    other = launch(root, [_node(0, "29601")])
    assert other["ranks"][0][0] not in ids  # type: ignore[index]


# A sweep script or a notebook: one long-lived parent starts the ranks itself, twice.
DRIVER = """
import json, os, subprocess, sys, tempfile
root, rank_code = sys.argv[1], sys.argv[2]
env = {**os.environ, "WORLD_SIZE": "2", "LOCAL_WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1",
       "MASTER_PORT": "29511"}
out = []
for launch in range(2):
    meet = {"TEST_BARRIER": tempfile.mkdtemp(), "TEST_PEERS": "2"}
    procs = [subprocess.Popen([sys.executable, "-c", rank_code, root],
                              env={**env, **meet, "RANK": str(r), "LOCAL_RANK": str(r)},
                              stdout=subprocess.PIPE, text=True) for r in range(2)]
    out.append([p.communicate(timeout=120)[0].split() for p in procs])
print(json.dumps(out))
"""


def test_two_launches_by_one_parent_are_two_runs(tmp_path: Path) -> None:
    """The earlier launch's ranks have ended when the parent starts the next: its ranks
    share a run of their own (the first experiment is not hidden under a later segment)."""
    root = tmp_path / "runs"
    done = subprocess.run(
        [sys.executable, "-c", DRIVER, str(root), RANK],
        env=_base_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    first, second = json.loads(done.stdout)
    assert {r[0] for r in first} != {r[0] for r in second}
    for launch in (first, second):
        assert len({r[0] for r in launch}) == 1 and sorted(r[1] for r in launch) == ["0", "1"]
    assert sorted(p.name for p in root.iterdir()) == sorted({first[0][0], second[0][0]})
