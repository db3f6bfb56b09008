"""model_outputs.csv: columns, RFC 4180 round trips, spreadsheet safety, live == rebuilt."""

from __future__ import annotations

import csv
import io
import math
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import gemmalog
from gemmalog.formats import neutralize
from gemmalog.sinks.csv import CsvSink
from gemmalog.sinks.csvrows import cell, write_csv

HOSTILE = [
    'He said "hi", then left',
    "line one\nline two\r\nline three\rend",
    "tab\tseparated\tvalues",
    "naïve café — ünïcödé 中文 العربية",
    "emoji 🤖🧠👍🏽 and a ZWJ family 👨‍👩‍👧",
    ',,,"""',
    "",
    " leading and trailing spaces ",
    "back\\slash and NUL-free control \x07 bell",
]

FORMULAS = {
    '=HYPERLINK("http://evil","x")': '\'=HYPERLINK("http://evil","x")',
    "+1+cmd|' /C calc'!A0": "'+1+cmd|' /C calc'!A0",
    "-2+3": "'-2+3",
    "@SUM(1,2)": "'@SUM(1,2)",
    "\tleading tab": "'\tleading tab",
    "\rcarriage return": "'\rcarriage return",
    "-42": "-42",
    "+1.5e3": "+1.5e3",
    "-0.25": "-0.25",
    "42": "42",
    "a=b": "a=b",
}


def seed_config(tmp_path: Path, **csv_options: Any) -> Path:
    options = {
        "filename": "logs/model_outputs.csv",
        "columns": ["timestamp", "question", "answer", "llm_reasoning", "llm_answer"],
        "buffer_size": 100,
        "flush_interval": 5.0,
        **csv_options,
    }
    lines = "\n".join(f"    {k}: {orjson.dumps(v).decode()}" for k, v in options.items())
    path = tmp_path / "config.yaml"
    path.write_text(
        "version: 1\n"
        "loggers:\n"
        "  logging.model: {level: INFO, handlers: [csv], propagate: false}\n"
        "handlers:\n"
        f"  csv:\n    class: logging.custom.CSVHandler\n{lines}\n"
    )
    return path


