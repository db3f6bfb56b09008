"""Read runs where they lie: a remote run or root of runs is brought, incrementally, into a
local copy under the cache folder, and every query reads that copy.

The copy is a push the other way (``_push``): only new bytes cross the network, a shard whose
remote copy is no longer a prefix is fetched again whole, and the query cache of the copy is
local like every other. ``file://`` URLs are read in place, no copy.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import shutil
from pathlib import Path

from gemmalog.remote._fs import RemoteError, filesystem, is_url, public
from gemmalog.remote._push import ConflictError, push


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


def local_copy(location: str, *, cache_dir: str | os.PathLike[str] | None = None) -> str:
    """A local path with the same runs as ``location`` now: ``location`` itself when it is a
    path, the path of a ``file://`` URL, else a local copy brought up to date.

    Raises :class:`RemoteError` (one sentence, no secret) when the location cannot be read.
    """
    if not is_url(location):
        return location
    fs, path = filesystem(location)
    protocols = fs.protocol if isinstance(fs.protocol, tuple | list) else (fs.protocol,)
    if "file" in protocols or "local" in protocols:
        return str(path)
    folder = _folder(location, cache_dir)
    folder.mkdir(parents=True, exist_ok=True)
    for _attempt in range(8):  # each conflict clears one run of the copy
        try:
            stats = push(location, folder)
            break
        except ConflictError as exc:
            # The remote run was replaced by another one under the same name: fetch it anew.
            shutil.rmtree(folder / exc.run, ignore_errors=True)
    else:
        stats = push(location, folder)
    for entry in folder.iterdir():  # runs gone from the remote root are gone from the copy
        if entry.is_dir() and not entry.name.startswith(".") and entry.name not in stats.runs:
            shutil.rmtree(entry, ignore_errors=True)
    return str(folder / stats.runs[0]) if stats.single else str(folder)


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


__all__ = ["cache_home", "local_copy", "local_run"]
