"""Arguments of the public helpers made into the types their event kind declares.

A helper's argument of the wrong type (a number where a list belongs, a list where a
mapping belongs, an object whose ``__str__`` raises, a generator) must neither raise into
the training loop nor produce a line the views cannot read (a JSONL value that does not
cast to its declared column makes DuckDB drop the whole line). These functions never
raise: they return a value of the declared type, and say what they could not keep in a
short problem text that the helper puts in the event's message.

The common case (a list of floats, a dict of floats, a str) costs a ``type()`` check.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

_NUMBER_TYPES = (int, float)


def type_name(value: Any) -> str:
    try:
        return type(value).__qualname__
    except Exception:
        return "object"


_LOG10_2 = math.log10(2)


def int_text(value: int) -> str:
    """An int as its decimal text; one with more digits than Python converts to text
    (``sys.get_int_max_str_digits()``, 4,300 by default) as ``<int ~1.000000e+5000, too
    many digits to write>``: its magnitude to 7 significant digits, computed from its top
    64 bits (linear time, where the conversion the limit guards is quadratic). Never raises.
    """
    try:
        return int.__repr__(value)
    except ValueError:
        pass
    magnitude = -value if value < 0 else value
    shift = max(magnitude.bit_length() - 64, 0)
    log10 = math.log10(magnitude >> shift) + shift * _LOG10_2
    exponent = math.floor(log10)
    mantissa = round(10 ** (log10 - exponent), 6)
    if mantissa >= 10:
        mantissa, exponent = mantissa / 10, exponent + 1
    sign = "-" if value < 0 else ""
    return f"<int ~{sign}{mantissa:.6f}e+{exponent}, too many digits to write>"


def text(value: Any) -> str:
    """``str(value)``, or a marker naming the type when ``__str__`` (and ``__repr__``) raise."""
    if type(value) is str:
        return value
    try:
        return str(value)
    except Exception as exc:
        if isinstance(value, int):  # its own value, never a subclass's __int__ or __index__
            return int_text(int.__int__(value))
        try:
            return repr(value)
        except Exception:
            return f"<unprintable {type_name(value)}: str() raised {type_name(exc)}>"


def sequence(value: Any) -> list[Any] | None:
    """A list of the items of a sequence or array; None for anything else.

    Iterators and generators are not consumed (the caller may still need them), and str,
    bytes and mappings are not sequences of values here.
    """
    if type(value) is list:
        return value
    if type(value) is tuple:
        return list(value)
    if value is None or isinstance(value, str | bytes | bytearray | Mapping):
        return None
    tolist = getattr(type(value), "tolist", None)  # numpy arrays, torch tensors
    try:
        if tolist is not None:
            out = tolist(value)
            return out if type(out) is list else [out]
        if hasattr(type(value), "__getitem__") and hasattr(type(value), "__len__"):
            return list(value)
    except Exception:
        return None
    return None


def number(value: Any) -> float | None:
    """A float for a number (numpy/torch scalars too), None for None or anything else."""
    t = type(value)
    if t is float:
        return float(value)
    if t is int or t is bool:
        try:
            return float(value)
        except OverflowError:
            return float("inf") if value > 0 else float("-inf")
    if value is None or isinstance(value, str | bytes):
        return None
    if isinstance(value, float):  # a subclass: read through float's own method
        return float.__float__(value)
    if isinstance(value, int):
        return number(int.__int__(value))
    try:
        item = getattr(value, "item", None)
        return float(item() if item is not None else value)
    except Exception:
        return None


def numbers(value: Any) -> tuple[list[float | None], str | None]:
    """(values as floats or None, problem): for reward values and their like."""
    items = sequence(value)
    if items is None:
        return [], f"expected a sequence of numbers, got {type_name(value)}"
    if all(type(v) is float for v in items):
        return items, None
    out = [number(v) for v in items]
    bad = sum(1 for v, o in zip(items, out, strict=True) if o is None and v is not None)
    return out, (f"{bad} value(s) were not numbers" if bad else None)


def mapping(value: Any) -> tuple[dict[str, Any] | None, str | None]:
    """(a str-keyed dict copy, problem) of a mapping; (None, problem) for anything else."""
    if value is None:
        return None, None
    if not isinstance(value, Mapping):
        return None, f"expected a mapping, got {type_name(value)}"
    try:
        return {text(k): v for k, v in value.items()}, None
    except Exception as exc:
        return None, f"reading the {type_name(value)} raised {type_name(exc)}"


def with_problems(message: str, problems: list[str]) -> str:
    """The event message with what was not logged appended."""
    return f"{message} ({'; '.join(problems)})" if problems else message
