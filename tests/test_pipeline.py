"""The core path: a log call becomes one JSON line, enriched, sanitized, redacted, never lost."""

from __future__ import annotations

import datetime as dt
import enum
import logging
import math
import os
import subprocess
import sys
import tracemalloc
import uuid
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

import gemmalog
import gemmalog.sinks
from gemmalog import running
from gemmalog.events import ENVELOPE, SCHEMA_VERSION
from tests.helpers import events_of, read_events


def test_every_helper_writes_one_typed_line(root: Path) -> None:
    run = gemmalog.initialize(root=str(root), run_name="helpers")
    gemmalog.log_training_progress(step=1, metrics={"loss": 0.5, "reward": 1.25})
    gemmalog.log_model_output(
        question="What is 2+2?",
        true_answer="4",
        model_output="<reasoning>\n2 plus 2\n</reasoning>\n<answer>\n4\n</answer>",
        rewards={"correctness": 2.0, "format": 0.5},
        correct=True,
        step=1,
    )
    gemmalog.log_reward(reward_name="correctness", values=[2.0, 0.0], samples=["s0", "s1"], step=1)
    gemmalog.log_reward_metrics(1, {"correctness": [2.0, 0.0, 2.0]})
    gemmalog.log_generation_metrics(
        step=1, generations=["<reasoning>a</reasoning><answer>1</answer>", "no format"]
    )
    gemmalog.log_memory_usage(step=1)
    gemmalog.shutdown()

    events = read_events(run.dir)
    kinds = [e["kind"] for e in events]
    assert kinds == [
        "run_start",
        "metrics",
        "model_output",
        "reward",
        "reward_summary",
        "generation_metrics",
        "system",
        "run_end",
    ]
    for event in events:
        assert event["v"] == SCHEMA_VERSION
        assert event["run"] == run.id
        assert event["rank"] == 0
        assert isinstance(event["ts"], float)
        assert event["level"] == "info"
        assert event["device"] == "cpu"
        assert event["rss_mb"] > 0
    metrics = events_of(run.dir, "metrics")[0]
    assert metrics["step"] == 1 and metrics["phase"] == "train"
    assert metrics["metrics"] == {"loss": 0.5, "reward": 1.25}
    output = events_of(run.dir, "model_output")[0]
    assert output["answer"] == "4"
    assert output["reasoning"] == "2 plus 2"
    assert output["total_reward"] == 2.5
    assert output["correct"] is True
    assert output["length_chars"] == len(
        "<reasoning>\n2 plus 2\n</reasoning>\n<answer>\n4\n</answer>"
    )
    summary = events_of(run.dir, "reward_summary")[0]["stats"]["correctness"]
    assert (
        summary["count"] == 3 and summary["mean"] == pytest.approx(4 / 3) and summary["max"] == 2.0
    )
    assert summary["std"] == pytest.approx(np.std([2.0, 0.0, 2.0], ddof=1))
    gen = events_of(run.dir, "generation_metrics")[0]
    assert (
        gen["count"] == 2
        and gen["format_adherence"] == 0.5
        and gen["answer_extraction_rate"] == 0.5
    )
    # computed on the listener thread from the texts, which never reach the line
    assert not any(key.startswith("_") for key in gen)
    assert gen["distinct_1"] == 1.0
    assert gen["max_length_chars"] == len("<reasoning>a</reasoning><answer>1</answer>")
    end = events_of(run.dir, "run_end")[0]
    assert end["status"] == "completed" and end["drops"] == 0 and end["events"] == len(events)


def test_envelope_fields_are_declared(root: Path) -> None:
    run = gemmalog.initialize(root=str(root))
    gemmalog.bind(step=3, epoch=0.5)
    gemmalog.get_logger("custom").info("hello")
    gemmalog.shutdown()
    declared = {f.name for f in ENVELOPE}
    for event in read_events(run.dir):
        envelope_keys = [k for k in event if k in declared]
        assert envelope_keys[:7] == ["v", "ts", "kind", "logger", "level", "run", "rank"]
    hello = next(e for e in read_events(run.dir) if e.get("event") == "hello")
    assert hello["step"] == 3 and hello["epoch"] == 0.5 and hello["logger"] == "custom"


