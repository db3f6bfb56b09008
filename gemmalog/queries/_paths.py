"""Where a path leads: a run directory, a root of runs, a glob, a shard or a run id."""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_GLOB_CHARS = frozenset("*?[")
SHARDS = "events.*.jsonl"


class QueryError(Exception):
    """A path, run or statement the queries cannot use; the message says which and why."""


@dataclass(frozen=True, slots=True)
class Source:
    """What a path resolved to: globs of JSONL shards and of run.json manifests.

    The globs escape ``[``, ``*`` and ``?`` of literal directory names (``exp[v2]``), as
    both Python's glob and DuckDB read them. ``directory`` is the literal run directory or
    root of runs the path named (``None`` for a glob), and ``run`` says it is one run.

    ``fs``: an fsspec file system the globs are URLs of (``s3://...``); :func:`connect`
    registers it on its DuckDB connection (``register_filesystem``) and reads the files
    there, without the query cache. A Source is a path-like object (its ``label``), so it
    is accepted wherever a run's path is, and taken as it is.
    """

    label: str
    shards: tuple[str, ...]
    manifests: tuple[str, ...]
    directory: str | None = None
    run: bool = False
    fs: Any = field(default=None, compare=False)

    def files(self) -> list[str]:
        """The shard files that exist now."""
        return sorted({f for pattern in self.shards for f in self.glob(pattern)})

    def glob(self, pattern: str) -> list[str]:
        """The files ``pattern`` matches, where the source's files are."""
        if self.fs is None:
            return glob.glob(pattern)
        return [str(self.fs.unstrip_protocol(f)) for f in self.fs.glob(pattern)]

    def __fspath__(self) -> str:
        return self.label

    def __str__(self) -> str:
        return self.label

    def by_dir(self) -> dict[str, list[str]]:
        """The shard files that exist now, by directory (each has its own query cache)."""
        groups: dict[str, list[str]] = {}
        for f in self.files():
            groups.setdefault(os.path.dirname(f), []).append(f)
        return groups


def default_root() -> str:
    """Where run ids are looked up: ``$GEMMALOG_ROOT``, else gemmalog's default root."""
    return os.environ.get("GEMMALOG_ROOT") or "gemmalog_runs"


def _run_dir(path: Path) -> Source:
    literal = glob.escape(str(path))
    return Source(
        str(path),
        (os.path.join(literal, SHARDS),),
        (os.path.join(literal, "run.json"),),
        str(path),
        run=True,
    )


def _no_root(text: str, base: Path) -> QueryError:
    if not base.is_dir():
        return QueryError(
            f"{text}: no such run directory, and the root of runs {base} does not exist "
            "(give a run directory, or set --root or GEMMALOG_ROOT)"
        )
    return QueryError(
        f"{text}: no such run directory, and no run {text!r} under {base} (set --root or GEMMALOG_ROOT)"
    )


def resolve(
    path: str | os.PathLike[str] = ".", *, root: str | os.PathLike[str] | None = None
) -> Source:
    """Resolve a run directory, a root of runs, a glob, a shard, or a run id under ``root``.

    A path that exists is taken literally, even when its name holds ``[``, ``*`` or ``?``;
    only a path that does not exist is read as a glob. A :class:`Source` is its own answer.
    """
    if isinstance(path, Source):
        return path
    text = os.fspath(path)
    p = Path(text).absolute()
    if p.is_file():
        return Source(
            text,
            (glob.escape(str(p)),),
            (glob.escape(str(p.parent / "run.json")),),
            str(p.parent),
            run=True,
        )
    if p.is_dir():
        if (p / "run.json").exists() or any(p.glob(SHARDS)):
            return _run_dir(p)
        literal = glob.escape(str(p))
        return Source(
            str(p),
            (os.path.join(literal, "*", SHARDS),),
            (os.path.join(literal, "*", "run.json"),),
            str(p),
        )
    if _GLOB_CHARS & set(text):
        text = os.path.abspath(text)
        if text.endswith(".jsonl"):
            return Source(text, (text,), (os.path.join(os.path.dirname(text) or ".", "run.json"),))
        return Source(text, (os.path.join(text, SHARDS),), (os.path.join(text, "run.json"),))
    base = Path(root if root is not None else default_root()).absolute()
    candidate = base / text
    if candidate.is_dir():
        return _run_dir(candidate)
    matches = (
        sorted(d for d in base.glob(f"{glob.escape(text)}*") if d.is_dir()) if base.is_dir() else []
    )
    if len(matches) == 1:
        return _run_dir(matches[0])
    if matches:
        names = ", ".join(m.name for m in matches[:5])
        raise QueryError(
            f"{text!r} matches {len(matches)} runs under {base} ({names}); give more of the run id"
        )
    raise _no_root(text, base)
