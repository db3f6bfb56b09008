"""The one check every writing command makes first: its output is none of any run's files.

A run's files are, in its directory: ``run.json``, the shards (``events.*``), the query
cache (``.gemmalog-cache``), the default sink paths (``logs/``, ``tensorboard/``,
``training.log``, ``model_outputs.csv``) and every path its configuration (run.json's
``config.handlers``) names, with their per-rank and rotated forms, wherever they lie. A
query cache kept elsewhere (``--cache-dir``) is every run's file too. The runs checked are
those of the sources and roots a command names, the default root, and any run directory or
cache the output path itself lies in. The output is checked after symlinks and ``..`` are
resolved, and an existing file is compared by device and inode (a hard link).
"""

from __future__ import annotations

import fnmatch
import glob
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson

from gemmalog.config.validate import sink_file_form
from gemmalog.queries._cache_config import CACHE_NAME, MANIFEST, cache_root
from gemmalog.queries._paths import SHARDS, QueryError, Source, default_root

#: Names in a run directory that belong to the run whether its configuration names them or not.
_RESERVED = (
    "run.json*",
    "events.*",
    CACHE_NAME,
    "logs",
    "tensorboard",
    "training*.log*",
    "model_outputs*.csv*",
    "doctor.live.jsonl*",
    ".writer.*.lock",
)
_PATH_OPTIONS = ("filename", "log_dir")


def _is_run_dir(folder: Path) -> bool:
    try:
        return (folder / "run.json").exists() or any(folder.glob(SHARDS))
    except OSError:
        return False


def _is_cache_dir(folder: Path) -> bool:
    return folder.name == CACHE_NAME or (
        (folder / MANIFEST).is_file() and (folder / "lock").exists()
    )


def _configured(run_dir: Path) -> Iterator[Path]:
    """The paths the run's handlers write (run.json's ``config.handlers.*.options``)."""
    try:
        config: Any = orjson.loads((run_dir / "run.json").read_bytes()).get("config")
    except (OSError, orjson.JSONDecodeError, AttributeError):
        return
    handlers = config.get("handlers") if isinstance(config, dict) else None
    for spec in (handlers or {}).values() if isinstance(handlers, dict) else ():
        options = spec.get("options") if isinstance(spec, dict) else None
        for key in _PATH_OPTIONS:
            value = options.get(key) if isinstance(options, dict) else None
            if isinstance(value, str) and value:
                try:
                    path = Path(value).expanduser()
                except RuntimeError:  # ~name of no such user: the run wrote it literally
                    path = Path(value)
                yield Path(os.path.realpath(path if path.is_absolute() else run_dir / path))


def _owned(target: Path, run_dir: Path, folder: bool) -> str | None:
    """How ``target`` would write over ``run_dir``'s files, else None (both real paths)."""
    if target == run_dir:
        return f"is the run directory {run_dir}"
    if folder and target in run_dir.parents:
        return f"holds the run directory {run_dir}"
    if run_dir in target.parents:
        first = target.relative_to(run_dir).parts[0]
        if any(fnmatch.fnmatchcase(first, pattern) for pattern in _RESERVED):
            return _where(target, run_dir / first, run_dir)
    for written in _configured(run_dir):
        if target == written or written in target.parents:
            return _where(target, written, run_dir)
        if folder and target in written.parents:
            return f"holds {written}, which belongs to the run {run_dir}"
        if target.parent == written.parent and sink_file_form(target.name, written.name):
            return _where(target, target, run_dir)
    return None


def _where(target: Path, owned: Path, run_dir: Path) -> str:
    verb = "is" if target == owned else "lies in"
    return f"{verb} {owned}, which belongs to the run {run_dir}"


def _runs_near(places: Iterable[str | os.PathLike[str]]) -> set[Path]:
    """Run directories of ``places`` (runs, shards, roots of runs), and the runs beside them."""
    runs: set[Path] = set()
    roots: set[Path] = set()
    for place in {Path(os.path.realpath(p)) for p in places}:
        folder = place.parent if place.is_file() else place
        if _is_run_dir(folder):
            runs.add(folder)
            folder = folder.parent
        roots.add(folder)
    for folder in roots:
        try:
            runs.update(
                child for child in folder.iterdir() if child.is_dir() and _is_run_dir(child)
            )
        except OSError:
            continue
    return runs


def _places(sources: Iterable[Source], root: str | os.PathLike[str] | None) -> list[str]:
    places: list[str] = [os.fspath(root) if root is not None else default_root()]
    for source in sources:
        if source.fs is not None:  # remote files: no local path is one of them
            continue
        if source.directory is not None:
            places.append(source.directory)
        places += {os.path.dirname(f) for f in source.files()}
        places += [m for pattern in source.manifests for m in glob.glob(pattern)]
    return places


def check_output(
    out: str | os.PathLike[str],
    *,
    sources: Iterable[Source] = (),
    root: str | os.PathLike[str] | None = None,
    folder: bool = False,
    cache: bool = False,
) -> Path:
    """``out`` as an absolute path, once it is known to be none of any run's files.

    ``sources`` and ``root`` are what the command reads: their runs (and their sibling
    runs) are checked, besides any run directory or query cache ``out`` lies in. A
    ``folder`` output (a Parquet copy, a cache root) also may not hold a run; ``cache``
    says ``out`` is the query cache root itself (it may be the configured one). Raises
    :class:`QueryError` saying which file of which run ``out`` would write over.
    """
    given = os.fspath(out)
    target = Path(os.path.realpath(given))
    runs = _runs_near([*_places(sources, root), target])
    caches = [] if cache else [Path(os.path.realpath(c)) for c in (cache_root(),) if c]
    for above in [target, *target.parents]:
        if above.is_dir() and _is_run_dir(above):
            runs.add(above)
        if _is_cache_dir(above) or above in caches:
            raise QueryError(
                f"{given}: is or lies in the query cache {above}; "
                "give a path outside every run's files"
            )
    try:
        existing = os.stat(target) if target.is_file() else None
    except OSError:
        existing = None
    for run_dir in sorted(runs):
        why = _owned(target, run_dir, folder)
        if why is None and existing is not None:
            same = _same_file(existing, run_dir)
            why = None if same is None else f"is the same file as {run_dir / same}"
        if why is not None:
            raise QueryError(f"{given}: {why}; give a path outside every run's files")
    return Path(os.path.abspath(given))


def _same_file(st: os.stat_result, run_dir: Path) -> str | None:
    """The run file that is the same file as ``st`` (a hard link), if any: any file in the
    run directory (but the query cache) or written by its configured handlers. Only a file
    with more than one link can be another name of a run's file."""
    if st.st_nlink < 2:
        return None
    candidates: list[Path] = []
    for folder, dirs, files in os.walk(run_dir):
        dirs[:] = [d for d in dirs if d != CACHE_NAME]
        candidates += (Path(folder) / f for f in files)
    for path in _configured(run_dir):
        try:
            candidates += (p for p in path.parent.iterdir() if sink_file_form(p.name, path.name))
        except OSError:
            continue
    for path in candidates:
        try:
            other = os.stat(path)
        except OSError:
            continue
        if (other.st_dev, other.st_ino) == (st.st_dev, st.st_ino):
            return str(path.relative_to(run_dir)) if run_dir in path.parents else str(path)
    return None
