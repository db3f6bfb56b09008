"""`gemmalog runs ROOT` over many runs: one remembered row per run, not a scan of every shard.

Each run directory's row of the ``runs`` view is kept in its query cache
(``results/runs-<state>.json``), keyed by what it depends on: the size, inode and mtime of
every shard, the bytes of run.json and the text of the views. Listing a root then costs a
``stat`` per shard and two small reads per run; only runs that changed are queried again
(through the cache, so only their new lines are parsed).
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from gemmalog._version import __version__
from gemmalog.queries._cache_memo import Unsupported, decode, encode, write_result
from gemmalog.queries._cache_store import FORMAT, cache_dir, enabled
from gemmalog.queries._connect import VIEWS, Source, connect, manifest_problems, resolve, sql_file

Row = tuple[Any, ...]


def _state(run_dir: str, select: str) -> str | None:
    """A digest of everything the run's ``runs`` row depends on; None if a file vanished."""
    digest = hashlib.sha256()
    for text in (str(FORMAT), __version__, select, *(sql_file(v) for v in VIEWS)):
        digest.update(text.encode() + b"\0")
    digest.update(sql_file("_manifests").encode() + sql_file("_manifests_empty").encode())
    try:
        for shard in sorted(glob.glob(os.path.join(glob.escape(run_dir), "events.*.jsonl"))):
            st = os.stat(shard)
            digest.update(
                f"{os.path.basename(shard)}:{st.st_size}:{st.st_ino}:{st.st_mtime_ns}".encode()
            )
        manifest = os.path.join(run_dir, "run.json")
        if os.path.exists(manifest):
            digest.update(b"run.json" + Path(manifest).read_bytes())
    except OSError:
        return None
    return digest.hexdigest()


def _one(run_dir: str, select: str) -> tuple[list[str], list[Row], list[tuple[str, str]]]:
    """The run's rows of ``select`` and its skipped manifests, remembered while unchanged."""
    state = _state(run_dir, select)
    path = cache_dir(run_dir) / "results" / f"runs-{state}.json" if state else None
    if path is not None:
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            data = json.loads(path.read_bytes())
            rows = [tuple(decode(v) for v in r) for r in data["rows"]]
            problems = [(str(f), str(p)) for f, p in data["problems"]]
            return list(data["names"]), rows, problems
    con = connect(run_dir)
    try:
        cur = con.execute(select)
        names = [str(d[0]) for d in cur.description or ()]
        rows = cur.fetchall()
        problems = manifest_problems(con)
    finally:
        con.close()
    if path is not None and path.parent.parent.is_dir():
        with contextlib.suppress(OSError, Unsupported, ValueError):
            text = json.dumps(
                {
                    "names": names,
                    "rows": [[encode(v) for v in r] for r in rows],
                    "problems": problems,
                }
            )
            write_result(path, text.encode())
    return names, rows, problems


def _run_dirs(source: Source) -> list[str] | None:
    """The run directories of a root (each holding shards), or None when ``source`` is not one."""
    if source.run or source.directory is None:
        return None
    dirs = {os.path.dirname(f) for f in source.files()}
    with_manifest = {os.path.dirname(m) for p in source.manifests for m in glob.glob(p)}
    if with_manifest - dirs:  # a run with a run.json but no shard: the view handles it
        return None
    return sorted(dirs)


def _key(value: Any) -> tuple[bool, Any]:
    return (value is None, value)  # DuckDB's ORDER BY: NULLS LAST


def list_runs(
    path: str | os.PathLike[str], select: str, order: tuple[str, ...] = ()
) -> tuple[list[str], list[Row], list[tuple[str, str]]] | None:
    """``select`` (over the ``runs`` view, one row per run, no ORDER BY) for every run under
    the root ``path``, run by run, sorted by the columns ``order``; None when the cache is off,
    ``path`` is not a root of runs or two runs share an id (the caller then queries the
    whole root at once)."""
    if not enabled():
        return None
    dirs = _run_dirs(resolve(path))
    if not dirs:
        return None
    names: list[str] = []
    rows: list[Row] = []
    problems: list[tuple[str, str]] = []
    for run_dir in dirs:
        names, got, skipped = _one(run_dir, select)
        rows += got
        problems += skipped
    if "run" in names:
        ids = [r[names.index("run")] for r in rows]
        if len(set(ids)) != len(ids):
            return None
    at = [names.index(c) for c in order]
    rows.sort(key=lambda r: tuple(_key(r[i]) for i in at))
    return names, rows, problems
