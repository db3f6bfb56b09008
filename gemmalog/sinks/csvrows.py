"""The rows of ``model_outputs.csv``, built by one set of functions for the live sink and for
``gemmalog to-csv`` (which rebuilds the identical file from the JSONL afterwards).

Public API (no heavy imports; safe to call from any thread)::

    base_columns(columns: Sequence[str] | None) -> list[str]
        The configured columns (or DEFAULT_COLUMNS), then ``step`` and ``correct`` when absent.
    reward_names(event: Mapping[str, Any]) -> list[str]
        Reward function names of one ``model_output`` event, in the event's order.
    csv_header(base: Sequence[str], rewards: Sequence[str]) -> list[str]
        ``base`` followed by one ``reward_<fn>`` column per reward function.
    csv_row(event: Mapping[str, Any], base: Sequence[str], rewards: Sequence[str], raw: bool = False) -> list[str]
        One row of cells for one ``model_output`` event.
    row_maker(base: Sequence[str], rewards: Sequence[str], raw: bool = False) -> Callable[[Mapping[str, Any]], list[str]]
        ``csv_row`` with the columns resolved once: what the sink and ``write_csv`` call per row.
    selected(event: Mapping[str, Any], phases: Collection[str] | None) -> bool
        Whether the CSV takes the event (a ``model_output`` event of an allowed phase).
    write_csv(events: Iterable[Mapping[str, Any]], out: IO[str], *, columns=None, raw=False, phases=None) -> int
        The whole file for a sequence of events (as read back from the JSONL); returns rows written.
    new_writer(out: IO[str]) -> csv writer with the file's dialect (RFC 4180, CRLF line ends).

Column rules:

- Configured names map to event fields: ``timestamp`` (the event's ``ts`` as ISO 8601 UTC with
  milliseconds), ``question``, ``answer`` and ``true_answer`` (the reference answer),
  ``llm_reasoning`` (extracted reasoning), ``llm_answer`` (extracted answer), ``model_output``,
  ``prompt``, ``phase``, ``sample``, ``total_reward``, ``length_chars``, ``length_tokens``,
  ``correct``, ``step``, ``rank``, ``run``, ``advantage``, ``advantage_source``, ``extra``
  (compact JSON) and ``messages`` (the conversation as readable lines, see
  :func:`messages_text`). See :data:`gemmalog.formats.COLUMN_FIELDS`. ``step`` and
  ``correct`` are added after the configured columns when the configuration leaves them out.
- Reward columns are appended in the order reward functions first appear in the events. A
  function that first appears halfway extends the header; rows written before it hold an empty
  cell. The live sink rewrites its file once when that happens, so live and rebuilt files match.
- Numbers are written with ``repr`` (exact round trip), booleans as ``true``/``false``, a
  missing value as an empty cell, a nested value as compact JSON, non-finite floats as the
  JSONL's ``NaN``/``Infinity``/``-Infinity``.
- Spreadsheet safety (OWASP CSV injection): unless ``raw`` is true, a text cell starting with
  ``=``, ``+``, ``-``, ``@``, tab or carriage return is prefixed with a single quote, except a
  plain number such as ``-42`` or ``+1.5e3``, which stays a number
  (:func:`gemmalog.formats.neutralize`).

To rebuild the live file exactly, pass the ``model_output`` events of rank 0 in file order with
the handler's ``columns``, ``raw`` and ``phases`` (they are in ``run.json`` under
``config.handlers.<name>.options``).
"""

from __future__ import annotations

import csv
import datetime as _dt
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import IO, Any, Final

import orjson

from gemmalog.events import NON_FINITE
from gemmalog.formats import (
    COLUMN_FIELDS,
    DEFAULT_COLUMNS,
    FORMULA_STARTS,
    REWARD_PREFIX,
    neutralize,
)

_DANGEROUS_FIRST: Final = frozenset(FORMULA_STARTS)


