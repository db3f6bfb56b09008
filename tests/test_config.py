"""The seed plan's YAML configuration, the shipped configs, overrides and every bad-config message."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

import gemmalog
from gemmalog import running
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
        r"bad\.yaml:\d+: handlers\.x\.class: unknown handler class 'logging\.custom\.SlackHandler'; allowed: logging\.StreamHandler, .*logging\.custom\.CSVHandler",
    ),
    "missing filename": (
        "handlers:\n  file:\n    class: logging.handlers.RotatingFileHandler\n    maxBytes: 10\n",
        r"bad\.yaml:\d+: handlers\.file\.filename: missing; a logging\.handlers\.RotatingFileHandler handler needs 'filename'",
    ),
    "csv missing filename": (
        "handlers:\n  csv:\n    class: logging.custom.CSVHandler\n",
        r"bad\.yaml:\d+: handlers\.csv\.filename: missing",
    ),
    "negative maxBytes": (
        "handlers:\n  file:\n    class: logging.handlers.RotatingFileHandler\n    filename: a.log\n    maxBytes: -1\n",
        r"bad\.yaml:\d+: handlers\.file\.maxBytes: must be a non-negative integer \(0 never rotates\), got -1",
    ),
    "negative backupCount": (
        "handlers:\n  file:\n    class: logging.handlers.RotatingFileHandler\n    filename: a.log\n    backupCount: -5\n",
        r"handlers\.file\.backupCount: must be a non-negative integer, at most 10,000 \(files kept\), got -5",
    ),
    "negative buffer_size": (
        "handlers:\n  csv:\n    class: logging.custom.CSVHandler\n    filename: a.csv\n    buffer_size: -5\n",
        r"bad\.yaml:\d+: handlers\.csv\.buffer_size: must be a positive integer, got -5",
    ),
    "negative max_queue": (
        "handlers:\n  tb:\n    class: logging.custom.TensorBoardHandler\n    max_queue: -1\n",
        r"handlers\.tb\.max_queue: must be a positive integer, got -1",
    ),
    "logger naming unknown handler": (
        "handlers:\n  console:\n    class: logging.StreamHandler\nloggers:\n  logging.model:\n    handlers: [console, csv]\n",
        r"bad\.yaml:\d+: loggers\.logging\.model\.handlers: names unknown handler 'csv'; defined: console",
    ),
    "root naming unknown handler": (
        "root:\n  handlers: [console]\n",
        r"bad\.yaml:\d+: root\.handlers: names unknown handler 'console'; defined: none",
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
        r"bad\.yaml:\d+: metrics\.sampling_ratio: must be a number between 0 and 1, got 1\.5",
    ),
    "unknown metrics category": (
        "metrics:\n  enable:\n    gpu_metrics: true\n",
        r"metrics\.enable\.gpu_metrics: unknown category; allowed: reward_metrics, generation_metrics",
    ),
    "unknown level": (
        "loggers:\n  logging.training:\n    level: VERBOSE\n",
        r"bad\.yaml:\d+: loggers\.logging\.training\.level: unknown level 'VERBOSE'; allowed: DEBUG, INFO, WARNING, ERROR, CRITICAL",
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
        r"bad\.yaml:\d+: handler: unknown section; allowed: disable_existing_loggers, doctor, filters, formatters, gemmalog",
    ),
    "wrong version": ("version: 2\n", r"bad\.yaml:\d+: version: must be 1, got 2"),
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


# -- what initialize would reject, config check rejects too (defects note 13) --------------------
REJECTED = {
    "unclosed redact pattern": (
        "version: 1\ngemmalog:\n  redact_patterns:\n    - '[unclosed'\n",
        r"bad\.yaml:3: gemmalog\.redact_patterns\[0\]: not a valid regular expression \(unterminated character set at position 0\)$",
    ),
    "infinite TensorBoard flush": (
        "version: 1\nhandlers:\n  tb:\n    class: logging.custom.TensorBoardHandler\n    flush_secs: .inf\n",
        r"bad\.yaml:5: handlers\.tb\.flush_secs: must be a finite positive number of seconds, got inf",
    ),
    "a year between CSV flushes": (
        "version: 1\nhandlers:\n  csv:\n    class: logging.custom.CSVHandler\n    filename: m.csv\n    flush_interval: 31536000\n",
        r"bad\.yaml:6: handlers\.csv\.flush_interval: must be at most 86400 seconds",
    ),
    "infinite pipeline flush": (
        "version: 1\ngemmalog:\n  flush_interval: .inf\n",
        r"bad\.yaml:3: gemmalog\.flush_interval: must be a finite positive number of seconds, got inf",
    ),
    "text log into the JSONL shard": (
        "version: 1\nhandlers:\n  file:\n    class: logging.FileHandler\n    filename: events.0.jsonl\n    mode: w\n",
        r"bad\.yaml:5: handlers\.file\.filename: 'events\.0\.jsonl' is one of gemmalog's own files",
    ),
    "CSV over run.json": (
        "version: 1\nhandlers:\n  csv:\n    class: logging.custom.CSVHandler\n    filename: ./run.json\n",
        r"bad\.yaml:5: handlers\.csv\.filename: '\./run\.json' is one of gemmalog's own files",
    ),
    "file outside the run directory": (
        "version: 1\nhandlers:\n  file:\n    class: logging.FileHandler\n    filename: ../../../../elsewhere/escaped.log\n",
        r"bad\.yaml:5: handlers\.file\.filename: '\.\./\.\./\.\./\.\./elsewhere/escaped\.log' leaves the run directory",
    ),
    "TensorBoard outside the run directory": (
        "version: 1\nhandlers:\n  tb:\n    class: logging.custom.TensorBoardHandler\n    log_dir: logs/../../tb\n",
        r"bad\.yaml:5: handlers\.tb\.log_dir: 'logs/\.\./\.\./tb' leaves the run directory",
    ),
    "three-character strings": (
        "version: 1\ngemmalog:\n  max_string_length: 3\n",
        r"bad\.yaml:3: gemmalog\.max_string_length: must be at least 64 \(characters kept of a long text\), got 3",
    ),
}


@pytest.mark.parametrize("case", sorted(REJECTED))
def test_config_check_rejects_what_initialize_would(case: str, tmp_path: Path, root: Path) -> None:
    from click.testing import CliRunner

    from gemmalog.cli import cli

    text, pattern = REJECTED[case]
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    result = CliRunner().invoke(cli, ["config", "check", str(path)])
    assert result.exit_code == 1 and re.search(pattern, result.stderr), result.stderr
    with pytest.raises(ConfigError, match=pattern):
        gemmalog.initialize(path, root=root)
    assert running() is None
    assert list(root.iterdir()) == []  # nothing created on disk for a failing configuration


def test_keywords_and_config_objects_get_the_same_checks(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(
        ConfigError, match=r"initialize\(\): settings\.redact_patterns\[0\]: not a valid"
    ):
        gemmalog.initialize(root=root, redact_patterns=["[unclosed"])
    with pytest.raises(ConfigError, match=r"settings\.max_string_length: must be at least 64"):
        gemmalog.initialize(root=root, max_string_length=3)
    config = parse(
        {"handlers": {"f": {"class": "logging.FileHandler", "filename": "a.log"}}}, "object"
    )
    config.handlers["f"].options["filename"] = "../escaped.log"  # changed after parsing
    with pytest.raises(
        ConfigError, match=r"initialize\(\): handlers\.f\.filename: '\.\./escaped\.log' leaves"
    ):
        gemmalog.initialize(config, root=root)
    monkeypatch.setenv("GEMMALOG_FLUSH_INTERVAL", "inf")
    with pytest.raises(
        ConfigError, match=r"environment: GEMMALOG_FLUSH_INTERVAL: must be a finite positive number"
    ):
        gemmalog.initialize(root=root)
    assert running() is None and list(root.iterdir()) == []


def test_problems_name_file_line_and_key_path(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "version: 1\n"
        "handlers:\n"
        "  csv:\n"
        "    class: logging.custom.CSVHandler\n"
        "    filename: m.csv\n"
        "    buffer_size: -5\n"
        "loggers:\n"
        "  logging.model:\n"
        "    handlers: [csv, tb]\n"
    )
    with pytest.raises(ConfigError) as info:
        load(path)
    assert str(info.value).splitlines()[1:] == [
        f"{path}:6: handlers.csv.buffer_size: must be a positive integer, got -5",
        f"{path}:9: loggers.logging.model.handlers: names unknown handler 'tb'; defined: csv",
    ]


def test_deeply_nested_yaml_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "deep.yaml"
    path.write_text("a: " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(
        ConfigError, match=r"deep\.yaml: malformed YAML: collections nested too deeply"
    ):
        load(path)


def test_a_small_text_limit_never_cuts_the_envelope(root: Path) -> None:
    run = gemmalog.initialize(root=root, max_string_length=64, capture_stdlib=False)
    name = "gemmalog.a-logger-name-longer-than-the-sixty-four-character-text-limit"
    gemmalog.get_logger(name).info("x" * 100)
    gemmalog.log_model_output("q" * 100, "4", "o" * 100, step=1, phase="e" * 80)
    gemmalog.shutdown()
    events = read_events(run.dir)
    log = next(e for e in events if e["kind"] == "log" and e["logger"] == name)
    assert log["event"] == "x" * 64 and log["truncated"] == ["event"]
    out = next(e for e in events if e["kind"] == "model_output")
    assert out["phase"] == "e" * 80 and out["question"] == "q" * 64
    assert sorted(out["truncated"]) == ["model_output", "question"]
