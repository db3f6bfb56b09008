"""Console and rotating-file text sinks under the seed configuration: format, routing, levels."""

from __future__ import annotations

import io
import re
import sys
from pathlib import Path

import orjson
import pytest

import gemmalog

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "gemma_logging.yaml"
LINE = re.compile(
    r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) - (logging\.\w+|[\w.]+) - (DEBUG|INFO|WARNING|ERROR|CRITICAL) - (.*)$"
)


def session() -> None:
    """One short logging session through the public API, touching every role."""
    gemmalog.get_training_logger().info("training started", model="tiny-gemma")
    gemmalog.get_training_logger().debug("training debug detail")
    gemmalog.get_training_logger().warning("learning rate is high")
    gemmalog.log_training_progress(1, {"loss": 0.5, "accuracy": 25.0})
    gemmalog.log_model_output(
        "What is 2+2?",
        "4",
        "<reasoning>2+2</reasoning><answer>4</answer>",
        step=1,
        rewards={"correctness": 2.0},
    )
    gemmalog.log_reward("correctness_reward_marker", [2.0, 0.0], ["sample_0", "sample_1"], step=1)
    gemmalog.log_reward_metrics(1, {"summary_marker_fn": [2.0, 0.0]})
    gemmalog.log_generation_metrics(1, ["<answer>4</answer>"])
    gemmalog.log_memory_usage(step=1)
    gemmalog.get_system_logger().info("system marker line")
    gemmalog.get_logger("logging.model.extra").info("child of model marker")
    gemmalog.get_logger("app.unconfigured").info("root marker line")


def parse_lines(text: str) -> list[tuple[str, str, str, str]]:
    out = []
    for line in text.splitlines():
        match = LINE.match(line)
        assert match, f"not in the standard format: {line!r}"
        out.append(match.groups())  # type: ignore[arg-type]
    return out


