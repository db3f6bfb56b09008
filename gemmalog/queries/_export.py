"""Conversions: the derived CSV files and a hive-partitioned Parquet copy of the events."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

import duckdb

from gemmalog.queries._connect import QueryError, connect
from gemmalog.queries._summary import named_queries

#: Called with the share of the work done, from 0.0 to 1.0.
Progress = Callable[[float], None]
CSV_KINDS = ("model_output", "metrics", "rewards")


def _quote(path: str | os.PathLike[str]) -> str:
    return "'" + os.fspath(path).replace("'", "''") + "'"


def run_with_progress(
    con: duckdb.DuckDBPyConnection, sql: str, progress: Progress | None = None
) -> list[tuple[object, ...]]:
    """Run ``sql``; while it runs, report DuckDB's own progress estimate to ``progress``."""
    if progress is None:
        return con.execute(sql).fetchall()
    result: list[list[tuple[object, ...]]] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            result.append(con.execute(sql).fetchall())
        except BaseException as exc:  # re-raised on the calling thread
            errors.append(exc)

    worker = threading.Thread(target=work, name="gemmalog-export", daemon=True)
    worker.start()
    while worker.is_alive():
        worker.join(0.1)
        done = con.query_progress()
        if done >= 0:
            progress(min(done, 100.0) / 100.0)
    if errors:
        raise errors[0]
    progress(1.0)
    return result[0]


def _copied_rows(rows: list[tuple[object, ...]]) -> int:
    return int(rows[0][0]) if rows and rows[0] and isinstance(rows[0][0], int) else 0


def to_csv(
    run_path: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    kind: str = "model_output",
    root: str | os.PathLike[str] | None = None,
    progress: Progress | None = None,
) -> int:
    """Write one derived CSV file from the JSONL; return the number of rows.

    ``kind`` is ``metrics`` (the metrics view), ``rewards`` (the rewards view) or
    ``model_output``: the same rows the live CSV sink writes, built by the sink's own
    row function (:mod:`gemmalog.sinks.csv`).
    """
    if kind not in CSV_KINDS:
        raise QueryError(f"unknown CSV kind {kind!r}; use one of {', '.join(CSV_KINDS)}")
    if kind == "model_output":
        from gemmalog.queries._model_csv import model_output_csv

        return model_output_csv(run_path, out, root=root, progress=progress)
    con = connect(run_path, root=root)
    try:
        select = named_queries("export")[kind]
        return _copied_rows(
            run_with_progress(
                con, f"COPY ({select}) TO {_quote(out)} (FORMAT csv, HEADER)", progress
            )
        )
    finally:
        con.close()


def to_parquet(
    path: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    root: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
    progress: Progress | None = None,
) -> int:
    """Copy every event to ``out/run=<id>/kind=<kind>/*.parquet``; return the number of events.

    Read it back with ``read_parquet('out/**/*.parquet', hive_partitioning = true)``.
    """
    target = Path(out)
    if target.exists() and any(target.iterdir()) and not overwrite:
        raise QueryError(f"{target}: directory is not empty (use --overwrite to replace it)")
    con = connect(path, root=root)
    try:
        select = named_queries("export")["parquet"]
        options = "FORMAT parquet, PARTITION_BY (run, kind), COMPRESSION zstd"
        options += ", OVERWRITE true" if overwrite else ", OVERWRITE_OR_IGNORE true"
        return _copied_rows(
            run_with_progress(con, f"COPY ({select}) TO {_quote(target)} ({options})", progress)
        )
    finally:
        con.close()