def test_counts_match_and_shutdown_flushes_everything(root: Path) -> None:
    run = gemmalog.initialize(root=str(root), flush_interval=60.0, queue_size=1000)
    log = gemmalog.get_logger("bulk")
    for i in range(5000):
        log.info("tick", i=i)
    gemmalog.shutdown()
    ticks = [e for e in read_events(run.dir) if e.get("event") == "tick"]
    assert [e["i"] for e in ticks] == list(range(5000))
    manifest = orjson.loads((run.dir / "run.json").read_bytes())
    assert manifest["status"] == "completed"
    assert manifest["events_written"] == len(read_events(run.dir))
    assert manifest["drops"] == 0 and manifest["events_lost"] == 0


class _KeepLines(gemmalog.sinks.BaseSink):
    """A user sink holding every rendered line it is given, as the JSONL does until a flush."""

    def __init__(self) -> None:
        super().__init__("keep")
        self.lines: list[bytes] = []

    def write(self, batch: Any) -> None:
        self.lines.extend(line for _event, line in batch)


def test_a_held_line_takes_its_own_length_in_memory(root: Path) -> None:
    # orjson's bytes keep the whole buffer they were written into (about 8 KB for a 600-byte
    # line). The JSONL holds its lines until a flush: a megabyte of them took 13 MB of heap,
    # churned through page faults at every flush. A line must hold only its bytes.
    keep = _KeepLines()
    gemmalog.initialize(root=str(root), sinks=[keep], capture_stdlib=False)
    metrics = {f"metric_{i}": 0.1 * i + 0.001 for i in range(20)}
    tracemalloc.start()
    try:
        for step in range(500):
            gemmalog.log_training_progress(step, metrics)
        gemmalog.flush()
        lines, keep.lines = keep.lines, []
        length = sum(map(len, lines))
        count = len(lines)
        held = tracemalloc.get_traced_memory()[0]
        del lines
        freed = held - tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
        gemmalog.shutdown()
    assert count == 501  # run_start, then the 500 steps
    # Each bytes object adds its 33-byte header; the list its 8-byte slots. At least the
    # lines' own bytes are freed: nothing else holds them, so the reading measures them.
    assert length <= freed < 1.5 * (length + 48 * count), (freed, length)


def test_flush_makes_events_readable_without_shutdown(root: Path) -> None:
    run = gemmalog.initialize(root=str(root), flush_interval=60.0)
    gemmalog.log_training_progress(step=7, metrics={"loss": 1.0})
    assert gemmalog.flush(timeout=10)
    assert [e["step"] for e in events_of(run.dir, "metrics")] == [7]


def test_non_finite_floats_stay_recognizable(root: Path) -> None:
    run = gemmalog.initialize(root=str(root))
    gemmalog.log_training_progress(
        step=1,
        metrics={
            "nan": math.nan,
            "inf": math.inf,
            "ninf": -math.inf,
            "np_nan": np.float32("nan"),
            "ok": 1.5,
        },
    )
    gemmalog.get_logger("x").info("top level", value=math.nan, nested={"deep": [math.inf]})
    gemmalog.shutdown()
    metrics = events_of(run.dir, "metrics")[0]["metrics"]
    assert metrics == {
        "nan": "NaN",
        "inf": "Infinity",
        "ninf": "-Infinity",
        "np_nan": "NaN",
        "ok": 1.5,
    }
    line = next(e for e in read_events(run.dir) if e.get("event") == "top level")
    assert line["value"] == "NaN" and line["nested"] == {"deep": ["Infinity"]}
    # the raw text has no null where a number was logged
    raw = b"".join(p.read_bytes() for p in run.dir.glob("events.*.jsonl"))
    assert b'"nan":null' not in raw


class Color(enum.Enum):
    RED = 1


class Unprintable:
    def __repr__(self) -> str:
        raise RuntimeError("no repr for you")


