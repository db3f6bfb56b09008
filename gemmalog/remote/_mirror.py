"""Read runs where they lie: a remote run or root of runs is brought, incrementally, into a
local copy under the cache folder, and every query reads that copy.

The copy is a push the other way (``_push``): only new bytes cross the network, a shard whose
remote copy is no longer a prefix is fetched again whole, and the query cache of the copy is
local like every other. ``file://`` URLs are read in place, no copy.

A copy up to date costs one listing: each refresh first lists the remote files with their
content markers (``_listing``); when the listing equals the one recorded after the last
refresh, and the copy's files are as that refresh left them (size, mtime, inode), nothing
was written on either side since, and nothing else is asked of the store. Any difference,
or a store whose listing has no marker, is the full push. Refreshes of one copy, from any
process, take turns (``flock``).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import posixpath
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from gemmalog.remote._fs import (
    RemoteError,
    explain,
    explained,
    filesystem,
    is_url,
    public,
    refused_or_unreachable,
)
from gemmalog.remote._listing import versions
from gemmalog.remote._push import ConflictError, PushStats, push
from gemmalog.remote._store import ignored

#: The copy's record of its last refresh, and the lock refreshes take turns on (hidden: a
#: push neither sends nor reads them, and the views never see them).
_RECORD = ".gemmalog-mirror.json"
_LOCK = ".gemmalog-mirror.lock"


def cache_home(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Where local copies of remote runs live: ``cache_dir``, else ``$GEMMALOG_CACHE_DIR``,
    else ``$XDG_CACHE_HOME/gemmalog`` (``~/.cache/gemmalog``)."""
    chosen = cache_dir or os.environ.get("GEMMALOG_CACHE_DIR")
    if chosen:
        return Path(chosen).absolute()
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(xdg) / "gemmalog"


def _folder(url: str, cache_dir: str | os.PathLike[str] | None) -> Path:
    key = public(url).rstrip("/")
    digest = hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()[:16]
    name = posixpath.basename(key)[:48] or "root"
    return cache_home(cache_dir) / "remote" / f"{name}-{digest}"


def _in_place(location: str) -> bool:
    return location.split("://", 1)[0].lower() in ("file", "local")


def _local_files(folder: Path) -> dict[str, list[int]]:
    """Size, mtime and inode of every file of the copy (its hidden files aside)."""
    out: dict[str, list[int]] = {}
    for directory, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        base = Path(directory).relative_to(folder).as_posix()
        for name in files:
            rel = name if base == "." else f"{base}/{name}"
            if ignored(rel):
                continue
            try:
                st = os.stat(os.path.join(directory, name))
            except OSError:
                continue
            out[rel] = [st.st_size, st.st_mtime_ns, st.st_ino]
    return out


