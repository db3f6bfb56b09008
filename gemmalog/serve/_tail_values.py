"""The values of a run's newest lines read as the views read them, or :class:`Unsupported`.

A window of parsed lines (:mod:`._tail`) answers a question only when every value it uses
is read exactly as DuckDB reads it through the views; a value it cannot be sure of raises
:class:`Unsupported` and the caller asks DuckDB.
"""

from __future__ import annotations

import math
import re
from typing import Any

_NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


class Unsupported(Exception):
    """A question the window cannot answer exactly as the views would: ask DuckDB."""


def number(value: Any) -> float | None:
    """A DOUBLE field as DuckDB reads it from JSON (the writer's non-finite strings too)."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise Unsupported("a boolean where a number is declared")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str) and value in _NON_FINITE:
        return _NON_FINITE[value]
    raise Unsupported(f"{value!r} where a number is declared")


def integer(value: Any) -> int | None:
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    raise Unsupported(f"{value!r} where an integer is declared")


def text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise Unsupported(f"{value!r} where a text is declared")


def scores(value: Any) -> dict[str, float | None] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise Unsupported("rewards that are not an object")
    return {str(k): number(v) for k, v in value.items()}


def mean(values: list[float]) -> float:
    total = 0.0
    for v in values:
        total += v
    return total / len(values)


def total_reward(e: dict[str, Any], rewards: dict[str, float | None] | None) -> float | None:
    """``completions.total_reward``: the logged one, else the sum of the ``rewards``."""
    total = number(e.get("total_reward"))
    if total is not None or rewards is None:
        return total
    known = [v for v in rewards.values() if v is not None]
    if not known:
        return None
    out = 0.0
    for v in known:
        out += v
    return out


def length(e: dict[str, Any]) -> int | None:
    """``completions.length``: the logged length in characters, else the text's."""
    chars = integer(e.get("length_chars"))
    if chars is not None:
        return chars
    output = text(e.get("model_output"))
    return None if output is None else len(output)


def sample(value: Any) -> int | None:
    """``TRY_CAST(samples[i] AS INTEGER)`` for a sample id (a text in the views)."""
    if isinstance(value, str) and re.fullmatch(r"-?[0-9]{1,9}", value):
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) < 10**9:
        return value
    if value is None or (isinstance(value, str) and not any(c.isdigit() for c in value)):
        return None  # not a number: the position stands in
    raise Unsupported(f"a sample id {value!r} the views might read otherwise")
