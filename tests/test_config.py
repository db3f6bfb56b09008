"""The seed plan's YAML configuration, the shipped configs, overrides and every bad-config message."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

import gemmalog
from gemmalog._pipeline import running
from gemmalog.config import ConfigError, load, parse
from gemmalog.sinks.csv import CsvSink
from gemmalog.sinks.tensorboard import TensorBoardSink
from gemmalog.sinks.text import HandlerSink

REPO = Path(__file__).resolve().parents[1]


def read_events(run_dir: Path) -> list[dict[str, Any]]:
    return [
        orjson.loads(line)
        for shard in sorted(run_dir.glob("events.*.jsonl"))
        for line in shard.read_bytes().splitlines()
    ]


CONFIGS = REPO / "configs"

# The configuration block of seed-logging-integration-plan.md (Phase 1), character for character
# (its blank lines carry trailing spaces, written \x20 here).
SEED_YAML = """\
# src/logging/config/gemma_logging_config.yaml
version: 1
disable_existing_loggers: false

root:
  level: INFO
  handlers: [console]

loggers:
  logging.training:
    level: INFO
    handlers: [console, file, tensorboard]
    propagate: false
\x20\x20
  logging.model:
    level: INFO
    handlers: [console, file, csv, tensorboard]
    propagate: false
\x20\x20\x20\x20
  logging.reward:
    level: INFO
    handlers: [file, tensorboard]
    propagate: false
\x20\x20\x20\x20
  logging.system:
    level: INFO
    handlers: [file]
    propagate: false
\x20\x20\x20\x20
  logging.metrics:
    level: INFO
    handlers: [file, tensorboard]
    propagate: false

handlers:
  console:
    class: logging.StreamHandler
    formatter: standard
    level: INFO
\x20\x20\x20\x20
  file:
    class: logging.handlers.RotatingFileHandler
    formatter: standard
    filename: logs/training.log
    maxBytes: 10485760  # 10MB
    backupCount: 5
\x20\x20\x20\x20
  csv:
    class: logging.custom.CSVHandler
    filename: logs/model_outputs.csv
    columns: [timestamp, question, answer, llm_reasoning, llm_answer]
    buffer_size: 100
    flush_interval: 5.0
\x20\x20\x20\x20
  tensorboard:
    class: logging.custom.TensorBoardHandler
    log_dir: logs/tensorboard
    flush_secs: 30
    max_queue: 100

formatters:
  standard:
    format: "%(asctime)s - %(name)s - %(levelname)s - %(message)s"
    datefmt: "%Y-%m-%d %H:%M:%S"
\x20\x20\x20\x20
  json:
    format: json
    fields: [timestamp, level, name, message]

# Model evaluation metrics configuration
metrics:
  # How frequently to log metrics (in training steps)
  logging_frequency: 5
\x20\x20
  # How frequently to run validation (in training steps)
  validation_frequency: 250
\x20\x20
  # Sample a subset of batches for more expensive metrics
  sampling_ratio: 0.1
\x20\x20
  # Enable/disable specific metric categories
  enable:
    reward_metrics: true
    generation_metrics: true
    validation_metrics: true
    resource_metrics: true
