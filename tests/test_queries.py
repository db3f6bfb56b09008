"""The DuckDB views over runs written through the public logging API, read back exactly."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import gemmalog
from gemmalog import events
from gemmalog.queries import QueryError, check_read_only, connect, summary, to_csv, to_parquet

NAN, INF = float("nan"), float("inf")
DOCS = Path(__file__).resolve().parent.parent / "docs"


def _start(root: Path, run_id: str, rank: int, world: int) -> None:
    os.environ["RANK"], os.environ["WORLD_SIZE"] = str(rank), str(world)
    gemmalog.initialize(root=str(root), run_id=run_id, run_name=run_id, capture_stdlib=False)


def build_runs(root: Path) -> None:
    """alpha: two ranks, late keys, int->float, NaN/inf, a reward fn added halfway, a torn line;
    beta: a small second run."""
    saved = {k: os.environ.get(k) for k in ("RANK", "WORLD_SIZE")}
    try:
        _start(root, "alpha", 0, 2)
        gemmalog.log_training_progress(0, {"loss": 1})  # an int first
        gemmalog.log_training_progress(1, {"loss": 0.5, "late_key": 2.0})
        gemmalog.log_training_progress(2, {"loss": NAN})
        gemmalog.log_training_progress(3, {"loss": INF, "grad_norm": -INF})
        gemmalog.log_training_progress(2, {"loss": 0.25}, phase="eval")
        gemmalog.log_model_output(
            "q1", "4", "<answer>4</answer>", rewards={"fmt": 1.0}, correct=True, step=1, sample=0
        )
        gemmalog.log_model_output(
            "q2",
            "5",
            "<answer>6</answer>",
            rewards={"fmt": 0.5, "new_fn": 2.0},
            correct=False,
            step=2,
            sample=0,
        )
        gemmalog.log_model_output(
            "q3", "7", "seven", rewards={"fmt": NAN}, correct=True, step=2, sample=0, phase="eval"
        )
        gemmalog.log_reward("fmt", [1.0], step=1)  # also in the model output: counted once
        gemmalog.log_reward("other", [0.1, INF], step=1)  # only here: two rows
        gemmalog.log_generation_metrics(1, ["<reasoning>a</reasoning><answer>4</answer>", "b c"])
        gemmalog.log_memory_usage(step=1)
        gemmalog.shutdown()
        _start(root, "alpha", 1, 2)
        gemmalog.log_training_progress(0, {"loss": 2.0})
        gemmalog.log_model_output(
            "q4", "1", "<answer>2</answer>", rewards={"fmt": 0.0}, correct=False, step=1, sample=0
        )
        gemmalog.shutdown()
        with open(root / "alpha" / "events.1.jsonl", "ab") as shard:  # killed mid-write
            shard.write(
                b'{"v":1,"ts":1.0,"kind":"metrics","logger":"gemmalog.metrics","run":"alpha","rank":1,"metr'
            )
        _start(root, "beta", 0, 1)
        gemmalog.log_training_progress(0, {"loss": 3.0})
        gemmalog.log_training_progress(1, {"loss": 2.0})
        gemmalog.log_model_output(
            "q", "1", "<answer>1</answer>", rewards={"fmt": 1.0}, correct=True, step=1, sample=0
        )
        gemmalog.shutdown()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture(scope="module")
def runs_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("q") / "runs"
    build_runs(root)
    return root


@pytest.fixture
def con(runs_root: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    c = connect(runs_root)
    yield c
    c.close()


def rows(con: duckdb.DuckDBPyConnection, sql: str) -> list[tuple[Any, ...]]:
    return con.execute(sql).fetchall()


def types(con: duckdb.DuckDBPyConnection, view: str) -> dict[str, str]:
    return {name: typ for name, typ, *_ in rows(con, f"DESCRIBE {view}")}


def same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or a == b
    if isinstance(a, tuple | list) and isinstance(b, tuple | list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def test_events_view_types_come_from_the_declarations(con: duckdb.DuckDBPyConnection) -> None:
    declared = {name: sql for name, sql in events.all_columns().items()}
    got = types(con, "events")
    assert list(got) == [*declared, "file"]
    for name, sql in declared.items():
        assert got[name] == sql.replace("JSON", "JSON"), name
    assert rows(con, "SELECT count(*) FROM events WHERE kind IS NULL OR run IS NULL") == [(0,)]


def test_every_shard_and_run_is_read(con: duckdb.DuckDBPyConnection) -> None:
    assert rows(con, "SELECT run, rank, count(*) > 0 FROM events GROUP BY ALL ORDER BY ALL") == [
        ("alpha", 0, True),
        ("alpha", 1, True),
        ("beta", 0, True),
    ]


def test_metrics_long_format_with_late_keys_type_changes_and_non_finite(
    con: duckdb.DuckDBPyConnection,
) -> None:
    assert types(con, "metrics") == {
        "run": "VARCHAR", "rank": "INTEGER", "phase": "VARCHAR", "step": "BIGINT", "name": "VARCHAR",
        "value": "DOUBLE", "ts": "DOUBLE", "epoch": "DOUBLE", "logger": "VARCHAR",
    }  # fmt: skip
    got = rows(
        con,
        "SELECT rank, phase, step, name, value FROM metrics WHERE run = 'alpha' ORDER BY rank, phase, step, name",
    )
    want = [
        (0, "eval", 2, "loss", 0.25),
        (0, "train", 0, "loss", 1.0),
        (0, "train", 1, "late_key", 2.0),
        (0, "train", 1, "loss", 0.5),
        (0, "train", 2, "loss", NAN),
        (0, "train", 3, "grad_norm", -INF),
        (0, "train", 3, "loss", INF),
        (1, "train", 0, "loss", 2.0),
    ]
    assert same(got, want), got
    # NaN is a value, not a missing one
    assert rows(con, "SELECT count(*) FROM metrics WHERE value IS NULL") == [(0,)]
    assert rows(con, "SELECT count(*) FROM metrics WHERE isnan(value)") == [(1,)]


def test_rewards_from_outputs_and_batches_without_double_counting(
    con: duckdb.DuckDBPyConnection,
) -> None:
    assert types(con, "rewards")["value"] == "DOUBLE"
    assert types(con, "rewards")["sample"] == "INTEGER"
    got = rows(
        con,
        "SELECT rank, phase, step, sample, reward_fn, value, source FROM rewards WHERE run = 'alpha' "
        "ORDER BY rank, phase, step, reward_fn, sample",
    )
    want = [
        (0, "eval", 2, 0, "fmt", NAN, "model_output"),
        (0, "train", 1, 0, "fmt", 1.0, "model_output"),
        (0, "train", 1, 0, "other", 0.1, "reward"),
        (0, "train", 1, 1, "other", INF, "reward"),
        (0, "train", 2, 0, "fmt", 0.5, "model_output"),
        (0, "train", 2, 0, "new_fn", 2.0, "model_output"),
        (1, "train", 1, 0, "fmt", 0.0, "model_output"),
    ]
    assert same(got, want), got


def test_completions(con: duckdb.DuckDBPyConnection) -> None:
    t = types(con, "completions")
    assert (
        t["rewards"] == "MAP(VARCHAR, DOUBLE)"
        and t["correct"] == "BOOLEAN"
        and t["length"] == "INTEGER"
    )
    got = rows(
        con,
        "SELECT rank, phase, step, question, true_answer, answer, correct, total_reward, length FROM completions "
        "WHERE run = 'alpha' ORDER BY rank, phase, step",
    )
    want = [
        (0, "eval", 2, "q3", "7", None, True, NAN, 5),
        (0, "train", 1, "q1", "4", "4", True, 1.0, 18),
        (0, "train", 2, "q2", "5", "6", False, 2.5, 18),
        (1, "train", 1, "q4", "1", "2", False, 0.0, 18),
    ]
    assert same(got, want), got
    assert rows(con, "SELECT rewards FROM completions WHERE question = 'q2'") == [
        ({"fmt": 0.5, "new_fn": 2.0},)
    ]


def test_accuracy_per_step_and_cumulative(con: duckdb.DuckDBPyConnection) -> None:
    assert types(con, "accuracy") == {
        "run": "VARCHAR", "phase": "VARCHAR", "step": "BIGINT", "correct": "BIGINT", "total": "BIGINT",
        "accuracy": "DOUBLE", "cumulative_accuracy": "DOUBLE",
    }  # fmt: skip
    assert rows(con, "SELECT * FROM accuracy WHERE run = 'alpha' ORDER BY phase, step") == [
        ("alpha", "eval", 2, 1, 1, 1.0, 1.0),
        ("alpha", "train", 1, 1, 2, 0.5, 0.5),
        ("alpha", "train", 2, 0, 1, 0.0, 1 / 3),
    ]


def test_generation_and_system(con: duckdb.DuckDBPyConnection) -> None:
    gen = rows(
        con, "SELECT run, rank, step, count, min_length_chars, max_length_chars FROM generation"
    )
    assert gen == [("alpha", 0, 1, 2, 3, 42)]
    declared = set(events.KINDS["generation_metrics"].field_names) - {"phase"}
    assert declared <= set(types(con, "generation"))
    sys_rows = rows(con, "SELECT run, rank, step, device, cpu_rss_mb > 0 FROM system")
    assert sys_rows == [("alpha", 0, 1, "cpu", True)]
    assert set(events.KINDS["system"].field_names) <= set(types(con, "system"))


def test_runs_view(con: duckdb.DuckDBPyConnection, runs_root: Path) -> None:
    got = rows(
        con,
        "SELECT run, name, status, steps, ranks, world_size, accuracy, drops, dir FROM runs ORDER BY run",
    )
    assert got == [
        ("alpha", "alpha", "completed", 3, 2, 2, 2 / 4, 0, str(runs_root / "alpha")),
        ("beta", "beta", "completed", 1, 1, 1, 1.0, 0, str(runs_root / "beta")),
    ]
    t = types(con, "runs")
    assert t["start"] == "TIMESTAMP" and t["config"] == "JSON" and t["duration_s"] == "DOUBLE"
    assert rows(con, "SELECT config->>'$.settings.run_id' FROM runs WHERE run = 'beta'") == [
        ("beta",)
    ]
    # summary() reads _run_facts: the runs view without its last reward and accuracy
    facts = [c for c in t if c not in ("last_reward", "accuracy")]
    assert rows(con, "SELECT * EXCLUDE (last_reward, accuracy) FROM runs ORDER BY run") == rows(
        con, "SELECT * FROM _run_facts ORDER BY run"
    )
    assert list(types(con, "_run_facts")) == facts


def test_torn_line_is_skipped_and_counted(con: duckdb.DuckDBPyConnection, runs_root: Path) -> None:
    assert rows(con, "SELECT file, lines FROM gemmalog_read_errors") == [
        (str(runs_root / "alpha" / "events.1.jsonl"), 1)
    ]
    assert rows(
        con, "SELECT count(*) FROM events WHERE rank = 1 AND run = 'alpha' AND kind = 'metrics'"
    ) == [(1,)]


def test_paths_a_run_dir_a_glob_and_a_run_id(runs_root: Path) -> None:
    for path, kwargs, want in (
        (runs_root / "beta", {}, [("beta",)]),
        (str(runs_root / "b*"), {}, [("beta",)]),
        (str(runs_root / "alpha" / "events.1*.jsonl"), {}, [("alpha",)]),
        ("beta", {"root": runs_root}, [("beta",)]),
        ("bet", {"root": runs_root}, [("beta",)]),
    ):
        c = connect(path, **kwargs)
        assert rows(c, "SELECT DISTINCT run FROM events") == want, path
        c.close()
    with pytest.raises(QueryError, match="no run 'nope'"):
        connect("nope", root=runs_root)


def test_views_follow_a_run_that_is_still_writing(root: Path) -> None:
    run = gemmalog.initialize(root=str(root), run_id="live", capture_stdlib=False)
    gemmalog.log_training_progress(1, {"loss": 1.0})
    assert gemmalog.flush()
    c = connect(run.dir)
    assert rows(c, "SELECT count(*) FROM metrics") == [(1,)]
    gemmalog.log_training_progress(2, {"loss": 0.5})
    assert gemmalog.flush()
    assert rows(c, "SELECT count(*) FROM metrics") == [(2,)]
    assert rows(c, "SELECT status FROM runs") == [("running",)]
    gemmalog.shutdown()
    assert rows(c, "SELECT status FROM runs") == [("completed",)]
    c.close()


def test_summary(runs_root: Path) -> None:
    s = summary(runs_root / "alpha")
    assert s["run"]["run"] == "alpha" and s["run"]["steps"] == 3 and s["run"]["ranks"] == 2
    train = s["loss"]["train"]
    assert (
        train["first"] in (1.0, 2.0)
        and math.isinf(train["last"])
        and train["min"] == 0.5
        and train["non_finite"] == 2
    )
    assert s["loss"]["eval"]["last"] == 0.25
    assert s["rewards"]["train"]["fmt"]["first"] == pytest.approx(
        0.5
    )  # step 1: 1.0 (rank 0) and 0.0 (rank 1)
    assert s["rewards"]["train"]["fmt"]["last"] == 0.5
    assert s["rewards"]["train"]["new_fn"] == {"first": 2.0, "last": 2.0, "mean": 2.0, "count": 1}
    assert s["accuracy"] == {
        "eval": {"correct": 1, "total": 1, "accuracy": 1.0},
        "train": {"correct": 1, "total": 3, "accuracy": 1 / 3},
    }
    assert s["completions"]["count"] == 4 and s["read_errors"] == 1 and s["run"]["drops"] == 0
    assert s["memory"]["cpu_peak_mb"] > 0 and s["run"]["sink_errors"] == {}
    with pytest.raises(QueryError, match="holds 2 runs"):
        summary(runs_root)


def test_exports(runs_root: Path, tmp_path: Path) -> None:
    import pandas as pd

    n = to_csv(runs_root / "beta", tmp_path / "m.csv", kind="metrics")
    frame = pd.read_csv(tmp_path / "m.csv")
    assert (
        n == 2
        and list(frame["value"]) == [3.0, 2.0]
        and list(frame.columns[:6]) == ["run", "rank", "phase", "step", "name", "value"]
    )
    assert to_csv(runs_root / "alpha", tmp_path / "r.csv", kind="rewards") == 7
    count = to_parquet(runs_root, tmp_path / "pq")
    back = duckdb.sql(
        f"SELECT run, kind, count(*) FROM read_parquet('{tmp_path}/pq/**/*.parquet', hive_partitioning = true) GROUP BY ALL"
    )
    c = connect(runs_root)
    assert count == rows(c, "SELECT count(*) FROM events")[0][0]
    assert sorted(back.fetchall()) == sorted(
        rows(c, "SELECT run, kind, count(*) FROM events GROUP BY ALL")
    )
    assert (tmp_path / "pq" / "run=alpha" / "kind=metrics").is_dir()
    assert to_parquet(runs_root, tmp_path / "pq") == 0  # incremental: nothing new since
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("not an export")
    with pytest.raises(QueryError, match="not empty"):
        to_parquet(runs_root, tmp_path / "notes")


@pytest.mark.parametrize(
    "sql",
    ["COPY events TO 'x.csv'", "ATTACH 'x.db'", "INSTALL httpfs", "LOAD httpfs", "CREATE TABLE t AS SELECT 1",
     "SELECT 1; DROP VIEW events", "PRAGMA enable_profiling", "SET threads = 1", "EXPLAIN ANALYZE COPY events TO 'x'",
     "EXPORT DATABASE 'x'", "INSERT INTO t VALUES (1)", "CALL pragma_version()"],
)  # fmt: skip
def test_read_only_refuses_writes(sql: str) -> None:
    with pytest.raises(QueryError, match="read-only"):
        check_read_only(sql)


def test_read_only_accepts_queries(con: duckdb.DuckDBPyConnection) -> None:
    for sql, check in (
        ("SELECT 1", lambda r: r == [(1,)]),
        ("FROM events", lambda r: len(r) > 10),
        ("DESCRIBE metrics", lambda r: {row[0] for row in r} >= {"run", "step", "name", "value"}),
        ("SHOW TABLES", lambda r: {"metrics", "completions"} <= {row[0] for row in r}),
        ("EXPLAIN SELECT 1", lambda r: len(r) >= 1),
        ("PRAGMA table_info('events')", lambda r: "kind" in {row[1] for row in r}),
    ):
        check_read_only(sql)  # accepted, and it runs and answers
        assert check(con.execute(sql).fetchall()), sql


def doc_recipes() -> list[str]:
    text = (DOCS / "queries.md").read_text(encoding="utf-8")
    return re.findall(r"```sql\n(.*?)```", text, flags=re.DOTALL)


def test_docs_recipes_run(con: duckdb.DuckDBPyConnection) -> None:
    recipes = doc_recipes()
    assert len(recipes) >= 10
    for sql in recipes:
        check_read_only(sql)
        con.execute(sql).fetchall()


def test_docs_list_every_view_and_column(con: duckdb.DuckDBPyConnection) -> None:
    text = (DOCS / "queries.md").read_text(encoding="utf-8")
    from gemmalog.queries import VIEWS

    for view in VIEWS:
        section = text.split(f"### `{view}`", 1)
        assert len(section) == 2, view
        body = section[1].split("\n### ", 1)[0]
        for column in types(con, view):
            assert f"| `{column}` |" in body, (view, column)


finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
metric_values = st.one_of(finite, st.integers(-(2**53), 2**53), st.sampled_from([NAN, INF, -INF]))
metric_dicts = st.dictionaries(
    st.text("abcdefgh_/0123", min_size=1, max_size=12), metric_values, min_size=1, max_size=6
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(steps=st.lists(metric_dicts, min_size=1, max_size=4))
def test_metrics_round_trip(tmp_path: Path, steps: list[dict[str, float]]) -> None:
    run = gemmalog.initialize(root=str(tmp_path), capture_stdlib=False, capture_warnings=False)
    for step, metrics in enumerate(steps):
        gemmalog.log_training_progress(step, metrics)
    gemmalog.shutdown()
    c = connect(run.dir)
    got = rows(c, "SELECT step, name, value FROM metrics ORDER BY ts, step")
    c.close()
    want = [
        (step, name, float(value))
        for step, metrics in enumerate(steps)
        for name, value in metrics.items()
    ]
    assert same(sorted(got, key=lambda r: (r[0], r[1])), sorted(want, key=lambda r: (r[0], r[1])))


def test_import_gemmalog_does_not_import_duckdb() -> None:
    import subprocess
    import sys

    code = "import sys, gemmalog; print('duckdb' in sys.modules, callable(gemmalog.connect))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.split() == ["False", "True"]


# -- readers that never lose or invent (issue 11, defects note 1, 11, 12, 15) --------------------
def _copy_runs(runs_root: Path, dest: Path) -> Path:
    import shutil

    shutil.copytree(runs_root, dest)
    return dest


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_a_bad_run_json_is_skipped_and_reported(runs_root: Path, tmp_path: Path) -> None:
    root = _copy_runs(runs_root, tmp_path / "runs")
    (root / "alpha" / "run.json").write_text("{not json")
    manifest = orjson.loads((root / "beta" / "run.json").read_bytes())
    (root / "beta" / "run.json").write_bytes(orjson.dumps({**manifest, "start": "yesterday"}))
    c = connect(root)
    assert rows(c, "SELECT run, status, steps FROM runs ORDER BY run") == [
        ("alpha", "unknown", 3),
        ("beta", "unknown", 1),
    ]
    assert rows(c, "SELECT file, lines, problem FROM gemmalog_read_errors ORDER BY file") == [
        (str(root / "alpha" / "events.1.jsonl"), 1, "unreadable lines"),
        (str(root / "alpha" / "run.json"), 1, "run.json skipped: not valid JSON"),
        (str(root / "beta" / "run.json"), 1, "run.json skipped: wrong type for start"),
    ]
    c.close()
    s = summary(root / "beta")
    assert s["run"]["status"] == "unknown" and s["run"]["steps"] == 1
    assert s["skipped_manifests"] == [
        {"file": str(root / "beta" / "run.json"), "problem": "wrong type for start"}
    ]


def test_a_line_without_a_run_is_a_read_error_not_a_run(runs_root: Path, tmp_path: Path) -> None:
    root = _copy_runs(runs_root, tmp_path / "runs")
    with open(root / "beta" / "events.0.jsonl", "ab") as shard:
        shard.write(b'{"v":1,"kind":"metrics","step":"abc","metrics":{"loss":"x"}}\n')
    c = connect(root)
    assert rows(c, "SELECT DISTINCT run FROM events ORDER BY run") == [("alpha",), ("beta",)]
    assert rows(c, "SELECT run FROM runs ORDER BY run") == [("alpha",), ("beta",)]
    c.close()
    s = summary(root / "beta")
    assert s["run"]["run"] == "beta" and s["read_errors"] == 1


def test_summary_of_a_run_without_readable_events(runs_root: Path, tmp_path: Path) -> None:
    root = _copy_runs(runs_root, tmp_path / "runs")
    (root / "beta" / "events.0.jsonl").write_bytes(b"")
    s = summary(root / "beta")
    assert s["run"]["status"] == "completed" and s["run"]["events"] == 0
    assert s["throughput"]["events_per_s"] == 0.0 and s["completions"]["count"] == 0
    (root / "beta" / "run.json").unlink()
    with pytest.raises(
        QueryError, match=r"no readable events and no run\.json; nothing to summarize"
    ):
        summary(root / "beta")


@pytest.mark.parametrize("folder", ["exp[v2]", "a*b?c", "x[!]y"])
def test_paths_with_glob_characters_are_paths(runs_root: Path, tmp_path: Path, folder: str) -> None:
    import shutil

    root = tmp_path / folder
    shutil.copytree(runs_root / "beta", root / "first-[1]")
    shutil.copytree(runs_root / "alpha", root / "second")
    for path, want in (
        (root, [("alpha",), ("beta",)]),
        (root / "first-[1]", [("beta",)]),
        (root / "first-[1]" / "events.0.jsonl", [("beta",)]),
    ):
        c = connect(path)
        assert rows(c, "SELECT DISTINCT run FROM events ORDER BY run") == want, path
        assert rows(
            c, "SELECT count(*) FROM gemmalog_read_errors WHERE problem <> 'unreadable lines'"
        ) == [(0,)]
        c.close()
    assert summary(root / "first-[1]")["run"]["status"] == "completed"


def test_to_parquet_never_deletes_inputs(runs_root: Path, tmp_path: Path) -> None:
    project = tmp_path / "project"
    root = _copy_runs(runs_root, project / "runs")
    (project / "notes.txt").write_text("keep me")
    before = _tree(project)
    for out in (root, project, root / "beta"):
        for overwrite in (False, True):
            with pytest.raises(QueryError, match=r"(is|holds) the run directory"):
                to_parquet(root, out, overwrite=overwrite)
    assert _tree(project) == before
    elsewhere = tmp_path / "other-runs"
    _copy_runs(runs_root, elsewhere)
    with pytest.raises(QueryError, match=r"holds (a run|the run directory)"):
        to_parquet(root / "beta", elsewhere, overwrite=True)
    assert _tree(elsewhere) == _tree(runs_root)


def test_to_parquet_overwrite_replaces_only_an_earlier_export(
    runs_root: Path, tmp_path: Path
) -> None:
    out = tmp_path / "missing" / "parent" / "pq"  # created, with its parents
    assert to_parquet(runs_root, out) > 0
    (out / "README.txt").write_text("exported for the paper")
    stale = out / "run=gone" / "kind=metrics"
    stale.mkdir(parents=True)
    (stale / "data_0.parquet").write_bytes(b"old")
    n = to_parquet(runs_root / "beta", out, overwrite=True)
    assert (out / "README.txt").read_text() == "exported for the paper"
    assert not (out / "run=gone").exists() and not (out / "run=alpha").exists()
    back = duckdb.sql(
        f"SELECT count(*) FROM read_parquet('{out}/**/*.parquet', hive_partitioning = true)"
    ).fetchall()
    assert back == [(n,)]


def test_to_csv_never_writes_over_a_runs_files(runs_root: Path, tmp_path: Path) -> None:
    root = _copy_runs(runs_root, tmp_path / "runs")
    before = _tree(root)
    for name in ("events.0.jsonl", "run.json", "events.7.jsonl"):
        for kind in ("model_output", "metrics"):
            with pytest.raises(QueryError, match="belongs to the run"):
                to_csv(root / "beta", root / "beta" / name, kind=kind)
    assert _tree(root) == before
    out = tmp_path / "new" / "folder" / "m.csv"
    assert to_csv(root / "alpha", out, kind="metrics") == 8
    values = [line.split(",")[5] for line in out.read_text().splitlines()[1:]]
    assert {"NaN", "Infinity", "-Infinity"} <= set(values)  # as the JSONL writes them, not nan/inf
