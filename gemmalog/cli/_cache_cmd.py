"""`gemmalog cache`: build, inspect and drop the query cache of runs."""

from __future__ import annotations

from typing import Any

import click

from gemmalog.cli._group import cli, console, root_option
from gemmalog.cli._render import FORMATS, render

_COLUMNS = ("shard", "state", "size", "cached_bytes", "rows", "parts", "parquet_bytes", "cache")


def _table(rows: list[dict[str, Any]], fmt: str, title: str) -> None:
    render(console(), _COLUMNS, [[r[c] for c in _COLUMNS] for r in rows], fmt, title=title)


@cli.group("cache")
def cache() -> None:
    """Build, inspect, verify or drop the query cache: Parquet copies of the JSONL already parsed.

    `connect`, `sql`, `summary`, `report` and the conversions keep it up to date on their
    own; these commands are for control (build ahead of time, see what is cached, free the
    space). The JSONL stays the source of truth: a dropped cache is rebuilt from it.

    \b
    Example:
        gemmalog cache build gemmalog_runs
        gemmalog cache status gemmalog_runs/my-run
        gemmalog cache verify gemmalog_runs
        gemmalog cache drop gemmalog_runs/my-run
    """


@cache.command("build")
@click.argument("path", default=".")
@root_option
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True)
def build(path: str, root: str | None, fmt: str) -> None:
    """Parse what is new in every shard of PATH into the cache (a run, a root or a glob).

    \b
    Example:
        gemmalog cache build gemmalog_runs
    """
    from gemmalog.queries import QueryError, resolve
    from gemmalog.queries._cache_admin import build as do_build

    source = resolve(path, root=root)
    if not source.files():
        raise QueryError(f"{source.label}: no events.*.jsonl files found")
    _table(do_build(source), fmt, "query cache")


@cache.command("status")
@click.argument("path", default=".")
@root_option
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True)
def status(path: str, root: str | None, fmt: str) -> None:
    """Show, per shard of PATH, how much is cached: fresh, behind (new lines), stale or none.

    \b
    Example:
        gemmalog cache status gemmalog_runs/my-run --format json
    """
    from gemmalog.queries import QueryError, resolve
    from gemmalog.queries._cache_admin import status as do_status

    source = resolve(path, root=root)
    if not source.files():
        raise QueryError(f"{source.label}: no events.*.jsonl files found")
    _table(do_status(source), fmt, "query cache")


@cache.command("verify")
@click.argument("path", default=".")
@root_option
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True)
def verify(path: str, root: str | None, fmt: str) -> None:
    """Check every byte the cache of PATH was built from, and every cached part; rebuild from
    the JSONL whatever no longer matches (a shard edited in place, a damaged part).

    Every query already checks each shard's size, inode, ctime and mtime, its first and last
    megabyte and two random ones, and each part's size and footer; this reads everything.

    \b
    Example:
        gemmalog cache verify gemmalog_runs
    """
    from gemmalog.queries import QueryError, resolve
    from gemmalog.queries._cache_admin import verify as do_verify

    source = resolve(path, root=root)
    if not source.files():
        raise QueryError(f"{source.label}: no events.*.jsonl files found")
    columns = ("shard", "state", "problem", "cache")
    rows = do_verify(source)
    render(console(), columns, [[r[c] for c in columns] for r in rows], fmt, title="cache verify")


@cache.command("drop")
@click.argument("path", default=".")
@root_option
def drop(path: str, root: str | None) -> None:
    """Delete the query cache of PATH's runs (the JSONL is not touched).

    \b
    Example:
        gemmalog cache drop gemmalog_runs/my-run
    """
    from gemmalog.queries import resolve
    from gemmalog.queries._cache_admin import drop as do_drop

    removed = do_drop(resolve(path, root=root))
    click.echo(f"removed {len(removed)} cache folder(s)" + "".join(f"\n  {r}" for r in removed))
