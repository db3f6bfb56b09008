"""Console and rotating-file text sinks under the seed configuration: format, routing, levels."""

from __future__ import annotations

import io
import re
import sys
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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
    from gemmalog import running

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


# -- batches: lines formatted without LogRecords, one write per batch, one rotation check ---------

import logging  # noqa: E402
import logging.handlers  # noqa: E402
import os  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

from gemmalog.formats import STANDARD_DATEFMT, STANDARD_FORMAT  # noqa: E402
from gemmalog.sinks.text import HandlerSink  # noqa: E402
from gemmalog.sinks.textformat import ConsoleHandler, LineFormat, TextFormatter  # noqa: E402

EVENTS: list[dict[str, Any]] = [
    {
        "kind": "log",
        "logger": "logging.training",
        "level": "info",
        "ts": 1.7e9 + 0.2501,
        "event": "hi",
    },
    {
        "kind": "metrics",
        "logger": "logging.metrics",
        "level": "warning",
        "ts": 1.7e9 + 0.999,
        "step": 3,
        "metrics": {f"m{i}": i / 3 for i in range(20)},
    },
    {
        "kind": "model_output",
        "logger": "logging.model\x1b[2J",
        "level": "error",
        "ts": 1.7e9 + 1.5,
        "question": "q\x1b]0;title\x07",
        "model_output": "line one\nline two\r" + "x" * 300,
        "exc": "Traceback (most recent call last):\n  boom",
    },
    {"kind": "log", "logger": "x", "level": "critical", "ts": -12.75, "event": "before 1970"},
    {"kind": "log", "logger": "x", "level": "debug", "ts": 0.0, "event": "epoch"},
]


def via_records(handler: logging.Handler, event: dict[str, Any], levelno: int) -> str:
    """What the stdlib makes of the LogRecord HandlerSink builds for an event."""
    from gemmalog.sinks.message import describe

    record = logging.LogRecord(
        str(event.get("logger", "")), levelno, "", 0, describe(event), None, None
    )
    ts = event["ts"]
    record.created = ts
    record.msecs = (ts - int(ts)) * 1000
    return handler.format(record)


