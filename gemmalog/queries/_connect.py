"""Find a run's shards and manifests, and open an in-memory DuckDB with the views over them."""

from __future__ import annotations

import glob
import os
import string
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

import duckdb

from gemmalog import events

#: Views in creation order (a view may use the ones before it).
VIEWS = (
    "events",
    "gemmalog_read_errors",
    "metrics",
    "completions",
    "rewards",
    "generation",
    "system",
    "reward_stats",
    "accuracy",
    "runs",
)

_GLOB_CHARS = frozenset("*?[")
_SHARDS = "events.*.jsonl"


class QueryError(Exception):
    """A path, run or statement the queries cannot use; the message says which and why."""


@dataclass(frozen=True, slots=True)
class Source:
    """What a path resolved to: globs of JSONL shards and of run.json manifests.

    The globs escape ``[``, ``*`` and ``?`` of literal directory names (``exp[v2]``), as
    both Python's glob and DuckDB read them. ``directory`` is the literal run directory or
    root of runs the path named (``None`` for a glob), and ``run`` says it is one run.
    """

    label: str
    shards: tuple[str, ...]
    manifests: tuple[str, ...]
    directory: str | None = None
    run: bool = False

    def files(self) -> list[str]:
        """The shard files that exist now."""
        return sorted({f for pattern in self.shards for f in glob.glob(pattern)})


@cache
def sql_file(name: str) -> str:
    """The text of ``gemmalog/queries/<name>.sql``."""
    return resources.files("gemmalog.queries").joinpath(f"{name}.sql").read_text(encoding="utf-8")


def default_root() -> str:
    """Where run ids are looked up: ``$GEMMALOG_ROOT``, else gemmalog's default root."""
    return os.environ.get("GEMMALOG_ROOT") or "gemmalog_runs"


def _run_dir(path: Path) -> Source:
    literal = glob.escape(str(path))
    return Source(
        str(path),
        (os.path.join(literal, _SHARDS),),
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
    only a path that does not exist is read as a glob.
    """
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
        if (p / "run.json").exists() or any(p.glob(_SHARDS)):
            return _run_dir(p)
        literal = glob.escape(str(p))
        return Source(
            str(p),
            (os.path.join(literal, "*", _SHARDS),),
            (os.path.join(literal, "*", "run.json"),),
            str(p),
        )
    if _GLOB_CHARS & set(text):
        text = os.path.abspath(text)
        if text.endswith(".jsonl"):
            return Source(text, (text,), (os.path.join(os.path.dirname(text) or ".", "run.json"),))
        return Source(text, (os.path.join(text, _SHARDS),), (os.path.join(text, "run.json"),))
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


def _sql_list(items: tuple[str, ...]) -> str:
    return "[" + ", ".join("'" + s.replace("'", "''") + "'" for s in items) + "]"


def _columns_literal() -> str:
    return "{" + ", ".join(f"'{name}': '{sql}'" for name, sql in events.all_columns().items()) + "}"


def connect(
    path: str | os.PathLike[str] = ".",
    *,
    root: str | os.PathLike[str] | None = None,
    cache: bool | None = None,
) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with gemmalog's views over a run, a root of runs or a glob.

    ``path`` is a run directory, a directory holding runs, a glob of run directories or of
    ``events.*.jsonl`` shards, or a run id (or unique prefix) under ``root``. The views read
    the files again on every query, so they follow a run that is still writing. Raises
    :class:`QueryError` when nothing matches. ``cache`` (default: on unless
    ``$GEMMALOG_CACHE=off``) reads the lines already parsed from the query cache beside the
    shards and parses only what is new (``docs/queries.md``, "The query cache").
    """
    source = resolve(path, root=root)
    if not source.files():
        raise QueryError(
            f"{source.label}: no {_SHARDS} files found (is it a gemmalog run or root?)"
        )
    con = duckdb.connect(":memory:")
    try:
        from gemmalog.queries._cache import attach  # it imports this module

        attach(con, source, use_cache=cache)
        has_manifest = any(glob.glob(m) for m in source.manifests)
        if has_manifest:
            con.execute(
                string.Template(sql_file("_manifests")).substitute(
                    manifests=_sql_list(source.manifests)
                )
            )
        else:
            con.execute(sql_file("_manifests_empty"))
        for view in VIEWS:
            con.execute(sql_file(view))
        from gemmalog.queries._cache import activate

        activate(con)  # the views bound against an empty stand-in: now read the data
    except BaseException:
        con.close()
        raise
    return con


def freeze(con: duckdb.DuckDBPyConnection, columns: Iterable[str] | None = None) -> None:
    """Read the files once into memory; the views then answer from that snapshot.

    Useful before many queries over a large run (a summary, a report). ``columns`` keeps
    only those event fields (the others read as NULL), which saves parsing time and memory.
    A connection whose shards all come from the query cache is pinned to it instead (the
    Parquet parts already are a snapshot, and reading them is cheaper than copying them).
    """
    from gemmalog.queries._cache import pin

    if pin(con):
        return
    keep = None if columns is None else {*columns, "segment"}  # the views dedupe on it
    blank = [
        f"NULL::{sql} AS {name}"
        for name, sql in events.all_columns().items()
        if keep is not None and name not in keep
    ]
    replace = f" REPLACE ({', '.join(blank)})" if blank else ""
    con.execute(f"CREATE TEMP TABLE _events_snapshot AS SELECT *{replace} FROM _events_source")
    con.execute("CREATE OR REPLACE VIEW _events_source AS SELECT * FROM _events_snapshot")


def manifest_problems(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str]]:
    """The run.json files the views skipped (not JSON, wrong field types), with the reason."""
    rows = con.execute("SELECT file, problem FROM _manifest_problems ORDER BY file").fetchall()
    return [(str(file), str(problem)) for file, problem in rows]
