"""Keep every line readable by the views: a field whose name is a declared column but whose
value does not cast to that column's type is renamed, not written where it would break the
line.

The views read every shard with one declared column list (``gemmalog.events.all_columns``),
and DuckDB drops a whole line when one value does not cast (a ``log`` event with
``step="warmup"`` or ``rewards=[0.1]``, a ``kind=None``). The typed helpers already build
their own fields with the declared types (``log_event`` through :func:`declared_fields`);
what is left is free-form: the fields of ``log`` events and extra keyword fields of the
helpers. Such a field keeps its value under its name with ``_`` appended (as the envelope
does for ``ts``/``run``/...), and the event keeps its line.

Runs on the listener thread. The common typed event (no user field named like a column)
costs one ``isdisjoint``; a ``log`` event with a bound step, one intersection and a check.

:func:`as_declared` turns a value into one of a declared type (or None), saying what it
could not keep: ``log_event`` uses it for every declared field of the wrong type, and the
renderer's slow path for a typed event's fields that orjson refused (a 5,000-digit reward).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

from gemmalog import _coerce
from gemmalog.events import ENVELOPE, KINDS, NON_FINITE, SET_BY_GEMMALOG, all_columns
from gemmalog.processors.textstats import completion_text

_NUMBER_STRINGS: Final = frozenset(NON_FINITE)


#: The range of each integer column type (DuckDB's INTEGER is 32-bit, BIGINT 64-bit).
INT_RANGES: Final = {"INTEGER": (-(2**31), 2**31), "BIGINT": (-(2**63), 2**63)}


def _integer(value: Any) -> bool:
    return value is None or (type(value) is int and -(2**31) <= value < 2**31)


def _bigint(value: Any) -> bool:
    return value is None or (type(value) is int and -(2**63) <= value < 2**63)


def _json_int(value: int) -> bool:
    """An int the JSONL writes as a number (orjson's 64-bit range; others become text)."""
    return -(2**63) <= value < 2**64


def _double(value: Any) -> bool:
    t = type(value)
    return (
        value is None
        or t is float
        or (t is int and _json_int(value))
        or (t is str and value in _NUMBER_STRINGS)
    )


def _varchar(value: Any) -> bool:
    t = type(value)
    return value is None or t is str or t is int or t is float or t is bool


def _boolean(value: Any) -> bool:
    return value is None or type(value) is bool


def _any(value: Any) -> bool:
    return True


def _list_of(item: Any) -> Any:
    def check(value: Any) -> bool:
        return value is None or (type(value) is list and all(item(v) for v in value))

    return check


def _map_of(item: Any) -> Any:
    def check(value: Any) -> bool:
        return value is None or (type(value) is dict and all(item(v) for v in value.values()))

    return check


def _stats(value: Any) -> bool:
    return value is None or (
        type(value) is dict
        and all(k in ("mean", "std", "min", "max", "count") for k in value)
        and all(_bigint(v) if k == "count" else _double(v) for k, v in value.items())
    )


_CHECKS: Final = {
    "INTEGER": _integer,
    "BIGINT": _bigint,
    "DOUBLE": _double,
    "VARCHAR": _varchar,
    "BOOLEAN": _boolean,
    "JSON": _any,
    "VARCHAR[]": _list_of(_varchar),
    "DOUBLE[]": _list_of(_double),
    "MAP(VARCHAR, DOUBLE)": _map_of(_double),
}


def _check(sql: str) -> Any:
    if sql in _CHECKS:
        return _CHECKS[sql]
    if sql.startswith("MAP(VARCHAR, STRUCT("):
        return _map_of(_stats)
    raise ValueError(f"no check for the column type {sql!r}")


#: Column name -> check, for every declared column.
CHECKS: Final = {name: _check(sql) for name, sql in all_columns().items()}
#: Fields gemmalog alone sets (the envelope's own, the logger's name, the message).
_OURS: Final = frozenset({"v", "ts", "level", "run", "rank", "kind", "logger", "event"})
#: Per kind, the columns worth checking: every column but the kind's own fields (its helper
#: builds them with their declared types) and gemmalog's own.
_TO_CHECK_WITH_RESOURCES: Final = {
    kind.name: frozenset(CHECKS)
    - frozenset(f.name for f in kind.fields)
    - _OURS
    # The typed helpers give step as an int (a wrong one becomes None and a notice).
    - (frozenset() if kind.name == "log" else frozenset({"step"}))
    for kind in KINDS.values()
}
_ALL: Final = frozenset(CHECKS) - _OURS
# AddResources' fields are on every event, and they are columns of every kind: checked apart,
# where the usual types (a str device, float memory) cost one type test each, so a typed
# event's own key set stays disjoint from what is left to check.
_RESOURCES: Final = tuple(
    name
    for name in ("device", "rss_mb", "gpu_mb")
    if name in _ALL and all(name in names for names in _TO_CHECK_WITH_RESOURCES.values())
)
_TO_CHECK: Final = {
    kind: names - frozenset(_RESOURCES) for kind, names in _TO_CHECK_WITH_RESOURCES.items()
}
_ALL_BUT_RESOURCES: Final = _ALL - frozenset(_RESOURCES)


class ConformToSchema:
    """Listener-side processor: rename fields whose values the views could not read."""

    __slots__ = ()

    def __call__(self, logger: Any, method_name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
        kind = event_dict.get("kind")
        if type(kind) is not str:
            event_dict["kind_"] = event_dict.pop("kind", None)
            event_dict["kind"] = kind = "log"
        to_check = _TO_CHECK.get(kind, _ALL_BUT_RESOURCES)
        if not to_check.isdisjoint(event_dict):  # the common case is disjoint: ~0.1 µs
            self._rename(event_dict, to_check.intersection(event_dict))
        if (
            type(event_dict.get("device", "")) is not str
            or type(event_dict.get("rss_mb", 0.0)) is not float
            or type(event_dict.get("gpu_mb", 0.0)) is not float
        ):
            self._rename(event_dict, [name for name in _RESOURCES if name in event_dict])
        return event_dict

    @staticmethod
    def _rename(event_dict: dict[str, Any], names: Iterable[str]) -> None:
        for name in names:
            value = event_dict[name]
            if not CHECKS[name](value):
                del event_dict[name]
                event_dict[name + "_"] = value


# -- values of the declared types -----------------------------------------------------------


def _as_int(value: Any, sql: str, name: str, problems: list[str]) -> int | None:
    """An ``INTEGER`` or ``BIGINT`` value: an int in the column's range, else None."""
    out: int | None = None
    try:
        if type(value) is int:
            out = value
        elif not isinstance(value, str | bytes) and float(value) == int(value):
            out = int(value)  # numpy/torch integers, 3.0
    except Exception:
        pass
    if out is None:
        problems.append(f"{name}: {_coerce.text(value)[:40]!r} is not an integer")
        return None
    low, high = INT_RANGES[sql]
    if not low <= out < high:
        problems.append(f"{name}: {_coerce.int_text(out)[:40]} is outside the {sql} range")
        return None
    return out


def _as_bool(value: Any, name: str, problems: list[str]) -> bool | None:
    if type(value) is bool:
        return value
    if getattr(getattr(value, "dtype", None), "kind", None) == "b":  # numpy/torch booleans
        try:
            return bool(value)
        except Exception:
            pass
    problems.append(f"{name}: expected true or false, got {_coerce.type_name(value)}")
    return None


def _mapping(value: Any, name: str, problems: list[str]) -> dict[str, Any] | None:
    """``value`` as a mapping, or None and a problem naming the field."""
    values, problem = _coerce.mapping(value)
    if values is None:
        problems.append(f"{name}: {problem or 'expected a mapping'}")
    return values


def _as_numbers(value: Any, name: str, problems: list[str]) -> dict[str, Any] | None:
    values = _mapping(value, name, problems)
    if values is None:
        return None
    out = {k: _coerce.number(v) for k, v in values.items()}
    bad = [k for k, v in out.items() if v is None and values[k] is not None]
    if bad:
        problems.append(f"{name}: {', '.join(map(repr, bad[:5]))} not numbers")
    return out


def _as_stats(value: Any, name: str, problems: list[str]) -> dict[str, Any] | None:
    per_fn = _mapping(value, name, problems)
    if per_fn is None:
        return None
    out: dict[str, Any] = {}
    for fn, stats in per_fn.items():
        values, problem = _coerce.mapping(stats)
        if values is None:
            problems.append(f"{name}: {fn}: {problem or 'no statistics'}")
            continue
        out[fn] = {
            stat: _as_int(v, "BIGINT", f"{name}.{fn}.count", problems)
            if stat == "count"
            else _as_double(v, f"{name}.{fn}.{stat}", problems)
            for stat, v in values.items()
            if stat in ("mean", "std", "min", "max", "count")
        }
    return out


def _as_double(value: Any, name: str, problems: list[str]) -> Any:
    if type(value) is str and value in _NUMBER_STRINGS:
        return value
    number = _coerce.number(value)
    if number is None and value is not None:
        problems.append(f"{name}: expected a number, got {_coerce.type_name(value)}")
    return number


def as_declared(name: str, sql: str, value: Any, problems: list[str]) -> Any:
    """``value`` as a value of the DuckDB type ``sql`` (a field's declared type), or None
    when nothing of it fits; what could not be kept is said in ``problems``. Never raises."""
    try:
        if sql in INT_RANGES:
            return _as_int(value, sql, name, problems)
        if sql == "DOUBLE":
            return _as_double(value, name, problems)
        if sql == "VARCHAR":
            if name in ("model_output", "prompt") and isinstance(value, list | tuple):
                return completion_text(value)  # a conversation: its assistant text
            return _coerce.text(value)
        if sql == "BOOLEAN":
            return _as_bool(value, name, problems)
        if sql in ("VARCHAR[]", "DOUBLE[]"):
            items = _coerce.sequence(value)
            if items is None:
                problems.append(f"{name}: expected a sequence, got {_coerce.type_name(value)}")
                return None
            if sql == "VARCHAR[]":
                return [_coerce.text(v) for v in items]
            return [_as_double(v, name, problems) for v in items]
        if sql == "MAP(VARCHAR, DOUBLE)":
            return _as_numbers(value, name, problems)
        if sql.startswith("MAP(VARCHAR, STRUCT("):
            return _as_stats(value, name, problems)
    except Exception as exc:
        problems.append(f"{name}: reading the {_coerce.type_name(value)} raised {exc!r:.60}")
        return None
    return value  # JSON: any value


#: Per kind, its declared fields a caller may give (its own, step and epoch) -> type.
DECLARED: Final = {
    kind.name: {
        **{f.name: f.sql for f in ENVELOPE if f.name not in SET_BY_GEMMALOG},
        **{f.name: f.sql for f in kind.fields},
    }
    for kind in KINDS.values()
}


def declared_fields(kind: str, fields: dict[str, Any], problems: list[str]) -> dict[str, Any]:
    """``fields`` of an event of ``kind`` with each declared field of the wrong type replaced
    by a value of its declared type (None when nothing of it fits), as the typed helpers
    build them; the others are left as they are. ``fields`` itself when all are right."""
    types = DECLARED[kind]
    out = fields
    for name, value in fields.items():
        sql = types.get(name)
        if sql is None or CHECKS[name](value) or (name == "step" and type(value) is int):
            continue  # a step of any size is kept (see event_builders.as_step)
        if out is fields:
            out = dict(fields)
        out[name] = as_declared(name, sql, value, problems)
    return out
