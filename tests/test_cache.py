"""The query cache: same rows as the JSONL, only new bytes parsed, never stale, never in the way."""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pytest
from click.testing import CliRunner

import gemmalog
from gemmalog.cli import cli
from gemmalog.queries import (
    CACHE_NAME,
    MANIFEST,
    VIEWS,
    configured,
    connect,
    freeze,
    list_runs,
    summary,
    to_parquet,
)
from tests.test_queries import build_runs
from tests.test_reliability_resume import CRASH, segment_one

ALL_VIEWS = (*VIEWS, "gemmalog_read_errors")
BENCH = Path(__file__).resolve().parent.parent / "benchmarks"


def snapshot(path: Path | str, **kwargs: Any) -> dict[str, tuple[list[Any], list[str]]]:
    """Every view's declared columns and rows (as a sorted multiset; NaN and None stay apart)."""
    con = connect(path, **kwargs)
    try:
        out = {}
        for view in ALL_VIEWS:
            cur = con.execute(f"SELECT * FROM {view}")
            types = [(d[0], str(d[1])) for d in cur.description or ()]
            rows = cur.fetchall()
            if view == "runs":  # last_reward sums floats in parallel: order, so last bits, vary
                rows = [_rounded(row) for row in rows]
            out[view] = (types, sorted(repr(row) for row in rows))
        return out
    finally:
        con.close()


