"""`gemmalog export --to trackio|wandb RUN`: the run replayed under TRL's names, read back
through trackio's own storage and W&B's own record schema, compared value by value with the
JSONL."""

from __future__ import annotations

import json
import math
import os
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

import gemmalog

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(REPO), "WANDB_MODE": "offline", "HF_HUB_OFFLINE": "1"}


def make_run(root: Path) -> Path:
    """Metrics every second step (as TRL's logging_steps=2), an evaluation at step 4,
    completions at every step, two reward functions, advantages at every step but the
    first (as the TRL callback logs them; the first step's samples have none)."""
    run = gemmalog.initialize(root=str(root), run_id="grpo-run", capture_stdlib=False)
    for step in range(1, 7):
        for i in range(3):
            advantage = {} if step == 1 else {"advantage": (i - 1) * 0.75 + step / 8}
            gemmalog.log_model_output(
                f"question {step}",
                "4",
                f"<answer>{(step + i) % 4}</answer> because",
                step=step,
                sample=i,
                prompt=f"prompt {step}",
                rewards={"format": 1.0, "correct": float((step + i) % 4 == 0)},
                **advantage,
                **({"advantage_source": "trl"} if advantage else {}),
            )
        if step % 2 == 0:
            gemmalog.log_training_progress(
                step,
                {
                    "loss": 1.0 / step,
                    "reward": 0.25 * step,
                    "rewards/correct/mean": 0.1 * step,
                    "completions/mean_length": 20.0 + step,
                },
            )
    gemmalog.log_model_output(
        "eval q",
        "4",
        "<answer>4</answer>",
        step=4,
        phase="eval",
        rewards={"format": 1.0, "correct": 1.0},
    )
    gemmalog.log_training_progress(4, {"loss": 0.7, "reward": 1.0}, phase="eval")
    gemmalog.shutdown()
    return run.dir


def expected(run_dir: Path) -> tuple[dict[int, dict[str, Any]], dict[int, dict[str, list]]]:
    """What TRL's report_to would have logged, from the JSONL itself."""
    events = [orjson.loads(line) for line in (run_dir / "events.0.jsonl").read_bytes().splitlines()]
    metrics: dict[int, dict[str, Any]] = {}
    for e in events:
        if e["kind"] == "metrics":
            logged = metrics.setdefault(e["step"], {"train/global_step": e["step"]})
            logged.update({f"{e.get('phase') or 'train'}/{k}": v for k, v in e["metrics"].items()})
    logged_steps = sorted(metrics)
    tables: dict[int, dict[str, list]] = {}
    for e in events:
        if e["kind"] == "model_output":
            at = next(s for s in logged_steps if s >= e["step"])
            key = "completions" if e["phase"] == "train" else f"{e['phase']}/completions"
            tables.setdefault(at, {}).setdefault(key, []).append(
                {
                    "step": e["step"],
                    "prompt": e.get("prompt") or e["question"],
                    "completion": e["model_output"],
                    **e["rewards"],
                    "advantage": e.get("advantage"),
                }
            )
    logged = [r["advantage"] for t in tables.values() for rows in t.values() for r in rows]
    assert None in logged and len({a for a in logged if a is not None}) > 3  # some, not all
    return metrics, tables


def export(*args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "gemmalog", "export", *args],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def _missing_is_none(row: dict[str, Any]) -> dict[str, Any]:
    """A table row as read back, a missing float as None: the DataFrame holds it as NaN,
    which trackio stores as the text 'NaN' and W&B's table file as JSON's NaN."""
    return {
        k: None if v == "NaN" or (isinstance(v, float) and math.isnan(v)) else v
        for k, v in row.items()
    }