"""


@pytest.fixture
def seed_file(tmp_path: Path) -> Path:
    path = tmp_path / "gemma_logging_config.yaml"
    path.write_text(SEED_YAML, encoding="utf-8")
    return path


def test_shipped_gemma_config_is_the_seed_configuration() -> None:
    assert yaml.safe_load((CONFIGS / "gemma_logging.yaml").read_text()) == yaml.safe_load(SEED_YAML)


def test_seed_block_in_the_plan_is_unchanged() -> None:
    plan = Path("/work/shared/seed-logging-integration-plan.md")
    if not plan.exists():
        pytest.skip("the seed plan is not beside this checkout")
    block = re.search(
        r"```yaml\n(# src/logging/config/gemma_logging_config\.yaml.*?)```", plan.read_text(), re.S
    )
    assert block is not None
    assert block.group(1) == SEED_YAML


def test_seed_configuration_as_written(seed_file: Path) -> None:
    config = load(seed_file)
    assert config.root.level == "info" and config.root.handlers == ("console",)
    assert {name: (lc.level, lc.handlers, lc.propagate) for name, lc in config.loggers.items()} == {
        "logging.training": ("info", ("console", "file", "tensorboard"), False),
        "logging.model": ("info", ("console", "file", "csv", "tensorboard"), False),
        "logging.reward": ("info", ("file", "tensorboard"), False),
        "logging.system": ("info", ("file",), False),
        "logging.metrics": ("info", ("file", "tensorboard"), False),
    }
    h = config.handlers
    assert (h["console"].type, h["console"].level, h["console"].formatter) == (
        "console",
        "info",
        "standard",
    )
    assert h["file"].type == "rotating_file"
    assert h["file"].options == {
        "filename": "logs/training.log",
        "maxBytes": 10485760,
        "backupCount": 5,
    }
    assert h["csv"].type == "csv"
    assert h["csv"].options == {
        "filename": "logs/model_outputs.csv",
        "columns": ["timestamp", "question", "answer", "llm_reasoning", "llm_answer"],
        "buffer_size": 100,
        "flush_interval": 5.0,
    }
    assert h["tensorboard"].type == "tensorboard"
    assert h["tensorboard"].options == {
        "log_dir": "logs/tensorboard",
        "flush_secs": 30,
        "max_queue": 100,
    }
    std = config.formatters["standard"]
    assert (std.format, std.datefmt, std.json) == (
        "%(asctime)s - %(name)s - %(levelname)s - %(message)s",
        "%Y-%m-%d %H:%M:%S",
        False,
    )
    js = config.formatters["json"]
    assert js.json and js.fields == ("timestamp", "level", "name", "message")
    m = config.metrics
    assert (m.logging_frequency, m.validation_frequency, m.sampling_ratio) == (5, 250, 0.1)
    assert m.enable == {
        "reward_metrics": True,
        "generation_metrics": True,
        "validation_metrics": True,
        "resource_metrics": True,
    }
    assert config.role_loggers() == {
        "training": "logging.training",
        "model": "logging.model",
        "reward": "logging.reward",
        "system": "logging.system",
        "metrics": "logging.metrics",
    }


def test_initialize_builds_every_sink_with_its_options(seed_file: Path, root: Path) -> None:
    run = gemmalog.initialize(seed_file, root=root)
    pipeline = running()
    assert pipeline is not None
    sinks = pipeline.router.sinks
    assert set(sinks) == {"console", "file", "csv", "tensorboard"}
    assert isinstance(sinks["console"], HandlerSink) and sinks["console"].level == "info"
    file = sinks["file"]
    assert isinstance(file, HandlerSink)
    handler = file.handler
    assert Path(handler.baseFilename) == run.dir / "logs" / "training.log"  # type: ignore[attr-defined]
    assert (handler.maxBytes, handler.backupCount) == (10485760, 5)  # type: ignore[attr-defined]
    assert handler.formatter is not None and handler.formatter.datefmt == "%Y-%m-%d %H:%M:%S"
    csv_sink = sinks["csv"]
    assert isinstance(csv_sink, CsvSink)
    assert csv_sink.path == run.dir / "logs" / "model_outputs.csv"
    assert (csv_sink.buffer_size, csv_sink.flush_interval, csv_sink.raw) == (100, 5.0, False)
    tb = sinks["tensorboard"]
    assert isinstance(tb, TensorBoardSink)
    assert tb.log_dir == run.dir / "logs" / "tensorboard"
    assert tb.flush_secs == 30.0 and tb.sampling_ratio == 0.1
    assert pipeline.metrics.validation_frequency == 250 and pipeline.metrics.enabled(
        "reward_metrics"
    )
    assert pipeline.config.metrics is pipeline.metrics


def test_relative_paths_resolve_inside_each_run(
    seed_file: Path, root: Path, tmp_path: Path
) -> None:
    first = gemmalog.initialize(seed_file, root=root, run_name="a")
    gemmalog.get_training_logger().info("one")
    gemmalog.shutdown()
    second = gemmalog.initialize(seed_file, root=root, run_name="b")
    gemmalog.get_training_logger().info("two")
    gemmalog.shutdown()
    assert first.dir != second.dir
    assert "one" in (first.dir / "logs" / "training.log").read_text()
    assert "one" not in (second.dir / "logs" / "training.log").read_text()
    assert (second.dir / "logs" / "tensorboard").is_dir()
    # an absolute path is used as written
    elsewhere = tmp_path / "abs" / "train.log"
    text = SEED_YAML.replace("filename: logs/training.log", f"filename: {elsewhere}")
    (tmp_path / "abs.yaml").write_text(text)
    gemmalog.initialize(tmp_path / "abs.yaml", root=root)
    gemmalog.get_training_logger().info("absolute")
    gemmalog.shutdown()
    assert "absolute" in elsewhere.read_text()


def test_shipped_configs_load_and_run(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    optimized = load(CONFIGS / "optimized.yaml")
    assert optimized.metrics.logging_frequency == 20 and optimized.metrics.sampling_ratio == 0.05
    assert optimized.handlers["csv"].options["buffer_size"] == 500
    assert "console" not in optimized.loggers["logging.model"].handlers
    minimal = load(CONFIGS / "minimal.yaml")
    assert set(minimal.handlers) == {"console"}
    run = gemmalog.initialize(CONFIGS / "minimal.yaml", root=root)
    gemmalog.get_training_logger().info("visible on the console")
    gemmalog.log_model_output("q?", "1", "<answer>1</answer>", step=1)
    gemmalog.shutdown()
    err = capsys.readouterr().err
    assert "visible on the console" in err and "model_output" not in err
    kinds = [e["kind"] for e in read_events(run.dir)]
    assert "model_output" in kinds


# -- overrides ----------------------------------------------------------------------------------
def test_environment_overrides(
    seed_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env_root = tmp_path / "env-root"
    monkeypatch.setenv("GEMMALOG_ROOT", str(env_root))
    monkeypatch.setenv("GEMMALOG_RUN_NAME", "from-env")
    monkeypatch.setenv("GEMMALOG_LEVEL", "DEBUG")
    run = gemmalog.initialize(seed_file)
    gemmalog.get_training_logger().debug("debug line")
    gemmalog.shutdown()
    assert run.dir.parent == env_root and run.name == "from-env"
    assert "debug line" in (run.dir / "logs" / "training.log").read_text()


def test_keyword_overrides_win_over_environment(
    seed_file: Path, root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GEMMALOG_ROOT", str(tmp_path / "env-root"))
    monkeypatch.setenv("GEMMALOG_LEVEL", "DEBUG")
    run = gemmalog.initialize(seed_file, root=str(root), run_name="kw", level="WARNING")
    gemmalog.get_training_logger().info("info line")
    gemmalog.get_training_logger().warning("warning line")
    gemmalog.shutdown()
    assert run.dir.parent == root and run.name == "kw"
    text = (run.dir / "logs" / "training.log").read_text()
    assert "warning line" in text and "info line" not in text
    assert not (tmp_path / "env-root").exists()


def test_bad_environment_level_names_the_variable(
    seed_file: Path, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GEMMALOG_LEVEL", "LOUD")
    with pytest.raises(
        ConfigError,
        match=r"environment: GEMMALOG_LEVEL: unknown level 'LOUD'; allowed: DEBUG, INFO",
    ):
        gemmalog.initialize(seed_file, root=root)
    assert list(root.iterdir()) == []


def test_level_spellings_accepted() -> None:
    config = parse(
        {"loggers": {"a": {"level": "warn"}, "b": {"level": 40}, "c": {"level": "Debug"}}}
    )
    assert [config.loggers[n].level for n in "abc"] == ["warning", "error", "debug"]


# -- bad configurations: one clear message each --------------------------------------------------
BAD = {
    "unknown handler class": (
        "handlers:\n  x:\n    class: logging.custom.SlackHandler\n",
        r"bad\.yaml: handlers\.x\.class: unknown handler class 'logging\.custom\.SlackHandler'; allowed: logging\.StreamHandler, .*logging\.custom\.CSVHandler",
    ),
    "missing filename": (
        "handlers:\n  file:\n    class: logging.handlers.RotatingFileHandler\n    maxBytes: 10\n",
        r"bad\.yaml: handlers\.file\.filename: missing; a logging\.handlers\.RotatingFileHandler handler needs 'filename'",
    ),
    "csv missing filename": (
        "handlers:\n  csv:\n    class: logging.custom.CSVHandler\n",
        r"bad\.yaml: handlers\.csv\.filename: missing",
    ),
    "negative maxBytes": (
        "handlers:\n  file:\n    class: logging.handlers.RotatingFileHandler\n    filename: a.log\n    maxBytes: -1\n",
        r"bad\.yaml: handlers\.file\.maxBytes: must be a non-negative integer \(0 never rotates\), got -1",
    ),
    "negative backupCount": (
        "handlers:\n  file:\n    class: logging.handlers.RotatingFileHandler\n    filename: a.log\n    backupCount: -5\n",
        r"handlers\.file\.backupCount: must be a non-negative integer, got -5",
    ),
    "negative buffer_size": (
        "handlers:\n  csv:\n    class: logging.custom.CSVHandler\n    filename: a.csv\n    buffer_size: -5\n",
        r"bad\.yaml: handlers\.csv\.buffer_size: must be a positive integer, got -5",
    ),
    "negative max_queue": (
        "handlers:\n  tb:\n    class: logging.custom.TensorBoardHandler\n    max_queue: -1\n",
        r"handlers\.tb\.max_queue: must be a positive integer, got -1",
    ),
    "logger naming unknown handler": (
        "handlers:\n  console:\n    class: logging.StreamHandler\nloggers:\n  logging.model:\n    handlers: [console, csv]\n",
        r"bad\.yaml: loggers\.logging\.model\.handlers: names unknown handler 'csv'; defined: console",
    ),
    "root naming unknown handler": (
        "root:\n  handlers: [console]\n",
        r"bad\.yaml: root\.handlers: names unknown handler 'console'; defined: none",
    ),
    "wrong type flush_secs": (
        "handlers:\n  tb:\n    class: logging.custom.TensorBoardHandler\n    flush_secs: soon\n",
        r"handlers\.tb\.flush_secs: must be a positive number of seconds, got 'soon'",
    ),
    "wrong type propagate": (
        "loggers:\n  logging.training:\n    propagate: nope\n",
        r"loggers\.logging\.training\.propagate: must be true or false, got 'nope'",
    ),
    "wrong type handlers": (
        "handlers:\n  console:\n    class: logging.StreamHandler\nloggers:\n  logging.training:\n    handlers: console\n",
        r"loggers\.logging\.training\.handlers: must be a list of handler names, got 'console'",
    ),
    "wrong type columns": (
        "handlers:\n  csv:\n    class: logging.custom.CSVHandler\n    filename: a.csv\n    columns: question\n",
        r"handlers\.csv\.columns: must be a list of column names, got 'question'",
    ),
    "unknown csv column": (
        "handlers:\n  csv:\n    class: logging.custom.CSVHandler\n    filename: a.csv\n    columns: [question, gpa]\n",
        r"handlers\.csv\.columns: unknown column 'gpa'; allowed: timestamp, step, .*llm_answer",
    ),
    "sampling ratio out of range": (
        "metrics:\n  sampling_ratio: 1.5\n",
        r"bad\.yaml: metrics\.sampling_ratio: must be a number between 0 and 1, got 1\.5",
    ),
    "unknown metrics category": (
        "metrics:\n  enable:\n    gpu_metrics: true\n",
        r"metrics\.enable\.gpu_metrics: unknown category; allowed: reward_metrics, generation_metrics",
    ),
    "unknown level": (
        "loggers:\n  logging.training:\n    level: VERBOSE\n",
        r"bad\.yaml: loggers\.logging\.training\.level: unknown level 'VERBOSE'; allowed: DEBUG, INFO, WARNING, ERROR, CRITICAL",
    ),
    "unknown handler level": (
        "handlers:\n  console:\n    class: logging.StreamHandler\n    level: LOUD\n",
        r"handlers\.console\.level: unknown level 'LOUD'",
    ),
    "unknown handler option": (
        "handlers:\n  file:\n    class: logging.handlers.RotatingFileHandler\n    filename: a.log\n    max_bytes: 10\n",
        r"handlers\.file\.max_bytes: unknown key; allowed: backupCount, encoding, filename, maxBytes, mode",
    ),
    "unknown formatter": (
        "handlers:\n  console:\n    class: logging.StreamHandler\n    formatter: fancy\n",
        r"handlers\.console\.formatter: names unknown formatter 'fancy'; defined: none",
    ),
    "bad format string": (
        "formatters:\n  standard:\n    format: '%(asctime)s %(nosuchfield)s'\n",
        r"formatters\.standard\.format: cannot format a record with .*field not found in record: 'nosuchfield'",
    ),
    "unknown section": (
        "handler:\n  console:\n    class: logging.StreamHandler\n",
        r"bad\.yaml: handler: unknown section; allowed: disable_existing_loggers, filters, formatters, gemmalog",
    ),
    "wrong version": ("version: 2\n", r"bad\.yaml: version: must be 1, got 2"),
    "not a mapping": (
        "- a\n- b\n",
        r"bad\.yaml: \(top level\): must be a mapping of sections, got list",
    ),
    "bad gemmalog setting": (
        "gemmalog:\n  backpressure: maybe\n",
        r"gemmalog\.backpressure: must be block or drop",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_configuration_message(case: str, tmp_path: Path) -> None:
    text, pattern = BAD[case]
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load(path)
    message = str(info.value)
    assert message.startswith("invalid gemmalog configuration (")
    assert re.search(pattern, message), message


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "handlers:\n  file:\n    class: logging.handlers.RotatingFileHandler\n    maxBytes: -1\n"
        "loggers:\n  logging.training:\n    level: LOUD\n    handlers: [nope]\n"
    )
    with pytest.raises(ConfigError, match=r"\(4 problems\)") as info:
        load(path)
    assert len(str(info.value).splitlines()) == 5


@pytest.mark.parametrize(
    ("text", "where"),
    [
        (
            "version: 1\nhandlers:\n  console:\n    class: [unclosed\n",
            r"bad\.yaml:5:1: malformed YAML: expected ',' or ']'",
        ),
        (
            "version: 1\nloggers:\n\tlogging.training: {}\n",
            r"bad\.yaml:3:1: malformed YAML: found character '\\t' that cannot start any token",
        ),
        ("root:\n  level: INFO\n handlers: [console]\n", r"bad\.yaml:3:2: malformed YAML"),
    ],
)
def test_malformed_yaml_names_the_line(text: str, where: str, tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=where):
        load(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nowhere\.yaml: configuration file not found"):
        load(tmp_path / "nowhere.yaml")


def test_bad_file_stops_initialize_before_anything_starts(tmp_path: Path, root: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(SEED_YAML.replace("maxBytes: 10485760", "maxBytes: -10"))
    with pytest.raises(ConfigError, match=r"handlers\.file\.maxBytes"):
        gemmalog.initialize(path, root=root)
    assert running() is None
    assert list(root.iterdir()) == []


def test_docs_examples_are_valid_configurations() -> None:
    doc = (REPO / "docs" / "configuration.md").read_text()
    examples = [
        b for b in re.findall(r"```yaml\n(.*?)```", doc, re.S) if b.startswith("version: 1")
    ]
    assert len(examples) == 4  # the seed's, minimal, high-frequency debugging, multi-GPU
    for block in examples:
        parse(yaml.safe_load(block), "docs/configuration.md")
    assert yaml.safe_load(examples[0]) == yaml.safe_load(SEED_YAML)
