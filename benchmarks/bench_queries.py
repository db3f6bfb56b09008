"""Query speed: connect + summary, to-csv and to-parquet over a large generated run.

The fixture is written straight to JSONL with orjson, in the same field layout as the
logger (envelope first, then the kind's fields, then the enrichment), so building a
million events takes seconds instead of minutes. Each step holds 100 events:

* 32 ``model_output`` events with about 1 KB of completion text,
* 4 ``reward`` events (one per reward function, 32 values each),
* 1 ``reward_summary``, 1 ``generation_metrics``, 1 ``system`` event,
* 61 ``metrics`` events (per micro-batch loss, grad norm, learning rate, ...).

The pandas baseline reads the same shard with ``pandas.read_json(lines=True)`` and computes
the same aggregates as :func:`gemmalog.queries.summary` (steps, loss first/last/min, reward
mean first/last per function, accuracy per phase, completion length, memory peak).

    python benchmarks/bench_queries.py --steps 10000     # the full 1,000,000 events
    python benchmarks/bench_queries.py --steps 1000 --skip-pandas
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

REWARD_FNS = ("correctness", "format", "int_answer", "xml_count")
WORDS = [
    "the",
    "answer",
    "is",
    "four",
    "because",
    "two",
    "plus",
    "two",
    "equals",
    "four",
    "and",
    "we",
    "check",
    "the",
    "sum",
    "again",
]


def _envelope(ts: float, kind: str, logger: str, run: str, step: int) -> dict[str, Any]:
    return {
        "v": 1,
        "ts": ts,
        "kind": kind,
        "logger": logger,
        "level": "info",
        "run": run,
        "rank": 0,
    }


def _enrich(event: dict[str, Any], kind: str, step: int, rss: float) -> dict[str, Any]:
    event["step"] = step
    event["event"] = kind
    event["device"] = "cpu"
    event["rss_mb"] = rss
    return event


def generate(run_dir: Path, steps: int, *, seed: int = 0, start: int = 0) -> int:
    """Write ``steps`` × 100 events and a ``run.json``; return the shard size in bytes.

    With ``start`` > 0 the steps ``start .. start + steps - 1`` are appended to the shard
    (a run that kept training), and run.json is rewritten with the new end.
    """
    rng = random.Random(seed + start)
    run = run_dir.name
    run_dir.mkdir(parents=True, exist_ok=True)
    text = " ".join(random.Random(seed).choice(WORDS) for _ in range(190))[:1000]
    t0 = 1_700_000_000.0
    ts = t0 + start * 0.0098
    dumps = orjson.dumps
    shard = run_dir / "events.0.jsonl"
    with open(shard, "ab" if start else "wb") as out:
        for step in range(start, start + steps):
            lines: list[bytes] = []
            rss = 1000.0 + step * 0.01
            for micro in range(61):
                ts += 0.0001
                e = _envelope(ts, "metrics", "gemmalog.metrics", run, step)
                e["phase"] = "train"
                e["metrics"] = {
                    "loss": 2.0 / (1 + step) + micro * 1e-4,
                    "grad_norm": rng.random(),
                    "learning_rate": 1e-5,
                    "kl": rng.random() / 10,
                }
                lines.append(dumps(_enrich(e, "metrics", step, rss)))
            values = {fn: [rng.random() for _ in range(32)] for fn in REWARD_FNS}
            for sample in range(32):
                ts += 0.0001
                e = _envelope(ts, "model_output", "gemmalog.model", run, step)
                rewards = {fn: values[fn][sample] for fn in REWARD_FNS}
                correct = rewards["correctness"] > 0.5
                e.update(
                    phase="train",
                    sample=sample,
                    question="What is two plus two?",
                    true_answer="4",
                    model_output=text,
                    reasoning=text[:400],
                    answer="4" if correct else "5",
                    rewards=rewards,
                    total_reward=sum(rewards.values()),
                    correct=correct,
                    length_chars=len(text),
                    length_tokens=None,
                )
                lines.append(dumps(_enrich(e, "model_output", step, rss)))
            for fn in REWARD_FNS:
                ts += 0.0001
                e = _envelope(ts, "reward", "gemmalog.reward", run, step)
                e.update(
                    phase="train",
                    reward_fn=fn,
                    values=values[fn],
                    samples=[str(i) for i in range(32)],
                )
                lines.append(dumps(_enrich(e, "reward", step, rss)))
            ts += 0.0001
            e = _envelope(ts, "reward_summary", "gemmalog.reward", run, step)
            e.update(
                phase="train",
                stats={
                    fn: {"mean": sum(v) / 32, "std": 0.1, "min": min(v), "max": max(v), "count": 32}
                    for fn, v in values.items()
                },
            )
            lines.append(dumps(_enrich(e, "reward_summary", step, rss)))
            e = _envelope(ts, "generation_metrics", "gemmalog.metrics", run, step)
            e.update(
                phase="train",
                count=32,
                mean_length_chars=1000.0,
                min_length_chars=1000,
                max_length_chars=1000,
            )
            lines.append(dumps(_enrich(e, "generation_metrics", step, rss)))
            e = _envelope(ts, "system", "gemmalog.system", run, step)
            e.update(cpu_rss_mb=rss, cpu_percent=100.0)
            lines.append(dumps(_enrich(e, "system", step, rss)))
            out.write(b"\n".join(lines) + b"\n")
    manifest = {
        "id": run,
        "name": "bench",
        "status": "completed",
        "start": t0,
        "end": ts,
        "duration_s": ts - t0,
        "world_size": 1,
        "host": platform.node(),
        "versions": {},
        "config": {},
        "events_written": (start + steps) * 100,
        "events_lost": 0,
        "drops": 0,
        "sink_errors": {},
        "error": None,
    }
    (run_dir / "run.json").write_bytes(dumps(manifest))
    return shard.stat().st_size


def pandas_summary(shard: Path) -> dict[str, Any]:
    """The same aggregates as gemmalog.queries.summary, through pandas.read_json(lines=True)."""
    import pandas as pd

    df = pd.read_json(shard, lines=True)
    out: dict[str, Any] = {"steps": int(df["step"].max()), "events": len(df)}
    m = df[df["kind"] == "metrics"]
    loss = pd.DataFrame(
        {"step": m["step"], "loss": m["metrics"].map(lambda d: d.get("loss"))}
    ).dropna()
    loss = loss.sort_values("step", kind="stable")
    out["loss"] = {
        "first": loss["loss"].iloc[0],
        "last": loss["loss"].iloc[-1],
        "min": loss["loss"].min(),
    }
    mo = df[df["kind"] == "model_output"]
    rows = [
        (s, fn, v) for s, r in zip(mo["step"], mo["rewards"], strict=True) for fn, v in r.items()
    ]
    rw = pd.DataFrame(rows, columns=["step", "fn", "value"])
    means = rw.groupby(["fn", "step"])["value"].mean().reset_index()
    out["rewards"] = {
        fn: {
            "first": g.sort_values("step")["value"].iloc[0],
            "last": g.sort_values("step")["value"].iloc[-1],
        }
        for fn, g in means.groupby("fn")
    }
    acc = mo.groupby("phase")["correct"].agg(["sum", "count"])
    out["accuracy"] = {p: r["sum"] / r["count"] for p, r in acc.iterrows()}
    out["length"] = float(mo["length_chars"].mean())
    out["memory_peak_mb"] = float(df["rss_mb"].max())
    return out


def _timed(fn: Any) -> tuple[float, Any]:
    t = time.perf_counter()
    result = fn()
    return time.perf_counter() - t, result


#: The questions of issue 14, each asked through a fresh gemmalog.connect.
QUESTIONS = {
    "rewards per function per step": (
        "SELECT step, reward_fn, avg(value) AS mean FROM rewards GROUP BY ALL ORDER BY ALL"
    ),
    "loss curve": "SELECT step, avg(value) AS loss FROM metrics WHERE name = 'loss' GROUP BY step ORDER BY step",
    "10 worst completions": (
        "SELECT run, step, sample, total_reward, question, answer FROM completions "
        "ORDER BY total_reward ASC LIMIT 10"
    ),
}


def _ask(run_dir: Path, sql: str, cache: bool) -> list[tuple[Any, ...]]:
    from gemmalog.queries import connect

    con = connect(run_dir, cache=cache)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def _summary(run_dir: Path, cache: bool) -> dict[str, Any]:
    from gemmalog.queries import summary
    from gemmalog.queries._cache_config import configured

    with configured(enabled=cache):
        return summary(run_dir)


def _du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _best(fn: Any, repeat: int = 3) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(repeat):
        t, result = _timed(fn)
        times.append(t)
    return min(times), result


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def _fleet(base: Path, runs: int) -> dict[str, float]:
    """``gemmalog runs`` over a root of small runs: first (cache built) and repeated."""
    from click.testing import CliRunner

    from gemmalog.cli import cli

    root = base / "fleet"
    for i in range(runs):
        generate(root / f"run-{i:04d}", 1, seed=i)
    runner = CliRunner()
    out: dict[str, float] = {}
    for label in ("first", "repeated"):
        t, result = _timed(lambda: runner.invoke(cli, ["runs", str(root)]))
        assert result.exit_code == 0, result.output
        out[label] = t
    t, result = _timed(lambda: runner.invoke(cli, ["--no-cache", "runs", str(root)]))
    out["no cache"] = t
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--steps", type=int, default=10_000, help="steps of 100 events (10,000 = 1M events)"
    )
    parser.add_argument(
        "--append-steps", type=int, default=100, help="steps appended for the live-run figures"
    )
    parser.add_argument(
        "--dir", type=Path, default=None, help="where to build the fixture (default: a temp dir)"
    )
    parser.add_argument("--skip-pandas", action="store_true", help="do not run the pandas baseline")
    parser.add_argument(
        "--skip-jsonl", action="store_true", help="do not time the questions without the cache"
    )
    parser.add_argument(
        "--skip-exports", action="store_true", help="do not time to-parquet and to-csv"
    )
    parser.add_argument(
        "--skip-baseline", action="store_true", help="do not time DuckDB's read_json alone"
    )
    parser.add_argument(
        "--fleet", type=int, default=0, help="also time `gemmalog runs` over N runs"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="rounds of read_json into a table and first summary, alternated (median)",
    )
    parser.add_argument("--json", type=Path, default=None, help="write the figures here as JSON")
    args = parser.parse_args()

    import duckdb

    from gemmalog.queries import to_csv, to_parquet
    from gemmalog.queries._sql import columns_literal

    base = args.dir or Path(tempfile.mkdtemp(prefix="gemmalog-bench-"))
    run_dir = base / "runs" / "bench-run"
    shard = run_dir / "events.0.jsonl"
    fig: dict[str, Any] = {}
    try:
        gen_s, size = _timed(lambda: generate(run_dir, args.steps))
        mb = size / 1e6
        fig["machine"] = (
            f"{platform.machine()} {os.cpu_count()} cores, python {platform.python_version()}, "
            f"duckdb {duckdb.__version__}"
        )
        fig["events"], fig["jsonl_bytes"] = args.steps * 100, size
        fig["load_average_start"] = os.getloadavg()
        print(fig["machine"])
        print(f"fixture: {args.steps * 100:,} events, {mb:,.1f} MB JSONL, written in {gen_s:.1f} s")

        def read_json_table(columns: str) -> None:
            con = duckdb.connect()
            con.execute(f"CREATE TABLE t AS SELECT * FROM read_json('{shard}'{columns})")
            con.close()

        declared = f", format = 'newline_delimited', columns = {columns_literal()}"
        if not args.skip_baseline:
            fig["read_json_auto_s"], _ = _timed(lambda: read_json_table(""))

        if not args.skip_jsonl:
            fig["jsonl"] = {"summary": _timed(lambda: _summary(run_dir, False))[0]}
            for name, sql in QUESTIONS.items():
                fig["jsonl"][name] = _timed(lambda sql=sql: _ask(run_dir, sql, False))[0]
            print(
                "JSONL (no cache): " + ", ".join(f"{k} {v:.2f} s" for k, v in fig["jsonl"].items())
            )

        # The first summary (which builds the cache) against DuckDB's read_json of the shard
        # into a table with the same declared columns, alternated round by round so that both
        # see the same machine; the cache is dropped before each first summary.
        firsts: list[float] = []
        bases: list[float] = []
        result: Any = None
        for round_ in range(args.rounds):
            order = ("base", "first") if round_ % 2 == 0 else ("first", "base")
            for what in order:
                if what == "base":
                    if not args.skip_baseline:
                        bases.append(_timed(lambda: read_json_table(declared))[0])
                    continue
                shutil.rmtree(run_dir / ".gemmalog-cache", ignore_errors=True)
                t, result = _timed(lambda: _summary(run_dir, True))
                firsts.append(t)
        first = _median(firsts)
        fig["cache_first_summary_s"] = first
        fig["cache_first_summary_rounds_s"] = firsts
        if bases:
            fig["read_json_declared_s"] = _median(bases)
            fig["read_json_declared_rounds_s"] = bases
            fig["first_summary_ratio"] = first / fig["read_json_declared_s"]
            print(
                f"DuckDB read_json into a table: {fig['read_json_declared_s']:.2f} s with the "
                f"declared columns (median of {len(bases)}), "
                f"{fig['read_json_auto_s']:.2f} s auto-detected; first summary (builds the cache) "
                f"{first:.2f} s (median of {len(firsts)}) = {fig['first_summary_ratio']:.2f} x"
            )
        fig["cache_repeated_summary_s"], again = _best(lambda: _summary(run_dir, True))
        assert repr(again) == repr(result)
        fig["cache"] = {
            name: _best(lambda sql=sql: _ask(run_dir, sql, True), 5)[0]
            for name, sql in QUESTIONS.items()
        }
        fig["cache_bytes"] = _du(run_dir / ".gemmalog-cache")
        print(
            f"cache: first summary {first:.2f} s (builds the cache), repeated summary "
            f"{fig['cache_repeated_summary_s']:.3f} s, "
            + ", ".join(f"{k} {v:.3f} s" for k, v in fig["cache"].items())
            + f"; cache {fig['cache_bytes'] / 1e6:.1f} MB ({100 * fig['cache_bytes'] / size:.1f} % of the JSONL)"
        )

        if not args.skip_exports:
            t_pq, rows = _timed(lambda: to_parquet(run_dir, base / "parquet"))
            fig["to_parquet_s"] = t_pq
            print(f"to-parquet:        {t_pq:.2f} s ({rows:,} events)")
            t_csv, n = _timed(lambda: to_csv(run_dir, base / "out.csv", kind="metrics"))
            print(f"to-csv metrics:    {t_csv:.2f} s ({n:,} rows)")

        added = args.append_steps * 100
        generate(run_dir, args.append_steps, start=args.steps)
        from gemmalog.queries import connect

        fig["append_events"] = added
        fig["append_connect_s"], con = _timed(lambda: connect(run_dir))
        con.close()
        fig["append_summary_s"], grown = _timed(lambda: _summary(run_dir, True))
        assert grown["run"]["events"] == args.steps * 100 + added
        print(
            f"after {added:,} new events: connect {fig['append_connect_s']:.3f} s, then summary "
            f"{fig['append_summary_s']:.3f} s"
        )
        fig["append_repeated_summary_s"], _ = _best(lambda: _summary(run_dir, True))
        print(f"repeated summary after the append: {fig['append_repeated_summary_s']:.3f} s")
        if not args.skip_exports:
            fig["append_to_parquet_s"], rows = _timed(lambda: to_parquet(run_dir, base / "parquet"))
            print(f"incremental to-parquet: {fig['append_to_parquet_s']:.2f} s ({rows:,} events)")
        if not args.skip_pandas:
            t_pd, pd_result = _timed(lambda: pandas_summary(shard))
            fig["pandas_s"] = t_pd
            print(f"pandas read_json + same aggregation: {t_pd:.2f} s")
            print(
                f"speed-up on a repeated summary (pandas / cache): {t_pd / fig['cache_repeated_summary_s']:.0f}x"
            )
            ok = math.isclose(pd_result["loss"]["min"], grown["loss"]["train"]["min"])
            print(f"results agree (loss min): {ok}")
        if args.fleet:
            fig["fleet"] = {"runs": args.fleet, **_fleet(base, args.fleet)}
            print(
                f"gemmalog runs over {args.fleet} runs: "
                + ", ".join(f"{k} {v:.2f} s" for k, v in fig["fleet"].items() if k != "runs")
            )
        fig["load_average_end"] = os.getloadavg()
        if args.json is not None:
            args.json.write_text(json.dumps(fig, indent=2))
    finally:
        if args.dir is None:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
