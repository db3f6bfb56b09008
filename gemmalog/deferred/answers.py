"""Reading a sample: its answer against the reference, the question its prompt asked.

The reward batch's expansion (``reward_batch.py``) judges each completion with
:func:`answers_match` unless the collector was told another way (``correct_reward``,
``correct_fn``), and takes a sample's question from the prompt when the dataset has no
question column.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from gemmalog.processors.textstats import completion_text


def number(value: Any) -> float | None:
    """``float(value)``, or None when it is no number."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number


def answers_match(answer: str | None, true_answer: Any) -> bool | None:
    """Default correctness: the extracted answer equals the reference, as numbers when both
    parse as numbers (``"07"`` == ``"7"``), else as stripped strings. None without a reference."""
    if true_answer is None:
        return None
    if answer is None:
        return False
    a, b = answer.strip(), str(true_answer).strip()
    x, y = number(a.replace(",", "")), number(b.replace(",", ""))
    if x is not None and y is not None and math.isfinite(x) and math.isfinite(y):
        return x == y
    return a == b


def prompt_text(prompt: Any) -> str:
    """The last user message of a conversational prompt, or the prompt string itself."""
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, Sequence):
        users = [m for m in prompt if isinstance(m, Mapping) and m.get("role") == "user"]
        if users:
            return completion_text(users[-1])
    return completion_text(prompt)
