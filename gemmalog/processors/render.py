"""Render an event dict to one JSON line, once, on the listener thread."""

from __future__ import annotations

from typing import Any

import orjson

from gemmalog._coerce import int_text, text, type_name, with_problems
from gemmalog.events import CORE_FIELDS, nonfinite_text
from gemmalog.processors.conform import DECLARED, declared_fields
from gemmalog.processors.sanitize import plain_key

#: orjson writes subclasses of str, int, dict and list as their base type, but the other
#: sinks call their methods (``str()``, ``repr()``, ``items()``), which a subclass may make
#: raise: refused here, they take the repair path, which reads them through the base type.
_EXACT = orjson.OPT_PASSTHROUGH_SUBCLASS


def render(event: dict[str, Any]) -> bytes:
    """One JSON line for ``event``; values orjson refuses are repaired, never lost.

    The newline is appended by a concatenation, not ``OPT_APPEND_NEWLINE``: orjson's bytes
    keep the whole buffer it wrote into (``tracemalloc``: 8 KB for a 606-byte metrics line,
    130 KB for a 10 KB one), and the JSONL sink holds its lines until a flush. Held as orjson
    returns them, a megabyte of lines took ~13 MB of heap, and freeing them gave the heap back
    to the system only to fault it in again a batch later (page faults were a third of the
    listener's CPU). The concatenation is a right-sized copy, and orjson's buffer is freed
    at once.
    """
    try:
        return orjson.dumps(event, option=_EXACT) + b"\n"
    except Exception:
        pass
    return _render_repaired(event)


def _render_repaired(event: dict[str, Any]) -> bytes:
    """The slow path, taken only when orjson refused the event: each field is repaired on
    its own, and a field that still cannot be written is replaced by
    ``"<unrenderable TYPE: ERROR>"``; the other fields and the event are kept.

    The event dict is updated in place with what was written, so the sinks that read it
    (text, CSV, TensorBoard, the user's) see the values the JSONL line has, and a value
    that broke orjson cannot break them (a 5,000-digit int raised in each one's ``str()``).
    """
    fields: dict[str, Any] = event
    kind = event.get("kind")
    if type(kind) is str and kind != "log" and kind in DECLARED:
        # A declared field keeps its declared type (a 5,000-digit int as a reward is inf,
        # not a text that the map of doubles would read as NULL), as the helpers build it.
        problems: list[str] = []
        fields = declared_fields(kind, event, problems)
        if problems:
            fields["event"] = with_problems(text(event.get("event", kind)), problems)
    fixed: dict[str, Any] = {}
    for key, value in list(fields.items()):
        try:
            clean = repair(value)
            orjson.dumps(clean, option=_EXACT)
        except Exception as exc:
            clean = f"<unrenderable {type_name(value)}: {type_name(exc)}>"
        fixed[plain_key(key) if type(key) is not str else repair(key)] = clean
    try:
        line = orjson.dumps(fixed) + b"\n"
    except Exception as exc:  # last resort: keep the envelope and say why
        fixed = {k: _plain(fixed.get(k)) for k in CORE_FIELDS}
        fixed["event"] = f"<unrenderable event: {type_name(exc)}>"
        line = orjson.dumps(fixed) + b"\n"
    event.clear()
    event.update(fixed)
    return line


def _plain(value: Any) -> Any:
    t = type(value)
    return value if t is str or t is int or t is float or t is bool or value is None else None


def repair(value: Any, depth: int = 0) -> Any:
    """Make what orjson refused serializable: lone surrogates, huge ints (text, see
    :func:`~gemmalog._coerce.int_text`), odd keys, subclasses of the JSON types."""
    t = type(value)
    if t is str:
        try:
            value.encode("utf-8")
            return value
        except UnicodeEncodeError:
            return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if t is int:
        return value if -(2**63) <= value < 2**64 else int_text(value)
    if t is float:
        return value if value - value == 0.0 else nonfinite_text(value)
    if value is None or t is bool:
        return value
    if depth > 64:
        return "<nested too deep>"
    if t is dict:
        return {repair(plain_key(k), depth + 1): repair(v, depth + 1) for k, v in value.items()}
    if t is list or t is tuple:
        return [repair(v, depth + 1) for v in value]
    # Subclasses, read through their base type's own methods (theirs may raise).
    if isinstance(value, int):
        return repair(int.__int__(value), depth)
    if isinstance(value, float):
        return repair(float.__float__(value), depth)
    if isinstance(value, str):
        return repair(str.__str__(value), depth)
    if isinstance(value, dict):
        return repair(dict(dict.items(value)), depth)
    if isinstance(value, list):
        return [repair(v, depth + 1) for v in list.__iter__(value)]
    if isinstance(value, tuple):
        return [repair(v, depth + 1) for v in tuple.__iter__(value)]
    try:
        return repair(repr(value), depth + 1)
    except Exception:
        return f"<unserializable {t.__name__}>"
