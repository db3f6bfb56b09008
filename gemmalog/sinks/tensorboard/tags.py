"""What an event's fields become in TensorBoard: tag names, scalar values, text samples.

The rules are those of transformers' ``TensorBoardCallback`` where it has one (the tags of
``rewrite_logs``, booleans as 1/0), so a run logged by gemmalog reads like one logged by
transformers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from gemmalog.events import NON_FINITE


def number(value: Any) -> float | None:
    """The float a value stands for in a scalar, or ``None`` when it is not numeric."""
    t = type(value)
    if t is float or t is bool:
        return float(value)
    if t is int:
        try:
            return float(value)
        except OverflowError:  # an int beyond a double's range
            return math.inf if value > 0 else -math.inf
    if t is str:
        return NON_FINITE.get(value)
    return None


def phase_prefix(name: str, phase: str) -> str:
    """``name`` for the train phase, ``<phase>_<name>`` for another (``eval_reward``)."""
    return name if phase == "train" else f"{phase}_{name}"


def metric_tag(key: str, phase: str) -> str:
    """The tag transformers' TensorBoardCallback would give ``key`` (see ``rewrite_logs``)."""
    if phase == "train":
        if key.startswith("eval_"):
            return "eval/" + key[5:]
        if key.startswith("test_"):
            return "test/" + key[5:]
    return f"{phase}/{key}"


def _fence(text: str) -> str:
    """``text`` in a code fence longer than any run of backticks inside it."""
    fence = "```"
    while fence in text:
        fence += "`"
    return f"{fence}\n{text}\n{fence}"


def sample_markdown(event: Mapping[str, Any]) -> str:
    """The Text-tab rendering of one model output: every text in a fenced block (no markup runs)."""
    parts = []
    for label, key in (
        ("question", "question"),
        ("true answer", "true_answer"),
        ("answer", "answer"),
        ("reasoning", "reasoning"),
        ("output", "model_output"),
    ):
        value = event.get(key)
        if value is not None:
            parts.append(f"**{label}**\n\n{_fence(str(value))}")
    extras = []
    if event.get("correct") is not None:
        extras.append(f"correct: {event['correct']}")
    rewards = event.get("rewards")
    if isinstance(rewards, Mapping):
        extras.extend(f"{k}: {v}" for k, v in rewards.items())
    if extras:
        parts.append(_fence(", ".join(extras)))
    return "\n\n".join(parts)
