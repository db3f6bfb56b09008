"""Turn whatever reached a log call into JSON-ready values, on the caller's thread.

Why on the caller's thread: the listener serializes later, and by then a tensor may have
been updated in place or a list appended to. Sanitizing copies containers and converts
tensors now, so the line records the value at the time of the call.

The common case (str, int, bool, None, finite float) is one ``type()`` lookup per value.
Everything else goes through :meth:`Sanitizer.clean` (:mod:`gemmalog._sanitizer`), which
never raises: a value that cannot be converted becomes a marker string and the event still
lands.
"""

from __future__ import annotations

from typing import Any

from gemmalog._sanitizer import DEFAULT, PLAIN_TYPES, Sanitizer, flat_finite_numbers, plain_key
from gemmalog.events import CORE_FIELDS, nonfinite_text

_PLAIN = PLAIN_TYPES
# Envelope fields are never cut, whatever max_string_length says: the views select on them
# (a kind cut to "mod" would hide every model output).
_NEVER_CUT = frozenset({*CORE_FIELDS, "phase", "device", "segment"})


class Sanitize:
    """structlog processor: make every value of the event JSON-ready (see :class:`Sanitizer`).

    Text longer than ``max_string_length`` characters is cut. A top-level field's name is
    then added to the event's ``truncated`` list; a nested string ends in a
    ``…[truncated N characters]`` marker instead. Either way a reader knows the value is partial.
    """

    __slots__ = ("_limit", "_sanitizer")

    def __init__(self, sanitizer: Sanitizer | None = None) -> None:
        self._sanitizer = sanitizer or Sanitizer()
        self._limit = self._sanitizer.max_string_length

    def __call__(self, logger: Any, method_name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
        limit = self._limit
        clean = self._sanitizer.clean
        truncated: list[str] | None = None
        for key, value in event_dict.items():
            t = type(value)
            if t is str:
                if len(value) > limit and key not in _NEVER_CUT:
                    event_dict[key] = value[:limit]
                    truncated = [*(truncated or ()), key]
            elif t is dict:
                # The metrics case, flat_finite_numbers() inlined (a call costs as much as
                # the check): a copy, since the caller may change the dict after the call.
                try:
                    total = sum(value.values())
                except Exception:
                    total = None
                if type(total) is int or (type(total) is float and total - total == 0.0):
                    event_dict[key] = value.copy()
                else:
                    event_dict[key] = clean(value)
            elif t is float:
                if value - value != 0.0:
                    event_dict[key] = nonfinite_text(value)
            elif t not in _PLAIN:
                event_dict[key] = clean(value)
        if truncated:
            event_dict["truncated"] = truncated
        return event_dict


__all__ = ["DEFAULT", "Sanitize", "Sanitizer", "flat_finite_numbers", "plain_key"]