@contextlib.contextmanager
def _turn(folder: Path) -> Iterator[None]:
    """Hold the copy's lock: one refresh at a time, whichever process asks."""
    fd = os.open(folder / _LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


class Mirror:
    """The local copy of the remote run or root of runs ``location`` (a URL).

    :meth:`refresh` brings it up to date and returns its path; ``folder`` is the copy's
    folder, a root holding the copied runs (one, when ``location`` is a run).
    """

    def __init__(self, location: str, *, cache_dir: str | os.PathLike[str] | None = None) -> None:
        if not is_url(location) or _in_place(location):
            raise RemoteError(f"{public(location)}: not a remote URL (a path is read in place)")
        self.location = location
        self.folder = _folder(location, cache_dir)

    def refresh(self) -> str:
        """Bring the copy up to date; the path of the copied run (``location`` is one run)
        or of the folder holding the copied runs. Raises :class:`RemoteError` (one
        sentence, no secret) when the store cannot be read; the copy is then as it was."""
        with explained(self.location, "copying the runs"):
            self.folder.mkdir(parents=True, exist_ok=True)
        with _turn(self.folder):
            try:
                listed = versions(self.location)
            except RemoteError:
                raise
            except Exception as exc:
                if refused_or_unreachable(exc):
                    raise explain(exc, self.location, "listing the runs") from None
                listed = None  # the push lists again, and says what is wrong if anything is
            record = self._record()
            if (
                listed is not None
                and record.get("remote") == listed
                and record.get("local") == _local_files(self.folder)
            ):
                return self._path(bool(record["single"]), list(record["runs"]))
            stats = self._copy()
            # The listing taken before the push: anything written since differs from it,
            # so the next refresh pushes again rather than trusting it.
            self._write(listed, stats)
        return self._path(stats.single, stats.runs)

    def where(self, path: str | os.PathLike[str]) -> str:
        """The URL of the remote run or file whose copy is ``path`` (a path in the copy)."""
        rel = Path(os.path.abspath(path)).relative_to(self.folder.absolute()).as_posix()
        record = self._record()
        if record.get("single") and rel != ".":
            rel = rel.split("/", 1)[1] if "/" in rel else "."
        base = self.location.rstrip("/")
        return public(base if rel == "." else f"{base}/{rel}")

    def _path(self, single: bool, runs: list[str]) -> str:
        return str(self.folder / runs[0]) if single else str(self.folder)

    def _record(self) -> dict[str, Any]:
        try:
            data = json.loads((self.folder / _RECORD).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) and data.get("runs") else {}

    def _write(self, listed: dict[str, Any] | None, stats: PushStats) -> None:
        record = {
            "location": public(self.location),
            "single": stats.single,
            "runs": stats.runs,
            "remote": listed,
            "local": _local_files(self.folder),
        }
        temp = self.folder / f"{_RECORD}.{os.getpid()}"
        with contextlib.suppress(OSError):  # without a record the next refresh pushes
            temp.write_text(json.dumps(record), encoding="utf-8")
            os.replace(temp, self.folder / _RECORD)

    def _copy(self) -> PushStats:
        with contextlib.suppress(OSError):  # a failed push leaves the copy unrecorded
            (self.folder / _RECORD).unlink()
        for _attempt in range(8):  # each conflict clears one run of the copy
            try:
                stats = push(self.location, self.folder)
                break
            except ConflictError as exc:
                # The remote run was replaced by another one under the same name: fetch it anew.
                shutil.rmtree(self.folder / exc.run, ignore_errors=True)
        else:
            stats = push(self.location, self.folder)
        for entry in self.folder.iterdir():  # runs gone from the remote root are gone here
            if entry.is_dir() and not entry.name.startswith(".") and entry.name not in stats.runs:
                shutil.rmtree(entry, ignore_errors=True)
        return stats


def local_copy(location: str, *, cache_dir: str | os.PathLike[str] | None = None) -> str:
    """A local path with the same runs as ``location`` now: ``location`` itself when it is a
    path, the path of a ``file://`` URL, else a local copy brought up to date
    (:class:`Mirror`).

    Raises :class:`RemoteError` (one sentence, no secret) when the location cannot be read.
    """
    if not is_url(location):
        return location
    if _in_place(location):
        return filesystem(location)[1]
    return Mirror(location, cache_dir=cache_dir).refresh()


def local_run(
    run: str, root: str | None, *, cache_dir: str | os.PathLike[str] | None = None
) -> tuple[str, str | None]:
    """``(run, root)`` for the local query functions: a URL ``run`` (or a run id under a URL
    ``root``) becomes the path of its local copy."""
    if root is not None and is_url(root) and not is_url(run):
        if "/" in run or run in ("", ".", ".."):
            raise RemoteError(f"{run!r}: give a run id under the remote root {public(root)}")
        return local_copy(root.rstrip("/") + "/" + run, cache_dir=cache_dir), None
    return local_copy(run, cache_dir=cache_dir), root


__all__ = ["Mirror", "cache_home", "local_copy", "local_run"]
