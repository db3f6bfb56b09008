"""Output for the CLI: rich tables on a terminal, CSV / JSON / JSON Lines for pipes."""

from __future__ import annotations

import csv
import datetime as _dt
import io
import math
from collections.abc import Sequence
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table

FORMATS = ("table", "csv", "json", "jsonl")


def _plain(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, _dt.datetime | _dt.date):
        return value.isoformat()
    return value


def cell(value: Any) -> str:
    """Short human text for one value."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}" if math.isfinite(value) else str(_plain(value))
    if isinstance(value, _dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return str(value)


def render(
    console: Console,
    names: Sequence[str],
    rows: Sequence[Sequence[Any]],
    fmt: str,
    title: str | None = None,
) -> None:
    """Print ``rows`` under ``names`` in ``fmt`` (one of :data:`FORMATS`)."""
    if fmt == "table":
        table = Table(title=title, show_lines=False)
        for name in names:
            table.add_column(name, overflow="fold")
        for row in rows:
            table.add_row(*(cell(v) for v in row))
        console.print(table)
        return
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(names)
        writer.writerows([[_plain(v) for v in row] for row in rows])
        console.file.write(buf.getvalue())
        return
    records = [{n: _plain(v) for n, v in zip(names, row, strict=True)} for row in rows]
    opts = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY
    if fmt == "json":
        console.file.write(
            orjson.dumps(records, default=str, option=opts | orjson.OPT_INDENT_2).decode() + "\n"
        )
    else:
        console.file.write(
            "".join(orjson.dumps(r, default=str, option=opts).decode() + "\n" for r in records)
        )