def test_odd_values_are_sanitized(root: Path) -> None:
    torch = pytest.importorskip("torch")
    run = gemmalog.initialize(root=str(root))
    ident = uuid.UUID(int=5)
    cyclic: list[object] = [1]
    cyclic.append(cyclic)
    gemmalog.get_logger("odd").info(
        "odd",
        np_int=np.int64(3),
        np_float=np.float64(2.5),
        np_array=np.arange(3),
        np_bool=np.bool_(True),
        t_scalar=torch.tensor(1.5),
        t_vector=torch.tensor([1, 2]),
        t_bf16=torch.tensor([0.5], dtype=torch.bfloat16),
        path=Path("/tmp/x"),
        when=dt.datetime(2026, 1, 2, 3, 4, 5),
        ident=ident,
        color=Color.RED,
        data=b"\xffbytes",
        tags={"b", "a"},
        tup=(1, 2),
        nested={1: "int key", "k": {"deep": np.float32(0.25)}},
        huge=2**80,
        cyclic=cyclic,
        bad=Unprintable(),
        obj=object(),
        none=None,
    )
    gemmalog.shutdown()
    e = next(x for x in read_events(run.dir) if x.get("event") == "odd")
    assert (
        e["np_int"] == 3
        and e["np_float"] == 2.5
        and e["np_array"] == [0, 1, 2]
        and e["np_bool"] is True
    )
    assert e["t_scalar"] == 1.5 and e["t_vector"] == [1, 2] and e["t_bf16"] == [0.5]
    assert e["path"] == "/tmp/x" and e["when"] == "2026-01-02T03:04:05" and e["ident"] == str(ident)
    assert (
        e["color"] == "RED"
        and e["data"] == "\\xffbytes"
        and e["tags"] == ["a", "b"]
        and e["tup"] == [1, 2]
    )
    assert e["nested"] == {"1": "int key", "k": {"deep": 0.25}}
    assert e["huge"] == str(2**80)
    assert e["cyclic"][0] == 1 and e["cyclic"][1].startswith("<unserializable list: cycle")
    assert e["bad"].startswith("<unserializable Unprintable")
    assert e["obj"].startswith("<object object at")
    assert e["none"] is None


def test_long_text_is_truncated_with_a_flag(root: Path) -> None:
    run = gemmalog.initialize(root=str(root), max_string_length=100)
    gemmalog.log_model_output(question="q", true_answer="a", model_output="x" * 500, step=1)
    gemmalog.shutdown()
    e = events_of(run.dir, "model_output")[0]
    assert e["model_output"] == "x" * 100
    assert e["truncated"] == ["model_output"]
    assert e["length_chars"] == 500


SECRETS = {
    "hf": "hf_" + "A1b2C3d4E5f6G7h8I9j0KlMnOpQrSt",
    "aws": "AKIA" + "IOSFODNN7EXAMPLE",
    "openai": "sk-" + "proj-abcdefghijklmnopqrstuvwxyz0123",
    "wandb": "0123456789abcdef0123456789abcdef01234567",
    "bearer": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    "password": "hunter2hunter2",
}


def test_secrets_reach_no_file(root: Path) -> None:
    run = gemmalog.initialize(root=str(root))
    log = gemmalog.get_training_logger()
    log.info(f"logging in with {SECRETS['hf']}", api_key=SECRETS["openai"])
    log.info(
        "env", env={"WANDB_API_KEY": SECRETS["wandb"], "HOME": "/root"}, hub_token=SECRETS["hf"]
    )
    log.info(
        f"curl -H 'Authorization: Bearer {SECRETS['bearer']}' https://user:{SECRETS['password']}@example.com"
    )
    log.info("aws", note=f"aws_access_key_id={SECRETS['aws']}", password=SECRETS["password"])
    try:
        raise RuntimeError(f"token rejected: {SECRETS['hf']}")
    except RuntimeError:
        log.exception("request failed")
    logging.getLogger("transformers.hub").warning("using token %s", SECRETS["hf"])
    gemmalog.log_model_output(
        question="q", true_answer="a", model_output=f"my key is WANDB_API_KEY={SECRETS['wandb']}"
    )
    gemmalog.shutdown()
    everything = b"".join(p.read_bytes() for p in run.dir.rglob("*") if p.is_file())
    for name, secret in SECRETS.items():
        assert secret.encode() not in everything, name
    assert b"[REDACTED]" in everything
    events = read_events(run.dir)
    env = next(e for e in events if e.get("event") == "env")
    assert env["env"]["HOME"] == "/root" and env["env"]["WANDB_API_KEY"] == "[REDACTED]"
    # ordinary keys that merely contain "token" are not redacted
    gemmalog.initialize(root=str(root), run_name="tokens")
    gemmalog.log_training_progress(step=1, metrics={"num_tokens": 128.0})
    gemmalog.get_logger("t").info("tok", pad_token="<pad>", max_tokens=32)
    run2 = running().run  # type: ignore[union-attr]
    gemmalog.shutdown()
    tok = next(e for e in read_events(run2.dir) if e.get("event") == "tok")
    assert tok["pad_token"] == "<pad>" and tok["max_tokens"] == 32
    assert events_of(run2.dir, "metrics")[0]["metrics"] == {"num_tokens": 128.0}


