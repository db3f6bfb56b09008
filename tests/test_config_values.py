"""Every invalid value, wherever it comes from (a file, keywords, the environment, a Config
object), is a ConfigError naming the file, line and key, before any file is created (C3)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import gemmalog
from gemmalog import running
from gemmalog.cli import cli
from gemmalog.config import Config, ConfigError, LoggerConfig, load, parse
from gemmalog.config.schema import DOCTOR, MAX_INT, METRICS, OPTIONS, REQUIRED, SETTINGS
from gemmalog.config.validate import CACHE_NAME

# -- C3: every invalid value is a ConfigError naming the file, line and key ----------------------


def check(path: Path, *flags: str) -> Any:
    return CliRunner().invoke(cli, ["config", "check", *flags, str(path)])


#: Values of every shape YAML can give (and a few Python can): each key refuses some of them.
VALUES: list[Any] = [
    None, True, False, -1, 0, 3, 10**30, 2**63, -(2**63) - 1, 1.5, -0.5, math.nan, math.inf,
    -math.inf, "", "x", "a\0b", "[unclosed", [], ["a"], [1], [["a"]], {"a": 1}, {"a": [1, 2]},
]  # fmt: skip


def yaml_value(value: Any) -> str:
    """``value`` as a YAML flow value on one line."""
    if isinstance(value, float) and not math.isfinite(value):
        return ".nan" if math.isnan(value) else (".inf" if value > 0 else "-.inf")
    if isinstance(value, list):
        return "[" + ", ".join(yaml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {yaml_value(v)}" for k, v in value.items()) + "}"
    return orjson.dumps(value).decode() if isinstance(value, str | type(None)) else repr(value)


HANDLER_CLASS = {
    "console": "logging.StreamHandler",
    "file": "logging.FileHandler",
    "rotating_file": "logging.handlers.RotatingFileHandler",
    "csv": "logging.custom.CSVHandler",
    "tensorboard": "logging.custom.TensorBoardHandler",
}


def yaml_cases() -> Iterator[tuple[str, str, int, str]]:
    """(what, the YAML text, the line of the bad key, its key path) for each refused value."""
    sections = {"gemmalog": SETTINGS, "metrics": METRICS, "doctor": DOCTOR}
    for section, table in sections.items():
        for key, (accepts, _) in table.items():
            for value in VALUES:
                if not accepts(value):
                    text = f"version: 1\n{section}:\n  {key}: {yaml_value(value)}\n"
                    yield f"{section}.{key}={value!r}", text, 3, f"{section}.{key}"
    for kind, cls in HANDLER_CLASS.items():
        for key, (accepts, _) in OPTIONS[kind].items():
            required = "".join(f"    {r}: {r}.out\n" for r in REQUIRED.get(kind, ()) if r != key)
            for value in VALUES:
                if not accepts(value):
                    text = f"version: 1\nhandlers:\n  h:\n    class: {cls}\n{required}    {key}: {yaml_value(value)}\n"
                    line = text.count("\n")
                    yield f"{kind}.{key}={value!r}", text, line, f"handlers.h.{key}"
    structure = {
        "version": ("version: {v}\n", 1, "version"),
        "disable_existing_loggers": ("disable_existing_loggers: {v}\n", 1, "disable_existing_loggers"),
        "formatter name": (
            "handlers:\n  c:\n    class: console\n    formatter: {v}\n", 4, "handlers.c.formatter",
        ),
        "format": ("formatters:\n  f:\n    format: {v}\n", 3, "formatters.f.format"),
        "datefmt": ("formatters:\n  f:\n    datefmt: {v}\n", 3, "formatters.f.datefmt"),
        "level": ("root:\n  level: {v}\n", 2, "root.level"),
        "handler level": ("handlers:\n  c:\n    class: console\n    level: {v}\n", 4, "handlers.c.level"),
        "logger handlers": ("loggers:\n  a:\n    handlers: {v}\n", 3, "loggers.a.handlers"),
        "propagate": ("loggers:\n  a:\n    propagate: {v}\n", 3, "loggers.a.propagate"),
        "class": ("handlers:\n  c:\n    class: {v}\n", 3, "handlers.c.class"),
        "enable": ("metrics:\n  enable:\n    reward_metrics: {v}\n", 3, "metrics.enable.reward_metrics"),
        "doctor check": ("doctor:\n  checks:\n    zero_signal: {v}\n", 3, "doctor.checks.zero_signal"),
    }  # fmt: skip
    for what, (template, line, key) in structure.items():
        for value in VALUES:
            if value in (None, False, True, "x", "") or value == 1:
                continue  # allowed somewhere in this table (a default, a name, a bool)
            if what == "datefmt" and isinstance(value, str):
                continue
            if what == "logger handlers" and value == []:
                continue
            if what == "format" and value == "[unclosed":
                continue  # a format string may hold any text
            yield what + f"={value!r}", template.format(v=yaml_value(value)), line, key


CASES = list(yaml_cases())


def test_the_table_of_bad_values_covers_every_key() -> None:
    keys = {key for _, _, _, key in CASES}
    for section, table in {"gemmalog": SETTINGS, "metrics": METRICS, "doctor": DOCTOR}.items():
        assert {f"{section}.{k}" for k in table} <= keys
    assert len(CASES) > 600
    # Too big for 64 bits, or not finite: refused by every numeric key (run.json, DuckDB).
    for table in (SETTINGS, METRICS, DOCTOR, *OPTIONS.values()):
        for key, (accepts, _) in table.items():
            for value in (10**30, 2**63, -(2**63) - 1, math.nan, math.inf, -math.inf):
                assert not accepts(value), (key, value)


def test_every_bad_yaml_value_is_a_config_error_naming_file_line_and_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "bad.yaml"
    root = tmp_path / "runs"
    wrong = []
    for what, text, line, key in CASES:
        path.write_text(text)
        for attempt in ("load", "initialize"):
            try:
                if attempt == "load":
                    load(path)
                else:
                    gemmalog.initialize(path, root=root)
            except ConfigError as exc:
                if f"{path}:{line}: {key}" not in str(exc):
                    wrong.append(f"{what}: {attempt}: {exc}")
            except Exception as exc:  # the defect: a raw exception
                wrong.append(f"{what}: {attempt}: {type(exc).__name__}: {exc}")
            else:
                wrong.append(f"{what}: {attempt}: accepted")
        if running() is not None:
            gemmalog.shutdown()
    assert wrong == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.yaml"]  # nothing created


def test_config_check_names_file_and_line_of_an_unhashable_value(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("handlers:\n  c:\n    class: console\n    formatter: [a]\n")
    result = check(path)
    assert result.exit_code == 1
    assert f"{path}:4: handlers.c.formatter: names unknown formatter ['a']" in result.stderr


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("formatters:\n  f:\n    1: a\n    b: c\n", "formatters.f.1: unknown key"),
        (
            "handlers:\n  c:\n    class: console\nroot:\n  handlers: [c]\n  2: x\n  y: z\n",
            "root.2: unknown key",
        ),
        (
            "handlers:\n  f:\n    class: file\n    filename: a.log\n    3: x\n    w: v\n",
            "handlers.f.3: unknown key",
        ),
        (
            "handlers:\n  s:\n    class: gemmalog.sinks.jsonl.NoSuch\n",
            "module 'gemmalog.sinks.jsonl' has no 'NoSuch'",
        ),
    ],
)
def test_odd_keys_and_a_missing_class_of_a_module_are_config_errors(
    tmp_path: Path, text: str, where: str
) -> None:
    """A key that is not a string beside string keys, and a class missing from a module
    that is no package, are reported like any other mistake (they raised TypeError and
    ModuleNotFoundError)."""
    path = tmp_path / "odd.yaml"
    path.write_text(text)
    result = check(path, "--import-user-code")
    assert result.exit_code == 1, result.output
    assert where in result.stderr
    assert "Traceback" not in result.stderr
    with pytest.raises(ConfigError, match="invalid gemmalog configuration"):
        load(path, import_user_code=True)


def keyword_cases() -> Iterator[tuple[str, Any]]:
    for key, (accepts, _) in SETTINGS.items():
        if key in ("processors", "listener_processors"):
            continue  # initialize() takes callables under these names
        for value in VALUES:
            if value is not None and not accepts(value):
                yield key, value


def test_every_bad_keyword_and_config_object_value_is_a_config_error_before_any_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "runs"
    wrong = []
    cases = list(keyword_cases())
    assert len(cases) > 150
    for key, value in cases:
        config = Config()
        setattr(config.settings, key, value)
        for what, args in (
            ("keyword", ((), {"root": root, key: value})),
            ("Config object", ((config,), {})),
        ):
            try:
                gemmalog.initialize(*args[0], **args[1])
            except ConfigError as exc:
                if f"initialize(): settings.{key}: " not in str(exc):
                    wrong.append(f"{what} {key}={value!r}: {exc}")
            except Exception as exc:
                wrong.append(f"{what} {key}={value!r}: {type(exc).__name__}: {exc}")
            else:
                wrong.append(f"{what} {key}={value!r}: accepted")
                gemmalog.shutdown()
    assert wrong == []
    assert list(tmp_path.iterdir()) == []


def test_bad_handler_metrics_and_doctor_values_of_a_config_object(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    bad = [
        ("handlers.f.backupCount", lambda c: c.handlers["f"].options.update(backupCount=10**30)),
        ("handlers.f.encoding", lambda c: c.handlers["f"].options.update(encoding="rot13")),
        ("handlers.f.nope", lambda c: c.handlers["f"].options.update(nope=1)),
        ("handlers.f.filename", lambda c: c.handlers["f"].options.pop("filename")),
        ("metrics.sampling_ratio", lambda c: setattr(c.metrics, "sampling_ratio", math.nan)),
        ("metrics.logging_frequency", lambda c: setattr(c.metrics, "logging_frequency", 2**64)),
        ("doctor.outlier_z", lambda c: setattr(c.doctor, "outlier_z", math.inf)),
        ("doctor.min_steps", lambda c: setattr(c.doctor, "min_steps", "8")),
        ("handlers.f.level", lambda c: setattr(c.handlers["f"], "level", "loud")),
        ("handlers.f.class", lambda c: setattr(c.handlers["f"], "type", "slack")),
        ("loggers.a.handlers", lambda c: c.loggers.update(a=LoggerConfig("info", ("nope",)))),
        ("root.level", lambda c: setattr(c.root, "level", "LOUD")),
    ]
    for key, spoil in bad:
        config = parse(
            {"handlers": {"f": {"class": "rotating_file", "filename": "t.log"}}}, "object"
        )
        spoil(config)
        with pytest.raises(ConfigError) as info:
            gemmalog.initialize(config, root=tmp_path / "runs")
        assert f"initialize(): {key}: " in str(info.value)
    assert list(tmp_path.iterdir()) == []


PATH_CASES = {
    "text log in the run's query cache": (
        "handlers:\n  f:\n    class: file\n    filename: .gemmalog-cache/training.log\n",
        4, "handlers.f.filename", "is inside a query cache (.gemmalog-cache)",
    ),
    "CSV in a cache folder further down": (
        "handlers:\n  c:\n    class: csv\n    filename: logs/.gemmalog-cache/m.csv\n",
        4, "handlers.c.filename", "is inside a query cache",
    ),
    "absolute path into a cache": (
        "handlers:\n  f:\n    class: file\n    filename: /tmp/x/.gemmalog-cache/a.log\n",
        4, "handlers.f.filename", "is inside a query cache",
    ),
    "the live doctor's file": (
        "handlers:\n  f:\n    class: file\n    filename: doctor.live.jsonl\n",
        4, "handlers.f.filename", "is one of gemmalog's own files",
    ),
    "the writer lock": (
        "handlers:\n  f:\n    class: file\n    filename: .writer.0.lock\n",
        4, "handlers.f.filename", "is one of gemmalog's own files",
    ),
    "a file that is another handler's rotated form": (
        "handlers:\n  a:\n    class: rotating_file\n    filename: logs/x.log\n"
        "  b:\n    class: file\n    filename: logs/x.log.1\n",
        7, "handlers.b.filename", "'logs/x.log.1' is also written by handlers.a.filename",
    ),
    "a file that is another handler's per-rank form": (
        "handlers:\n  a:\n    class: file\n    filename: logs/x.rank1.log\n"
        "  b:\n    class: file\n    filename: logs/x.log\n",
        7, "handlers.b.filename", "'logs/x.log' is also written by handlers.a.filename",
    ),
    "another run's shard by absolute path": (
        "handlers:\n  f:\n    class: file\n    filename: /srv/runs/A/events.0.jsonl\n",
        4, "handlers.f.filename", "is one of gemmalog's own files",
    ),
    "two handlers, one file": (
        "handlers:\n  a:\n    class: file\n    filename: t.log\n"
        "  b:\n    class: rotating_file\n    filename: ./logs/../t.log\n",
        7, "handlers.b.filename", "'./logs/../t.log' is also written by handlers.a.filename",
    ),
    "a file inside TensorBoard's folder": (
        "handlers:\n  tb:\n    class: tensorboard\n    log_dir: tb\n"
        "  c:\n    class: csv\n    filename: tb/m.csv\n",
        7, "handlers.c.filename", "is also written by handlers.tb.log_dir",
    ),
    "NUL in a file name": (
        'handlers:\n  f:\n    class: file\n    filename: "a\\0b.log"\n',
        4, "handlers.f.filename", "must be a file path",
    ),
    "an encoding that is not a text encoding": (
        "handlers:\n  f:\n    class: file\n    filename: a.log\n    encoding: rot13\n",
        5, "handlers.f.encoding", "must be a text encoding such as utf-8",
    ),
    "backups beyond the bound": (
        "handlers:\n  f:\n    class: rotating_file\n    filename: a.log\n    backupCount: 100000\n",
        5, "handlers.f.backupCount", "at most 10,000",
    ),
    "a user sink option YAML makes a set of": (
        "handlers:\n  u:\n    class: mypkg.Sink\n    tags: !!set {a: null}\n",
        4, "handlers.u.tags", "must be a plain value",
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(PATH_CASES))
def test_paths_and_values_refused_with_file_line_and_key(
    case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text, line, key, message = PATH_CASES[case]
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    result = check(path)
    assert result.exit_code == 1
    assert f"{path}:{line}: {key}: " in result.stderr and message in result.stderr, result.stderr
    with pytest.raises(ConfigError, match=rf"bad\.yaml:{line}: "):
        gemmalog.initialize(path, root=tmp_path / "runs")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.yaml"]


def test_the_cache_folder_refused_is_the_one_queries_make(tmp_path: Path) -> None:
    run = gemmalog.initialize(root=tmp_path / "runs", capture_stdlib=False)
    gemmalog.log_training_progress(1, {"loss": 1.0})
    gemmalog.shutdown()
    assert CliRunner().invoke(cli, ["summary", str(run.dir)]).exit_code == 0
    assert (run.dir / CACHE_NAME).is_dir()


def test_the_largest_accepted_values_start_and_end_a_run(tmp_path: Path) -> None:
    run = gemmalog.initialize(
        root=tmp_path / "runs",
        max_string_length=MAX_INT,
        queue_size=MAX_INT,
        flush_interval=86_400.0,
        memory_interval=86_400.0,
        capture_stdlib=False,
    )
    gemmalog.get_logger("app").info("x" * 100, n=1)
    gemmalog.shutdown()
    manifest = orjson.loads((run.dir / "run.json").read_bytes())
    assert manifest["status"] == "completed"
    assert manifest["config"]["settings"]["max_string_length"] == MAX_INT
    events = [orjson.loads(x) for x in (run.dir / "events.0.jsonl").read_bytes().splitlines()]
    assert any(e.get("event") == "x" * 100 for e in events)


# Any mapping YAML can hold: parse() returns a configuration run.json can store, or a
# ConfigError; never another exception.
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),
    st.text(max_size=8),
    st.sampled_from(["INFO", "a.log", "console", "json", "%(message)s", "block", "utf-8"]),
)
VALUE = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=6,
)
KEYS = sorted({*SETTINGS, *METRICS, *DOCTOR, *(k for t in OPTIONS.values() for k in t)})
HANDLER = st.fixed_dictionaries(
    {"class": st.sampled_from([*HANDLER_CLASS.values(), "null"])},
    optional={k: VALUE for k in ("filename", "log_dir", "level", "formatter", *KEYS[:12])},
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.fixed_dictionaries(
        {},
        optional={
            "version": VALUE,
            "gemmalog": st.dictionaries(st.sampled_from(sorted(SETTINGS)), VALUE, max_size=4),
            "metrics": st.dictionaries(st.sampled_from(sorted(METRICS)), VALUE, max_size=3),
            "doctor": st.dictionaries(st.sampled_from(sorted(DOCTOR)), VALUE, max_size=4),
            "handlers": st.dictionaries(st.sampled_from(["a", "b"]), HANDLER, max_size=2),
            "formatters": st.dictionaries(
                st.just("f"),
                st.dictionaries(st.sampled_from(["format", "datefmt", "fields"]), VALUE),
            ),
            "root": st.dictionaries(st.sampled_from(["level", "handlers", "propagate"]), VALUE),
        },
    )
)
def test_any_mapping_parses_to_a_storable_configuration_or_a_config_error(
    data: dict[str, Any],
) -> None:
    text = yaml.safe_dump(data, allow_unicode=True)
    try:
        config = parse(data, "generated.yaml")
    except ConfigError as exc:
        assert str(exc).startswith("invalid gemmalog configuration ("), text
        return
    orjson.dumps(config.snapshot())  # what run.json and run_start hold
