"""Keywords are data (C2): any keyword a caller passes is stored, never raises, and never
changes the event's kind, logger or message. A field named like one only gemmalog sets
(``gemmalog.events.SET_BY_GEMMALOG``) is stored under its name with ``_`` appended."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

import gemmalog
from gemmalog.events import SET_BY_GEMMALOG
from tests.helpers import read_events

#: The envelope's values, which a caller's field of the same name must not replace.
OURS = ("v", "ts", "level", "run", "rank", "kind", "logger", "device", "rss_mb", "segment")


def clashing() -> dict[str, Any]:
    """One value for every name only gemmalog sets, none of them what gemmalog would write."""
    return {name: f"user-{name}" for name in sorted(SET_BY_GEMMALOG)}


def lines(run_dir: Path) -> dict[str, dict[str, Any]]:
    out = {}
    for e in read_events(run_dir):
        if e["kind"] not in ("run_start", "run_end"):
            out[str(e.get("event"))] = e
    return out


def assert_stored(event: dict[str, Any], fields: dict[str, Any], kind: str, run: str) -> None:
    for name, value in fields.items():
        if name == "event":
            continue
        assert event[name + "_"] == value, (name, event)
    assert event["kind"] == kind and event["run"] == run and event["rank"] == 0
    assert event["level"] in ("info", "warning") and isinstance(event["ts"], float)
    assert not any(k.startswith("_") and not k.endswith("_") for k in event), event


def test_every_clashing_keyword_is_stored_renamed_through_every_entry_point(
    root: Path,
) -> None:
    run = gemmalog.initialize(root=str(root), capture_stdlib=True)
    fields = clashing()
    log = gemmalog.get_logger("app")
    # the note's repros: event= raised TypeError into the caller, logger= was dropped,
    # kind="model_output" made a phantom completion, kind="metrics" injected metric rows
    log.info("webhook", event="push")
    log.info("keywords", **fields)
    log.bind(**fields).info("logger-bound")
    with gemmalog.bound(**fields):
        log.info("context-bound")
    log.warning("metrics-like", kind="metrics", metrics={"loss": 9.0}, step=3)
    log.info("phantom", kind="model_output", question="q", model_output="o")
    log.log(20, "level-method", level="debug")
    gemmalog.get_logger("named", name="data").info("named")  # name= is data too
    log.info(event="structlog-style")  # no positional message: event= is the message
    logging.getLogger("lib").warning("stdlib", extra={**fields, "user": 5})
    gemmalog.log_event("metrics", step=4, metrics={"acc": 1.0}, kind="x", logger="y", segment=7)
    gemmalog.log_event("log", event="log_event-log", kind="model_output", device="tpu")
    gemmalog.log_model_output("q", "a", "o", step=5, kind="metrics", logger="z", event="e")
    gemmalog.log_memory_usage(6, kind="model_output", device="tpu")
    gemmalog.shutdown()

    got = lines(run.dir)
    assert got["webhook"]["event_"] == "push" and got["webhook"]["kind"] == "log"
    for message in ("keywords", "logger-bound", "context-bound", "stdlib"):
        assert_stored(got[message], fields, "log", run.id)
    assert got["keywords"]["logger"] == "app" and got["stdlib"]["logger"] == "lib"
    assert got["stdlib"]["user"] == 5 and got["stdlib"]["level"] == "warning"
    assert got["metrics-like"]["kind"] == "log" and got["metrics-like"]["kind_"] == "metrics"
    assert got["phantom"]["kind"] == "log" and got["phantom"]["kind_"] == "model_output"
    assert got["level-method"]["level"] == "info" and got["level-method"]["level_"] == "debug"
    assert got["named"]["name"] == "data" and got["named"]["logger"] == "named"
    assert got["structlog-style"]["kind"] == "log" and "event_" not in got["structlog-style"]
    metrics = got["metrics"]
    assert metrics["kind"] == "metrics" and metrics["metrics"] == {"acc": 1.0}
    assert (metrics["kind_"], metrics["logger_"], metrics["segment_"]) == ("x", "y", 7)
    assert "segment" not in metrics  # a first segment's lines carry none
    assert got["log_event-log"]["kind_"] == "model_output"
    assert got["log_event-log"]["device_"] == "tpu" and got["log_event-log"]["device"] != "tpu"
    output = next(e for e in read_events(run.dir) if e["kind"] == "model_output")
    assert (output["kind_"], output["logger_"], output["event_"]) == ("metrics", "z", "e")
    assert output["logger"] == "gemmalog.model" and output["event"] == "model_output"
    memory = got["memory"]
    assert memory["kind"] == "system" and memory["kind_"] == "model_output"
    assert memory["device_"] == "tpu" and memory["device"] != "tpu"

    con = gemmalog.connect(run.dir)
    assert con.execute("SELECT count(*) FROM completions").fetchone() == (1,)
    rows = con.execute("SELECT step, name, value FROM metrics ORDER BY step").fetchall()
    assert rows == [(4, "acc", 1.0)]  # no row from the log events that said kind="metrics"
    assert con.execute("SELECT count(*) FROM gemmalog_read_errors").fetchone() == (0,)
    con.close()


def test_a_taken_renamed_name_gets_another_underscore(root: Path) -> None:
    run = gemmalog.initialize(root=str(root), capture_stdlib=False)
    gemmalog.get_logger("app").info("m", kind="a", kind_="b", kind__="c", event_="d", event="e")
    gemmalog.shutdown()
    (e,) = [e for e in read_events(run.dir) if e["kind"] == "log"]
    assert (e["kind"], e["kind_"], e["kind__"], e["kind___"]) == ("log", "b", "c", "a")
    assert (e["event"], e["event_"], e["event__"]) == ("m", "d", "e")


def test_keywords_never_raise_into_the_caller(root: Path) -> None:
    """Every keyword name a level method or ``log`` could take as a parameter."""
    gemmalog.initialize(root=str(root), capture_stdlib=False)
    log = gemmalog.get_logger("app")
    for method in ("debug", "info", "warning", "error", "critical", "exception", "msg"):
        getattr(log, method)("x", event=1, args=2, kw=3, self=4, method=5, level=6)
    log.log("info", "x", level=1, event=2, self=3)
    gemmalog.bind(self=1, values=2)
    log.info("bound")
    gemmalog.shutdown()


@pytest.mark.parametrize("name", sorted(SET_BY_GEMMALOG))
def test_bind_keeps_each_name_gemmalog_sets_apart(root: Path, name: str) -> None:
    run = gemmalog.initialize(root=str(root), capture_stdlib=False)
    gemmalog.bind(**{name: "mine"})
    gemmalog.get_logger("app").info("hello")
    gemmalog.clear_context()
    gemmalog.shutdown()
    e = lines(run.dir)["hello"]
    assert e[name + "_"] == "mine" and e["kind"] == "log" and e["logger"] == "app"
    assert all(e.get(k) != "mine" for k in OURS)
