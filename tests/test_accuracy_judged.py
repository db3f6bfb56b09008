"""Accuracy counts judged completions only: ``correct`` of None (no reference answer, or not
judged) is neither right nor wrong, in the ``accuracy`` view, the summary and ``runs``."""

from __future__ import annotations

from pathlib import Path

import orjson
from click.testing import CliRunner

import gemmalog
from gemmalog.cli import cli
from gemmalog.queries import connect, summary


def test_unjudged_completions_count_in_no_accuracy(tmp_path: Path) -> None:
    run = gemmalog.initialize(root=tmp_path / "runs", run_id="judged", capture_stdlib=False)
    judged = {1: [True, False, None, None], 2: [None, None], 3: [True, True, None]}
    for step, verdicts in judged.items():
        for sample, correct in enumerate(verdicts):
            gemmalog.log_model_output(
                f"q{step}.{sample}",
                None if correct is None else "4",  # no reference answer: not judged
                "<answer>4</answer>",
                correct=correct,
                step=step,
                sample=sample,
            )
    gemmalog.shutdown()
    con = connect(run.dir)
    assert con.execute(
        "SELECT step, correct, total, accuracy, cumulative_accuracy FROM accuracy ORDER BY step"
    ).fetchall() == [(1, 1, 2, 0.5, 0.5), (3, 2, 2, 1.0, 0.75)]  # step 2: nothing judged
    assert con.execute("SELECT count(*), count(correct) FROM completions").fetchall() == [
        (9, 4)
    ]  # all are stored
    assert con.execute("SELECT accuracy FROM runs").fetchall() == [(0.75,)]
    assert summary(run.dir)["accuracy"] == {"train": {"correct": 3, "total": 4, "accuracy": 0.75}}
    result = CliRunner().invoke(cli, ["summary", str(run.dir), "--json"])
    assert result.exit_code == 0, result.output
    assert orjson.loads(result.stdout)["accuracy"]["train"]["total"] == 4
