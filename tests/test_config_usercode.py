"""A configuration runs no code when checked and touches no file before it is valid (S3):
sink classes and processors named by dotted path are located, or imported when opted in."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner

import gemmalog
from gemmalog import running
from gemmalog.cli import cli
from gemmalog.config import Config, ConfigError, HandlerConfig

# -- S3: no code runs at check time; a class that is not a sink is refused before any file ------


@pytest.fixture
def user_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A package whose import leaves a mark (the file IMPORTED), with sinks and non-sinks."""
    package = tmp_path / "pkgs" / "gl_check_pkg"
    package.mkdir(parents=True)
    marker = tmp_path / "IMPORTED"
    (package / "__init__.py").write_text(
        textwrap.dedent(
            f"""
            import logging
            open({str(marker)!r}, "a").write("imported\\n")

            from gemmalog.sinks import BaseSink

            LINES = []


            class Keep(BaseSink):
                def __init__(self, name, level="debug"):
                    super().__init__(name, level)

                def write(self, batch):
                    LINES.extend(event["event"] for event, _ in batch)


            class KeepRecords(logging.Handler):
                def __init__(self, prefix=""):
                    super().__init__()
                    self.prefix = prefix

                def emit(self, record):
                    LINES.append(self.prefix + self.format(record))


            class Opens:
                '''Not a sink: it truncates the file it is named after, like tarfile.TarFile.'''

                def __init__(self, name, mode="w"):
                    open(name, mode).close()

                def close(self):
                    pass


            def a_function(logger, method, event):
                return event


            NOT_CALLABLE = 3


            class NeedsArgument:
                def __init__(self, x):
                    self.x = x

                def __call__(self, logger, method, event):
                    return event


            class NotCallable:
                pass
            """
        )
    )
    (package / "plain.py").write_text("VALUE = 1\n")
    monkeypatch.syspath_prepend(str(package.parent))
    yield "gl_check_pkg"
    for name in [m for m in sys.modules if m.startswith("gl_check_pkg")]:
        del sys.modules[name]


def check(path: Path, *flags: str) -> Any:
    return CliRunner().invoke(cli, ["config", "check", *flags, str(path)])


def test_config_check_runs_no_code_of_the_modules_it_names(
    tmp_path: Path, user_package: str
) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        f"handlers:\n  k:\n    class: {user_package}.Keep\n"
        f"gemmalog:\n  processors: [{user_package}.a_function]\n"
        "  listener_processors: [this.s]\n"
    )
    zen_loaded = "this" in sys.modules
    result = check(path)
    assert result.exit_code == 0, result.output
    assert result.stdout == f"OK {path}\n"
    assert "Zen of Python" not in result.output  # `import this` prints it
    assert not (tmp_path / "IMPORTED").exists() and user_package not in sys.modules
    assert "this" in sys.modules or not zen_loaded
    assert result.stderr == (
        "gemmalog: located but not imported (add --import-user-code to check them): "
        f"handlers.k.class {user_package}.Keep, gemmalog.processors[0] {user_package}.a_function, "
        "gemmalog.listener_processors[0] this.s\n"
    )


@pytest.mark.parametrize(
    ("dotted", "message"),
    [
        ("no_such_top_pkg.sinks.Sink", r"cannot find module 'no_such_top_pkg'"),
        ("{pkg}.no_such_module.Sink", r"cannot find module '{pkg}\.no_such_module'"),
        ("{pkg}.plain.deeper.Sink", r"'{pkg}\.plain' is a module, not a package"),
        ("{pkg}.has-dash.Sink", r"is not a dotted path"),
    ],
)
def test_a_missing_module_is_found_without_importing(
    dotted: str, message: str, tmp_path: Path, user_package: str
) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(f"handlers:\n  k:\n    class: {dotted.format(pkg=user_package)}\n")
    result = check(path)
    assert result.exit_code == 1
    assert f"{path}:3: handlers.k.class: " in result.stderr
    import re

    assert re.search(message.format(pkg=user_package), result.stderr), result.stderr
    assert not (tmp_path / "IMPORTED").exists()


NOT_SINKS = {
    "a class that opens a file": ("{pkg}.Opens", "is not a sink: it has no write(), flush()"),
    "tarfile.TarFile": ("tarfile.TarFile", "is not a sink: it has no write(), flush()"),
    "a function": ("{pkg}.a_function", "is not a class (it is a function)"),
    "a module": ("{pkg}.plain", "is not a class (it is a module)"),
    "a number": ("{pkg}.NOT_CALLABLE", "is not a class (it is a int)"),
    "a sink without the option": ("{pkg}.Keep", "cannot be created with name, mode"),
    "a handler without the option": ("{pkg}.KeepRecords", "cannot be created with mode"),
}