def test_redaction_can_be_turned_off(root: Path) -> None:
    run = gemmalog.initialize(root=str(root), redact=False)
    gemmalog.get_logger("x").info("raw", api_key="abcdef123456")
    gemmalog.shutdown()
    assert (
        next(e for e in read_events(run.dir) if e.get("event") == "raw")["api_key"]
        == "abcdef123456"
    )


def test_drop_policy_counts_what_it_drops(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = gemmalog.initialize(
        root=str(root), backpressure="drop", queue_size=10, flush_interval=5.0
    )
    pipeline = running()
    assert pipeline is not None
    # Slow the listener down so the queue fills: the producer must drop, and count.
    listener_thread = pipeline.listener._thread
    assert listener_thread is not None
    original = pipeline.listener._handle
    import threading

    gate = threading.Event()

    def slow_handle(batch: list[object]) -> None:
        gate.wait(10)
        original(batch)

    pipeline.listener._handle = slow_handle  # type: ignore[method-assign]
    log = gemmalog.get_logger("flood")
    for i in range(500):
        log.info("flood", i=i)
    dropped = pipeline.queue.drops
    gate.set()
    gemmalog.shutdown()
    assert dropped > 0
    written = [e["i"] for e in read_events(run.dir) if e.get("event") == "flood"]
    assert len(written) + dropped == 500
    assert written == sorted(written)
    end = events_of(run.dir, "run_end")[0]
    manifest = orjson.loads((run.dir / "run.json").read_bytes())
    assert end["drops"] == dropped == manifest["drops"]
    assert f"dropped {dropped} event(s)" in capsys.readouterr().err


def test_block_policy_loses_nothing_with_a_tiny_queue(root: Path) -> None:
    run = gemmalog.initialize(root=str(root), backpressure="block", queue_size=4)
    for i in range(3000):
        gemmalog.log_training_progress(step=i, metrics={"i": float(i)})
    gemmalog.shutdown()
    assert [e["step"] for e in events_of(run.dir, "metrics")] == list(range(3000))
    assert orjson.loads((run.dir / "run.json").read_bytes())["drops"] == 0


def test_stdlib_records_and_warnings_land(root: Path) -> None:
    run = gemmalog.initialize(root=str(root))
    logging.getLogger("transformers.trainer").warning("from transformers %d", 42)
    logging.getLogger("datasets").error("from datasets")
    logging.getLogger("some.app").info("from an app logger")
    try:
        1 / 0  # noqa: B018
    except ZeroDivisionError:
        logging.getLogger("trl").exception("boom")
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn("a python warning", UserWarning, stacklevel=1)
    gemmalog.shutdown()
    logs = {e["event"]: e for e in events_of(run.dir, "log")}
    assert logs["from transformers 42"]["logger"] == "transformers.trainer"
    assert logs["from transformers 42"]["level"] == "warning"
    assert logs["from datasets"]["level"] == "error"
    assert logs["from an app logger"]["level"] == "info"
    assert "ZeroDivisionError" in logs["boom"]["exc"]
    assert any("a python warning" in e for e in logs)
    # each record exactly once, though the library loggers and root both carry the handler
    assert sum(1 for e in events_of(run.dir, "log") if e["event"] == "from transformers 42") == 1
    # a record after shutdown is a late event of the ended run (issue 22, W7), once
    logging.getLogger("transformers.trainer").warning("a library's teardown")
    late = run.dir / f"events.0.{os.getpid()}.jsonl"
    assert [e["event"] for e in map(orjson.loads, late.read_bytes().splitlines())] == [
        "a library's teardown"
    ]


def test_exceptions_are_formatted(root: Path) -> None:
    run = gemmalog.initialize(root=str(root))
    log = gemmalog.get_logger("err")
    try:
        raise ValueError("bad value")
    except ValueError:
        log.exception("it failed", step=3)
    log.error("explicit", exc_info=KeyError("k"))
    gemmalog.shutdown()
    events = {e["event"]: e for e in events_of(run.dir, "log")}
    assert (
        events["it failed"]["level"] == "error"
        and "ValueError: bad value" in events["it failed"]["exc"]
    )
    assert events["it failed"]["step"] == 3
    assert "KeyError" in events["explicit"]["exc"]


def test_levels_filter_before_the_queue(root: Path) -> None:
    run = gemmalog.initialize(root=str(root), level="warning")
    log = gemmalog.get_logger("lv")
    log.debug("d")
    log.info("i")
    log.warning("w")
    log.error("e")
    log.log(logging.CRITICAL, "c %s", "formatted")
    gemmalog.shutdown()
    assert [e["event"] for e in events_of(run.dir, "log") if e["logger"] == "lv"] == [
        "w",
        "e",
        "c formatted",
    ]


def test_bind_contexts(root: Path) -> None:
    run = gemmalog.initialize(root=str(root))
    log = gemmalog.get_logger("ctx").bind(component="trainer")
    with gemmalog.bound(step=5):
        log.info("inside")
    log.info("outside")
    gemmalog.bind(step=6, epoch=1.0)
    gemmalog.unbind("epoch")
    log.info("after unbind", step=9)
    gemmalog.shutdown()
    events = {e["event"]: e for e in events_of(run.dir, "log")}
    assert events["inside"]["step"] == 5 and events["inside"]["component"] == "trainer"
    assert "step" not in events["outside"]
    assert events["after unbind"]["step"] == 9 and "epoch" not in events["after unbind"]


def test_bound_values_are_made_json_ready_when_bound_without_loading_the_processors() -> None:
    """``bind`` sanitizes once, with the sanitizer below the processors (``_context`` is a
    leaf): a set becomes a sorted list, bytes text, NaN the JSONL's string, before any run."""
    code = (
        "import sys, gemmalog; gemmalog.bind(s={3, 1, 2}, b=b'ab', nan=float('nan'), "
        "step=np.int64(4)); print(gemmalog.get_context(), 'gemmalog.processors' in sys.modules)"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    out = subprocess.run(
        [sys.executable, "-c", "import numpy as np; " + code],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    ).stdout
    assert out.strip() == "{'s': [1, 2, 3], 'b': 'ab', 'nan': 'NaN', 'step': 4} False"


def test_logger_made_before_initialize_follows_the_current_run(root: Path) -> None:
    log = gemmalog.get_training_logger()
    first = gemmalog.initialize(root=str(root), run_name="first")
    log.info("one")
    second = gemmalog.initialize(root=str(root), run_name="second")  # ends the first run
    log.info("two")
    gemmalog.shutdown()
    assert [e["event"] for e in events_of(first.dir, "log")] == ["one"]
    assert [e["event"] for e in events_of(second.dir, "log")] == ["two"]
    assert orjson.loads((first.dir / "run.json").read_bytes())["status"] == "completed"


def test_run_manifest(root: Path) -> None:
    run = gemmalog.initialize(root=str(root), run_name="my run/../x")
    assert run.dir.parent == root
    assert "/" not in run.dir.name and ".." not in run.dir.name
    running_manifest = orjson.loads((run.dir / "run.json").read_bytes())
    assert running_manifest["status"] == "running" and running_manifest["end"] is None
    gemmalog.shutdown()
    gemmalog.shutdown()  # idempotent
    m = orjson.loads((run.dir / "run.json").read_bytes())
    assert m["id"] == run.id and m["name"] == "my run/../x" and m["status"] == "completed"
    assert m["end"] >= m["start"] and m["duration_s"] >= 0
    assert m["world_size"] == 1 and m["pid"] > 0 and m["host"]
    assert {"python", "gemmalog", "structlog", "orjson"} <= set(m["versions"])
    assert m["config"]["settings"]["root"] == str(root)


def test_logging_after_shutdown_joins_the_ended_run_and_starts_no_stray_one(
    root: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Defects note 17: a late log call used to start a run in ./gemmalog_runs."""
    monkeypatch.chdir(tmp_path)
    run = gemmalog.initialize(root=root, run_name="ended")
    gemmalog.shutdown()
    gemmalog.get_logger("late").info("logged after the run ended")
    gemmalog.log_training_progress(7, {"loss": 0.5})
    assert not (tmp_path / "gemmalog_runs").exists()
    assert sorted(p.name for p in root.iterdir()) == [run.dir.name]
    late = run.dir / f"events.0.{os.getpid()}.jsonl"
    # written before the call returned: no flush, no shutdown needed
    lines = [orjson.loads(line) for line in late.read_bytes().splitlines()]
    assert [(e["kind"], e["run"]) for e in lines] == [("log", run.id), ("metrics", run.id)]
    assert lines[0]["event"] == "logged after the run ended"
    assert "late events are appended to run" in capsys.readouterr().err
    assert gemmalog.connect(run.dir).execute(
        "SELECT count(*) FROM events WHERE kind = 'metrics'"
    ).fetchone() == (1,)
    # initialize() ends the late writer and starts a new run as usual
    again = gemmalog.initialize(root=root, run_name="next")
    assert again.id != run.id
    gemmalog.shutdown()


def test_logging_before_initialize_starts_a_default_run(tmp_path: Path) -> None:
    code = "import gemmalog; gemmalog.get_logger('early').info('nobody initialized')"
    env = {**os.environ, "GEMMALOG_ROOT": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert (
        "logging before initialize(): starting a run with the default configuration"
        in result.stderr
    )
    (run_dir,) = tmp_path.iterdir()
    assert [e["event"] for e in events_of(run_dir, "log")] == ["nobody initialized"]
    assert orjson.loads((run_dir / "run.json").read_bytes())["status"] == "completed"  # atexit


def test_import_is_light(tmp_path: Path) -> None:
    heavy = "('torch', 'transformers', 'trl', 'duckdb', 'tensorboard', 'yaml', 'psutil', 'structlog', 'gemmalog.lifecycle._lifecycle', 'gemmalog.engine._pipeline', 'gemmalog.config')"
    code = f"import sys, gemmalog; print(sorted(m for m in {heavy} if m in sys.modules))"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    ).stdout
    assert out.strip() == "[]"
    # The first log call loads the pipeline, but the default configuration needs no YAML.
    code = (
        f"import sys, gemmalog; gemmalog.initialize(root={str(tmp_path)!r}); "
        "gemmalog.get_logger('x').info('hi'); gemmalog.shutdown(); "
        f"print(sorted(m for m in {heavy} if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    ).stdout
    expected = sorted(
        [
            "gemmalog.lifecycle._lifecycle",
            "gemmalog.engine._pipeline",
            "gemmalog.config",
            "structlog",
        ]
    )
    if not sys.platform.startswith("linux"):  # no /proc/self/statm: psutil reads the RSS
        expected = sorted([*expected, "psutil"])
    assert out.strip().splitlines()[-1] == str(expected)


def test_lazy_names_are_the_modules_objects() -> None:
    import gemmalog.api
    import gemmalog.config

    assert gemmalog.initialize.__module__ == "gemmalog.lifecycle._lifecycle"
    assert gemmalog.log_model_output is gemmalog.api.log_model_output
    assert gemmalog.ConfigError is gemmalog.config.ConfigError
    assert set(gemmalog.__all__) <= set(dir(gemmalog))
    with pytest.raises(AttributeError, match="no attribute 'no_such_name'"):
        gemmalog.no_such_name  # noqa: B018


def test_public_api_is_sorted_and_importable() -> None:
    assert gemmalog.__all__ == sorted(gemmalog.__all__)
    for name in gemmalog.__all__:
        assert hasattr(gemmalog, name), name


def test_run_as_a_context_manager(root: Path) -> None:
    with gemmalog.initialize(root=str(root), run_name="ok") as run:
        gemmalog.log_training_progress(step=1, metrics={"loss": 1.0})
    assert running() is None
    assert orjson.loads((run.dir / "run.json").read_bytes())["status"] == "completed"

    with (
        pytest.raises(ValueError, match="diverged"),
        gemmalog.initialize(root=str(root), run_name="bad") as bad,
    ):
        raise ValueError("loss diverged")
    manifest = orjson.loads((bad.dir / "run.json").read_bytes())
    assert manifest["status"] == "failed" and manifest["error"] == "ValueError: loss diverged"
    failure = next(e for e in events_of(bad.dir, "log") if e["event"] == "run failed")
    assert "ValueError: loss diverged" in failure["exc"] and failure["level"] == "error"
    assert events_of(bad.dir, "run_end")[0]["status"] == "failed"


def test_stdlib_records_follow_gemmalogs_levels_and_warnings_alone(
    root: Path, tmp_path: Path
) -> None:
    config = tmp_path / "levels.yaml"
    config.write_text(
        "version: 1\nroot: {level: INFO, handlers: []}\nloggers:\n  noisy: {level: ERROR}\n"
    )
    run = gemmalog.initialize(str(config), root=str(root))
    logging.getLogger("noisy.sub").warning("below the configured level")
    logging.getLogger("noisy").error("at the configured level")
    gemmalog.shutdown()
    assert [e["event"] for e in events_of(run.dir, "log") if e["logger"].startswith("noisy")] == [
        "at the configured level"
    ]

    run = gemmalog.initialize(root=str(root), capture_stdlib=False, capture_warnings=True)
    logging.getLogger("some.lib").warning("not captured")
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn("captured on its own", UserWarning, stacklevel=1)
    gemmalog.shutdown()
    messages = [e["event"] for e in events_of(run.dir, "log")]
    assert any("captured on its own" in m for m in messages) and "not captured" not in messages
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        warnings.warn("after shutdown", UserWarning, stacklevel=1)
    assert seen  # catch_warnings still sees them
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn("late warning", UserWarning, stacklevel=1)
    late = run.dir / f"events.0.{os.getpid()}.jsonl"
    assert "late warning" in late.read_text()  # the ended run keeps it (issue 22, W7)
    gemmalog.initialize(root=str(root), capture_stdlib=False, capture_warnings=False)
    bridges = [
        h for h in logging.getLogger("py.warnings").handlers if type(h).__name__ == "StdlibBridge"
    ]
    assert not bridges  # a run that captures nothing removes the last run's bridge
    gemmalog.shutdown()


def test_envelope_renames_reserved_fields_given_or_bound_as_before() -> None:
    """AddEnvelope looks for reserved names with one set test (given, then bound): the
    result is what five identity checks on the built event gave, for any mix of fields."""
    import itertools

    from gemmalog import bound
    from gemmalog.events import SCHEMA_VERSION
    from gemmalog.processors.envelope import AddEnvelope

    envelope = AddEnvelope("run-1", 0)
    choices = {"ts": "x", "level": "warn", "run": "run-1", "rank": 0, "v": SCHEMA_VERSION}
    names = list(choices)
    for given, tied in itertools.product(range(3), range(3)):
        for combo in itertools.combinations(names, given):
            fields = {k: choices[k] for k in combo}
            context = {k: f"bound-{k}" for k in names[tied : tied + tied]}
            with bound(**context):
                out = envelope(None, "info", {"event": "e", **fields})
            assert out["run"] == "run-1" and out["rank"] == 0 and out["level"] == "info"
            assert out["v"] == SCHEMA_VERSION and type(out["ts"]) is float
            for key in names:
                theirs = fields.get(key, context.get(key))
                ours_same = key in ("run", "rank", "v") and key in fields  # the same object
                if theirs is None or ours_same:
                    assert key + "_" not in out, (key, fields, context)
                else:
                    assert out[key + "_"] == theirs, (key, fields, context)
