"""The views' SQL: the files beside this module, the order they are created in, and the
literals they are filled with."""

from __future__ import annotations

import re
import string
from functools import cache
from importlib import resources

from gemmalog import events

#: Views in creation order (a view may use the ones before it).
VIEWS = (
    "events",
    "gemmalog_read_errors",
    "metrics",
    "completions",
    "token_stats",
    "rewards",
    "generation",
    "system",
    "reward_stats",
    "accuracy",
    "runs",
)
_CREATE = re.compile(r"CREATE\s+VIEW\s+_events_source\s+AS", re.IGNORECASE)


@cache
def sql_file(name: str) -> str:
    """The text of ``gemmalog/queries/<name>.sql``."""
    return resources.files("gemmalog.queries").joinpath(f"{name}.sql").read_text(encoding="utf-8")


def sql_list(items: tuple[str, ...]) -> str:
    """A SQL list literal of strings."""
    return "[" + ", ".join("'" + s.replace("'", "''") + "'" for s in items) + "]"


def columns_literal() -> str:
    """The declared columns of every kind as a DuckDB struct literal (read_json's columns)."""
    return "{" + ", ".join(f"'{name}': '{sql}'" for name, sql in events.all_columns().items()) + "}"


def quote(text: str) -> str:
    """A SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def source_select(patterns: list[str]) -> str:
    """The SELECT of ``_source.sql`` over ``patterns`` (globs, escaped where literal)."""
    text = string.Template(sql_file("_source")).substitute(
        shards=sql_list(tuple(patterns)), columns=columns_literal()
    )
    parts = _CREATE.split(text, maxsplit=1)
    if len(parts) != 2:
        raise ValueError("_source.sql does not define the view _events_source")
    return parts[1].strip().rstrip(";")
