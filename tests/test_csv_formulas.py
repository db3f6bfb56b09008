"""S2: every CSV gemmalog writes (to-csv of each kind, the live model_outputs.csv) treats every
text cell the same way: text a spreadsheet would run as a formula gets a leading quote;
numbers, negative ones included, stay numbers. Read back with the csv module."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from click.testing import CliRunner

import gemmalog
from gemmalog.cli import cli
from gemmalog.formats import FORMULA_STARTS

EVIL = [
    '=HYPERLINK("http://evil.example","m")',
    "+cmd|' /C calc'!A0",
    "-2+3+cmd|' /C calc'!A0",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "\t=1+1",
    "\r=1+1",
]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("formulas")
    seed = Path(__file__).resolve().parent.parent / "configs" / "gemma_logging.yaml"
    run = gemmalog.initialize(str(seed), root=str(base / "runs"), run_id="r", capture_stdlib=False)
    for step, text in enumerate(EVIL, 1):
        gemmalog.log_training_progress(step, {text: -0.5, "loss": float(step)}, phase=text)
        gemmalog.log_reward(text, [-1.5, 2.0], step=step, phase=text)
        gemmalog.log_model_output(
            text, text, f"<answer>{text}</answer>", step=step, rewards={text: -1.0}, phase="train"
        )
    gemmalog.shutdown()
    return run.dir


def _cells(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.reader(fh))


def _assert_safe(rows: list[list[str]], expect_quoted: int) -> None:
    """No cell starts a formula unless it is a plain number; ``expect_quoted`` cells were
    quoted (so the hostile text did reach the file, as text)."""
    quoted = 0
    for row in rows[1:]:
        for text in row:
            if text.startswith("'") and text[1:] in EVIL:
                quoted += 1
            elif text.startswith(FORMULA_STARTS):
                float(text)  # a number such as -0.5 is not neutralized: it must be one
    assert quoted >= expect_quoted


@pytest.mark.parametrize("kind", ["metrics", "rewards", "model_output"])
def test_to_csv_neutralizes_every_text_cell(run_dir: Path, tmp_path: Path, kind: str) -> None:
    out = tmp_path / f"{kind}.csv"
    result = CliRunner().invoke(cli, ["to-csv", str(run_dir), "--kind", kind, "-o", str(out)])
    assert result.exit_code == 0, result.output
    rows = _cells(out)
    header = rows[0]
    if kind == "metrics":  # the metric name and the phase of each hostile row
        by = [dict(zip(header, r, strict=True)) for r in rows[1:]]
        hostile = [r for r in by if r["name"] != "loss"]
        assert sorted(r["name"] for r in hostile) == sorted("'" + t for t in EVIL)
        assert {r["phase"] for r in hostile} == {"'" + t for t in EVIL}
        assert {r["value"] for r in hostile} == {"-0.5"}  # a negative number stays a number
        _assert_safe(rows, 2 * len(EVIL))
    elif kind == "rewards":  # the function name and the phase
        by = [dict(zip(header, r, strict=True)) for r in rows[1:]]
        assert {r["reward_fn"] for r in by} >= {"'" + t for t in EVIL}
        assert "-1.5" in {r["value"] for r in by}
        _assert_safe(rows, 2 * len(EVIL))
    else:  # the question and the reference answer (the extracted answer too, stripped)
        _assert_safe(rows, 2 * len(EVIL))


def test_live_csv_follows_the_same_rule(run_dir: Path, tmp_path: Path) -> None:
    live = _cells(run_dir / "logs" / "model_outputs.csv")
    _assert_safe(live, 2 * len(EVIL))
    rebuilt = tmp_path / "rebuilt.csv"
    result = CliRunner().invoke(cli, ["to-csv", str(run_dir), "-o", str(rebuilt)])
    assert result.exit_code == 0, result.output
    assert _cells(rebuilt) == live


def test_sql_csv_output_quotes_formulas(run_dir: Path) -> None:
    """`gemmalog sql --format csv` is a CSV too: metric names that are formulas are quoted,
    negative numbers stay numbers."""
    result = CliRunner().invoke(
        cli,
        ["sql", str(run_dir), "SELECT name, value FROM metrics WHERE value < 0", "--format", "csv"],
    )
    assert result.exit_code == 0, result.output
    rows = list(csv.reader(io.StringIO(result.output, newline="")))
    assert rows[0] == ["name", "value"]
    _assert_safe(rows, expect_quoted=len(EVIL))
    assert {float(value) for _name, value in rows[1:]} == {-0.5}
