"""A sink that fails is reported once and disabled; the JSONL and the other sinks keep every event."""

from __future__ import annotations

import csv
import errno
from pathlib import Path
from typing import Any

import orjson
import pytest
from tensorboard.backend.event_processing import event_accumulator as ea

import gemmalog
from gemmalog import running
from gemmalog.sinks.text import HandlerSink
from tests.helpers import read_events

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "gemma_logging.yaml"
STEPS = 12


def events(run_dir: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in (run_dir / "events.0.jsonl").read_bytes().splitlines()]


def session() -> None:
    for step in range(STEPS):
        gemmalog.log_training_progress(step, {"loss": 1.0 / (step + 1)})
        gemmalog.log_model_output(
            f"question {step}",
            str(step),
            f"<answer>{step}</answer>",
            step=step,
            rewards={"correctness": 2.0},
        )
        gemmalog.log_reward("correctness", [2.0], step=step)
        gemmalog.get_training_logger().info(f"step {step} done")
        if step % 4 == 3:
            gemmalog.flush()


def config_with(tmp_path: Path, old: str, new: str) -> Path:
    text = CONFIG.read_text()
    assert old in text
    path = tmp_path / "config.yaml"
    path.write_text(text.replace(old, new))
    return path


def assert_reported_once(err: str, jsonl: list[dict[str, Any]], sink: str) -> dict[str, Any]:
    assert err.count(f"gemmalog: sink {sink!r} failed and is disabled for this run") == 1, err
    assert "--- Logging error ---" not in err
    [report] = [e for e in jsonl if e["kind"] == "log" and e.get("sink") == sink]
    assert report["level"] == "error" and report["event"] == f"sink {sink} failed and was disabled"
    return report


def assert_jsonl_complete(jsonl: list[dict[str, Any]]) -> None:
    kinds = [e["kind"] for e in jsonl]
    assert (
        kinds.count("model_output") == STEPS
        and kinds.count("metrics") == STEPS
        and kinds.count("reward") == STEPS
    )
    assert kinds[-1] == "run_end" or "run_end" in kinds


def tensorboard_steps(run_dir: Path) -> list[int]:
    acc = ea.EventAccumulator(str(run_dir / "logs" / "tensorboard"), size_guidance={ea.SCALARS: 0})
    acc.Reload()
    return [s.step for s in acc.Scalars("train/loss")]


def test_csv_sink_that_cannot_write(
    tmp_path: Path, root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The CSV path is a directory: every write fails (as a full disk or a permission error would).
    path = config_with(tmp_path, "    buffer_size: 100", "    buffer_size: 1")
    run = gemmalog.initialize(path, root=root)
    (run.dir / "logs" / "model_outputs.csv").mkdir(parents=True)
    session()
    gemmalog.shutdown()
    jsonl = events(run.dir)
    report = assert_reported_once(capsys.readouterr().err, jsonl, "csv")
    assert "IsADirectoryError" in report["error"]
    assert_jsonl_complete(jsonl)
    assert tensorboard_steps(run.dir) == list(range(STEPS))
    log = (run.dir / "logs" / "training.log").read_text()
    assert all(f"step {s} done" in log for s in range(STEPS))
    manifest = orjson.loads((run.dir / "run.json").read_bytes())
    assert "csv" in manifest["sink_errors"] and manifest["sink_errors"]["csv"]["missed"] >= 1
    assert not (run.dir / "logs" / "model_outputs.csv.tmp").exists()


def test_tensorboard_writer_failing_halfway(
    tmp_path: Path, root: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = config_with(tmp_path, "    buffer_size: 100", "    buffer_size: 1")
    run = gemmalog.initialize(path, root=root)
    pipeline = running()
    assert pipeline is not None
    writer = pipeline.router.sinks["tensorboard"].writer  # type: ignore[attr-defined]
    calls = {"n": 0}
    real = writer.add

    def add(event: bytes) -> None:
        calls["n"] += 1
        if calls["n"] > 5:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(event)

    monkeypatch.setattr(writer, "add", add)
    session()
    gemmalog.shutdown()
    jsonl = events(run.dir)
    report = assert_reported_once(capsys.readouterr().err, jsonl, "tensorboard")
    assert "No space left on device" in report["error"]
    assert_jsonl_complete(jsonl)
    with open(run.dir / "logs" / "model_outputs.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert [r[1] for r in rows[1:]] == [f"question {s}" for s in range(STEPS)]
    log = (run.dir / "logs" / "training.log").read_text()
    assert all(f"step {s} done" in log for s in range(STEPS))


def test_text_file_sink_failing(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = gemmalog.initialize(CONFIG, root=root)
    pipeline = running()
    assert pipeline is not None
    file_sink = pipeline.router.sinks["file"]
    assert isinstance(file_sink, HandlerSink)
    gemmalog.get_training_logger().info("before the failure")
    gemmalog.flush()
    file_sink.handler.stream.close()  # type: ignore[attr-defined]  # the stream dies under the handler
    session()
    gemmalog.shutdown()
    captured = capsys.readouterr().err
    jsonl = events(run.dir)
    report = assert_reported_once(captured, jsonl, "file")
    assert "closed file" in report["error"]
    assert_jsonl_complete(jsonl)
    assert all(f"step {s} done" in captured for s in range(STEPS))  # the console carried on
    assert tensorboard_steps(run.dir) == list(range(STEPS))
    with open(run.dir / "logs" / "model_outputs.csv", newline="", encoding="utf-8") as f:
        assert len(list(csv.reader(f))) == STEPS + 1


def test_sink_raising_inside_write(
    tmp_path: Path, root: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    run = gemmalog.initialize(CONFIG, root=root)
    pipeline = running()
    assert pipeline is not None
    sink = pipeline.router.sinks["csv"]

    def explode(batch: Any) -> None:
        raise RuntimeError("bug inside the sink")

    monkeypatch.setattr(sink, "write", explode)
    session()
    gemmalog.shutdown()
    jsonl = events(run.dir)
    report = assert_reported_once(capsys.readouterr().err, jsonl, "csv")
    assert report["error"] == "RuntimeError: bug inside the sink" and "Traceback" in report["exc"]
    assert_jsonl_complete(jsonl)
    assert tensorboard_steps(run.dir) == list(range(STEPS))


def test_a_sink_that_cannot_start_is_reported_and_the_run_goes_on(
    tmp_path: Path, root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where a directory should be")
    config = tmp_path / "bad_path.yaml"
    config.write_text(
        "version: 1\n"
        "root: {level: INFO, handlers: [file]}\n"
        f"handlers:\n  file:\n    class: logging.FileHandler\n    filename: {blocker}/training.log\n"
    )
    run = gemmalog.initialize(str(config), root=str(root))
    gemmalog.get_training_logger().info("still logged")
    gemmalog.shutdown()
    assert "sink 'file' could not start" in capsys.readouterr().err
    events = read_events(run.dir)
    assert any(e.get("sink") == "file" and "could not start" in e["event"] for e in events)
    assert any(e.get("event") == "still logged" for e in events)
    manifest = orjson.loads((run.dir / "run.json").read_bytes())
    assert "file" in manifest["sink_errors"]