def base_columns(columns: Sequence[str] | None) -> list[str]:
    """The configured columns, then ``step`` and ``correct`` when the configuration left them out."""
    out = list(DEFAULT_COLUMNS if columns is None else columns)
    for extra in ("step", "correct"):
        if extra not in out:
            out.append(extra)
    return out


def reward_names(event: Mapping[str, Any]) -> list[str]:
    """The reward function names carried by one event (empty when it has no rewards)."""
    rewards = event.get("rewards")
    return [str(name) for name in rewards] if isinstance(rewards, Mapping) else []


def csv_header(base: Sequence[str], rewards: Sequence[str]) -> list[str]:
    """The header row: the base columns, then ``reward_<fn>`` per reward function."""
    return [*base, *(REWARD_PREFIX + name for name in rewards)]


def selected(event: Mapping[str, Any], phases: Collection[str] | None) -> bool:
    """Whether the CSV takes this event: a ``model_output`` of an allowed phase."""
    if event.get("kind") != "model_output":
        return False
    return phases is None or str(event.get("phase") or "train") in phases


def _timestamp(value: Any) -> Any:
    if type(value) in (int, float) and value == value and abs(value) < 1e11:
        try:
            return _dt.datetime.fromtimestamp(value, tz=_dt.UTC).isoformat(timespec="milliseconds")
        except (ValueError, OverflowError, OSError):  # before year 1: written as the number
            pass
    return value


class _Timestamps:
    """:func:`_timestamp` of event times, the date and time of day formatted once per second.

    ``datetime.fromtimestamp`` rounds to the microsecond, half to even, carrying into the
    second; ``isoformat(timespec="milliseconds")`` then cuts to the millisecond. The same is
    done here on the float (``round`` is half-to-even too); the tests compare with datetime.
    """

    __slots__ = ("_heads",)

    def __init__(self) -> None:
        self._heads: dict[int, str] = {}

    def __call__(self, value: Any) -> Any:
        if type(value) is not float or not 0.0 <= value < 1e11:
            return _timestamp(value)  # ints, negative times, NaN, others: as datetime does
        second = int(value)
        micros = round((value - second) * 1e6)
        if micros >= 1_000_000:
            second += 1
            micros -= 1_000_000
        head = self._heads.get(second)
        if head is None:
            if len(self._heads) >= 64:
                self._heads.clear()
            head = self._heads[second] = _dt.datetime.fromtimestamp(second, tz=_dt.UTC).isoformat()[
                :19
            ]
        return f"{head}.{micros // 1000:03d}+00:00"


def messages_text(messages: Any) -> Any:
    """A conversation as readable lines: ``role: content`` a message, a tool call as
    ``assistant -> name({...})``, a tool result as ``tool[name]: ...``; anything that is not
    a list of messages is returned as it is."""
    if not isinstance(messages, list) or not all(isinstance(m, Mapping) for m in messages):
        return messages
    lines = []
    for message in messages:
        role = str(message.get("role", "?"))
        name = message.get("name")
        head = f"{role}[{name}]" if name and role == "tool" else role
        content = message.get("content")
        if isinstance(content, list):  # typed parts: text, and "<image>" for an image
            content = " ".join(
                str(p.get("text", "")) if p.get("type") == "text" else f"<{p.get('type')}>"
                for p in content
                if isinstance(p, Mapping)
            )
        if content not in (None, ""):
            lines.append(f"{head}: {content}")
        for call in message.get("tool_calls") or ():
            function = call.get("function", call) if isinstance(call, Mapping) else {}
            arguments = function.get("arguments")
            if not isinstance(arguments, str):
                arguments = orjson.dumps(arguments, option=orjson.OPT_NON_STR_KEYS).decode()
            lines.append(f"{head} -> {function.get('name')}({arguments})")
    return "\n".join(lines)


#: Fields a cell shows through a function of their value.
_SHOWN: Final[dict[str, Callable[[Any], Any]]] = {"messages": messages_text}