@pytest.mark.parametrize("case", sorted(NOT_SINKS))
def test_a_class_that_is_not_a_sink_is_refused_before_any_file(
    case: str, tmp_path: Path, user_package: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    dotted, message = NOT_SINKS[case]
    dotted = dotted.format(pkg=user_package)
    monkeypatch.chdir(tmp_path)
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    path = tmp_path / "c.yaml"
    path.write_text(f"handlers:\n  victim.txt:\n    class: {dotted}\n    mode: w\n")
    assert check(path).exit_code == 0  # without the flag: located only
    result = check(path, "--import-user-code")
    assert result.exit_code == 1
    expected = f"{path}:3: handlers.victim.txt.class: {dotted!r} {message}"
    assert expected in result.stderr, result.stderr
    with pytest.raises(ConfigError) as info:
        gemmalog.initialize(path, root=tmp_path / "runs")
    assert expected in str(info.value)
    assert running() is None
    assert victim.read_text() == "precious"  # the file it names was not opened
    assert {p.name for p in tmp_path.iterdir()} - {"IMPORTED"} == {"c.yaml", "pkgs", "victim.txt"}


def test_a_config_object_naming_a_non_sink_is_refused_before_any_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "victim.txt").write_text("precious")
    config = Config()
    config.handlers["victim.txt"] = HandlerConfig(
        "victim.txt", "user", options={"mode": "w"}, class_name="tarfile.TarFile"
    )
    with pytest.raises(
        ConfigError, match=r"handlers\.victim\.txt\.class: 'tarfile\.TarFile' is not"
    ):
        gemmalog.initialize(config, root=tmp_path / "runs")
    assert (tmp_path / "victim.txt").read_text() == "precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["victim.txt"]


@pytest.mark.parametrize(
    ("dotted", "message"),
    [
        ("{pkg}.NOT_CALLABLE", "is not callable"),
        ("{pkg}.NeedsArgument", "cannot be created with no arguments"),
        ("{pkg}.NotCallable", "is a class whose instances are not callable"),
        ("{pkg}.missing", "module '{pkg}' has no 'missing'"),
    ],
)
def test_a_processor_that_is_not_one_is_refused_with_the_flag(
    dotted: str, message: str, tmp_path: Path, user_package: str
) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(f"gemmalog:\n  listener_processors:\n    - {dotted.format(pkg=user_package)}\n")
    assert check(path).exit_code == 0
    assert not (tmp_path / "IMPORTED").exists()
    result = check(path, "--import-user-code")
    assert result.exit_code == 1
    assert f"{path}:2: gemmalog.listener_processors[0]: " in result.stderr
    assert message.format(pkg=user_package) in result.stderr, result.stderr
    with pytest.raises(ConfigError, match=r"gemmalog\.listener_processors\[0\]"):
        gemmalog.initialize(path, root=tmp_path / "runs")
    assert not (tmp_path / "runs").exists()


def test_gemmalog_own_paths_are_checked_without_the_flag(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("handlers:\n  k:\n    class: gemmalog.events.DEFAULT_LOGGER_NAMES\n")
    result = check(path)
    assert result.exit_code == 1
    assert (
        "handlers.k.class: 'gemmalog.events.DEFAULT_LOGGER_NAMES' is not a class" in result.stderr
    )


def test_a_user_sink_and_a_user_logging_handler_pass_and_run(
    tmp_path: Path, user_package: str
) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        textwrap.dedent(
            f"""
            formatters:
              short:
                format: "%(levelname)s %(message)s"
            handlers:
              keep:
                class: {user_package}.Keep
              records:
                class: {user_package}.KeepRecords
                formatter: short
                level: WARNING
                prefix: "> "
            root:
              handlers: [keep, records]
            """
        )
    )
    result = check(path, "--import-user-code")
    assert (result.exit_code, result.stdout, result.stderr) == (0, f"OK {path}\n", "")
    run = gemmalog.initialize(path, root=tmp_path / "runs", capture_stdlib=False)
    log = gemmalog.get_logger("app")
    log.info("hello")
    log.warning("careful")
    gemmalog.shutdown()
    lines = sys.modules[user_package].LINES
    assert "hello" in lines and "careful" in lines
    assert [line for line in lines if line.startswith("> ")] == ["> WARNING careful"]
    manifest = orjson.loads((run.dir / "run.json").read_bytes())
    assert manifest["status"] == "completed" and not manifest.get("sink_errors")
