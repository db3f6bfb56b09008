"""Output for the CLI: tables on a terminal, CSV / JSON / JSON Lines for pipes.

Cell text is data, shown literally: never read as Rich markup (``[/INST]`` in a completion
is text, not a closing tag), control characters escaped (:func:`gemmalog._terminal.visible`).
NaN and infinities are written ``NaN``, ``Infinity`` and ``-Infinity`` in every format, as
the JSONL writes them.
"""

from __future__ import annotations

import csv
import datetime as _dt
import io
import math
from collections.abc import Mapping, Sequence
from typing import IO, Any

import orjson
from rich.cells import cell_len
from rich.console import Console
from rich.table import Table
from rich.text import Text

from gemmalog._coerce import int_text
from gemmalog._terminal import visible
from gemmalog.events import nonfinite_text
from gemmalog.formats import neutralize

FORMATS = ("table", "csv", "json", "jsonl")

#: Above this many rows a table is printed in a plain layout: Rich measures and wraps every
#: cell (about 0.2 ms a row), the plain layout pads them (CSV speed).
RICH_ROWS = 1000


def plain(value: Any) -> Any:
    """A value as CSV and JSON write it: non-finite floats as text, times in ISO 8601."""
    if isinstance(value, float) and not math.isfinite(value):
        return nonfinite_text(value)
    if isinstance(value, _dt.datetime | _dt.date):
        return value.isoformat()
    if type(value) is int and not -(2**63) <= value < 2**64:  # a HUGEINT: JSON has no such int
        return int_text(value)
    return value


def plain_tree(value: Any) -> Any:
    """:func:`plain` applied through nested dicts and lists (``summary --json``)."""
    if isinstance(value, Mapping):
        return {k: plain_tree(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain_tree(v) for v in value]
    return plain(value)


def cell(value: Any) -> str:
    """Short human text for one value."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}" if math.isfinite(value) else str(plain(value))
    if isinstance(value, _dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if type(value) is int:  # past 4,300 digits str() raises
        return int_text(value)
    return str(value)


def _csv_value(value: Any) -> Any:
    return neutralize(value) if isinstance(value, str) else value


def _rich_table(
    console: Console, names: Sequence[str], rows: Sequence[Sequence[Any]], title: str | None
) -> None:
    table = Table(title=Text(visible(title)) if title else None, show_lines=False)
    for name in names:
        table.add_column(Text(visible(str(name))), overflow="fold")
    for row in rows:
        table.add_row(*(Text(visible(cell(v))) for v in row))
    console.print(table)


def _plain_table(
    out: IO[str], names: Sequence[str], rows: Sequence[Sequence[Any]], title: str | None
) -> None:
    """Columns padded to their widest cell, one line a row (newlines escaped)."""
    header = [visible(str(n), one_line=True) for n in names]
    body = [[visible(cell(v), one_line=True) for v in row] for row in rows]
    widths = [cell_len(h) for h in header]
    for row in body:
        for i, text in enumerate(row):
            n = len(text) if text.isascii() else cell_len(text)
            if n > widths[i]:
                widths[i] = n

    def line(texts: Sequence[str]) -> str:
        return " │ ".join(
            t + " " * (w - (len(t) if t.isascii() else cell_len(t)))
            for t, w in zip(texts, widths, strict=True)
        ).rstrip()

    parts = [f"{visible(title, one_line=True)}\n"] if title else []
    parts.append(line(header) + "\n")
    parts.append("─┼─".join("─" * w for w in widths) + "\n")
    parts.extend(line(row) + "\n" for row in body)
    out.write("".join(parts))


def render(
    console: Console,
    names: Sequence[str],
    rows: Sequence[Sequence[Any]],
    fmt: str,
    title: str | None = None,
) -> None:
    """Print ``rows`` under ``names`` in ``fmt`` (one of :data:`FORMATS`)."""
    if fmt == "table":
        if len(rows) <= RICH_ROWS:
            _rich_table(console, names, rows, title)
        else:
            _plain_table(console.file, names, rows, title)
        return
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        # A bare carriage return is not a line terminator here, so the minimal quoting would
        # leave it unquoted and a reader would split the row there: such rows quote every text.
        quoting = csv.writer(buf, lineterminator="\n", quoting=csv.QUOTE_NONNUMERIC)
        # Spreadsheet-safe like every CSV gemmalog writes: formula text is quoted.
        for row in (
            [neutralize(str(n)) for n in names],
            *([_csv_value(plain(v)) for v in r] for r in rows),
        ):
            cr = any(isinstance(v, str) and "\r" in v for v in row)
            (quoting if cr else writer).writerow(row)
        console.file.write(buf.getvalue())
        return
    records = [{n: plain(v) for n, v in zip(names, row, strict=True)} for row in rows]
    opts = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY
    if fmt == "json":
        console.file.write(
            orjson.dumps(records, default=str, option=opts | orjson.OPT_INDENT_2).decode() + "\n"
        )
    else:
        console.file.write(
            "".join(orjson.dumps(r, default=str, option=opts).decode() + "\n" for r in records)
        )