def cell(value: Any, raw: bool = False) -> str:
    """One cell's text for one value (see the module's column rules)."""
    t = type(value)
    if value is None:
        return ""
    if t is bool:
        return "true" if value else "false"
    if t is int or t is float:
        if t is float and value - value != 0.0:  # NaN or infinity, as the JSONL writes them
            return "NaN" if value != value else ("Infinity" if value > 0 else "-Infinity")
        return repr(value)
    text: str
    if t is str:
        text = value
    elif isinstance(value, Mapping | list | tuple):
        try:
            text = orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode("utf-8")
        except Exception:
            text = str(value)
    else:
        text = str(value)
    if text in NON_FINITE:
        return text
    return text if raw else neutralize(text)


def csv_row(
    event: Mapping[str, Any], base: Sequence[str], rewards: Sequence[str], raw: bool = False
) -> list[str]:
    """One row for one ``model_output`` event: the base columns, then one cell per reward."""
    row: list[str] = []
    for column in base:
        field = COLUMN_FIELDS.get(column, column)
        value = event.get(field)
        if field == "ts":
            value = _timestamp(value)
        elif field in _SHOWN:
            value = _SHOWN[field](value)
        row.append(cell(value, raw))
    scores = event.get("rewards")
    if not isinstance(scores, Mapping):
        scores = {}
    row.extend(cell(scores.get(name), raw) for name in rewards)
    return row


def row_maker(
    base: Sequence[str], rewards: Sequence[str], raw: bool = False
) -> Callable[[Mapping[str, Any]], list[str]]:
    """:func:`csv_row` for fixed columns: fields looked up once, plain values (text that
    needs no quote mark, finite numbers, None) written without :func:`cell`."""
    fields = tuple(COLUMN_FIELDS.get(column, column) for column in base)
    shown = [(i, _SHOWN[f]) for i, f in enumerate(fields) if f in _SHOWN]
    names = tuple(rewards)
    timestamp = _Timestamps()
    danger = _DANGEROUS_FIRST

    def plain(value: Any) -> str:
        t = type(value)
        if t is str:
            if raw or value[:1] not in danger:
                return value  # type: ignore[no-any-return]
        elif t is float:
            if value - value == 0.0:  # finite
                return repr(value)
        elif t is int:
            return repr(value)
        elif value is None:
            return ""
        return cell(value, raw)

    def row(event: Mapping[str, Any]) -> list[str]:
        get = event.get
        out = [plain(timestamp(get(f)) if f == "ts" else get(f)) for f in fields]
        for i, show in shown:
            out[i] = cell(show(get(fields[i])), raw)
        scores = get("rewards")
        if names:
            if isinstance(scores, Mapping):
                out.extend([plain(scores.get(name)) for name in names])
            else:
                out.extend([""] * len(names))
        return out

    return row


def new_writer(out: IO[str]) -> Any:
    """A ``csv.writer`` in the file's dialect: comma, double quote, minimal quoting, CRLF."""
    return csv.writer(out, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)


def write_csv(
    events: Iterable[Mapping[str, Any]],
    out: IO[str],
    *,
    columns: Sequence[str] | None = None,
    raw: bool = False,
    phases: Collection[str] | None = None,
) -> int:
    """Write the whole CSV for ``events`` (any kinds; others are skipped); returns the row count.

    ``out`` should be opened with ``newline=""`` and ``encoding="utf-8",
    errors="backslashreplace"`` as the live sink does.
    """
    chosen = [e for e in events if selected(e, phases)]
    names: dict[str, None] = {}
    for event in chosen:
        for name in reward_names(event):
            names.setdefault(name, None)
    base = base_columns(columns)
    rewards = list(names)
    writer = new_writer(out)
    writer.writerow(csv_header(base, rewards))
    writer.writerows(map(row_maker(base, rewards, raw), chosen))
    return len(chosen)