def test_seed_routing_levels_and_format(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = gemmalog.initialize(CONFIG, root=root)
    session()
    gemmalog.shutdown()
    console = parse_lines(capsys.readouterr().err)
    logfile = parse_lines((run.dir / "logs" / "training.log").read_text(encoding="utf-8"))

    def lines(records: list[tuple[str, str, str, str]], logger: str) -> list[str]:
        return [message for _, name, _, message in records if name == logger]

    # training: console + file, INFO and above
    for records in (console, logfile):
        assert [m.split(" model=")[0] for m in lines(records, "logging.training")] == [
            "training started",
            "learning rate is high",
        ]
        assert any(level == "WARNING" and "learning rate" in m for _, _, level, m in records)
    # model: console + file (and its children, which propagate to it)
    for records in (console, logfile):
        [output] = [m for m in lines(records, "logging.model") if m.startswith("model_output")]
        assert "question='What is 2+2?'" in output and "correctness=2" in output
        assert lines(records, "logging.model.extra") == ["child of model marker"]
    # reward, metrics, system: the file only
    assert (
        not lines(console, "logging.reward")
        and not lines(console, "logging.metrics")
        and not lines(console, "logging.system")
    )
    assert "correctness_reward_marker" not in "".join(m for *_, m in console)
    reward_lines = lines(logfile, "logging.reward")
    assert any("reward_fn=correctness_reward_marker" in m for m in reward_lines)
    assert any("summary_marker_fn=" in m for m in reward_lines)
    assert any(
        m.startswith("metrics step=1") and "loss=0.5" in m
        for m in lines(logfile, "logging.metrics")
    )
    assert any(m.startswith("generation_metrics step=1") for m in lines(logfile, "logging.metrics"))
    assert "system marker line" in lines(logfile, "logging.system")
    assert any(m.startswith("run ") and "started" in m for m in lines(logfile, "logging.system"))
    # an unconfigured logger goes to root: the console only
    assert lines(console, "app.unconfigured") == ["root marker line"]
    assert not lines(logfile, "app.unconfigured")
    # nothing at DEBUG anywhere: every logger is at INFO
    assert all(level != "DEBUG" for records in (console, logfile) for _, _, level, _ in records)
    # the JSONL keeps everything routed anywhere, the debug line excepted (below the logger level)
    events = [orjson.loads(x) for x in (run.dir / "events.0.jsonl").read_bytes().splitlines()]
    assert {
        "reward",
        "reward_summary",
        "model_output",
        "metrics",
        "generation_metrics",
        "system",
    } <= {e["kind"] for e in events}
    assert not [e for e in events if e.get("event") == "training debug detail"]


def test_handler_level_filters_below_logger_level(
    root: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GEMMALOG_LEVEL", "DEBUG")
    run = gemmalog.initialize(CONFIG, root=root)
    gemmalog.get_training_logger().debug("debug marker")
    gemmalog.shutdown()
    console = capsys.readouterr().err
    logfile = (run.dir / "logs" / "training.log").read_text()
    assert "logging.training - DEBUG - debug marker" in logfile  # file handler has no level
    assert "debug marker" not in console  # console handler is at INFO


def test_timestamps_use_the_event_time_and_datefmt(root: Path) -> None:
    run = gemmalog.initialize(CONFIG, root=root)
    gemmalog.get_training_logger().info("stamp")
    gemmalog.shutdown()
    [event] = [
        e
        for e in (orjson.loads(x) for x in (run.dir / "events.0.jsonl").read_bytes().splitlines())
        if e.get("event") == "stamp"
    ]
    import time

    expected = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(event["ts"]))
    assert (
        f"{expected} - logging.training - INFO - stamp"
        in (run.dir / "logs" / "training.log").read_text()
    )


def test_json_formatter(tmp_path: Path, root: Path) -> None:
    text = CONFIG.read_text().replace(
        "    formatter: standard\n    filename: logs/training.log",
        "    formatter: json\n    filename: logs/training.log",
    )
    assert "formatter: json" in text
    path = tmp_path / "json.yaml"
    path.write_text(text)
    run = gemmalog.initialize(path, root=root)
    gemmalog.get_training_logger().info("json marker", x=1)
    gemmalog.shutdown()
    records = [
        orjson.loads(line) for line in (run.dir / "logs" / "training.log").read_bytes().splitlines()
    ]
    assert all(list(r) == ["timestamp", "level", "name", "message"] for r in records)
    [marker] = [r for r in records if r["message"].startswith("json marker")]
    assert (
        marker["level"] == "INFO"
        and marker["name"] == "logging.training"
        and isinstance(marker["timestamp"], float)
    )


def test_rotating_file_honours_max_bytes_and_backup_count(tmp_path: Path, root: Path) -> None:
    text = (
        CONFIG.read_text()
        .replace("maxBytes: 10485760  # 10MB", "maxBytes: 2000")
        .replace("backupCount: 5", "backupCount: 2")
    )
    path = tmp_path / "rotate.yaml"
    path.write_text(text)
    run = gemmalog.initialize(path, root=root)
    log = gemmalog.get_training_logger()
    for i in range(200):
        log.info(f"line {i:04d} " + "x" * 40)
    gemmalog.shutdown()
    logs = run.dir / "logs"
    names = sorted(p.name for p in logs.glob("training.log*"))
    assert names == ["training.log", "training.log.1", "training.log.2"]
    assert all((logs / n).stat().st_size <= 2000 for n in names)
    assert "line 0199" in (logs / "training.log").read_text()
    assert "line 0000" not in "".join((logs / n).read_text() for n in names)  # rotated away


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_console_is_coloured_on_a_terminal_only(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tty = _Tty()
    monkeypatch.setattr(sys, "stderr", tty)
    run = gemmalog.initialize(CONFIG, root=root)
    gemmalog.get_training_logger().warning("coloured")
    gemmalog.shutdown()
    assert "\x1b[33mWARNING\x1b[0m - coloured" in tty.getvalue()
    assert "\x1b[" not in (run.dir / "logs" / "training.log").read_text()


def test_other_ranks_write_their_own_text_file_and_no_csv_or_tensorboard(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gemmalog._pipeline import running

    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("GEMMALOG_RUN_ID", "job-7")
    run = gemmalog.initialize(CONFIG, root=root)
    pipeline = running()
    assert pipeline is not None and set(pipeline.router.sinks) == {"console", "file"}
    gemmalog.get_training_logger().info("from rank one")
    gemmalog.shutdown()
    assert run.dir == root / "job-7"
    assert "from rank one" in (run.dir / "logs" / "training.rank1.log").read_text()
    assert not (run.dir / "logs" / "training.log").exists()
    assert (
        not (run.dir / "logs" / "model_outputs.csv").exists()
        and not (run.dir / "logs" / "tensorboard").exists()
    )
