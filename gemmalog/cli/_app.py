"""The query commands: runs, sql, summary, compare, report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from gemmalog._terminal import visible
from gemmalog.cli._group import SQL_TABLE_LIMIT, cli, console, root_option, warn_skipped
from gemmalog.cli._remote_cmd import here, here_all
from gemmalog.cli._render import FORMATS, cell, plain_tree, render


@cli.command()
@click.argument("root", default=None, required=False)
def runs(root: str | None) -> None:
    """List the runs under ROOT: status, steps, duration, last reward, accuracy.

    \b
    Example:
        gemmalog runs gemmalog_runs
    """
    from gemmalog.queries import QueryError, connect, default_root

    where = default_root() if root is None else here(root, None)[0]
    if root is None and not Path(default_root()).is_dir():
        raise QueryError(
            f"no ROOT given and {default_root()} (the default root) does not exist here; "
            "give ROOT (gemmalog runs path/to/runs) or set GEMMALOG_ROOT"
        )
    from gemmalog.queries import list_runs

    columns = [
        "run",
        "name",
        "status",
        "start",
        "steps",
        "duration_s",
        "last_reward",
        "accuracy",
        "ranks",
    ]
    listed = list_runs(where, tuple(columns), ("start", "run"))  # per run
    if listed is not None:
        names, rows, problems = listed
        warn_skipped(problems)
        render(console(), names, rows, "table", title="runs")
        return
    con = connect(where)
    warn_skipped(con)
    cur = con.execute(f"SELECT {', '.join(columns)} FROM runs ORDER BY start, run")
    names = [d[0] for d in cur.description or ()]
    render(console(), names, cur.fetchall(), "table", title="runs")


@cli.command()
@click.argument("args", nargs=-1, required=True)
@root_option
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="table",
    show_default=True,
    help="Output format.",
)
@click.option(
    "--limit",
    type=click.IntRange(min=0),
    default=None,
    help=f"Print at most this many rows (0: all). Default: {SQL_TABLE_LIMIT} for a table, all otherwise.",
)
def sql(args: tuple[str, ...], root: str | None, fmt: str, limit: int | None) -> None:
    """Run read-only SQL over the views of PATH (default: the current directory).

    Usage: gemmalog sql [PATH] "SELECT ...". Statements that write, copy, attach, install,
    load, create or change settings are refused. The views: events, metrics, rewards,
    completions, generation, system, reward_stats, accuracy, runs, gemmalog_read_errors.
    A table shows the first 1000 rows (a hint on stderr says when there are more); use
    --limit, or --format csv for every row.

    \b
    Example:
        gemmalog sql runs/my-run "SELECT step, value FROM metrics WHERE name = 'loss'"
        gemmalog sql runs "SELECT run, max(accuracy) FROM accuracy GROUP BY run" --format csv
    """
    from gemmalog.queries import check_read_only, connect, lock_down, resolve

    if len(args) > 2:
        raise click.UsageError("give at most PATH and one quoted SQL string")
    path, query = (".", args[0]) if len(args) == 1 else args
    check_read_only(query)
    where, root = here(path, root)
    con = connect(where, root=root)
    lock_down(con, resolve(where, root=root))
    warn_skipped(con)
    cur = con.execute(query)
    names = [d[0] for d in cur.description or ()]
    if limit is None and fmt == "table":
        limit = SQL_TABLE_LIMIT
    if limit:
        rows = cur.fetchmany(limit + 1)
        more = len(rows) > limit
        rows = rows[:limit]
    else:
        rows, more = cur.fetchall(), False
    render(console(), names, rows, fmt)
    if more:
        click.echo(
            f"gemmalog: showing the first {limit} rows; --limit N shows more (0: all), "
            "--format csv writes every row",
            err=True,
        )


def _summary_rows(s: dict[str, Any]) -> list[tuple[str, Any]]:
    """A summary dict flattened to (label, value) rows, in reading order."""
    run, tp = s["run"], s["throughput"]
    rows: list[tuple[str, Any]] = [
        ("run", run["run"]),
        ("name", run["name"]),
        ("status", run["status"]),
        ("steps", run["steps"]),
        ("events", run["events"]),
        ("ranks", run["ranks"]),
        ("wall time (s)", run["duration_s"]),
        ("steps/s", tp["steps_per_s"]),
        ("events/s", tp["events_per_s"]),
    ]
    for phase, loss in s["loss"].items():
        rows += [
            (f"loss {phase} first", loss["first"]),
            (f"loss {phase} last", loss["last"]),
            (f"loss {phase} min", loss["min"]),
        ]
        if loss["non_finite"]:
            rows.append((f"loss {phase} NaN/inf values", loss["non_finite"]))
    for phase, fns in s["rewards"].items():
        for fn, r in fns.items():
            rows += [
                (f"reward {phase} {fn} first", r["first"]),
                (f"reward {phase} {fn} last", r["last"]),
            ]
    for phase, acc in s["accuracy"].items():
        rows.append((f"accuracy {phase}", acc["accuracy"]))
    comp = s["completions"]
    rows += [
        ("completions", comp["count"]),
        ("completion length mean", comp["mean_length"]),
        ("completion length max", comp["max_length"]),
        ("memory peak cpu (MiB)", s["memory"]["cpu_peak_mb"]),
        ("memory peak gpu (MiB)", s["memory"]["gpu_peak_mb"]),
        ("drops", run["drops"]),
        ("sink errors", len(run["sink_errors"] or {})),
        ("unreadable lines", s["read_errors"]),
    ]
    return rows


@cli.command()
@click.argument("run")
@root_option
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def summary(run: str, root: str | None, as_json: bool) -> None:
    """Summarize RUN (a run directory or a run id): steps, loss, rewards, accuracy, memory.

    \b
    Example:
        gemmalog summary gemmalog_runs/my-run
        gemmalog summary my-run --root gemmalog_runs --json
    """
    import orjson

    from gemmalog.queries import summary as compute

    asked = run if "://" in run else f"{(root or '').rstrip('/')}/{run}"
    where, root = here(run, root)
    s = compute(where, root=root)
    if where != asked and "://" in asked:  # read from a local copy: name where the run lies
        s["run"]["dir"] = asked
    if as_json:
        click.echo(
            orjson.dumps(
                plain_tree(s), default=str, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS
            ).decode()
        )
        return
    render(
        console(), ["", "value"], _summary_rows(s), "table", title=f"summary of {s['run']['run']}"
    )
    for name, err in (s["run"]["sink_errors"] or {}).items():
        click.echo(visible(f"sink {name}: {err}", one_line=True), err=True)
    for skipped in s["skipped_manifests"]:
        click.echo(f"gemmalog: warning: {skipped['file']}: {skipped['problem']}; skipped", err=True)


@cli.command()
@click.argument("runs", nargs=-1, required=True)
@root_option
def compare(runs: tuple[str, ...], root: str | None) -> None:
    """Compare the summaries of two or more RUNS side by side, with deltas to the first.

    \b
    Example:
        gemmalog compare baseline-run tuned-run --root gemmalog_runs
    """
    from gemmalog.queries import summary as compute

    if len(runs) < 2:
        raise click.UsageError("compare needs at least two runs")
    where, root = here_all(runs, root)
    tables = [dict(_summary_rows(compute(r, root=root))) for r in where]
    labels = list(dict.fromkeys(k for t in tables for k in t))
    names = ["", *(str(t["run"]) for t in tables)]
    names += [f"Δ {t['run']}" for t in tables[1:]]
    rows = []
    for label in labels:
        values = [t.get(label) for t in tables]
        base = values[0]
        deltas = [
            v - base
            if isinstance(v, int | float)
            and isinstance(base, int | float)
            and not isinstance(v, bool)
            else None
            for v in values[1:]
        ]
        rows.append([label, *values, *deltas])
    render(console(), names, rows, "table", title="compare")


@cli.command()
@click.argument("runs", nargs=-1, required=True)
@root_option
@click.option(
    "-o",
    "--output",
    default="report.html",
    show_default=True,
    type=click.Path(dir_okay=False),
    help="The HTML file to write.",
)
def report(runs: tuple[str, ...], root: str | None, output: str) -> None:
    """Write one self-contained HTML report of RUNS: plots, best and worst completions, problems.

    Several runs are overlaid in every plot. The file needs no network: open it anywhere,
    attach it to a pull request. Needs matplotlib (pip install 'gemmalog[report]').

    \b
    Example:
        gemmalog report gemmalog_runs/my-run -o report.html
        gemmalog report baseline tuned --root gemmalog_runs -o compare.html
    """
    from gemmalog.report import build_report

    where, root = here_all(runs, root)
    path = build_report(where, output, root=root)
    click.echo(f"wrote {path} ({path.stat().st_size // 1024} KiB)")


__all__ = ["cell", "cli"]

# Importing these registers their commands: cache, the conversions and live commands, doctor.
