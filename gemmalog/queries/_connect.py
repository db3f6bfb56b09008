"""Open an in-memory DuckDB with gemmalog's views over a run's shards and manifests."""

from __future__ import annotations

import os
import string
from collections.abc import Iterable

import duckdb

from gemmalog import events
from gemmalog.queries._cache import activate, attach, pin
from gemmalog.queries._cache_config import cache_root, enabled
from gemmalog.queries._guard import check_output
from gemmalog.queries._paths import SHARDS, QueryError, Source, default_root, resolve
from gemmalog.queries._sql import VIEWS, sql_file, sql_list


def connect(
    path: str | os.PathLike[str] = ".",
    *,
    root: str | os.PathLike[str] | None = None,
    cache: bool | None = None,
) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with gemmalog's views over a run, a root of runs or a glob.

    ``path`` is a run directory, a directory holding runs, a glob of run directories or of
    ``events.*.jsonl`` shards, a run id (or unique prefix) under ``root``, or a
    :class:`Source` (one over remote files: ``gemmalog.remote.remote_source``). The views read
    the files again on every query, so they follow a run that is still writing. Raises
    :class:`QueryError` when nothing matches. ``cache`` (default: on unless
    ``$GEMMALOG_CACHE=off``) reads the lines already parsed from the query cache beside the
    shards and parses only what is new (``docs/queries.md``, "The query cache").
    """
    source = resolve(path, root=root)
    if not source.files():
        raise QueryError(f"{source.label}: no {SHARDS} files found (is it a gemmalog run or root?)")
    if source.fs is not None:
        cache = False  # the query cache stays local: files read in place are parsed each time
    if cache is not False and enabled():
        _check_cache_root(source)
    con = duckdb.connect(":memory:")
    try:
        if source.fs is not None:
            # DuckDB reads the files through the source's fsspec file system, never through
            # an extension it would download (httpfs)
            con.execute("SET autoinstall_known_extensions = false")
            con.execute("SET autoload_known_extensions = false")
            con.register_filesystem(source.fs)
        attach(con, source, use_cache=cache)
        has_manifest = any(source.glob(m) for m in source.manifests)
        if has_manifest:
            con.execute(
                string.Template(sql_file("_manifests")).substitute(
                    manifests=sql_list(source.manifests)
                )
            )
        else:
            con.execute(sql_file("_manifests_empty"))
        for view in VIEWS:
            con.execute(sql_file(view))
        activate(con)  # the views bound against an empty stand-in: now read the data
    except BaseException:
        con.close()
        raise
    return con


#: Cache roots already found to be none of any run's files, with the sources they serve.
_checked_roots: set[tuple[str, str]] = set()


def _check_cache_root(source: Source) -> None:
    """A cache root (``$GEMMALOG_CACHE_DIR``, ``configured(directory=...)``) is written
    into: it may be none of any run's files, nor lie in one (once per root and source; it
    may hold runs: remote runs are copied under it)."""
    folder = cache_root()
    if folder is None or (folder, source.label) in _checked_roots:
        return
    check_output(folder, sources=[source], cache=True)
    _checked_roots.add((folder, source.label))


def freeze(con: duckdb.DuckDBPyConnection, columns: Iterable[str] | None = None) -> None:
    """Read the files once into memory; the views then answer from that snapshot.

    Useful before many queries over a large run (a summary, a report). ``columns`` keeps
    only those event fields (the others read as NULL), which saves parsing time and memory.
    A connection whose shards all come from the query cache is pinned to it instead (the
    Parquet parts already are a snapshot, and reading them is cheaper than copying them).
    """
    if pin(con):
        return
    keep = None if columns is None else {*columns, "segment"}  # the views dedupe on it
    blank = [
        f"NULL::{sql} AS {name}"
        for name, sql in events.all_columns().items()
        if keep is not None and name not in keep
    ]
    if keep is not None and "total_reward" not in keep:  # completions then sums the rewards
        total = "list_sum(map_values(rewards))" if "rewards" in keep else "NULL::DOUBLE"
        blank.append(f"{total} AS _rewards_sum")
    replace = f" REPLACE ({', '.join(blank)})" if blank else ""
    con.execute(f"CREATE TEMP TABLE _events_snapshot AS SELECT *{replace} FROM _events_source")
    con.execute("CREATE OR REPLACE VIEW _events_source AS SELECT * FROM _events_snapshot")


def manifest_problems(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str]]:
    """The run.json files the views skipped (not JSON, wrong field types), with the reason."""
    rows = con.execute("SELECT file, problem FROM _manifest_problems ORDER BY file").fetchall()
    return [(str(file), str(problem)) for file, problem in rows]


__all__ = [
    "VIEWS",
    "QueryError",
    "Source",
    "connect",
    "default_root",
    "freeze",
    "manifest_problems",
    "resolve",
    "sql_file",
]
