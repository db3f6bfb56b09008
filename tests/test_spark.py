"""Apache Spark reads `gemmalog to-parquet`'s hive-partitioned export and, with the summary SQL
of docs/queries.md, gets the numbers `gemmalog summary` gets from DuckDB (one Spark session
for the module; needs pyspark and a JDK, which .ci/run installs)."""

from __future__ import annotations

import math
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import gemmalog
from gemmalog.queries import summary, to_parquet

pytestmark = pytest.mark.spark

DOC = Path(__file__).resolve().parents[1] / "docs" / "queries.md"


def doc_queries() -> dict[str, str]:
    """The `-- name:` blocks of the SQL block after ``<!-- spark-summary -->``."""
    text = DOC.read_text(encoding="utf-8")
    block = re.search(r"<!-- spark-summary -->\n```spark-sql\n(.*?)\n```", text, re.DOTALL)
    assert block, "docs/queries.md has no spark-summary block"
    parts = re.split(r"^-- name: (\w+)\s*$", block[1], flags=re.MULTILINE)
    return {parts[i]: parts[i + 1].strip().rstrip(";") for i in range(1, len(parts), 2)}


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    pyspark = pytest.importorskip("pyspark.sql")
    if shutil.which("java") is None:
        pytest.skip("no JDK (apt-get install default-jdk-headless)")
    session = (
        pyspark.SparkSession.builder.master("local[1]")
        .appName("gemmalog-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "1")
        .config("spark.driver.memory", "512m")
        .config("spark.sql.session.timeZone", "UTC")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


def make_runs(root: Path) -> list[Path]:
    """Two runs; the second with a run id of digits (a partition value Spark would read as a
    number), evaluation samples, a NaN loss and non-ASCII completions."""
    dirs = []
    for n, name in enumerate(("grpo-a", "20261203")):
        run = gemmalog.initialize(root=str(root), run_id=name, capture_stdlib=False)
        for step in range(1, 9):
            for i in range(4):
                gemmalog.log_model_output(
                    f"q{step}",
                    "4",
                    f"<answer>{(step + i + n) % 4}</answer> é😀 " + "w " * (i + step),
                    step=step,
                    sample=i,
                    correct=(step + i + n) % 4 == 0,
                    rewards={"format": 0.5 + 0.1 * i, "correct": float((step + i + n) % 4 == 0)},
                )
            loss = math.nan if (n, step) == (1, 5) else 1.0 / (step + n)
            gemmalog.log_training_progress(step, {"loss": loss, "kl": 0.01 * step})
            if step % 4 == 0:
                gemmalog.log_model_output(
                    "eval q",
                    "4",
                    "<answer>4</answer>",
                    step=step,
                    phase="eval",
                    correct=True,
                    rewards={"format": 1.0, "correct": 1.0},
                )
                gemmalog.log_training_progress(step, {"loss": 0.5 / step}, phase="eval")
        gemmalog.shutdown()
        dirs.append(run.dir)
    return dirs


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, rel=1e-12, abs=1e-12)
    return bool(a == b)


def test_spark_summary_equals_duckdb(spark: Any, root: Path, tmp_path: Path) -> None:
    runs = make_runs(root)
    out = tmp_path / "parquet"
    assert to_parquet(root, out) > 0
    spark.conf.set("spark.sql.sources.partitionColumnTypeInference.enabled", "false")
    spark.read.parquet(str(out)).createOrReplaceTempView("events")
    queries = doc_queries()
    got = {name: [r.asDict() for r in spark.sql(sql).collect()] for name, sql in queries.items()}
    checked = 0
    for run_dir in runs:
        duck = summary(run_dir)
        run = duck["run"]["run"]

        def rows(name: str, run: str = run) -> list[dict[str, Any]]:
            return [r for r in got[name] if r["run"] == run]

        (facts,) = rows("runs")
        assert (facts["steps"], facts["events"]) == (duck["run"]["steps"], duck["run"]["events"])
        loss = {r["phase"]: r for r in rows("loss")}
        assert set(loss) == set(duck["loss"]) == {"train", "eval"}
        for phase, d in duck["loss"].items():
            for key in ("first", "last", "min", "count"):
                assert _same(loss[phase][key], d[key]), (run, phase, key, loss[phase][key], d[key])
                checked += 1
        rewards = {(r["phase"], r["reward_fn"]): r for r in rows("rewards")}
        duck_rewards = {(p, fn): v for p, fns in duck["rewards"].items() for fn, v in fns.items()}
        assert set(rewards) == set(duck_rewards) and len(rewards) == 4
        for key, d in duck_rewards.items():
            for field in ("first", "last", "mean", "count"):
                assert _same(rewards[key][field], d[field]), (run, key, field)
                checked += 1
        accuracy = {r["phase"]: r for r in rows("accuracy")}
        assert set(accuracy) == set(duck["accuracy"]) == {"train", "eval"}
        for phase, d in duck["accuracy"].items():
            for field in ("correct", "total", "accuracy"):
                assert _same(float(accuracy[phase][field]), float(d[field])), (run, phase, field)
                checked += 1
        (comp,) = rows("completions")
        for field in ("count", "mean_length", "min_length", "max_length"):
            assert _same(float(comp[field]), float(duck["completions"][field])), (run, field)
            checked += 1
    assert checked == 2 * (8 + 16 + 6 + 4)
    assert {r["run"] for r in got["runs"]} == {"grpo-a", "20261203"}  # a string, not 20261203
