"""Conversions: the derived CSV files and a hive-partitioned Parquet copy of the events."""

from __future__ import annotations

import os
from pathlib import Path

import duckdb
from duckdb.sqltypes import VARCHAR

from gemmalog.formats import FORMULA_STARTS
from gemmalog.queries._connect import QueryError, connect, resolve
from gemmalog.queries._guard import check_output
from gemmalog.queries._outputs import Progress, check_csv_output, run_with_progress
from gemmalog.queries._summary import named_queries
from gemmalog.sinks.csvrows import cell

CSV_KINDS = ("model_output", "metrics", "rewards")


def _quote(path: str | os.PathLike[str]) -> str:
    return "'" + os.fspath(path).replace("'", "''") + "'"


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
    row function (:mod:`gemmalog.sinks.csv`). Every text cell of every kind is made
    spreadsheet-safe by the sink's :func:`~gemmalog.sinks.csvrows.cell`.
    """
    if kind not in CSV_KINDS:
        raise QueryError(f"unknown CSV kind {kind!r}; use one of {', '.join(CSV_KINDS)}")
    if kind == "model_output":
        from gemmalog.queries._model_csv import model_output_csv

        return model_output_csv(run_path, out, root=root, progress=progress)
    target = check_csv_output(resolve(run_path, root=root), out, root)
    con = connect(run_path, root=root)
    try:
        select = _spreadsheet_safe(con, named_queries("export")[kind])
        return _copied_rows(
            run_with_progress(
                con, f"COPY ({select}) TO {_quote(target)} (FORMAT csv, HEADER)", progress
            )
        )
    finally:
        con.close()


def _text_cell(text: str) -> str:
    return cell(text)


def _spreadsheet_safe(con: duckdb.DuckDBPyConnection, select: str) -> str:
    """``select`` with every text column passed through the CSV sink's own :func:`cell`:
    text a spreadsheet would run as a formula gets a leading quote, as in model_outputs.csv.

    Only cells that start with one of :data:`FORMULA_STARTS` reach Python; the others cannot
    change, and a metric export stays a DuckDB COPY.
    """
    con.create_function("gemmalog_csv_cell", _text_cell, [VARCHAR], VARCHAR, side_effects=False)
    starts = ", ".join("'" + c.replace("'", "''") + "'" for c in FORMULA_STARTS)
    columns = []
    for name, typ, *_ in con.execute(f"DESCRIBE ({select})").fetchall():
        ident = '"' + str(name).replace('"', '""') + '"'
        columns.append(
            f"CASE WHEN left({ident}, 1) IN ({starts}) THEN gemmalog_csv_cell({ident}) "
            f"ELSE {ident} END AS {ident}"
            if typ == "VARCHAR"
            else ident
        )
    return f"SELECT {', '.join(columns)} FROM ({select})"


def to_parquet(
    path: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    root: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
    progress: Progress | None = None,
) -> int:
    """Copy every event to ``out/run=<id>/kind=<kind>/*.parquet``; return the number of events
    written now: an ``out`` holding an earlier export gets only the events written since.

    Read it back with ``read_parquet('out/**/*.parquet', hive_partitioning = true)``.
    ``out`` must be empty, or with ``overwrite`` hold an earlier export: then only its
    ``run=*/kind=*/*.parquet`` files are removed. An ``out`` that is, holds or lies in any
    run's files is refused (:func:`~gemmalog.queries._guard.check_output`); a missing
    ``out`` (and its parents) is created.
    """
    target = check_output(out, sources=[resolve(path, root=root)], root=root, folder=True)
    if target.exists() and not target.is_dir():
        raise QueryError(f"{out}: is a file; give a folder for the Parquet copy")
    from gemmalog.queries import _cache_export as incremental

    if target.is_dir() and any(target.iterdir()):
        if overwrite:
            _remove_earlier_export(target)
            incremental.forget(target)
        elif not incremental.is_export(target):  # an earlier export is continued, not redone
            raise QueryError(
                f"{out}: folder is not empty (use --overwrite to replace an earlier export)"
            )
    target.mkdir(parents=True, exist_ok=True)
    return incremental.export(resolve(path, root=root), target, progress)


def _remove_earlier_export(target: Path) -> None:
    """Delete the ``run=*/kind=*/*.parquet`` files of an earlier export and the folders they
    leave empty; refuse a folder that holds a run, and leave every other file alone."""
    for name in ("run.json", "events.*.jsonl"):
        found = next(target.rglob(name), None)
        if found is not None:
            raise QueryError(
                f"{target}: holds a run ({found}); --overwrite only replaces an earlier Parquet export"
            )
    for run_dir in target.glob("run=*"):
        for kind_dir in run_dir.glob("kind=*"):
            for part in kind_dir.glob("*.parquet"):
                if part.is_file() and not part.is_symlink():
                    part.unlink()
            _rmdir_if_empty(kind_dir)
        _rmdir_if_empty(run_dir)


def _rmdir_if_empty(folder: Path) -> None:
    if folder.is_dir() and not folder.is_symlink() and not any(folder.iterdir()):
        folder.rmdir()
