"""Handler levels, applied in one place (the router) to every kind of handler."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import orjson
from tensorboard.backend.event_processing import event_accumulator as ea

import gemmalog
from gemmalog.engine import Route, Router
from gemmalog.sinks.base import BaseSink, Record

CONFIG = """\
version: 1
loggers:
  logging.model: {level: INFO, handlers: [csv, tensorboard, file], propagate: false}
  logging.metrics: {level: INFO, handlers: [tensorboard, file], propagate: false}
handlers:
  csv:
    class: logging.custom.CSVHandler
    level: LEVEL
    filename: logs/model_outputs.csv
    columns: [question, answer]
  tensorboard:
    class: logging.custom.TensorBoardHandler
    level: LEVEL
    log_dir: logs/tensorboard
    sampling_ratio: 1.0
  file:
    class: logging.FileHandler
    filename: logs/all.log
"""


def run_with(tmp_path: Path, root: Path, level: str) -> Path:
    config = tmp_path / f"{level}.yaml"
    config.write_text(CONFIG.replace("LEVEL", level))
    run = gemmalog.initialize(config, root=root)
    gemmalog.log_model_output("What is 2+2?", "4", "<answer>4</answer>", step=1, correct=True)
    gemmalog.log_training_progress(1, {"loss": 0.5})
    gemmalog.get_model_logger().error("model error marker")
    gemmalog.shutdown()
    return run.dir


def tensorboard_tags(run_dir: Path) -> dict[str, list[str]]:
    acc = ea.EventAccumulator(str(run_dir / "logs" / "tensorboard"))
    acc.Reload()
    return acc.Tags()  # type: ignore[no-any-return]


def test_csv_and_tensorboard_at_error_take_no_info_event(tmp_path: Path, root: Path) -> None:
    run_dir = run_with(tmp_path, root, "ERROR")
    with open(run_dir / "logs" / "model_outputs.csv", newline="", encoding="utf-8") as f:
        assert list(csv.reader(f)) == [["question", "answer", "step", "correct"]]
    tags = tensorboard_tags(run_dir)
    assert tags["scalars"] == [] and tags["tensors"] == [] and tags["histograms"] == []
    # the same events reached the handler without a level, and the JSONL
    text = (run_dir / "logs" / "all.log").read_text()
    assert "What is 2+2?" in text and "loss=0.5" in text and "model error marker" in text
    kinds = [
        orjson.loads(line)["kind"]
        for line in (run_dir / "events.0.jsonl").read_bytes().splitlines()
    ]
    assert "model_output" in kinds and "metrics" in kinds


def test_the_same_handlers_at_info_take_them(tmp_path: Path, root: Path) -> None:
    run_dir = run_with(tmp_path, root, "INFO")
    with open(run_dir / "logs" / "model_outputs.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert rows[1] == ["What is 2+2?", "4", "1", "true"]
    tags = tensorboard_tags(run_dir)
    assert "train/loss" in tags["scalars"] and "samples/train" in tags["tensors"]


class Collect(BaseSink):
    def __init__(self, name: str, level: str = "debug") -> None:
        super().__init__(name, level)
        self.got: list[str] = []

    def write(self, batch: Sequence[Record]) -> None:
        self.got.extend(str(event["event"]) for event, _line in batch)


def test_router_applies_each_handler_level_as_call_handlers_does() -> None:
    always = Collect("jsonl")
    warn = Collect("warn", "warning")
    everything = Collect("all")
    parent = Collect("parent", "error")
    router = Router(
        {"warn": warn, "all": everything, "parent": parent},
        {"a": Route("debug", ("warn", "all"))},
        Route("debug", ("parent",)),
        always=(always,),
    )
    assert router.sinks_for("a.b", "debug") == (always, everything)
    assert router.sinks_for("a.b", "info") == (always, everything)
    assert router.sinks_for("a.b", "warning") == (always, warn, everything)
    assert router.sinks_for("a.b", "error") == (always, warn, everything, parent)
    assert router.sinks_for("a.b", "no such level") == (always, everything)  # taken as info
    assert router.sinks_for("a.b") == (always, everything)
