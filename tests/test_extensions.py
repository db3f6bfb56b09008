"""The extension points: user processors (caller and listener side) and user sinks, from
Python and from the YAML, isolated when they fail; log_event for declared kinds."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

import gemmalog
from gemmalog.sinks import BaseSink
from tests.helpers import read_events


class Collect(BaseSink):
    """A user sink keeping what it is given."""

    def __init__(self, name: str = "collect", level: str = "debug", **options: Any) -> None:
        super().__init__(name, level)
        self.options = options
        self.events: list[dict[str, Any]] = []
        self.lines: list[bytes] = []
        self.closes = 0

    def write(self, batch: Any) -> None:
        for event, line in batch:
            self.events.append(event)
            self.lines.append(line)

    def _close(self) -> None:
        self.closes += 1


def test_user_processors_run_on_both_sides_and_what_they_add_is_redacted(root: Path) -> None:
    seen_threads: dict[str, str] = {}

    def caller(logger: Any, method: str, event: dict[str, Any]) -> dict[str, Any]:
        import threading

        seen_threads["caller"] = threading.current_thread().name
        event["experiment"] = "sweep-1"
        return event

    def listener(logger: Any, method: str, event: dict[str, Any]) -> dict[str, Any]:
        import threading

        seen_threads["listener"] = threading.current_thread().name
        event["note"] = "token hf_A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7"
        return event

    run = gemmalog.initialize(root=root, processors=[caller], listener_processors=[listener])
    gemmalog.get_training_logger().info("hello")
    gemmalog.shutdown()
    hello = next(e for e in read_events(run.dir) if e.get("event") == "hello")
    assert hello["experiment"] == "sweep-1" and hello["run"] == run.id
    assert "hf_A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7" not in hello["note"]
    assert seen_threads["caller"] == "MainThread" and seen_threads["listener"] != "MainThread"


def test_a_failing_user_processor_is_skipped_and_the_event_still_lands(
    root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(logger: Any, method: str, event: dict[str, Any]) -> dict[str, Any]:
        raise RuntimeError("bug in my processor")

    def wrong(logger: Any, method: str, event: dict[str, Any]) -> Any:
        return "not a dict"

    run = gemmalog.initialize(root=root, processors=[broken], listener_processors=[wrong])
    for i in range(3):
        gemmalog.get_training_logger().info("still here", i=i)
    gemmalog.shutdown()
    assert [e["i"] for e in read_events(run.dir) if e.get("event") == "still here"] == [0, 1, 2]
    err = capsys.readouterr().err
    assert err.count("raised RuntimeError") == 1 and err.count("returned str") == 1


def test_a_user_sink_in_python_gets_every_event_and_is_closed_once(root: Path) -> None:
    sink = Collect()
    run = gemmalog.initialize(root=root, sinks=[sink])
    gemmalog.log_training_progress(1, {"loss": 0.5})
    gemmalog.log_model_output("q", "4", "<answer>4</answer>", step=1, rewards={"f": 1.0})
    gemmalog.shutdown()
    kinds = [e["kind"] for e in sink.events]
    assert kinds[0] == "run_start" and kinds[-1] == "run_end"
    assert "metrics" in kinds and "model_output" in kinds
    # the same lines as the JSONL, byte for byte
    assert b"".join(sink.lines) == (run.dir / "events.0.jsonl").read_bytes()
    assert sink.closes == 1


def test_a_failing_user_sink_is_isolated(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    class Broken(Collect):
        def write(self, batch: Any) -> None:
            raise OSError("my backend is down")

    run = gemmalog.initialize(root=root, sinks=[Broken(name="broken")])
    for i in range(5):
        gemmalog.log_training_progress(i, {"loss": 1.0 / (i + 1)})
    gemmalog.shutdown()
    assert len([e for e in read_events(run.dir) if e["kind"] == "metrics"]) == 5
    assert "sink 'broken' failed and is disabled" in capsys.readouterr().err
    manifest = (run.dir / "run.json").read_text()
    assert "broken" in manifest and "my backend is down" in manifest


@pytest.fixture
def user_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A package `gl_user_ext` on sys.path with a sink class and a processor, as a user has."""
    package = tmp_path / "pkgs" / "gl_user_ext"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(
        textwrap.dedent(
            """
            from gemmalog.sinks import BaseSink

            COLLECTED = []


            class Collect(BaseSink):
                def __init__(self, name, prefix="", level="debug"):
                    super().__init__(name, level)
                    self.prefix = prefix

                def write(self, batch):
                    COLLECTED.extend(self.prefix + event["event"] for event, _ in batch)


            def tag(logger, method, event):
                event["tagged"] = True
                return event


            class Counter:
                def __init__(self):
                    self.n = 0

                def __call__(self, logger, method, event):
                    self.n += 1
                    event["nth"] = self.n
                    return event
            """
        )
    )
    monkeypatch.syspath_prepend(str(package.parent))
    yield "gl_user_ext"
    sys.modules.pop("gl_user_ext", None)


def test_a_user_sink_and_processors_named_in_the_yaml(
    root: Path, tmp_path: Path, user_package: str
) -> None:
    config = tmp_path / "ext.yaml"
    config.write_text(
        textwrap.dedent(
            f"""
            gemmalog:
              processors: [{user_package}.tag]
              listener_processors: [{user_package}.Counter]
            handlers:
              mine:
                class: {user_package}.Collect
                level: WARNING
                prefix: "seen: "
            loggers:
              logging.training:
                level: INFO
                handlers: [mine]
            """
        )
    )
    run = gemmalog.initialize(config, root=root)
    log = gemmalog.get_training_logger()
    log.info("info is below the handler's level")
    log.warning("careful")
    gemmalog.shutdown()
    collected = sys.modules[user_package].COLLECTED
    assert collected == ["seen: careful"]
    careful = next(e for e in read_events(run.dir) if e.get("event") == "careful")
    assert careful["tagged"] is True and careful["nth"] >= 1


def test_a_sink_class_that_cannot_be_imported_is_a_config_error(root: Path, tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("handlers:\n  mine:\n    class: no_such_pkg.sinks.Sink\n")
    with pytest.raises(
        gemmalog.ConfigError, match=r"handlers\.mine\.class: cannot import 'no_such_pkg.sinks'"
    ):
        gemmalog.initialize(config, root=root)
    assert list(root.iterdir()) == []  # nothing created for a bad configuration


def test_log_event_emits_declared_kinds_and_is_strict_in_tests(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = gemmalog.initialize(root=root)
    gemmalog.log_event("metrics", step=3, metrics={"loss": 0.25})
    gemmalog.log_event("made_up", detail=1)  # production: a marker, not an exception
    monkeypatch.setenv("GEMMALOG_STRICT", "1")
    with pytest.raises(ValueError, match="unknown event kind 'made_up'"):
        gemmalog.log_event("made_up")
    with pytest.raises(ValueError, match="metrics declares no field bogus"):
        gemmalog.log_event("metrics", step=1, metrics={}, bogus=2)
    gemmalog.shutdown()
    events = read_events(run.dir)
    metrics = [e for e in events if e["kind"] == "metrics"]
    assert metrics[0]["step"] == 3 and metrics[0]["logger"] == "gemmalog.metrics"
    marker = next(e for e in events if e.get("kind_") == "made_up")
    assert marker["kind"] == "log" and "unknown event kind" in marker["event"]
    con = gemmalog.connect(run.dir)
    assert con.execute("SELECT step, value FROM metrics").fetchall() == [(3, 0.25)]