def _rounded(row: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(float(f"{v:.12g}") if isinstance(v, float) else v for v in row)


def assert_same(path: Path | str, **kwargs: Any) -> dict[str, tuple[list[Any], list[str]]]:
    """The views with the cache (built now, then read back) equal the views over the JSONL."""
    live = snapshot(path, cache=False, **kwargs)
    first = snapshot(path, cache=True, **kwargs)
    again = snapshot(path, cache=True, **kwargs)
    for view in ALL_VIEWS:
        assert first[view] == live[view], view
        assert again[view] == live[view], view
    return live


def manifest(run_dir: Path) -> dict[str, Any]:
    data: dict[str, Any] = orjson.loads((run_dir / CACHE_NAME / MANIFEST).read_bytes())
    return data


def parts_rows(run_dir: Path) -> list[str]:
    files = sorted(str(p) for p in (run_dir / CACHE_NAME / "parts").rglob("*.parquet"))
    rows = duckdb.sql(f"SELECT * FROM read_parquet({files!r})").fetchall()
    return sorted(repr(r) for r in rows)


def _put(shard: Path, lines: list[bytes], mode: str = "ab") -> None:
    with open(shard, mode) as fh:
        fh.write(b"".join(line + b"\n" for line in lines))


def _event(n: int, run: str = "r", **fields: Any) -> bytes:
    base = {"v": 1, "ts": 1.0 + n, "kind": "metrics", "logger": "gemmalog.metrics"}
    base |= {"level": "info", "run": run, "rank": 0, "step": n, "phase": "train"}
    base["metrics"] = {"loss": 1.0 / (n + 1)}
    return orjson.dumps(base | fields)


def hostile_run(root: Path) -> Path:
    """A run logged with hostile values, then hand-written lines no logger would write."""
    run = gemmalog.initialize(root=str(root), run_id="hostile", capture_stdlib=False)
    log = gemmalog.get_logger("hostile")
    for i, value in enumerate(
        [
            float("nan"),
            float("inf"),
            -0.0,
            2**70,
            "\ud800",
            "a\x00b",
            b"\xff",
            [1, [2, {"x": None}]],
        ]
    ):
        log.info("\u2028 value", value=value)
        gemmalog.log_training_progress(i, {"loss": value if isinstance(value, float) else 1.0})
        gemmalog.log_model_output(
            question=str(value), true_answer="4", model_output="\x1b[31mred", step=i,
            rewards={"fmt": float("nan"), "acc": float("-inf")}, correct=None,
        )  # fmt: skip
    gemmalog.shutdown()
    _put(
        run.dir / "events.0.jsonl",
        [
            _event(20, run="hostile", metrics={"loss": "NaN", "acc": "Infinity"}),
            _event(21, run="hostile", metrics={"loss": "not a number"}),  # wrong type: NULL
            _event(22, run="hostile", step="x"),  # wrong type for step
            b"[1, 2, 3]",  # not an object
            b"{not json",
            b"",
            _event(23, run="hostile", kind=None),  # no kind: a read error
            '{"kind":"log","run":"hostile","event":"\u00e9\u4e2d\U0001f600"}'.encode(),
        ],
    )
    return run.dir


def resumed_run(root: Path) -> Path:
    subprocess.run([sys.executable, "-c", CRASH.format(root=str(root))], timeout=60, check=False)
    segment_one(root)
    return root / "resumed"


def bench_run(root: Path, steps: int = 3) -> Path:
    sys.path.insert(0, str(BENCH))
    try:
        from bench_queries import generate
    finally:
        sys.path.remove(str(BENCH))
    generate(root / "bench", steps)
    return root / "bench"


@pytest.mark.parametrize(
    "fixture",
    [
        pytest.param(lambda root: (build_runs(root), root)[1], id="multi-rank-and-torn"),
        pytest.param(hostile_run, id="hostile-values"),
        pytest.param(resumed_run, id="resumed"),
        pytest.param(bench_run, id="benchmark-layout"),
    ],
)
def test_every_view_same_rows_with_and_without_the_cache(
    root: Path, fixture: Callable[[Path], Path]
) -> None:
    path = fixture(root)
    live = assert_same(path)
    assert sum(len(rows) for _types, rows in live.values()) > 10
    assert any((d / CACHE_NAME / MANIFEST).exists() for d in [path, *path.iterdir()])


def test_nan_stays_distinct_from_null_and_types_are_declared(root: Path) -> None:
    path = hostile_run(root)
    assert_same(path)
    con = connect(path, cache=True)
    got = con.execute(
        "SELECT count(*) FILTER (WHERE isnan(value)), count(*) FILTER (WHERE value IS NULL) "
        "FROM metrics WHERE name = 'loss'"
    ).fetchone()
    assert got is not None and got[0] >= 2 and got[1] == 1
    source = con.execute("DESCRIBE events").fetchall()
    con.close()
    with configured(enabled=False):
        plain = connect(path).execute("DESCRIBE events").fetchall()
    assert source == plain


def test_the_empty_tail_has_the_columns_of_the_live_select(root: Path) -> None:
    from gemmalog.queries._cache_store import source_select

    run = root / "r"
    run.mkdir()
    _put(run / "events.0.jsonl", [_event(i) for i in range(3)], "wb")
    assert_same(run)
    con = connect(run, cache=True)  # nothing after the watermark: the tail is declared empty
    tail = con.execute("DESCRIBE _gemmalog_tail").fetchall()
    live = con.execute(f"DESCRIBE {source_select([str(run / 'events.0.jsonl')])}").fetchall()
    con.close()
    assert [row[:2] for row in tail] == [row[:2] for row in live] and len(tail) > 20


def test_total_reward_is_the_logged_one_else_the_sum_of_the_rewards(root: Path) -> None:
    run = root / "r"
    run.mkdir()
    outputs = [
        {"rewards": {"a": 1.0, "b": 2.0}},  # no total: the sum
        {"rewards": {"a": 1.0, "b": 2.0}, "total_reward": 10.0},  # the logged total
        {"rewards": {"a": float("nan"), "b": 1.0}},  # NaN stays NaN
        {"rewards": {}},  # an empty sum is NULL, as list_sum says
        {},  # neither
    ]
    lines = [
        orjson.dumps(
            {"v": 1, "ts": 1.0 + i, "kind": "model_output", "run": "r", "rank": 0, "step": i}
            | fields
        )
        for i, fields in enumerate(outputs)
    ]
    lines[2] = lines[2].replace(b"null", b"NaN")  # orjson writes NaN as null; the logger NaN
    _put(run / "events.0.jsonl", lines, "wb")
    assert_same(run)
    for cache in (False, True):
        con = connect(run, cache=cache)
        got = con.execute("SELECT step, total_reward FROM completions ORDER BY step").fetchall()
        assert repr(got) == repr([(0, 3.0), (1, 10.0), (2, float("nan")), (3, None), (4, None)])
        # total_reward left out: the sums, as before _rewards_sum (a connection served by the
        # cache is pinned to its parts instead, which hold every column)
        freeze(con, ["kind", "run", "step", "rewards"])
        got = con.execute("SELECT step, total_reward FROM completions ORDER BY step").fetchall()
        second = 10.0 if cache else 3.0
        assert repr(got) == repr([(0, 3.0), (1, second), (2, float("nan")), (3, None), (4, None)])
        con.close()


def test_only_new_complete_lines_are_parsed(root: Path) -> None:
    run = root / "r"
    run.mkdir()
    shard = run / "events.0.jsonl"
    _put(shard, [_event(i) for i in range(5)], "wb")
    assert_same(run)
    first = manifest(run)["shards"]["events.0.jsonl"]
    assert first["watermark"] == shard.stat().st_size and len(first["parts"]) == 1
    assert first["parts"][0]["rows"] == 5
    # a torn line: not cached, still read (and counted as a read error) from the JSONL
    with open(shard, "ab") as fh:
        fh.write(_event(5)[:30])
    live = assert_same(run)
    assert manifest(run)["shards"]["events.0.jsonl"]["watermark"] == first["watermark"]
    assert live["gemmalog_read_errors"][1] != []
    # the writer finishes it and writes more: only those bytes become a new part
    with open(shard, "ab") as fh:
        fh.write(_event(5)[30:] + b"\n" + _event(6) + b"\n")
    assert_same(run)
    entry = manifest(run)["shards"]["events.0.jsonl"]
    assert [(p["start"], p["end"], p["rows"]) for p in entry["parts"]] == [
        (0, first["watermark"], 5),
        (first["watermark"], shard.stat().st_size, 2),
    ]


def test_deleted_cache_is_rebuilt_identically(root: Path) -> None:
    build_runs(root)
    alpha = root / "alpha"
    before = assert_same(root)
    rows = parts_rows(alpha)
    shutil.rmtree(alpha / CACHE_NAME)
    assert snapshot(root) == before
    assert parts_rows(alpha) == rows


@pytest.mark.parametrize("change", ["truncated", "replaced", "rewritten-in-place", "rotated"])
def test_a_changed_shard_is_never_served_stale(root: Path, change: str) -> None:
    run = root / "r"
    run.mkdir()
    shard = run / "events.0.jsonl"
    _put(shard, [_event(i) for i in range(10)], "wb")
    assert_same(run)
    old = manifest(run)["shards"]["events.0.jsonl"]
    if change == "truncated":  # shorter, then as long again with other lines
        _put(shard, [_event(i) for i in range(3)], "r+b")
        os.truncate(shard, len(b"".join(_event(i) + b"\n" for i in range(3))))
        _put(shard, [_event(100 + i) for i in range(8)])
    elif change == "replaced":  # a new file moved over it
        tmp = run / "new.tmp"
        _put(tmp, [_event(200 + i) for i in range(12)], "wb")
        os.replace(tmp, shard)
    elif change == "rewritten-in-place":  # same inode, same size, other bytes
        data = shard.read_bytes()
        shard.write_bytes(data.replace(b'"run":"r"', b'"run":"s"'))
    else:  # logrotate: the old shard moved away, a new one at the same path
        shard.rename(run / "events.0.jsonl.1")
        _put(shard, [_event(300 + i) for i in range(4)], "wb")
    live = assert_same(run)
    new = manifest(run)["shards"]["events.0.jsonl"]
    assert new["parts"][0]["file"] != old["parts"][0]["file"]
    assert len(new["parts"]) == 1 and new["parts"][0]["start"] == 0
    expected = {"truncated": 11, "replaced": 12, "rewritten-in-place": 10, "rotated": 4}[change]
    assert len(live["events"][1]) == expected


def test_a_resumed_segment_appends_to_the_cache(root: Path) -> None:
    subprocess.run([sys.executable, "-c", CRASH.format(root=str(root))], timeout=60, check=False)
    run = root / "resumed"
    assert_same(run)
    first = manifest(run)["shards"]["events.0.jsonl"]
    segment_one(root)
    assert_same(run)
    entry = manifest(run)["shards"]["events.0.jsonl"]
    assert entry["parts"][0] == first["parts"][0] and len(entry["parts"]) == 2


def _mixed(con: duckdb.DuckDBPyConnection) -> bool:
    row = con.execute("SELECT gemmalog_mixed_segments()").fetchone()
    assert row is not None
    return bool(row[0])


def _resumed_rows(con: duckdb.DuckDBPyConnection) -> tuple[list[Any], list[Any]]:
    outputs = con.execute("SELECT step, model_output FROM completions ORDER BY step").fetchall()
    loss = con.execute("SELECT step, value FROM metrics WHERE name = 'loss' ORDER BY step")
    return outputs, loss.fetchall()


RESUMED_OUTPUTS = [(s, "0") for s in range(6)] + [(s, "1") for s in range(6, 12)]
RESUMED_LOSS = [(s, float(s)) for s in range(6)] + [(s, 100.0 + s) for s in range(6, 12)]


def test_the_segment_dedupe_is_skipped_only_when_every_row_read_is_of_one_segment(
    root: Path,
) -> None:
    subprocess.run([sys.executable, "-c", CRASH.format(root=str(root))], timeout=60, check=False)
    run = root / "resumed"
    con = connect(run, cache=True)
    # one segment, known from the manifest: the window's branch is pruned, one scan left
    assert manifest(run)["shards"]["events.0.jsonl"]["parts"][0]["segments"] == [0, 0]
    assert not _mixed(con)
    plan = con.execute("EXPLAIN SELECT * FROM completions").fetchall()[0][1]
    assert plan.count("READ_PARQUET") == 1 and "WINDOW" not in plan.upper()
    assert con.execute("SELECT count(*) FROM completions").fetchone() == (10,)
    # the run resumes into the same shard while the connection is open: read live, deduped
    segment_one(root)
    assert _resumed_rows(con) == (RESUMED_OUTPUTS, RESUMED_LOSS)
    assert _mixed(con)
    con.close()
    # now both segments are cached: still deduped, in a fresh and in a pinned connection
    assert_same(run)
    parts = manifest(run)["shards"]["events.0.jsonl"]["parts"]
    assert [p["segments"] for p in parts] == [[0, 0], [1, 1]]
    for part in parts:  # what the manifest says is what the part holds
        got = (
            duckdb.connect()
            .execute(
                "SELECT min(segment), max(segment) FROM read_parquet(?)",
                [str(run / CACHE_NAME / part["file"])],
            )
            .fetchone()
        )
        assert got is not None and list(got) == part["segments"]
    con = connect(run, cache=True)
    assert _mixed(con) and _resumed_rows(con) == (RESUMED_OUTPUTS, RESUMED_LOSS)
    freeze(con)
    assert _mixed(con) and _resumed_rows(con) == (RESUMED_OUTPUTS, RESUMED_LOSS)
    con.close()
    with configured(enabled=False):
        plain = repr(summary(run))
    assert repr(summary(run)) == plain and repr(summary(run)) == plain  # computed, read back
    con = connect(run, cache=False)
    assert _mixed(con) and _resumed_rows(con) == (RESUMED_OUTPUTS, RESUMED_LOSS)
    con.close()


def test_parts_that_do_not_say_their_segments_are_always_deduped(root: Path) -> None:
    subprocess.run([sys.executable, "-c", CRASH.format(root=str(root))], timeout=60, check=False)
    run = root / "resumed"
    live = assert_same(run)
    data = manifest(run)
    for part in data["shards"]["events.0.jsonl"]["parts"]:
        del part["segments"]  # a cache written before parts recorded their segments
    (run / CACHE_NAME / MANIFEST).write_bytes(orjson.dumps(data))
    assert snapshot(run, cache=True) == live
    assert manifest(run) == data  # still used as it is, not rebuilt
    con = connect(run, cache=True)
    assert _mixed(con)
    con.close()
    segment_one(root)  # a new part: the old one still does not say, so still deduped
    con = connect(run, cache=True)
    assert _mixed(con) and _resumed_rows(con) == (RESUMED_OUTPUTS, RESUMED_LOSS)
    con.close()


def test_an_open_connection_reads_lines_written_after_it_opened(root: Path) -> None:
    run = gemmalog.initialize(root=str(root), run_id="live", capture_stdlib=False)
    gemmalog.log_training_progress(1, {"loss": 1.0})
    assert gemmalog.flush()
    con = connect(run.dir, cache=True)
    assert con.execute("SELECT count(*) FROM metrics").fetchone() == (1,)
    gemmalog.log_training_progress(2, {"loss": 0.5})
    assert gemmalog.flush()
    assert con.execute("SELECT count(*) FROM metrics").fetchone() == (2,)
    gemmalog.shutdown()
    con.close()
    assert_same(run.dir)


WRITER = textwrap.dedent(
    """
    import os, sys, time, orjson
    shard, n = sys.argv[1], int(sys.argv[2])
    with open(shard, "ab", buffering=0) as fh:
        for i in range(n):
            line = orjson.dumps({"v": 1, "ts": float(i), "kind": "metrics", "run": "c",
                                 "rank": 0, "step": 1000 + i, "metrics": {"loss": i / n}})
            fh.write(line[:17])  # a torn line for a moment, as a real writer leaves one
            fh.write(line[17:] + b"\\n")
            if i % 50 == 0:
                time.sleep(0.001)
    """
)
READER = textwrap.dedent(
    """
    import sys
    from gemmalog.queries import connect
    for _ in range(int(sys.argv[2])):
        con = connect(sys.argv[1], cache=True)
        print(con.execute("SELECT count(*) FROM events").fetchone()[0], flush=True)
        con.close()
    """
)


def test_concurrent_builders_and_a_writer_never_corrupt_the_cache(root: Path) -> None:
    run = bench_run(root, steps=60)  # 6,000 events, about 5 MB
    shard = run / "events.0.jsonl"
    before = sum(1 for _ in shard.open("rb"))
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(shard), "3000"])]
    procs += [
        subprocess.Popen(
            [sys.executable, "-c", READER, str(run), "4"], stdout=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs)
    after = before + 3000
    for out in outputs[1:]:
        counts = [int(x) for x in out.split()]
        assert len(counts) == 4 and counts == sorted(counts)
        assert all(before <= c <= after for c in counts)
    entry = manifest(run)["shards"]["events.0.jsonl"]
    data = shard.read_bytes()
    watermark = entry["watermark"]
    assert data[watermark - 1 : watermark] == b"\n"
    assert sum(p["rows"] for p in entry["parts"]) == data[:watermark].count(b"\n")
    ends = [(p["start"], p["end"]) for p in entry["parts"]]
    assert all(a[1] == b[0] for a, b in itertools.pairwise(ends))
    live = assert_same(run)
    assert len(live["events"][1]) == after


def test_a_read_only_run_answers_without_a_cache_or_with_one_elsewhere(
    root: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    build_runs(root)
    alpha = root / "alpha"
    (alpha / CACHE_NAME).write_text("in the way")  # the cache cannot be made here
    live = snapshot(root, cache=False)
    assert snapshot(root, cache=True) == live
    assert (alpha / CACHE_NAME).read_text() == "in the way"
    assert "reading the JSONL instead" in capfd.readouterr().err
    (alpha / CACHE_NAME).unlink()
    elsewhere = tmp_path / "caches"
    files = sorted(p for p in root.rglob("*"))
    with configured(directory=str(elsewhere)):
        assert snapshot(root) == live
        assert snapshot(root) == live
    assert sorted(p for p in root.rglob("*")) == files  # nothing written beside the runs
    assert len(list(elsewhere.glob(f"*/{MANIFEST}"))) == 2  # alpha and beta
    if os.geteuid() != 0:  # root writes through permission bits
        for d in (alpha, root / "beta"):
            d.chmod(0o555)
        try:
            assert snapshot(root, cache=True) == live
        finally:
            for d in (alpha, root / "beta"):
                d.chmod(0o755)


def test_no_cache_flag_and_the_cache_command(root: Path, tmp_path: Path) -> None:
    build_runs(root)
    runner = CliRunner()
    result = runner.invoke(cli, ["--no-cache", "summary", str(root / "beta"), "--json"])
    assert result.exit_code == 0, result.output
    assert not (root / "beta" / CACHE_NAME).exists()
    result = runner.invoke(cli, ["cache", "status", str(root), "--format", "json"])
    assert result.exit_code == 0 and {r["state"] for r in orjson.loads(result.stdout)} == {"none"}
    result = runner.invoke(cli, ["cache", "build", str(root), "--format", "json"])
    rows = orjson.loads(result.stdout)
    assert result.exit_code == 0 and len(rows) == 3  # alpha's two ranks and beta
    torn = next(r for r in rows if r["shard"].endswith("alpha/events.1.jsonl"))
    assert torn["state"] == "behind" and torn["cached_bytes"] < torn["size"]  # the torn tail
    assert all(r["rows"] > 0 and r["parquet_bytes"] > 0 for r in rows)
    result = runner.invoke(
        cli, ["sql", str(root), "SELECT count(*) AS n FROM runs", "--format", "csv"]
    )
    assert result.exit_code == 0 and result.stdout == "n\n2\n"
    result = runner.invoke(cli, ["cache", "drop", str(root)])
    assert result.exit_code == 0 and "removed 2 cache folder(s)" in result.stdout
    assert not list(root.rglob(CACHE_NAME))
    elsewhere = tmp_path / "c"
    result = runner.invoke(
        cli,
        ["--cache-dir", str(elsewhere), "sql", str(root / "beta"), "SELECT count(*) FROM events"],
    )
    assert result.exit_code == 0 and len(list(elsewhere.glob(f"*/{MANIFEST}"))) == 1
    assert not list(root.rglob(CACHE_NAME))


def test_a_repeated_summary_is_read_back_only_while_nothing_changed(root: Path) -> None:
    path = hostile_run(root)
    with configured(enabled=False):
        before = summary(path)
    plain = repr(before)
    assert repr(summary(path)) == plain  # computed, remembered
    assert list((path / CACHE_NAME / "results").glob("*.json"))
    assert repr(summary(path)) == plain  # read back: NaN, inf and timestamps as they were
    _put(path / "events.0.jsonl", [_event(50, run="hostile")])
    grown = summary(path)
    assert grown["run"]["events"] == before["run"]["events"] + 1
    with configured(enabled=False):
        assert repr(summary(path)) == repr(grown) != plain
    manifest_file = path / "run.json"
    data = orjson.loads(manifest_file.read_bytes())
    manifest_file.write_bytes(orjson.dumps(data | {"name": "renamed"}))
    assert summary(path)["run"]["name"] == "renamed"


def _exported(out: Path) -> list[str]:
    rows = duckdb.sql(
        f"SELECT * EXCLUDE (run, kind), run, kind FROM read_parquet('{out}/**/*.parquet', "
        "hive_partitioning = true)"
    ).fetchall()
    return sorted(repr(r) for r in rows)


def _events(path: Path) -> list[str]:
    con = connect(path, cache=False)
    rows = con.execute("SELECT * EXCLUDE (file, run, kind), run, kind FROM events").fetchall()
    con.close()
    return sorted(repr(r) for r in rows)


@pytest.mark.parametrize("cache", [True, False], ids=["from-cache", "from-jsonl"])
def test_to_parquet_appends_only_new_events(root: Path, tmp_path: Path, cache: bool) -> None:
    run = root / "r"
    run.mkdir()
    shard = run / "events.0.jsonl"
    _put(shard, [_event(i) for i in range(5)], "wb")
    out = tmp_path / "pq"
    with configured(enabled=cache):
        assert to_parquet(run, out) == 5
        first = {p: p.read_bytes() for p in out.rglob("*.parquet")}
        _put(shard, [_event(i) for i in range(5, 8)])
        with open(shard, "ab") as fh:
            fh.write(_event(8)[:20])  # torn: not exported until complete
        assert to_parquet(run, out) == 3
        files = {p: p.read_bytes() for p in out.rglob("*.parquet")}
        assert all(files[p] == data for p, data in first.items()) and len(files) > len(first)
        assert to_parquet(run, out) == 0
        assert _exported(out) == _events(run)  # the torn line is no event yet
        with open(shard, "ab") as fh:
            fh.write(_event(8)[20:] + b"\n")
        assert to_parquet(run, out) == 1 and _exported(out) == _events(run)
        _put(shard, [_event(100 + i) for i in range(2)], "wb")  # replaced: exported again
        assert to_parquet(run, out) == 2 and _exported(out) == _events(run)
    # what is not data starts with _ or . so that Spark, Trino and DuckDB globs skip it
    assert {p.name[0] for p in out.rglob("*") if p.is_file() and p.suffix != ".parquet"} <= {
        "_",
        ".",
    }


RUN_COLUMNS = ("run", "name", "status", "start", "steps", "duration_s", "last_reward", "accuracy")
RUNS = f"SELECT {', '.join(RUN_COLUMNS)} FROM runs"


def test_runs_of_a_root_are_listed_from_remembered_rows(root: Path) -> None:
    build_runs(root)
    bench_run(root, steps=2)

    def whole_root() -> list[Any]:
        con = connect(root, cache=False)
        rows = con.execute(f"{RUNS} ORDER BY start, run").fetchall()
        con.close()
        return rows

    listed = list_runs(root, RUN_COLUMNS, ("start", "run"))
    assert listed is not None and len(listed[1]) == 3
    assert [_rounded(r) for r in listed[1]] == [_rounded(r) for r in whole_root()]
    assert len(list(root.glob(f"*/{CACHE_NAME}/results/runs-*.json"))) == 3
    again = list_runs(root, RUN_COLUMNS, ("start", "run"))
    assert again is not None and repr(again[1]) == repr(listed[1])
    _put(root / "beta" / "events.0.jsonl", [_event(7, run="beta")])
    (root / "alpha" / "run.json").write_bytes(
        orjson.dumps(orjson.loads((root / "alpha" / "run.json").read_bytes()) | {"name": "A"})
    )
    changed = list_runs(root, RUN_COLUMNS, ("start", "run"))
    assert changed is not None and changed[1] != listed[1]
    assert [_rounded(r) for r in changed[1]] == [_rounded(r) for r in whole_root()]
    out = CliRunner().invoke(cli, ["runs", str(root)]).stdout
    assert out == CliRunner().invoke(cli, ["--no-cache", "runs", str(root)]).stdout
    assert list_runs(root / "beta", RUN_COLUMNS) is None  # one run: the view answers directly


@pytest.mark.slow
def test_same_rows_on_a_real_grpo_demo_run(root: Path) -> None:
    pytest.importorskip("trl")
    examples = Path(__file__).resolve().parent.parent / "examples"
    sys.path.insert(0, str(examples))
    try:
        import train_grpo_gemma
    finally:
        sys.path.remove(str(examples))
    args = train_grpo_gemma.build_arg_parser().parse_args(
        ["--root", str(root), "--run-name", "demo", "--steps", "3", "--dataset-size", "16"]
    )
    _trainer, run = train_grpo_gemma.train(args)
    live = assert_same(run.dir)
    assert len(live["completions"][1]) > 0 and len(live["rewards"][1]) > 0


def test_runs_of_many_new_runs_are_queried_in_one_pass_then_remembered(root: Path) -> None:
    sys.path.insert(0, str(BENCH))
    try:
        from bench_queries import generate
    finally:
        sys.path.remove(str(BENCH))
    for i in range(12):  # more than one connection per run would be worth
        generate(root / f"run-{i:02d}", 1, seed=i)
    con = connect(root, cache=False)
    whole = con.execute(f"{RUNS} ORDER BY start, run").fetchall()
    con.close()
    first = list_runs(root, RUN_COLUMNS, ("start", "run"))
    assert first is not None and len(whole) == 12
    assert [_rounded(r) for r in first[1]] == [_rounded(r) for r in whole]
    assert len(list(root.glob(f"*/{CACHE_NAME}/results/runs-*.json"))) == 12
    assert not list(root.glob(f"*/{CACHE_NAME}/parts"))  # no shard was cached for a listing
    again = list_runs(root, RUN_COLUMNS, ("start", "run"))
    assert again is not None and repr(again[1]) == repr(first[1])  # read back as stored


@pytest.mark.parametrize("damage", ["not json", "escaping part path", "missing part"])
def test_a_damaged_cache_is_rebuilt_never_trusted(root: Path, damage: str) -> None:
    run = root / "r"
    run.mkdir()
    _put(run / "events.0.jsonl", [_event(i) for i in range(6)], "wb")
    live = assert_same(run)
    target = run / CACHE_NAME / MANIFEST
    if damage == "not json":
        target.write_text("{ half a manif")
    elif damage == "escaping part path":
        data = manifest(run)
        data["shards"]["events.0.jsonl"]["parts"][0]["file"] = "../../events.0.jsonl"
        target.write_bytes(orjson.dumps(data))
    else:
        for part in (run / CACHE_NAME / "parts").rglob("*.parquet"):
            part.unlink()
    assert snapshot(run, cache=True) == live
    entry = manifest(run)["shards"]["events.0.jsonl"]
    assert entry["parts"][0]["file"].startswith("parts/")
    assert (run / CACHE_NAME / entry["parts"][0]["file"]).exists()


def test_a_cache_that_cannot_be_written_is_still_read_where_it_matches(
    root: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    from gemmalog.queries import _cache_store

    run = root / "r"
    run.mkdir()
    shard = run / "events.0.jsonl"
    _put(shard, [_event(i) for i in range(6)], "wb")
    assert_same(run)
    before = manifest(run)
    _put(shard, [_event(i) for i in range(6, 9)])  # written after the cache, by the run's owner

    @contextlib.contextmanager
    def refused(self: Any) -> Any:
        raise PermissionError(13, "Permission denied", str(self.dir / "lock"))
        yield

    monkeypatch.setattr(_cache_store._DirCache, "locked", refused)  # as another user sees it
    live = snapshot(run, cache=False)
    assert snapshot(run, cache=True) == live and len(live["events"][1]) == 9
    assert manifest(run) == before  # read, not written
    con = connect(run, cache=True)
    row = con.execute("SELECT gemmalog_source()").fetchone()
    con.close()
    assert row is not None and "read_parquet" in row[0] and "read_json" not in row[0]
    assert "_gemmalog_tail" in row[0]  # the 3 newer lines, parsed at connect
    assert "query cache" not in capfd.readouterr().err  # expected for a read-only run: no word