def test_trackio_reads_back_the_run(root: Path, tmp_path: Path) -> None:
    pytest.importorskip("trackio")
    run = make_run(root)
    store = tmp_path / "trackio"
    export("--to", "trackio", str(run), "--project", "grpo", "--dir", str(store))
    reader = (
        "import json, sys\n"
        "from trackio.sqlite_storage import SQLiteStorage\n"
        "print(json.dumps({'logs': SQLiteStorage.get_logs('grpo', 'grpo-run'),\n"
        "                  'runs': SQLiteStorage.get_runs('grpo')}, default=str))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", reader],
        env={**ENV, "TRACKIO_DIR": str(store)},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    read = json.loads(out.strip().splitlines()[-1])
    assert read["runs"] == ["grpo-run"]
    metrics, tables = expected(run)
    assert [log["step"] for log in read["logs"]] == sorted(metrics)
    for log in read["logs"]:
        step = log["step"]
        got_tables = {
            k: [_missing_is_none(row) for row in v["_value"]]
            for k, v in log.items()
            if isinstance(v, dict)
        }
        got_metrics = {
            k: v for k, v in log.items() if k not in got_tables and k not in ("step", "timestamp")
        }
        assert got_metrics == metrics[step]
        assert got_tables == tables[step]
    assert "completions" in read["logs"][0] and "eval/completions" in read["logs"][1]


def _records(path: Path) -> list[bytes]:
    """The records of a .wandb file (LevelDB log framing: 32 KiB blocks, 7-byte headers)."""
    data = path.read_bytes()
    assert data[:4] == b":W&B"
    out, pending, pos, block = [], b"", 7, 32768
    while pos + 7 <= len(data):
        if block - pos % block < 7:
            pos += block - pos % block
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        chunk = data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind == 1:
            out.append(chunk)
        elif kind == 2:
            pending = chunk
        elif kind == 3:
            pending += chunk
        elif kind == 4:
            out.append(pending + chunk)
    return out


def test_wandb_offline_run_reads_back_and_is_ready_to_sync(root: Path, tmp_path: Path) -> None:
    pytest.importorskip("wandb")
    from wandb.proto import wandb_internal_pb2

    run = make_run(root)
    out = export("--to", "wandb", str(run), "--project", "grpo", "--dir", str(tmp_path / "wb"))
    folder = Path(out.split(" (wandb sync", 1)[0].strip().splitlines()[-1])
    assert folder.is_dir() and folder.name.startswith("offline-run-")
    history: dict[int, dict[str, Any]] = {}
    names = []
    for data in _records(next(folder.glob("run-*.wandb"))):
        record = wandb_internal_pb2.Record()
        record.ParseFromString(data)
        kind = record.WhichOneof("record_type")
        if kind == "run":
            names.append((record.run.display_name, record.run.project))
        if kind == "history":
            items: dict[str, Any] = {}
            for item in record.history.item:  # a nested value comes as one item per leaf
                path = [item.key] if item.key else list(item.nested_key)
                node = items
                for part in path[:-1]:
                    node = node.setdefault(part, {})
                node[path[-1]] = json.loads(item.value_json)
            assert items["_step"] == record.history.step.num
            history[record.history.step.num] = {
                k: v
                for k, v in items.items()
                if not k.startswith("_")  # _step, _runtime...
            }
    assert names[0] == ("grpo-run", "grpo")
    metrics, tables = expected(run)
    assert sorted(history) == sorted(metrics)
    for step, logged in history.items():
        got_tables = {}
        for key in [k for k, v in logged.items() if isinstance(v, dict)]:
            ref = logged.pop(key)
            assert ref["_type"] == "table-file"
            table = json.loads((folder / "files" / ref["path"]).read_text())
            # TRL's columns, in TRL's order: the advantage comes after the reward functions
            assert table["columns"] == [
                "step",
                "prompt",
                "completion",
                "format",
                "correct",
                "advantage",
            ]
            got_tables[key] = [
                _missing_is_none(dict(zip(table["columns"], row, strict=True)))
                for row in table["data"]
            ]
        assert logged == metrics[step]
        assert got_tables == tables[step]
    dry = subprocess.run(
        [str(Path(sys.executable).parent / "wandb"), "sync", "--dry-run", str(folder)],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert "Would sync 1 run" in dry.stdout + dry.stderr


def test_export_of_a_root_with_two_runs_is_refused(root: Path) -> None:
    for name in ("a", "b"):
        gemmalog.initialize(root=str(root), run_id=name, capture_stdlib=False)
        gemmalog.log_training_progress(1, {"loss": 1.0})
        gemmalog.shutdown()
    result = subprocess.run(
        [sys.executable, "-m", "gemmalog", "export", "--to", "wandb", str(root)],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1
    assert "names 2 runs (a, b); export one run at a time" in result.stderr
    assert "Traceback" not in result.stderr
