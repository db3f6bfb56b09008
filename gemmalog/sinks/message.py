"""The message of a text line: one event described in one line, for a person.

``describe`` writes the event's message, its step and its payload as ``key=value`` (long
text cut, nested metrics expanded); the envelope's own fields, which the line's format shows
or a reader does not need, are left out. The console and every text file of a run show the
same message, computed once per event (``describe_once``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

# Envelope keys a reader does not need repeated on every text line.
_HIDDEN = frozenset(
    {
        "v",
        "ts",
        "kind",
        "logger",
        "level",
        "run",
        "rank",
        "event",
        "device",
        "rss_mb",
        "gpu_mb",
        "epoch",
        "step",
        "exc",
    }
)
# Nested values worth a line of text; others (config, versions, training_args) stay in the JSONL.
_EXPANDED = frozenset({"metrics", "rewards", "stats"})
_TEXT_FIELDS = frozenset(
    {"question", "true_answer", "model_output", "reasoning", "answer", "prompt"}
)


def short_text(value: Any, width: int = 80) -> str:
    if type(value) is float:  # ".6g" is at most 13 characters: never cut
        return format(value, ".6g")
    text: str
    if isinstance(value, str):
        if len(value) > width:  # cut before escaping: the escaped prefix is the same
            return value[:width].replace("\n", "\\n")[: width - 1] + "…"
        text = value.replace("\n", "\\n")
    elif isinstance(value, float):
        text = f"{value:.6g}"
    else:
        text = str(value)
    return text if len(text) <= width else text[: width - 1] + "…"


_FLOAT: Final = frozenset({float})
#: keys of an all-float dict -> "k1=%.6g k2=%.6g ..." (one C formatting call for a metrics dict)
_FORMATS: dict[tuple[Any, ...], str] = {}


def _expand(value: dict[Any, Any], append: Callable[[str], None]) -> None:
    """``k=v`` for each item of a nested dict (metrics, rewards, stats)."""
    values = tuple(value.values())
    if values and set(map(type, values)) == _FLOAT:
        keys = tuple(value)
        fmt = _FORMATS.get(keys)
        if fmt is None:
            if len(_FORMATS) >= 1024:
                _FORMATS.clear()
            fmt = _FORMATS[keys] = " ".join(f"{k}".replace("%", "%%") + "=%.6g" for k in keys)
        append(fmt % values)
        return
    for k, v in value.items():
        append(f"{k}={short_text(v, 40)}")


def describe(event: dict[str, Any]) -> str:
    """One line for a person: the message, the step, then the payload as ``key=value``."""
    parts = [str(event.get("event", ""))]
    if event.get("step") is not None and event.get("kind") != "log":
        parts.append(f"step={event['step']}")
    append = parts.append
    for key, value in event.items():
        if value is None or key in _HIDDEN:
            continue
        t = type(value)  # exact types first: most values are plain str, float, int, bool
        if t is str:
            append(
                f"{key}={short_text(value, 60)!r}"
                if key in _TEXT_FIELDS
                else f"{key}={short_text(value)}"
            )
        elif t is float:
            append(f"{key}={format(value, '.6g')}")
        elif t is dict or t is list or isinstance(value, dict | list):
            if key in _EXPANDED and isinstance(value, dict):
                _expand(value, append)
            elif isinstance(value, list) and len(value) <= 8:
                append(f"{key}={short_text(value)}")
        elif key in _TEXT_FIELDS and isinstance(value, str):
            append(f"{key}={short_text(value, 60)!r}")
        else:
            append(f"{key}={short_text(value)}")
    text = " ".join([p for p in parts if p])
    exc = event.get("exc")
    return f"{text}\n{exc}" if exc else text


class _DescribeOnce:
    """:func:`describe` computed once per event for all text sinks (console and file lines carry
    the same message). Entries hold their event, so an id is never reused while cached."""

    __slots__ = ("_memo",)

    SIZE = 256

    def __init__(self) -> None:
        self._memo: dict[int, tuple[dict[str, Any], str]] = {}

    def __call__(self, event: dict[str, Any]) -> str:
        memo = self._memo
        entry = memo.get(id(event))
        if entry is not None and entry[0] is event:
            return entry[1]
        text = describe(event)
        if len(memo) >= self.SIZE:
            memo.clear()
        memo[id(event)] = (event, text)
        return text


describe_once = _DescribeOnce()
