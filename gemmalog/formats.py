"""The human-readable outputs' formats, declared once for the configuration, the sinks and the CLI.

- The text line: the seed plan's standard ``format`` and ``datefmt``, which a formatter the
  configuration leaves unset gets (``gemmalog.config``) and the text sinks write.
- The CSV of model outputs: its column names (what ``columns:`` may list, checked by the
  configuration; what ``gemmalog.sinks.csvrows`` writes) and its rule for text a spreadsheet
  would run as a formula (applied by the CSV sink, ``to-csv``, ``export`` and the CLI's
  ``--format csv``).

A leaf: it imports nothing of gemmalog, so every layer may read it.
"""

from __future__ import annotations

import re
from typing import Final

#: The seed plan's text line: ``2024-01-01 12:00:00 - logging.training - INFO - message``.
STANDARD_FORMAT: Final = "%(asctime)s - %(name)s - %(levelname)s - %(message)s"
STANDARD_DATEFMT: Final = "%Y-%m-%d %H:%M:%S"

#: CSV column name -> event field. ``answer`` is the reference (true) answer, as in the seed plan.
COLUMN_FIELDS: Final[dict[str, str]] = {
    "timestamp": "ts",
    "step": "step",
    "phase": "phase",
    "sample": "sample",
    "question": "question",
    "answer": "true_answer",
    "true_answer": "true_answer",
    "llm_reasoning": "reasoning",
    "llm_answer": "answer",
    "model_output": "model_output",
    "prompt": "prompt",
    "total_reward": "total_reward",
    "correct": "correct",
    "length_chars": "length_chars",
    "length_tokens": "length_tokens",
    "advantage": "advantage",
    "advantage_source": "advantage_source",
    "extra": "extra",
    "messages": "messages",
    "rank": "rank",
    "run": "run",
}

#: CSV columns when the handler configures none.
DEFAULT_COLUMNS: Final = (
    "timestamp",
    "step",
    "phase",
    "sample",
    "question",
    "answer",
    "llm_reasoning",
    "llm_answer",
)

#: Prefix of the per-reward-function CSV columns.
REWARD_PREFIX: Final = "reward_"

#: First characters that make a spreadsheet read a cell as a formula (OWASP CSV injection).
FORMULA_STARTS: Final = ("=", "+", "-", "@", "\t", "\r")
_NUMBER: Final = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?|-?Infinity|NaN")


def neutralize(text: str) -> str:
    """Prefix a single quote to text a spreadsheet would run as a formula; numbers stay."""
    if text.startswith(FORMULA_STARTS) and not _NUMBER.fullmatch(text):
        return "'" + text
    return text
