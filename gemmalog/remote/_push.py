"""``gemmalog push``: copy runs from one location to another, sending only what is new.

A run ``R`` under SRC lands at ``DEST/R`` (SRC may be one run or a root of runs; either side
may be a path or an fsspec URL). For each file of the run, as listed when the push starts:

- a manifest (``*.json``) is replaced whole, at once, when its bytes differ;
- any other file (the append-only JSONL shards, the CSV, TensorBoard's event files, the text
  log) continues from the size already at DEST when DEST's bytes are a prefix of the source's
  (its first and last bytes hashed on both sides), and is replaced whole otherwise;
- manifests go last, so a reader that sees the new ``run.json`` finds the shards it names.

A push stopped anywhere (a kill, a server gone) leaves every file at DEST either as it was or
a prefix of the source: the next push continues from there. The query cache and the push's
own temporary files are never sent.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from gemmalog.remote._fs import RemoteError, explained, filesystem, join, public
from gemmalog.remote._store import READ_AHEAD, Store, ignored, is_local, store_for


class ConflictError(RemoteError):
    """DEST already holds another run, or something that is not a run, under the run's name
    (``run``)."""

    def __init__(self, message: str, run: str) -> None:
        super().__init__(message)
        self.run = run


#: Bytes at each end of the overlap compared before continuing a file.
_CHECK = 64 << 10


@dataclass
class PushStats:
    """What one push did, summed over its runs."""

    runs: list[str] = field(default_factory=list)
    #: SRC was one run (not a root of runs).
    single: bool = False
    files_sent: int = 0
    files_appended: int = 0
    files_unchanged: int = 0
    bytes_sent: int = 0
    bytes_total: int = 0

    def line(self) -> str:
        sent = self.files_sent + self.files_appended
        return (
            f"{len(self.runs)} run(s): {sent} file(s) sent ({self.files_appended} continued), "
            f"{self.files_unchanged} unchanged, {_size(self.bytes_sent)} of "
            f"{_size(self.bytes_total)} sent"
        )


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    value = float(n)
    for unit in ("KiB", "MiB", "GiB"):
        value /= 1024
        if value < 1024 or unit == "GiB":
            break
    return f"{value:.1f} {unit}"


@dataclass
class _Side:
    location: str
    fs: Any
    path: str

    @classmethod
    def open(cls, location: str) -> _Side:
        fs, path = filesystem(location)
        return cls(location, fs, path)

    def files(self, directory: str) -> dict[str, dict[str, Any]]:
        """Every file under ``directory`` by relative path, with its listed details."""
        try:
            found = self.fs.find(directory, detail=True)
        except FileNotFoundError:
            return {}
        out: dict[str, dict[str, Any]] = {}
        prefix = directory.rstrip("/") + "/"
        for name, info in found.items():
            if info.get("type") == "directory":
                continue
            rel = name[len(prefix) :] if name.startswith(prefix) else posixpath.basename(name)
            if ignored(rel):
                continue
            out[rel] = info
        return out

    def reader(self, path: str) -> Any:
        """``path`` open to read, through a large read-ahead when the store is remote (a
        store's cost is much per request: fewer, larger GETs; docs/performance.md)."""
        if is_local(self.fs):
            return self.fs.open(path, "rb")
        return self.fs.open(path, "rb", block_size=READ_AHEAD)

    def read(self, path: str, start: int, end: int) -> bytes:
        if end <= start:
            return b""
        return bytes(self.fs.cat_file(path, start=start, end=end))


def _is_run(names: Iterable[str]) -> bool:
    return any(n == "run.json" or (n.startswith("events.") and n.endswith(".jsonl")) for n in names)


def _runs(side: _Side) -> list[str]:
    """The run directories SRC names: itself when it is a run, else the runs under it."""
    with explained(side.location, "listing the source"):
        if not side.fs.exists(side.path):
            raise RemoteError(f"{public(side.location)}: no such run or root of runs")
        if side.fs.isfile(side.path):
            raise RemoteError(
                f"{public(side.location)}: a file; give a run directory or a root of runs"
            )
        entries = side.fs.ls(side.path, detail=True)
    names = {posixpath.basename(e["name"].rstrip("/")): e for e in entries}
    if _is_run(n for n, e in names.items() if e.get("type") != "directory"):
        return [side.path]
    runs = []
    for name, entry in sorted(names.items()):
        if entry.get("type") != "directory" or name.startswith("."):
            continue
        with explained(side.location, "listing the source"):
            inner = side.fs.ls(entry["name"], detail=False)
        if _is_run(posixpath.basename(str(n).rstrip("/")) for n in inner):
            runs.append(entry["name"].rstrip("/"))
    if not runs:
        raise RemoteError(
            f"{public(side.location)}: holds no gemmalog run (no run.json or events.*.jsonl "
            "in it or in the folders under it)"
        )
    return runs


def _identity(side: _Side, run_dir: str, files: dict[str, dict[str, Any]]) -> str | None:
    """The run id the files at ``run_dir`` belong to: run.json's ``id``, else the ``run`` of
    the first event of the first shard; None when there is neither."""
    if "run.json" in files:
        try:
            manifest = orjson.loads(side.read(join(run_dir, "run.json"), 0, 1 << 20))
        except orjson.JSONDecodeError:
            manifest = None
        if isinstance(manifest, dict) and isinstance(manifest.get("id"), str):
            return str(manifest["id"])
    for name in sorted(files):
        if name.startswith("events.") and name.endswith(".jsonl") and "/" not in name:
            head = side.read(join(run_dir, name), 0, min(files[name].get("size") or 0, 1 << 16))
            first = head.split(b"\n", 1)[0]
            try:
                event = orjson.loads(first)
            except orjson.JSONDecodeError:
                continue
            if isinstance(event, dict) and isinstance(event.get("run"), str):
                return str(event["run"])
    return None


def _same(src: _Side, dst: _Side, src_path: str, dst_path: str, start: int, end: int) -> bool:
    return (
        hashlib.sha256(src.read(src_path, start, end)).digest()
        == hashlib.sha256(dst.read(dst_path, start, end)).digest()
    )


def _prefix(src: _Side, dst: _Side, src_path: str, dst_path: str, have: int) -> bool:
    """Whether DEST's ``have`` bytes are the source's first ``have`` (compared at both ends)."""
    head = min(have, _CHECK)
    if not _same(src, dst, src_path, dst_path, 0, head):
        return False
    return have <= head or _same(src, dst, src_path, dst_path, max(head, have - _CHECK), have)


def _push_run(
    src: _Side,
    dst: _Side,
    store: Store,
    run_dir: str,
    dest_dir: str,
    stats: PushStats,
    on_file: Callable[[str], None] | None,
    only: Callable[[str], bool] | None = None,
) -> None:
    with explained(src.location, "listing the source"):
        files = src.files(run_dir)
    if only is not None:
        files = {name: info for name, info in files.items() if only(name)}
    with explained(dst.location, "listing the destination"):
        there = dst.files(dest_dir)
        if not there and dst.fs.exists(dest_dir) and dst.fs.isfile(dest_dir):
            raise RemoteError(f"{public(dst.location)}: {dest_dir} is a file, not a run folder")
    _refuse_another_run(src, dst, run_dir, dest_dir, files, there)
    with explained(dst.location, "creating the run folder"):
        store.prepare(dest_dir)
    manifests = sorted(n for n in files if n.endswith(".json"))
    order = [n for n in sorted(files) if n not in manifests] + manifests
    for name in order:
        end = int(files[name].get("size") or 0)
        have = int(there.get(name, {}).get("size") or 0) if name in there else -1
        src_path, dst_path = join(run_dir, name), join(dest_dir, name)
        stats.bytes_total += end
        with explained(dst.location, f"pushing {name}"):
            if "/" in name:
                store.prepare(posixpath.dirname(dst_path))
            sent = _push_file(
                src, dst, store, src_path, dst_path, have, end, name in manifests, stats
            )
        if sent and on_file is not None:
            on_file(name)


def _refuse_another_run(
    src: _Side,
    dst: _Side,
    run_dir: str,
    dest_dir: str,
    files: dict[str, dict[str, Any]],
    there: dict[str, dict[str, Any]],
) -> None:
    """Raise :class:`ConflictError` when DEST holds another run, or something not a run."""
    with explained(src.location, "reading the source"):
        ours = _identity(src, run_dir, files)
    if not there:
        return
    with explained(dst.location, "reading the destination"):
        theirs = _identity(dst, dest_dir, there)
    if theirs is None:
        raise ConflictError(
            f"{public(dst.location)}: {dest_dir} holds something that is not a gemmalog "
            "run; refusing to write into it (give another DEST)",
            posixpath.basename(dest_dir),
        )
    if ours is not None and theirs != ours:
        raise ConflictError(
            f"{public(dst.location)}: {dest_dir} holds run {theirs!r}, not {ours!r}; "
            "refusing to mix two runs (give another DEST)",
            posixpath.basename(dest_dir),
        )


def _push_file(
    src: _Side,
    dst: _Side,
    store: Store,
    src_path: str,
    dst_path: str,
    have: int,
    end: int,
    manifest: bool,
    stats: PushStats,
) -> bool:
    """Send what DEST lacks of one file (``have`` bytes there, -1: none; ``end`` here): a
    manifest whole, a shard appended when DEST holds its beginning, else whole. False when
    DEST already had it all."""
    if manifest:
        if have == end and _same(src, dst, src_path, dst_path, 0, end):
            stats.files_unchanged += 1
            return False
        with src.reader(src_path) as fh:
            stats.bytes_sent += store.replace(dst_path, fh, end)
        stats.files_sent += 1
    elif 0 <= have <= end and _prefix(src, dst, src_path, dst_path, have):
        if have == end:
            stats.files_unchanged += 1
            return False
        with src.reader(src_path) as fh:
            stats.bytes_sent += store.append(dst_path, have, fh, end)
        stats.files_appended += 1
    else:
        with src.reader(src_path) as fh:
            stats.bytes_sent += store.replace(dst_path, fh, end)
        stats.files_sent += 1
    return True


def push(
    source: str | os.PathLike[str],
    dest: str | os.PathLike[str],
    *,
    on_file: Callable[[str], None] | None = None,
    only: Callable[[str], bool] | None = None,
) -> PushStats:
    """Copy the run (or every run under the root) ``source`` to ``dest``, incrementally.

    Run ``R`` lands at ``dest/R``. Raises :class:`RemoteError` (one sentence, no secret in
    it) when a side cannot be read or written, or when ``dest/R`` holds something other than
    this run. ``on_file`` is called with each file's name once it is at ``dest``; ``only``
    (a file's path in its run) keeps the files it is true for.
    """
    src, dst = _Side.open(os.fspath(source)), _Side.open(os.fspath(dest))
    store = store_for(dst.fs)
    for fs in (src.fs, dst.fs):  # listings are read fresh by every push
        fs.invalidate_cache()
    stats = PushStats()
    with explained(dst.location, "checking the destination"):
        if dst.fs.exists(dst.path) and dst.fs.isfile(dst.path):
            raise RemoteError(f"{public(dst.location)}: a file; give a folder or a prefix")
    runs = _runs(src)
    stats.single = runs == [src.path]
    for run_dir in runs:
        name = posixpath.basename(run_dir.rstrip("/"))
        _push_run(src, dst, store, run_dir, join(dst.path, name), stats, on_file, only)
        stats.runs.append(name)
    return stats


def runs_at(location: str | os.PathLike[str]) -> tuple[bool, list[str]]:
    """Whether ``location`` is one run, and the run directories it names (in its store)."""
    side = _Side.open(os.fspath(location))
    runs = _runs(side)
    return runs == [side.path], runs


def finished(source: str | os.PathLike[str]) -> bool:
    """Whether every run under ``source`` has ended (its run.json has an ``end``)."""
    side = _Side.open(os.fspath(source))
    side.fs.invalidate_cache()
    for run_dir in _runs(side):
        try:
            manifest = orjson.loads(side.read(join(run_dir, "run.json"), 0, 1 << 20))
        except (OSError, orjson.JSONDecodeError):
            return False
        if not isinstance(manifest, dict) or manifest.get("end") is None:
            return False
    return True


def watch(
    source: str | os.PathLike[str],
    dest: str | os.PathLike[str],
    *,
    interval: float = 10.0,
    report: Callable[[PushStats | RemoteError], None] = lambda _: None,
    sleep: Callable[[float], None] = time.sleep,
    rounds: int | None = None,
) -> PushStats:
    """Push every ``interval`` seconds until every run has ended (then one last push).

    A failed round is reported and retried after a wait that doubles up to five minutes;
    ``rounds`` bounds the pushes (None: until the runs end).
    """
    wait = interval
    done = 0
    last = PushStats()
    while rounds is None or done < rounds:
        ended = False
        try:
            ended = finished(source)
            last = push(source, dest)
            report(last)
            wait = interval
        except RemoteError as exc:
            report(exc)
            wait = min(max(wait * 2, interval), 300.0)
            ended = False
        done += 1
        if ended:
            return last
        if rounds is None or done < rounds:
            sleep(wait)
    return last


__all__ = ["ConflictError", "PushStats", "finished", "push", "runs_at", "watch"]
