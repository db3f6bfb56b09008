"""No value disables a sink, and every command works on runs holding any value (D2, W4).

Values go through the seed configuration (console, text file, CSV, TensorBoard and the
JSONL) and are read back from each: the JSONL with orjson, ``training.log`` and the console
as text, the CSV with pandas, TensorBoard with its own EventAccumulator, the views with
DuckDB; then every command runs on the run and its output is read back too.
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pandas as pd
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

import gemmalog
from gemmalog.cli import cli
from gemmalog.events import KINDS
from gemmalog.processors.conform import CHECKS
from tests.helpers import events_of, read_events
from tests.hostile import (
    HostileDict,
    HostileFloat,
    HostileInt,
    HostileStr,
    Raises,
    numbers,
    objects,
)
from tests.hostile import values as hostile_values

SEED = Path(__file__).resolve().parents[1] / "configs" / "gemma_logging.yaml"
HUGE = "<int ~1.000000e+5000, too many digits to write>"


def start(root: Path) -> gemmalog.Run:
    return gemmalog.initialize(SEED, root=str(root), run_name="values", capture_stdlib=False)


def scalars(run_dir: Path, tag: str) -> dict[int, float]:
    from tensorboard.backend.event_processing import event_accumulator as ea

    acc = ea.EventAccumulator(str(run_dir / "logs" / "tensorboard"), size_guidance={ea.SCALARS: 0})
    acc.Reload()
    if tag not in acc.Tags()["scalars"]:
        return {}
    return {e.step: e.value for e in acc.Scalars(tag)}


def sink_errors(run_dir: Path) -> Any:
    return json.loads((run_dir / "run.json").read_text()).get("sink_errors")


def invoke(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == 0, (args, result.output[-2000:])
    out = result.output
    # numbers that make sense: no NaN or infinity read as a share, no traceback
    assert not re.search(r"(?i)(nan|inf(inity)?)\s*%", out), (args, out[-2000:])
    assert "Traceback" not in out
    return out


def test_a_huge_int_disables_no_sink(root: Path, capfd: pytest.CaptureFixture[str]) -> None:
    """The note's repro (D2): one int past Python's 4,300-digit limit, as a field, a reward
    and a metric. Before: every sink but the JSONL was disabled and the line was lost."""
    run = start(root)
    train = gemmalog.get_training_logger()
    train.info("before", a=1)
    train.info("big", n=10**5000, exact=10**100 + 1, nested={"n": [-(10**5000)]})
    gemmalog.log_model_output("q", "a", "<answer>a</answer>", rewards={"f": 10**5000}, step=1)
    gemmalog.log_training_progress(1, {"m": 10**5000, "loss": 0.5})
    train.info("after", a=2)
    gemmalog.shutdown()
    err = capfd.readouterr().err
    assert "disabled" not in err and sink_errors(run.dir) in (None, {})

    lines = {e.get("event"): e for e in read_events(run.dir)}
    assert lines["big"]["n"] == HUGE
    assert lines["big"]["exact"] == str(10**100 + 1)  # under the limit: every digit
    assert lines["big"]["nested"] == {"n": ["<int ~-1.000000e+5000, too many digits to write>"]}
    (output,) = events_of(run.dir, "model_output")
    assert output["rewards"] == {"f": "Infinity"}  # a DOUBLE: the nearest double
    (metrics,) = [e for e in events_of(run.dir, "metrics")]
    assert metrics["metrics"] == {"m": "Infinity", "loss": 0.5}

    text = (run.dir / "logs" / "training.log").read_text()
    assert f"big n={HUGE} exact=10000000000" in text
    assert "before a=1" in text and "after a=2" in text
    assert f"big n={HUGE} exact=10000000000" in err  # the console
    rows = pd.read_csv(run.dir / "logs" / "model_outputs.csv", keep_default_na=False)
    assert rows["reward_f"].tolist() == [math.inf] and rows["step"].tolist() == [1]
    assert scalars(run.dir, "train/loss") == {1: 0.5}
    assert scalars(run.dir, "train/m") == {1: math.inf}

    con = gemmalog.connect(run.dir)
    assert con.execute("SELECT count(*) FROM gemmalog_read_errors").fetchone() == (0,)
    assert con.execute("SELECT rewards['f'] FROM completions").fetchone() == (math.inf,)
    con.close()


def test_subclasses_with_hostile_methods_disable_no_sink(
    root: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """An int whose ``__repr__`` raises, in a metrics-like dict, passed the caller's cheap
    check and disabled the text, CSV and TensorBoard sinks; it is read through ``int`` now."""
    run = start(root)
    train = gemmalog.get_training_logger()
    train.info("sub", i=HostileInt(7), f=HostileFloat(1.5), s=HostileStr("x"), d=HostileDict(a=1))
    train.info("flat", scores={"a": HostileInt(3), "b": 0.5})
    train.info("raises", r=Raises())
    gemmalog.log_model_output("q", "a", "o", rewards={"f": HostileInt(1), "g": 0.5}, step=2)
    gemmalog.log_training_progress(2, {"loss": HostileFloat(0.25), "n": HostileInt(4)})
    gemmalog.log_training_progress(HostileInt(3), {"loss": 0.125})  # a step of that kind too
    gemmalog.shutdown()
    assert "disabled" not in capfd.readouterr().err and sink_errors(run.dir) in (None, {})
    lines = {e.get("event"): e for e in read_events(run.dir)}
    assert (lines["sub"]["i"], lines["sub"]["f"], lines["sub"]["s"]) == (7, 1.5, "x")
    assert lines["sub"]["d"] == {"a": 1}
    assert lines["flat"]["scores"] == {"a": 3, "b": 0.5}
    assert lines["raises"]["r"] == "<unserializable Raises: repr raised RuntimeError>"
    text = (run.dir / "logs" / "training.log").read_text()
    assert " - flat\n" in text and "sub i=7 f=1.5 s=x" in text
    rows = pd.read_csv(run.dir / "logs" / "model_outputs.csv", keep_default_na=False)
    assert rows["reward_f"].tolist() == [1.0]
    assert scalars(run.dir, "train/loss") == {2: 0.25, 3: 0.125}
    assert scalars(run.dir, "train/n") == {2: 4}


# -- the property test: hostile values through every sink and every command -------------

EXAMPLES = 100


def _log_everything(i: int, value: Any, number: Any) -> None:
    train = gemmalog.get_training_logger()
    train.info("value", n=i, value=value, nested={"x": [value]})
    gemmalog.log_model_output(
        value,
        number,
        f"<reasoning>r</reasoning><answer>{i}</answer>",
        rewards={"f": number, "g": 0.5},
        total_reward=number,
        correct=value if i % 2 else True,
        step=i,
        length_tokens=number,
        extra=value,
    )
    gemmalog.log_training_progress(i, {"x": number, "loss": 1.0})
    gemmalog.log_reward("f", [number, 1.0], [value, "s"], step=i)
    gemmalog.log_reward_metrics(i, {"f": [number, 0.5]})
    gemmalog.log_generation_metrics(i, [value, "abc"])
    gemmalog.log_memory_usage(i, extra=number)
    gemmalog.log_event("metrics", step=i, metrics={"y": number}, epoch=number)
    gemmalog.log_event("system", step=i, cpu_rss_mb=number, event=value)


def test_hostile_values_through_every_sink_and_command(
    root: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    run = start(root)
    logged: list[int] = []

    @settings(max_examples=EXAMPLES, deadline=None, database=None)
    @given(value=hostile_values, number=st.one_of(numbers, objects))
    def log_one(value: Any, number: Any) -> None:
        _log_everything(len(logged), value, number)
        logged.append(len(logged))

    log_one()
    gemmalog.shutdown()
    n = len(logged)
    assert n == EXAMPLES
    err = capfd.readouterr().err
    assert "disabled" not in err and sink_errors(run.dir) in (None, {}), err[-2000:]

    events = read_events(run.dir)  # orjson parses every line
    assert sorted(e["n"] for e in events if e.get("event") == "value") == logged
    assert [e["step"] for e in events_of(run.dir, "model_output")] == logged
    for e in events:  # every declared field has its declared type (or was renamed)
        for name, value in e.items():
            assert name not in CHECKS or CHECKS[name](value) or name == "event", (name, value)
    # the text sinks have a line for every event logged to them, the CSV a row per output
    text = (run.dir / "logs" / "training.log").read_text(errors="backslashreplace")
    assert sorted(int(m) for m in re.findall(r" - value .*?\bn=(\d+)", text)) == logged
    assert len(re.findall(r" - value ", err)) == n  # the console
    rows = pd.read_csv(run.dir / "logs" / "model_outputs.csv", keep_default_na=False)
    assert rows["step"].tolist() == logged
    assert scalars(run.dir, "train/loss") == dict.fromkeys(logged, 1.0)

    con = gemmalog.connect(run.dir)
    assert con.execute("SELECT count(*) FROM events").fetchone() == (len(events),)
    assert con.execute("SELECT count(*) FROM gemmalog_read_errors").fetchone() == (0,)
    assert con.execute("SELECT count(*) FROM completions").fetchone() == (n,)
    got = con.execute("SELECT count(DISTINCT step) FROM metrics WHERE name = 'loss'").fetchone()
    assert got == (n,)
    con.close()

    where = str(run.dir)
    summary = orjson.loads(invoke("summary", "--json", where))
    assert summary["completions"]["count"] == n and summary["read_errors"] == 0
    invoke("summary", where)
    invoke("doctor", where)
    orjson.loads(invoke("doctor", "--json", where))
    report = tmp_path / "report.html"
    invoke("report", where, "-o", str(report))
    assert not re.search(r"(?i)(nan|inf)\s*%", report.read_text())
    tail = invoke("tail", where).splitlines()
    assert len(tail) == len(events)
    invoke("compare", where, where)
    invoke("runs", str(root))
    for kind, rows_expected in (("model_output", n), ("metrics", None), ("rewards", None)):
        out = tmp_path / f"{kind}.csv"
        invoke("to-csv", where, "--kind", kind, "-o", str(out))
        frame = pd.read_csv(out, keep_default_na=False)
        assert rows_expected is None or len(frame) == rows_expected
    invoke("to-parquet", where, str(tmp_path / "parquet"))
    import duckdb

    parquet = (
        duckdb.connect()
        .execute(f"SELECT count(*) FROM read_parquet('{tmp_path / 'parquet'}/**/*.parquet')")
        .fetchone()
    )
    assert parquet is not None and parquet[0] > 0
    completions = orjson.loads(
        invoke("sql", where, "SELECT * FROM completions", "--format", "json")
    )
    assert len(completions) == n
    print(f"\nhypothesis examples run: {n} (each logged nine ways)")


# -- W4: wrong-typed declared fields ------------------------------------------------------

#: A value of the wrong type for each DuckDB type.
WRONG = {
    "INTEGER": ["seven", 2**40, [1], 1.5],
    "BIGINT": ["x", 2**70, {"a": 1}],
    "DOUBLE": ["abc", [1.0], {"x": 1}, 10**5000],
    "VARCHAR": [{"x": 1}, [1, 2], b"bytes"],
    "BOOLEAN": ["yes", 2, [True]],
    "VARCHAR[]": ["abc", 5, {"a": 1}],
    "DOUBLE[]": ["abc", 5.0, {"a": 1}],
    "MAP(VARCHAR, DOUBLE)": [[1, 2], "abc", 5, {"a": "x"}],
}


def _wrong(sql: str) -> list[Any]:
    if sql.startswith("MAP(VARCHAR, STRUCT("):
        return [[1], {"f": 5}, {"f": {"mean": "x", "count": 2**70}}]
    return WRONG.get(sql, [])


def test_log_event_gives_every_declared_field_its_declared_type(
    root: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """W4: ``log_event("metrics", metrics=[1, 2])`` made ``tail`` fail for the whole run;
    ``model_output={"x": 1}`` or ``rewards="abc"`` made ``report`` fail. Every declared field
    of every kind, given a value of another type, is replaced by one of its own (None when
    nothing fits) and the message says so."""
    monkeypatch.delenv("GEMMALOG_STRICT", raising=False)
    run = start(root)
    sent: Counter[str] = Counter()
    for kind in KINDS.values():
        if kind.name == "log":
            continue
        for field in kind.fields:
            for bad in _wrong(field.sql):
                gemmalog.log_event(kind.name, step=1, **{field.name: bad})
                sent[kind.name] += 1
    gemmalog.log_event("metrics", step=2, metrics=[1, 2])
    gemmalog.log_event("model_output", step=2, model_output={"x": 1}, rewards="abc")
    sent.update(["metrics", "model_output"])
    gemmalog.shutdown()
    typed = [e for e in read_events(run.dir) if e["kind"] != "log"]
    lifecycle = Counter({"run_start": 1, "run_end": 1})  # the run's own
    assert Counter(e["kind"] for e in typed) == sent + lifecycle
    for e in typed:
        for name, value in e.items():
            assert name not in CHECKS or CHECKS[name](value), (e["kind"], name, value)
    last = [e for e in typed if e["kind"] == "model_output"][-1]
    assert last["model_output"] == "{'x': 1}" and last["rewards"] is None
    assert "rewards: expected a mapping, got str" in last["event"]
    where = str(run.dir)
    tail = invoke("tail", where)
    assert "step=2 metrics (metrics: expected a mapping, got list)" in tail
    invoke("report", where, "-o", str(tmp_path / "r.html"))
    invoke("summary", where)
    invoke("doctor", where)


def test_commands_read_old_runs_with_wrong_typed_fields(root: Path, tmp_path: Path) -> None:
    """Lines as 02b34a2 wrote them for W4's calls (a list as ``metrics``, a dict as the
    completion, a str as ``rewards``), and a ``ts`` no clock reads: every command works."""
    run = start(root)
    gemmalog.log_training_progress(1, {"loss": 1.0})
    gemmalog.log_model_output("q", "a", "<answer>a</answer>", rewards={"f": 1.0}, step=1)
    gemmalog.shutdown()
    envelope = {"v": 1, "ts": 1.7e9, "logger": "x", "level": "info", "run": run.id, "rank": 0}
    old = [
        {**envelope, "kind": "metrics", "step": 2, "metrics": [1, 2]},
        {**envelope, "kind": "model_output", "step": 2, "model_output": {"x": 1}},
        {**envelope, "kind": "model_output", "step": 2, "model_output": "y", "rewards": "abc"},
        {**envelope, "kind": "reward", "step": 2, "reward_fn": None, "values": "abc"},
        {**envelope, "kind": "log", "ts": 1e300, "level": {"x": 1}, "event": [1]},
    ]
    with (run.dir / "events.0.jsonl").open("ab") as fh:
        fh.write(b"".join(orjson.dumps(e) + b"\n" for e in old))
    where = str(run.dir)
    tail = invoke("tail", where)
    assert "step=2 [1, 2]" in tail and "--:--:--" in tail
    invoke("report", where, "-o", str(tmp_path / "r.html"))
    invoke("summary", where)
    invoke("doctor", where)
    invoke("compare", where, where)
    invoke("to-csv", where, "-o", str(tmp_path / "o.csv"))
    assert len(pd.read_csv(tmp_path / "o.csv")) == 3


def test_ints_past_the_limit_are_written_as_their_magnitude(root: Path) -> None:
    """Exact text up to Python's limit; past it, the magnitude from the top 64 bits (linear
    time: the conversion the limit guards against is quadratic)."""
    run = gemmalog.initialize(root=str(root), capture_stdlib=False)
    ints = {
        "small": 12345,
        "limit": -(10**4000),
        "past": 10**5000,
        "negative": -(10**5000) + 1,
        "power": 2**20000,
        "million": 10**1_000_000 - 1,
    }
    gemmalog.get_logger("ints").info("ints", **ints)
    gemmalog.shutdown()
    (e,) = [e for e in read_events(run.dir) if e.get("event") == "ints"]
    assert e["small"] == 12345 and e["limit"] == str(-(10**4000))
    assert e["past"] == HUGE
    assert e["negative"] == "<int ~-1.000000e+5000, too many digits to write>"
    assert e["power"] == "<int ~3.980277e+6020, too many digits to write>"
    assert e["million"] == "<int ~1.000000e+1000000, too many digits to write>"
    assert sys.get_int_max_str_digits() == 4300  # the test runs at the default limit
