"""The SQL box: ``gemmalog sql``'s read-only rules on a connection of its own.

The statement is checked with :func:`gemmalog.queries.check_read_only`, then run on a new
connection locked down with :func:`gemmalog.queries.lock_down` (it can read only the run's
files, and its settings cannot be changed), and interrupted after ``timeout`` seconds.
"""

from __future__ import annotations

import csv
import io
import threading
from typing import Any

import duckdb

from gemmalog.queries import QueryError, check_read_only, connect, lock_down, resolve
from gemmalog.serve._errors import ServeError, first_line
from gemmalog.serve._store import RunStore

#: Rows a result table holds unless the request asks for fewer (CSV has every row).
ROW_LIMIT = 1000
TIMEOUT_S = 30.0


def run_sql(
    store: RunStore,
    run_id: str,
    sql: str,
    *,
    limit: int = ROW_LIMIT,
    timeout: float = TIMEOUT_S,
) -> tuple[list[str], list[tuple[Any, ...]], bool]:
    """Column names, at most ``limit`` rows (0: all) and whether more rows were left out."""
    try:
        check_read_only(sql)
    except QueryError as exc:
        raise ServeError(400, str(exc)) from None
    store.state(run_id)  # 404 or 410 before anything is opened
    run_dir = store.locate(run_id)
    try:
        con = connect(run_dir)
    except QueryError as exc:
        raise ServeError(404, str(exc)) from None
    timer = threading.Timer(timeout, con.interrupt)
    try:
        lock_down(con, resolve(run_dir))
        timer.start()
        cur = con.execute(sql)
        names = [str(d[0]) for d in cur.description or ()]
        if limit:
            rows = cur.fetchmany(limit + 1)
            return names, rows[:limit], len(rows) > limit
        return names, cur.fetchall(), False
    except duckdb.InterruptException:
        raise ServeError(
            400, f"the query ran longer than {timeout:g} s and was stopped; narrow it down"
        ) from None
    except duckdb.Error as exc:
        raise ServeError(400, f"SQL error: {first_line(exc)}") from None
    finally:
        timer.cancel()
        con.close()


def to_csv(names: list[str], rows: list[tuple[Any, ...]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(names)
    writer.writerows(rows)
    return out.getvalue()
