"""Read-only SQL: what `gemmalog sql` accepts, and a connection that cannot touch other files."""

from __future__ import annotations

import glob
import os
import re

import duckdb

from gemmalog.queries._paths import QueryError, Source

#: PRAGMAs that only report; every other PRAGMA may change the session or write.
READ_ONLY_PRAGMAS = frozenset(
    {
        "show_tables",
        "show_tables_expanded",
        "table_info",
        "show",
        "version",
        "database_list",
        "functions",
        "platform",
        "user_agent",
    }
)
_EXPLAIN = re.compile(r"^\s*EXPLAIN\s+(ANALYZE\s+)?", re.IGNORECASE)
_PRAGMA = re.compile(r"^\s*PRAGMA\s+(\w+)", re.IGNORECASE)
_GLOB_CHARS = re.compile(r"[*?\[]")


def check_read_only(sql: str) -> None:
    """Raise :class:`QueryError` unless every statement in ``sql`` only reads.

    Accepted: SELECT (with FROM-first, VALUES, DESCRIBE, SHOW, SUMMARIZE), EXPLAIN of those,
    and the reporting PRAGMAs. Refused: anything that writes or changes the session (COPY,
    EXPORT, ATTACH, INSTALL, LOAD, CREATE, INSERT, UPDATE, DELETE, DROP, SET, CALL, ...).
    """
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        raise QueryError(f"SQL syntax error: {str(exc).splitlines()[0]}") from None
    if not statements:
        raise QueryError("no SQL statement given")
    for statement in statements:
        kind = statement.type
        query = statement.query.strip()
        if kind == duckdb.StatementType.SELECT:
            continue
        if kind == duckdb.StatementType.EXPLAIN:
            check_read_only(_EXPLAIN.sub("", query, count=1))
            continue
        match = _PRAGMA.match(query)
        if (
            kind == duckdb.StatementType.PRAGMA
            and match
            and match.group(1).lower() in READ_ONLY_PRAGMAS
        ):
            continue
        first = query.split(None, 1)[0].upper() if query else kind.name
        raise QueryError(
            f"refused {first} statement: gemmalog sql is read-only "
            "(SELECT, DESCRIBE, SHOW, SUMMARIZE, EXPLAIN and reporting PRAGMAs only)"
        )


def lock_down(con: duckdb.DuckDBPyConnection, source: Source) -> None:
    """Let ``con`` read only the run directories of ``source``, and freeze its settings."""
    dirs = set()
    if source.fs is not None:  # files read in place: the run's (or root's) URL alone
        url = (source.directory or "").rstrip("/")
        dirs |= {url + "/", glob.escape(url) + "/"}
    elif source.directory is not None:  # a literal folder: its name may hold [ * ?
        literal = os.path.abspath(source.directory)
        # DuckDB checks the glob as written (escaped) and the files it expands to (literal).
        dirs |= {os.path.join(literal, ""), os.path.join(glob.escape(literal), "")}
    named = source.directory is not None or source.fs is not None
    for pattern in () if named else (*source.shards, *source.manifests):
        head = _GLOB_CHARS.split(pattern, maxsplit=1)[0]
        directory = head if head.endswith(os.sep) else os.path.dirname(head)
        dirs.add(os.path.join(os.path.abspath(directory), ""))
    from gemmalog.queries._cache_config import cache_root

    if (caches := cache_root()) is not None:  # the query cache kept outside the runs
        dirs |= {os.path.join(caches, ""), os.path.join(glob.escape(caches), "")}
    listed = ", ".join("'" + d.replace("'", "''") + "'" for d in sorted(dirs))
    con.execute(f"SET allowed_directories = [{listed}]")
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")
