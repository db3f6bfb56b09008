"""Keep every line readable by the views: a field whose name is a declared column but whose
value does not cast to that column's type is renamed, not written where it would break the
line.

The views read every shard with one declared column list (``gemmalog.events.all_columns``),
and DuckDB drops a whole line when one value does not cast (a ``log`` event with
``step="warmup"`` or ``rewards=[0.1]``, a ``kind=None``). The typed helpers already build
their own fields with the declared types; what is left is free-form: the fields of ``log``
events, extra keyword fields of the helpers, and ``log_event``. Such a field keeps its value
under its name with ``_`` appended (as the envelope does for ``ts``/``run``/...), and the
event keeps its line.

Runs on the listener thread. The common typed event (no user field named like a column)
costs one ``isdisjoint``; a ``log`` event with a bound step, one intersection and a check.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

from gemmalog.events import KINDS, NON_FINITE, all_columns

_NUMBER_STRINGS: Final = frozenset(NON_FINITE)


def _integer(value: Any) -> bool:
    return value is None or (type(value) is int and -(2**63) <= value < 2**63)


def _double(value: Any) -> bool:
    t = type(value)
    return value is None or t is float or t is int or (t is str and value in _NUMBER_STRINGS)


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
        and all(_integer(v) if k == "count" else _double(v) for k, v in value.items())
    )


_CHECKS: Final = {
    "INTEGER": _integer,
    "BIGINT": _integer,
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
