"""User processors, kept from harming the events they see.

A processor is structlog's ``(logger, method_name, event_dict) -> event_dict``. A user's
processor that raises, or returns something that is not a dict, is skipped for that event
(which goes on unchanged) and reported once on stderr: logging never raises into training
and never loses an event because an extension failed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gemmalog.notices import warn_once

Processor = Callable[[Any, str, dict[str, Any]], dict[str, Any]]


def processor_name(processor: Any) -> str:
    try:
        return str(getattr(processor, "__qualname__", None) or type(processor).__qualname__)
    except Exception:
        return "processor"


class Isolated:
    """Run ``processor``; on an exception or a non-dict result, keep the event as it was."""

    __slots__ = ("name", "processor", "where")

    def __init__(self, processor: Processor, where: str) -> None:
        if not callable(processor):
            raise TypeError(f"a {where} processor must be callable, got {type(processor).__name__}")
        self.processor = processor
        self.where = where
        self.name = processor_name(processor)

    def __call__(self, logger: Any, method_name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
        try:
            out = self.processor(logger, method_name, event_dict)
        except Exception as exc:
            warn_once(
                f"{self.where} processor {self.name} raised {type(exc).__name__}; "
                "it is skipped for such events, which are logged without it",
                key=f"processor:{self.where}:{self.name}:{type(exc).__name__}",
            )
            return event_dict
        if type(out) is not dict:
            warn_once(
                f"{self.where} processor {self.name} returned {type(out).__name__}, not a dict; "
                "its result is ignored",
                key=f"processor:{self.where}:{self.name}:result",
            )
            return event_dict
        return out