@pytest.mark.parametrize(
    ("make", "fmt", "datefmt", "color"),
    [
        (lambda: logging.StreamHandler(io.StringIO()), STANDARD_FORMAT, STANDARD_DATEFMT, False),
        (ConsoleHandler, STANDARD_FORMAT, STANDARD_DATEFMT, True),
        (
            ConsoleHandler,
            "%(asctime)s|%(levelno)d|%(created)f|%(msecs)03d|%(message)s",
            None,
            False,
        ),
        (
            lambda: logging.StreamHandler(io.StringIO()),
            "%(name)-20s %(levelname)8s %(message)s",
            "%d.%m.%Y %H:%M",
            False,
        ),
        (ConsoleHandler, "%(asctime)s %(message)s", None, True),
        (
            lambda: logging.StreamHandler(io.StringIO()),
            "%(levelname)s 100%%(message)s",
            None,
            False,
        ),
        (lambda: logging.StreamHandler(io.StringIO()), "%(levelno)d %%%(message)s", None, False),
        (lambda: logging.StreamHandler(io.StringIO()), "%(message)s", None, False),
        (lambda: logging.StreamHandler(io.StringIO()), "[%(message)s] %(name)s", "%H", False),
    ],
)
def test_batch_lines_equal_the_stdlib_formatting(
    make: Any, fmt: str, datefmt: str | None, color: bool
) -> None:
    handler = make()
    handler.setFormatter(TextFormatter(fmt, datefmt, color=color))
    lines = LineFormat.for_handler(handler)
    assert lines is not None
    levels = {"debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}
    for event in EVENTS * 2:  # twice: the second time from the cached line starts
        levelno = levels[event["level"]]
        assert lines.line(event, levelno) == via_records(handler, event, levelno)


def test_other_handlers_and_formats_go_through_log_records(tmp_path: Path) -> None:
    class Custom(logging.StreamHandler):  # type: ignore[type-arg]
        pass

    assert LineFormat.for_handler(Custom(io.StringIO())) is None
    odd = logging.StreamHandler(io.StringIO())
    odd.setFormatter(logging.Formatter("%(process)d %(message)s"))
    assert LineFormat.for_handler(odd) is None
    braces = logging.StreamHandler(io.StringIO())
    braces.setFormatter(logging.Formatter("{message}", style="{"))
    assert LineFormat.for_handler(braces) is None
    filtered = logging.StreamHandler(io.StringIO())
    filtered.addFilter(lambda r: "keep" in r.getMessage())
    sink = HandlerSink("f", filtered)
    sink.write(
        [({"logger": "a", "level": "info", "event": e}, b"") for e in ("keep 1", "drop", "keep 2")]
    )
    assert filtered.stream.getvalue() == "keep 1\nkeep 2\n"  # type: ignore[attr-defined]


class CountingStream(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


def test_one_write_per_batch() -> None:
    stream = CountingStream()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(TextFormatter())
    sink = HandlerSink("s", handler)
    sink.write(
        [({"logger": "a", "level": "info", "ts": 1.7e9, "event": f"e{i}"}, b"") for i in range(100)]
    )
    assert stream.writes == 1
    assert stream.getvalue().splitlines()[99].endswith(" - a - INFO - e99")


def test_rotating_file_checks_the_disk_only_at_rollovers_and_keeps_every_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "t.log"
    handler = logging.handlers.RotatingFileHandler(
        path, maxBytes=1000, backupCount=50, encoding="utf-8"
    )
    handler.setFormatter(TextFormatter("%(message)s"))
    sink = HandlerSink("file", handler)
    checks = {"n": 0}
    real_exists = __import__("os").path.exists

    def exists(p: Any) -> bool:
        if str(p) == str(path):
            checks["n"] += 1
        return real_exists(p)

    monkeypatch.setattr("os.path.exists", exists)
    rollovers = {"n": 0}
    real_rollover = handler.doRollover

    def rollover() -> None:
        rollovers["n"] += 1
        real_rollover()

    monkeypatch.setattr(handler, "doRollover", rollover)
    words = ["ascii", "ünïcödé", "日本語テキスト"]
    for batch in range(5):
        sink.write(
            [
                (
                    {
                        "logger": "a",
                        "level": "info",
                        "event": f"{batch:02d}-{i:03d} {words[i % 3] * 3}",
                    },
                    b"",
                )
                for i in range(60)
            ]
        )
    sink.close()
    # The path is looked at when the file is first seen and after each rollover (the stdlib's
    # rotate, then this sink reading the new file's size), never per batch or per record.
    assert rollovers["n"] > 5 and checks["n"] == 1 + 2 * rollovers["n"]
    files = sorted(
        tmp_path.glob("t.log*"), key=lambda p: -int(p.suffix[1:]) if p.suffix[1:].isdigit() else 0
    )
    assert len(files) > 5
    assert all(0 < f.stat().st_size < 1000 for f in files)
    lines = [line for f in files for line in f.read_text(encoding="utf-8").splitlines()]
    assert [line[:6] for line in lines] == [f"{b:02d}-{i:03d}" for b in range(5) for i in range(60)]


def expected_files(before: int, lines: list[str], limit: int) -> list[str]:
    """The rule the stdlib's shouldRollover applies per record, in encoded bytes, with no
    rollover of an empty file: the text of each file, oldest first (the first file starts
    with ``before`` bytes already in it)."""
    files = [""]
    size = before
    for line in lines:
        n = len(line.encode("utf-8"))
        if size + n >= limit and size > 0:
            files.append("")
            size = 0
        files[-1] += line
        size += n
    return files


def rotated(path: Path) -> list[str]:
    """The text of ``path`` and its backups, oldest first."""
    backups = sorted(
        (p for p in path.parent.glob(path.name + ".*") if p.suffix[1:].isdigit()),
        key=lambda p: -int(p.suffix[1:]),
    )
    return [p.read_text(encoding="utf-8") for p in [*backups, path]]


@settings(max_examples=60, deadline=None)
@given(
    batches=st.lists(
        st.lists(st.text(st.sampled_from("aé日x"), min_size=0, max_size=40), max_size=12),
        max_size=12,
    ),
    before=st.integers(0, 120),
    limit=st.integers(20, 150),
)
def test_counted_sizes_roll_over_where_the_files_on_disk_say(
    batches: list[list[str]], before: int, limit: int
) -> None:
    """The byte counter (size read once, then added up) splits the lines exactly where a check
    of the file on disk before every line would: a file already there, batches of any size,
    multi-byte characters, the handler closed between batches (a new stream: read again)."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "t.log"
        path.write_text("p" * before, encoding="utf-8")
        handler = logging.handlers.RotatingFileHandler(
            path, maxBytes=limit, backupCount=10_000, encoding="utf-8", delay=True
        )
        handler.setFormatter(TextFormatter("%(message)s"))
        sink = HandlerSink("file", handler)
        lines = []
        for n, batch in enumerate(batches):
            sink.write([({"logger": "a", "level": "info", "event": e}, b"") for e in batch])
            lines += [visible_line(e) for e in batch]
            if n % 3 == 2:
                handler.close()  # as logging.shutdown() or a user would: reopened on write
        sink.close()
        want = expected_files(before, lines, limit)
        want[0] = "p" * before + want[0]
        assert rotated(path) == want


def visible_line(event: str) -> str:
    from gemmalog.sinks.message import describe

    return describe({"event": event}) + "\n"


def test_rollover_to_a_file_that_is_not_empty_reads_its_size(tmp_path: Path) -> None:
    """backupCount=0: the stdlib reopens the same full file, so every record rolls over again;
    the counter reads the reopened file's size instead of assuming an empty one."""
    path = tmp_path / "t.log"
    handler = logging.handlers.RotatingFileHandler(path, maxBytes=30, backupCount=0)
    handler.setFormatter(TextFormatter("%(message)s"))
    sink = HandlerSink("file", handler)
    calls = {"n": 0}
    real = handler.doRollover

    def rollover() -> None:
        calls["n"] += 1
        real()

    handler.doRollover = rollover  # type: ignore[method-assign]
    sink.write(
        [({"logger": "a", "level": "info", "event": f"line {i:02d}"}, b"") for i in range(8)]
    )
    sink.close()
    # 8 bytes a line, limit 30: lines 0-2 fit, then each later line finds the file full.
    assert calls["n"] == 5
    assert path.read_text().splitlines() == [f"line {i:02d}" for i in range(8)]


def test_a_file_that_is_not_regular_never_rolls_over(tmp_path: Path) -> None:
    handler = logging.handlers.RotatingFileHandler(os.devnull, maxBytes=5, backupCount=2)
    handler.setFormatter(TextFormatter("%(message)s"))
    handler.doRollover = lambda: pytest.fail("rolled over /dev/null")  # type: ignore[method-assign]
    with HandlerSink("file", handler) as sink:
        for _ in range(3):
            sink.write([({"logger": "a", "level": "info", "event": "x" * 20}, b"")] * 4)


def test_a_line_longer_than_max_bytes_gets_a_file_of_its_own(tmp_path: Path) -> None:
    path = tmp_path / "t.log"
    handler = logging.handlers.RotatingFileHandler(path, maxBytes=50, backupCount=5)
    handler.setFormatter(TextFormatter("%(message)s"))
    with HandlerSink("file", handler) as sink:
        sink.write(
            [
                ({"logger": "a", "level": "info", "event": e}, b"")
                for e in ("short", "y" * 80, "end")
            ]
        )
    assert path.read_text() == "end\n"
    assert (tmp_path / "t.log.1").read_text() == "y" * 80 + "\n"
    assert (tmp_path / "t.log.2").read_text() == "short\n"
    assert not (tmp_path / "t.log.3").exists()  # never an empty file rolled over


def test_batches_are_fast_enough_to_matter() -> None:
    """Not a benchmark (benchmarks/bench_sinks.py is): the batch path must not be slower than
    the LogRecord path it replaces, measured side by side."""
    batch = [({**EVENTS[1], "step": i}, b"") for i in range(200)]
    fast_handler = logging.StreamHandler(io.StringIO())
    fast_handler.setFormatter(TextFormatter())
    slow_handler = logging.StreamHandler(io.StringIO())
    slow_handler.setFormatter(TextFormatter())
    fast, slow = HandlerSink("a", fast_handler), HandlerSink("b", slow_handler)
    assert fast._lines is not None
    slow._lines = None

    def best(sink: HandlerSink) -> float:
        times = []
        for _ in range(5):
            t0 = time.perf_counter()
            sink.write(batch)
            times.append(time.perf_counter() - t0)
        return min(times)

    assert best(fast) < best(slow)
    assert fast_handler.stream.getvalue() == slow_handler.stream.getvalue()  # type: ignore[attr-defined]


@given(text=st.text(alphabet=st.sampled_from("ab\n\\é"), max_size=120), width=st.integers(2, 90))
def test_short_text_is_escaped_then_cut(text: str, width: int) -> None:
    from gemmalog.sinks.message import short_text

    full = text.replace("\n", "\\n")
    assert short_text(text, width) == (full if len(full) <= width else full[: width - 1] + "…")


@given(
    values=st.dictionaries(
        st.text(max_size=5), st.floats() | st.integers() | st.booleans(), max_size=25
    )
)
def test_expanded_metrics_read_as_key_equals_value(values: dict[str, Any]) -> None:
    """Floats with 6 significant digits, anything else as text cut at 40 characters, whether the
    dict is all floats (formatted in one call) or mixed."""
    from gemmalog.sinks.message import describe

    def shown(value: Any) -> str:
        text = format(value, ".6g") if type(value) is float else str(value)
        return text if len(text) <= 40 else text[:39] + "…"

    line = describe({"event": "m", "kind": "metrics", "metrics": values})
    assert line == " ".join(["m", *(f"{k}={shown(v)}" for k, v in values.items())])


def test_a_lone_surrogate_is_written_escaped_and_the_file_sink_lives(root: Path) -> None:
    run = gemmalog.initialize(CONFIG, root=root)
    gemmalog.get_training_logger().info("bad \ud800 text", value="v\udfff")
    gemmalog.get_training_logger().info("later line")
    gemmalog.shutdown()
    text = (run.dir / "logs" / "training.log").read_text(encoding="utf-8")
    assert "bad \\ud800 text value=v\\udfff" in text and "later line" in text
    assert "file" not in (
        orjson.loads((run.dir / "run.json").read_bytes()).get("sink_errors") or {}
    )


def test_a_formatter_set_later_is_followed() -> None:
    handler = logging.StreamHandler(io.StringIO())
    handler.setFormatter(TextFormatter("%(message)s"))
    sink = HandlerSink("s", handler)
    sink.write([({"logger": "a", "level": "info", "event": "one"}, b"")])
    handler.setFormatter(TextFormatter("%(levelname)s:%(message)s"))
    sink.write([({"logger": "a", "level": "info", "event": "two"}, b"")])
    handler.setFormatter(logging.Formatter("%(process)d|%(message)s"))
    sink.write([({"logger": "a", "level": "info", "event": "three"}, b"")])
    lines = handler.stream.getvalue().splitlines()  # type: ignore[attr-defined]
    assert lines[:2] == ["one", "INFO:two"] and lines[2].endswith("|three")


@pytest.mark.parametrize("encoding", ["utf-16", "utf-8-sig", "latin-1"])
def test_rotating_file_size_stays_bounded_in_any_encoding(tmp_path: Path, encoding: str) -> None:
    # Where ASCII text is not one byte a character (UTF-16) or a BOM is written (utf-8-sig),
    # counting characters would undercount across batches: the files would grow past maxBytes.
    path = tmp_path / "t.log"
    handler = logging.handlers.RotatingFileHandler(
        path, maxBytes=1000, backupCount=100, encoding=encoding
    )
    handler.setFormatter(TextFormatter("%(message)s"))
    sink = HandlerSink("file", handler)
    for i in range(400):  # one line a batch: the count carries over from batch to batch
        sink.write([({"logger": "a", "level": "info", "event": f"{i:03d} " + "x" * 16}, b"")])
    sink.close()
    files = list(tmp_path.glob("t.log*"))
    assert len(files) > 5
    # A file may end one line past the limit at most (the line that reached it starts the next).
    line = len(f"000 {'x' * 16}\n".encode(encoding))
    assert all(0 < f.stat().st_size < 1000 + line for f in files)
    lines = sorted(x for f in files for x in f.read_text(encoding=encoding).splitlines())
    assert [x[:3] for x in lines] == [f"{i:03d}" for i in range(400)]
