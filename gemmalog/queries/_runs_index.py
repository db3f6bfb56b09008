"""`gemmalog runs ROOT` over many runs: one remembered row per run, not a scan of every shard.

Each run directory's row of the ``runs`` view is kept in its query cache
(``results/runs-<state>.json``), keyed by what it depends on: the size, inode, mtime and ctime
of every shard, the bytes of run.json and the text of the views. Listing a root then costs a
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
from gemmalog.queries._cache_config import FORMAT, cache_dir, enabled
from gemmalog.queries._cache_memo import Unsupported, decode, encode, write_result
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
                f"{os.path.basename(shard)}:{st.st_size}:{st.st_ino}:{st.st_mtime_ns}:"
                f"{st.st_ctime_ns}".encode()  # ctime: an edit that put the mtime back
            )
        manifest = os.path.join(run_dir, "run.json")
        if os.path.exists(manifest):
            digest.update(b"run.json" + Path(manifest).read_bytes())
    except OSError:
        return None
    return digest.hexdigest()


Found = tuple[list[str], list[Row], list[tuple[str, str]]]
_BATCH = 8  # more runs than this to query: one connection over the root, not one per run


def _memo_path(run_dir: str, state: str | None) -> Path | None:
    return cache_dir(run_dir) / "results" / f"runs-{state}.json" if state else None


def _recall(path: Path | None) -> Found | None:
    if path is None:
        return None
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        data = json.loads(path.read_bytes())
        rows = [tuple(decode(v) for v in r) for r in data["rows"]]
        problems = [(str(f), str(p)) for f, p in data["problems"]]
        return list(data["names"]), rows, problems
    return None


def _remember(run_dir: str, path: Path | None, found: Found) -> None:
    if path is None:
        return
    names, rows, problems = found
    with contextlib.suppress(OSError, Unsupported, ValueError):
        store = path.parent.parent
        if not store.is_dir():
            store.mkdir(parents=True, mode=os.stat(run_dir).st_mode & 0o777)
            (store / "lock").touch(mode=os.stat(run_dir).st_mode & 0o666)
        text = json.dumps(
            {"names": names, "rows": [[encode(v) for v in r] for r in rows], "problems": problems}
        )
        write_result(path, text.encode())


def _query(path: str, select: str, *, cache: bool) -> dict[str, Found]:
    """``select`` (with the run directory first) over ``path``, split by run directory."""
    con = connect(path, cache=cache)
    try:
        cur = con.execute(select)
        names = [str(d[0]) for d in cur.description or ()][1:]
        out: dict[str, Found] = {}
        for row in cur.fetchall():
            out.setdefault(os.path.normpath(str(row[0])), (names, [], []))[1].append(row[1:])
        for file, problem in manifest_problems(con):
            key = os.path.normpath(os.path.dirname(file))
            out.setdefault(key, (names, [], []))[2].append((file, problem))
        if not out:
            out[""] = (names, [], [])
        return out
    finally:
        con.close()


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
    path: str | os.PathLike[str], columns: tuple[str, ...], order: tuple[str, ...] = ()
) -> Found | None:
    """``columns`` of the ``runs`` view for every run under the root ``path``, sorted by
    ``order``, and the run.json files skipped; each run's rows are remembered in its cache
    while nothing it depends on changed. None when the cache is off, ``path`` is not a root
    of runs or two runs share an id: the caller then queries the whole root at once."""
    source = resolve(path)
    if not enabled() or source.fs is not None:
        return None
    dirs = _run_dirs(source)
    if not dirs:
        return None
    select = f"SELECT dir, {', '.join(columns)} FROM runs"
    memos = {d: _memo_path(d, _state(d, select)) for d in dirs}
    found: dict[str, Found] = {}
    for run_dir, memo in memos.items():
        hit = _recall(memo)
        if hit is not None:
            found[run_dir] = hit
    missing = [d for d in dirs if d not in found]
    if len(missing) > _BATCH:  # e.g. the first listing: one read of every shard
        batch = _query(os.fspath(path), select, cache=False)
    else:
        batch = {}
        for run_dir in missing:
            batch |= _query(run_dir, select, cache=True)
    names = list(columns)
    for run_dir in missing:
        got = batch.get(os.path.normpath(run_dir), (names, [], []))
        _remember(run_dir, memos[run_dir], got)
        found[run_dir] = got
    rows = [row for d in dirs for row in found[d][1]]
    problems = [p for d in dirs for p in found[d][2]]
    if "run" in columns:
        ids = [r[columns.index("run")] for r in rows]
        if len(set(ids)) != len(ids):
            return None
    at = [columns.index(c) for c in order]
    rows.sort(key=lambda r: tuple(_key(r[i]) for i in at))
    return names, rows, problems
