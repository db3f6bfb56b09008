"""The pipeline's ``Sanitize`` for the events one deferred payload expands into.

A reward batch's events hold lists and tables that are already what the sanitizer's walk
returns: a ``reward`` event's ``values`` (finite floats) and ``samples`` (strings within the
length limit), a ``reward_summary``'s ``stats`` (flat tables of finite numbers), the texts
and token counts of a ``generation_metrics``. The walk visits every item of those (about 80
visits a batch of 4 samples and 7 functions, 40 % of the batch's listener time) to return
copies of them; :class:`BatchSanitize` makes the same copies after the same checks.
"""

from __future__ import annotations

from typing import Any

from gemmalog.processors.derive import GENERATIONS, TOKEN_LENGTHS
from gemmalog.processors.sanitize import Sanitize, flat_finite_numbers


class BatchSanitize:
    """``sanitize`` (the pipeline's caller-side ``Sanitize``) without the walk over the fields
    it would copy as they are. Any other event, or with another sanitizer than gemmalog's
    own, goes through ``sanitize`` whole. One instance serves one expansion's events."""

    __slots__ = ("limit", "max_items", "proven", "sanitize")

    def __init__(self, sanitize: Any) -> None:
        self.sanitize = sanitize
        # id -> whether the list passed: the reward events of a batch share one samples list
        # (alive while the batch's events are, so its id is not reused meanwhile).
        self.proven: dict[int, bool] = {}
        sanitizer = getattr(sanitize, "_sanitizer", None) if type(sanitize) is Sanitize else None
        # 0: nothing passes the checks below, every event is sanitized whole.
        self.max_items: int = getattr(sanitizer, "max_items", 0)
        self.limit: int = getattr(sanitizer, "max_string_length", 0)

    def __call__(self, logger: Any, method_name: str, event: dict[str, Any]) -> Any:
        kind = event.get("kind")
        if kind == "reward":
            fields: tuple[str, ...] = ("values", "samples")
        elif kind == "reward_summary":
            fields = ("stats",)
        elif kind == "generation_metrics":
            fields = (GENERATIONS, TOKEN_LENGTHS)
        else:
            return self.sanitize(logger, method_name, event)
        done = {}
        for field in fields:
            clean = self._clean(event.get(field))
            if clean is not None:
                done[field] = clean
                event[field] = None  # the key keeps its place; Sanitize passes None as it is
        event = self.sanitize(logger, method_name, event)
        event.update(done)
        return event

    def _clean(self, value: Any) -> Any:
        """What ``Sanitizer.clean(value)`` returns, when that is a plain copy; else None."""
        if type(value) is list:
            passed = self.proven.get(id(value))
            if passed is None:
                passed = self.proven[id(value)] = self._plain(value)
            return list(value) if passed else None
        if type(value) is dict and len(value) <= self.max_items:
            out = {}
            for key, table in value.items():
                if (
                    type(key) is not str
                    or type(table) is not dict
                    or len(table) > self.max_items
                    or not flat_finite_numbers(table)
                ):
                    return None
                out[key] = dict(table)
            return out
        return None

    def _plain(self, values: list[Any]) -> bool:
        """Whether the walk would copy the list as it is: finite floats, ints, or strings
        it does not cut, and no more items than it keeps."""
        if len(values) > self.max_items:
            return False
        types = set(map(type, values))
        if not types:
            return True
        if types == {float}:
            total: float = sum(values)
            # A NaN or an infinity makes the sum one (so does an overflow: a false no).
            return total - total == 0.0
        if types == {int}:
            return True
        return types == {str} and max(map(len, values)) <= self.limit