def read_rows(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


def model_outputs(run_dir: Path) -> list[dict[str, Any]]:
    events = [orjson.loads(line) for line in (run_dir / "events.0.jsonl").read_bytes().splitlines()]
    return [e for e in events if e["kind"] == "model_output"]


def rebuilt(run_dir: Path, **options: Any) -> bytes:
    out = io.StringIO(newline="")
    events = [orjson.loads(line) for line in (run_dir / "events.0.jsonl").read_bytes().splitlines()]
    write_csv(events, out, **options)
    return out.getvalue().encode("utf-8")


def test_seed_columns_one_row_per_output(tmp_path: Path, root: Path) -> None:
    run = gemmalog.initialize(seed_config(tmp_path), root=root)
    for i in range(5):
        gemmalog.log_model_output(
            question=f"What is {i}+{i}?",
            true_answer=str(2 * i),
            model_output=f"<reasoning>add {i} twice</reasoning>\n<answer>{2 * i}</answer>",
            rewards={"correctness": 2.0, "format": -0.5},
            correct=True,
            step=i // 2,
        )
    gemmalog.get_training_logger().info("not a model output")
    gemmalog.shutdown()
    rows = read_rows(run.dir / "logs" / "model_outputs.csv")
    assert rows[0] == [
        "timestamp",
        "question",
        "answer",
        "llm_reasoning",
        "llm_answer",
        "step",
        "correct",
        "reward_correctness",
        "reward_format",
    ]
    assert len(rows) == 6
    assert rows[3][1:] == ["What is 2+2?", "4", "add 2 twice", "4", "1", "true", "2.0", "-0.5"]
    assert rows[1][0].endswith("+00:00") and rows[1][0][:4].isdigit()
    frame = pd.read_csv(run.dir / "logs" / "model_outputs.csv")
    assert list(frame.columns) == rows[0]
    assert len(frame) == 5
    assert frame["step"].tolist() == [0, 0, 1, 1, 2]
    assert frame["answer"].tolist() == [0, 2, 4, 6, 8]
    assert frame["reward_format"].tolist() == [-0.5] * 5
    assert frame["correct"].tolist() == [True] * 5
    assert pd.to_datetime(frame["timestamp"]).dt.tz is not None
    assert (run.dir / "logs" / "model_outputs.csv").read_bytes() == rebuilt(
        run.dir, columns=rows[0][:5]
    )


def test_every_known_column(tmp_path: Path, root: Path) -> None:
    columns = [
        "step",
        "phase",
        "sample",
        "prompt",
        "question",
        "true_answer",
        "model_output",
        "total_reward",
        "length_chars",
        "length_tokens",
        "correct",
        "rank",
    ]
    run = gemmalog.initialize(seed_config(tmp_path, columns=columns), root=root)
    gemmalog.log_model_output(
        "q",
        "7",
        "<answer>7</answer>",
        step=3,
        sample=1,
        prompt="P: q",
        rewards={"r": 1.5},
        length_tokens=4,
        correct=False,
        phase="eval",
    )
    gemmalog.shutdown()
    rows = read_rows(run.dir / "logs" / "model_outputs.csv")
    assert rows == [
        [*columns, "reward_r"],
        [
            "3",
            "eval",
            "1",
            "P: q",
            "q",
            "7",
            "<answer>7</answer>",
            "1.5",
            "18",
            "4",
            "false",
            "0",
            "1.5",
        ],
    ]


@pytest.mark.parametrize("raw", [False, True])
def test_hostile_text_round_trips_through_csv_and_pandas(
    tmp_path: Path, root: Path, raw: bool
) -> None:
    run = gemmalog.initialize(
        seed_config(tmp_path, raw=raw, columns=["question", "answer", "model_output"]), root=root
    )
    for i, text in enumerate(HOSTILE):
        gemmalog.log_model_output(
            question=text, true_answer=HOSTILE[-1 - i], model_output=text, step=i
        )
    gemmalog.shutdown()
    path = run.dir / "logs" / "model_outputs.csv"
    rows = read_rows(path)
    assert len(rows) == len(HOSTILE) + 1
    for i, text in enumerate(HOSTILE):
        assert rows[i + 1][:3] == [text, HOSTILE[-1 - i], text]
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    assert frame["question"].tolist() == HOSTILE
    assert frame["model_output"].tolist() == HOSTILE
    assert path.read_bytes() == rebuilt(
        run.dir, columns=["question", "answer", "model_output"], raw=raw
    )


def test_formulas_are_neutralized_numbers_stay(tmp_path: Path, root: Path) -> None:
    run = gemmalog.initialize(
        seed_config(tmp_path, columns=["question", "llm_answer", "total_reward"]), root=root
    )
    for text in FORMULAS:
        gemmalog.log_model_output(
            question=text,
            true_answer="1",
            model_output="x",
            answer=text,
            rewards={"neg": -1.0},
            step=1,
        )
    gemmalog.shutdown()
    rows = read_rows(run.dir / "logs" / "model_outputs.csv")[1:]
    assert [r[0] for r in rows] == list(FORMULAS.values())
    assert [r[1] for r in rows] == list(FORMULAS.values())
    assert {r[2] for r in rows} == {"-1.0"} and {r[-1] for r in rows} == {"-1.0"}
    for row in rows:
        assert not row[0].startswith(("=", "+", "@", "\t", "\r")) or row[0] in ("+1.5e3",)
    frame = pd.read_csv(run.dir / "logs" / "model_outputs.csv")
    assert frame["total_reward"].dtype.kind == "f" and frame["reward_neg"].tolist() == [-1.0] * len(
        FORMULAS
    )


def test_raw_switch_keeps_formulas(tmp_path: Path, root: Path) -> None:
    run = gemmalog.initialize(seed_config(tmp_path, raw=True, columns=["question"]), root=root)
    for text in FORMULAS:
        gemmalog.log_model_output(question=text, true_answer="1", model_output="x", step=1)
    gemmalog.shutdown()
    assert [r[0] for r in read_rows(run.dir / "logs" / "model_outputs.csv")[1:]] == list(FORMULAS)


def test_reward_function_appearing_halfway(tmp_path: Path, root: Path) -> None:
    run = gemmalog.initialize(seed_config(tmp_path, buffer_size=2), root=root)
    for i in range(3):
        gemmalog.log_model_output(
            f"q{i}", "1", "<answer>1</answer>", rewards={"correctness": 2.0}, step=i
        )
    gemmalog.flush()  # two rows are on disk before the new function appears
    on_disk = read_rows(run.dir / "logs" / "model_outputs.csv")
    assert len(on_disk) >= 3 and on_disk[0][-1] == "reward_correctness"
    for i in range(3, 6):
        gemmalog.log_model_output(
            f"q{i}",
            "1",
            "<answer>1</answer>",
            rewards={"correctness": 0.0, "anti_repetition": -0.25},
            step=i,
        )
    gemmalog.log_model_output("q6", "1", "<answer>1</answer>", rewards={"topic": 1}, step=6)
    gemmalog.shutdown()
    path = run.dir / "logs" / "model_outputs.csv"
    rows = read_rows(path)
    assert rows[0][-3:] == ["reward_correctness", "reward_anti_repetition", "reward_topic"]
    assert all(len(r) == len(rows[0]) for r in rows)
    assert [r[-3:] for r in rows[1:]] == [
        ["2.0", "", ""],
        ["2.0", "", ""],
        ["2.0", "", ""],
        ["0.0", "-0.25", ""],
        ["0.0", "-0.25", ""],
        ["0.0", "-0.25", ""],
        ["", "", "1"],
    ]
    frame = pd.read_csv(path)
    assert frame["reward_anti_repetition"].isna().tolist() == [True] * 3 + [False] * 3 + [True]
    assert path.read_bytes() == rebuilt(
        run.dir, columns=["timestamp", "question", "answer", "llm_reasoning", "llm_answer"]
    )
    assert not path.with_name("model_outputs.csv.tmp").exists()


def test_buffer_size_and_flush_interval(tmp_path: Path, root: Path) -> None:
    run = gemmalog.initialize(seed_config(tmp_path, buffer_size=3, flush_interval=3600), root=root)
    path = run.dir / "logs" / "model_outputs.csv"
    for i in range(2):
        gemmalog.log_model_output(f"q{i}", "1", "a", step=i)
    time.sleep(1.2)  # more than one listener tick (flush_interval 0.5 s)
    assert not path.exists()  # two rows wait for a third
    gemmalog.log_model_output("q2", "1", "a", step=2)
    time.sleep(1.2)
    assert len(read_rows(path)) == 4  # header + the three rows, without an explicit flush
    gemmalog.log_model_output("q3", "1", "a", step=3)
    gemmalog.flush()  # an explicit flush writes what is buffered
    assert len(read_rows(path)) == 5
    gemmalog.shutdown()

    run = gemmalog.initialize(
        seed_config(tmp_path, buffer_size=1000, flush_interval=0.2), root=root
    )
    path = run.dir / "logs" / "model_outputs.csv"
    gemmalog.log_model_output("q", "1", "a", step=0)
    time.sleep(0.3)
    gemmalog.flush()
    assert len(read_rows(path)) == 2  # written on the first tick after flush_interval
    gemmalog.shutdown()


def test_phases_filter_and_values_of_other_types(tmp_path: Path, root: Path) -> None:
    run = gemmalog.initialize(
        seed_config(tmp_path, phases=["train"], columns=["phase", "question", "answer"]), root=root
    )
    gemmalog.log_model_output({"text": "=cmd", "n": 1}, 42, "a", step=1)
    gemmalog.log_model_output("eval q", "1", "a", step=1, phase="eval")
    gemmalog.log_model_output(None, float("nan"), "a", step=2, rewards={"r": float("-inf")})
    gemmalog.shutdown()
    rows = read_rows(run.dir / "logs" / "model_outputs.csv")
    # A dict question is stored as its JSON or as its text, by the API's rules: either way the
    # cell is that value's cell, not a formula.
    stored = model_outputs(run.dir)[0]["question"]
    assert stored in ({"text": "=cmd", "n": 1}, "{'text': '=cmd', 'n': 1}")
    question = '{"text":"=cmd","n":1}' if isinstance(stored, dict) else stored
    assert rows == [
        ["phase", "question", "answer", "step", "correct", "reward_r"],
        ["train", question, "42", "1", "", ""],
        ["train", "", cell(model_outputs(run.dir)[2]["true_answer"]), "2", "", "-Infinity"],
    ]
    assert len(model_outputs(run.dir)) == 3  # the JSONL keeps the eval output


def test_no_outputs_gives_the_header(tmp_path: Path, root: Path) -> None:
    run = gemmalog.initialize(seed_config(tmp_path), root=root)
    gemmalog.get_training_logger().info("nothing to see")
    gemmalog.shutdown()
    path = run.dir / "logs" / "model_outputs.csv"
    assert read_rows(path) == [
        ["timestamp", "question", "answer", "llm_reasoning", "llm_answer", "step", "correct"]
    ]
    assert path.read_bytes() == rebuilt(
        run.dir, columns=["timestamp", "question", "answer", "llm_reasoning", "llm_answer"]
    )


def test_neutralize_rules() -> None:
    for text, expected in FORMULAS.items():
        assert neutralize(text) == expected
    assert neutralize("-Infinity") == "-Infinity" and neutralize("-inf") == "'-inf"


@settings(max_examples=150, deadline=None)
@given(texts=st.lists(st.text(), min_size=1, max_size=4), raw=st.booleans())
def test_property_any_text_round_trips(texts: list[str], raw: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "out.csv"
        sink = CsvSink(path, columns=["question", "model_output"], raw=raw, buffer_size=2)
        events = [
            {
                "kind": "model_output",
                "ts": 1.5,
                "step": i,
                "question": t,
                "model_output": t[::-1],
                "rewards": {t or "empty": i},
            }
            for i, t in enumerate(texts)
        ]
        with sink:
            sink.write([(e, b"") for e in events])
        rows = read_rows(path)
        out = io.StringIO(newline="")
        write_csv(events, out, columns=["question", "model_output"], raw=raw)
        assert path.read_bytes() == out.getvalue().encode("utf-8")
    assert len(rows) == len(texts) + 1
    for event, row in zip(events, rows[1:], strict=True):
        for text, got in ((event["question"], row[0]), (event["model_output"], row[1])):
            if raw or got == text:
                assert got == text
            else:
                assert got == "'" + text and text[:1] in ("=", "+", "-", "@", "\t", "\r")


def to_csv_cli(run_dir: Path, out: Path) -> bytes:
    """``gemmalog to-csv <run> -o out``, through the command itself."""
    from click.testing import CliRunner

    from gemmalog.cli import cli

    result = CliRunner().invoke(cli, ["to-csv", str(run_dir), "-o", str(out)])
    assert result.exit_code == 0, result.output
    return out.read_bytes()


def resumed_segment(config: Path, root: Path, steps: range, rewards: list[str]) -> Path:
    run = gemmalog.initialize(config, root=root, run_id="res")
    for step in steps:
        gemmalog.log_model_output(
            "q",
            "1",
            f"<answer>{step}</answer>",
            step=step,
            rewards={fn: 1.0 for fn in rewards},
            correct=True,
        )
    gemmalog.shutdown()
    return run.dir


def test_a_resumed_run_appends_and_equals_to_csv(tmp_path: Path, root: Path) -> None:
    config = seed_config(tmp_path, buffer_size=2)
    first = resumed_segment(config, root, range(1, 4), ["f"])
    second = resumed_segment(config, root, range(4, 7), ["f"])
    assert second == first
    live = (first / "logs" / "model_outputs.csv").read_bytes()
    rows = read_rows(first / "logs" / "model_outputs.csv")
    assert [r[-3] for r in rows[1:]] == ["1", "2", "3", "4", "5", "6"]  # step column, no loss
    assert rows[0][-1] == "reward_f"
    assert (
        live
        == to_csv_cli(first, tmp_path / "rebuilt.csv")
        == rebuilt(
            first, columns=["timestamp", "question", "answer", "llm_reasoning", "llm_answer"]
        )
    )


def test_a_resumed_segment_with_a_new_reward_pads_the_earlier_rows(
    tmp_path: Path, root: Path
) -> None:
    config = seed_config(tmp_path)
    run_dir = resumed_segment(config, root, range(1, 3), ["f"])
    resumed_segment(config, root, range(3, 5), ["f", "g"])
    resumed_segment(config, root, range(5, 6), [])
    rows = read_rows(run_dir / "logs" / "model_outputs.csv")
    assert rows[0][-2:] == ["reward_f", "reward_g"]
    assert [r[-2:] for r in rows[1:]] == [
        ["1.0", ""],
        ["1.0", ""],
        ["1.0", "1.0"],
        ["1.0", "1.0"],
        ["", ""],
    ]
    live = (run_dir / "logs" / "model_outputs.csv").read_bytes()
    assert live == to_csv_cli(run_dir, tmp_path / "rebuilt.csv")


def test_a_torn_last_row_is_repaired_before_appending(tmp_path: Path, root: Path) -> None:
    config = seed_config(tmp_path)
    run_dir = resumed_segment(config, root, range(1, 3), ["f"])
    path = run_dir / "logs" / "model_outputs.csv"
    path.write_bytes(path.read_bytes()[:-9])  # as a kill in mid-write leaves it
    resumed_segment(config, root, range(3, 4), ["f"])
    rows = read_rows(path)
    assert len(rows) == 4 and all(len(r) == len(rows[0]) for r in rows)
    assert rows[-1][-3:] == ["3", "true", "1.0"]


def test_a_file_with_other_columns_is_kept_aside(
    tmp_path: Path, root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = resumed_segment(seed_config(tmp_path), root, range(1, 3), ["f"])
    before = (run_dir / "logs" / "model_outputs.csv").read_bytes()
    resumed_segment(seed_config(tmp_path, columns=["step", "question"]), root, range(3, 4), ["f"])
    assert (run_dir / "logs" / "model_outputs.1.csv").read_bytes() == before
    rows = read_rows(run_dir / "logs" / "model_outputs.csv")
    assert rows == [["step", "question", "correct", "reward_f"], ["3", "q", "true", "1.0"]]
    assert "kept as model_outputs.1.csv" in capsys.readouterr().err


values = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=12)
    | st.sampled_from(["NaN", "Infinity", "-Infinity", "-42", "=1+1", "@x", "+1.5e3", "-"])
    | st.lists(st.integers(), max_size=3)
    | st.dictionaries(st.text(max_size=3), st.integers(), max_size=2)
)
times = (
    st.floats(0, 1e11)
    | st.floats(-1e12, 1e12)
    | st.integers(-(10**12), 10**12)
    | st.sampled_from([0.0, -0.0, 1.9999995, 1.0000005, 1796014697.9999995, math.nan, math.inf])
    | st.builds(lambda s, us: s + us / 1e6, st.integers(0, 4 * 10**9), st.integers(0, 10**6))
    | st.none()
    | st.text(max_size=4)
)


@settings(max_examples=400, deadline=None)
@given(
    event=st.fixed_dictionaries(
        {"ts": times},
        optional={
            "question": values,
            "true_answer": values,
            "reasoning": values,
            "answer": values,
            "step": values,
            "correct": values,
            "sample": values,
            "rewards": st.dictionaries(st.sampled_from(["f", "g", "h"]), values, max_size=3)
            | values,
        },
    ),
    rewards=st.lists(st.sampled_from(["f", "g", "h", "z"]), unique=True, max_size=4),
    raw=st.booleans(),
)
def test_row_maker_equals_csv_row(event: dict[str, Any], rewards: list[str], raw: bool) -> None:
    """The sink's per-row function (columns resolved once, timestamps cached per second) gives
    the cells of csv_row, the column rules' reference, for any values."""
    from gemmalog.sinks.csvrows import base_columns, csv_row, row_maker

    base = base_columns(["timestamp", "question", "answer", "llm_reasoning", "llm_answer"])
    base.append("sample")
    make = row_maker(base, rewards, raw)
    expected = csv_row(event, base, rewards, raw)
    assert make(event) == expected
    assert make(event) == expected  # the second time from the cached second


@settings(max_examples=1000, deadline=None)
@given(
    ts=st.floats(0, 1e11) | st.builds(lambda s, f: s + f, st.integers(0, 2**33), st.floats(0, 1))
)
def test_timestamps_equal_datetimes(ts: float) -> None:
    from gemmalog.sinks.csvrows import _timestamp, _Timestamps

    stamps = _Timestamps()
    assert stamps(ts) == _timestamp(ts) == stamps(ts)
