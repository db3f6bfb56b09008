"""Results remembered per data state: a repeated ``summary()`` reads its rows back.

A connection pinned to the query cache (:func:`gemmalog.queries._cache.pin`) knows a digest
of everything its views read: the Parquet parts (immutable, named uniquely), the unfinished
tails, run.json and the view SQL. Rows of a query on it are kept in the cache's
``results/`` folder under that digest and the query text, as JSON with NaN, infinities and
timestamps tagged so that they come back as they were.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

import duckdb

from gemmalog.queries._cache import _snapshots
from gemmalog.queries._cache_config import GRACE_S


class Unsupported(Exception):
    """A value the result memo does not store (computed again instead)."""


def encode(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, datetime.datetime) and value.tzinfo is None:
        return {"timestamp": value.isoformat()}
    raise Unsupported(type(value).__name__)


def decode(value: Any) -> Any:
    if isinstance(value, dict):
        return datetime.datetime.fromisoformat(value["timestamp"])
    return value


def remembered(con: duckdb.DuckDBPyConnection, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Column names and rows of ``sql``; on a pinned connection, kept in the cache and given
    back while the run's cached data, its torn tails and its run.json are what they were."""
    snapshot = _snapshots.get(con)
    memo = snapshot.memo if snapshot is not None else None
    path = None
    if memo is not None:
        folder, state = memo
        path = folder / f"{state[:32]}-{hashlib.sha256(sql.encode()).hexdigest()[:32]}.json"
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            data = json.loads(path.read_bytes())
            return list(data["names"]), [tuple(decode(v) for v in r) for r in data["rows"]]
    cur = con.execute(sql)
    names = [str(d[0]) for d in cur.description or ()]
    rows = cur.fetchall()
    if path is not None:
        with contextlib.suppress(OSError, Unsupported, ValueError):
            text = json.dumps({"names": names, "rows": [[encode(v) for v in r] for r in rows]})
            write_result(path, text.encode())
    return names, rows


def write_result(path: Path, data: bytes) -> None:
    folder = path.parent
    store = folder.parent
    folder.mkdir(exist_ok=True, mode=store.stat().st_mode & 0o777)
    tmp = folder / f".tmp-{uuid.uuid4().hex[:12]}"
    tmp.write_bytes(data)
    os.chmod(tmp, (store / "lock").stat().st_mode & 0o666)
    os.replace(tmp, path)
    old = time.time() - GRACE_S
    state = path.name.split("-", 1)[0]
    for other in folder.iterdir():  # results of earlier states of the run
        with contextlib.suppress(OSError):
            if not other.name.startswith(state) and other.lstat().st_mtime < old:
                other.unlink()
