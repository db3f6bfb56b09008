"""Render an event dict to one JSON line, once, on the listener thread."""

from __future__ import annotations

from typing import Any

import orjson

from gemmalog.events import CORE_FIELDS
from gemmalog.processors.sanitize import plain_key


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
        return orjson.dumps(event) + b"\n"
    except Exception:
        pass
    try:
        return orjson.dumps(repair(event)) + b"\n"
    except Exception as exc:  # last resort: keep the envelope and say why
        keep = {k: repair(event.get(k)) for k in CORE_FIELDS}
        keep["event"] = f"<unrenderable event: {type(exc).__name__}>"
        return orjson.dumps(keep) + b"\n"


def repair(value: Any, depth: int = 0) -> Any:
    """Make what orjson refused serializable: lone surrogates, huge ints, odd keys."""
    t = type(value)
    if t is str:
        try:
            value.encode("utf-8")
            return value
        except UnicodeEncodeError:
            return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if t is int:
        return value if -(2**63) <= value < 2**64 else str(value)
    if value is None or t is float or t is bool:
        return value
    if depth > 64:
        return "<nested too deep>"
    if t is dict:
        return {repair(plain_key(k), depth + 1): repair(v, depth + 1) for k, v in value.items()}
    if t is list or t is tuple:
        return [repair(v, depth + 1) for v in value]
    try:
        return repair(repr(value), depth + 1)
    except Exception:
        return f"<unserializable {t.__name__}>"
