"""Weights, scales and thresholds of the example reward functions (the plan's reward_config).

Kept apart from the functions so that a logging callback can turn logged means back into
counts (e.g. ``correct = round(mean_correctness / CORRECTNESS_REWARD * n)``, as the plan's
callback does) without importing the reward code, and so a run's reward shaping can be
recorded in one place.

Maximum total reward of a perfect completion with all weights at 1.0:
``4 * XML_TAG_REWARD + SOFT_FORMAT_REWARD + STRICT_FORMAT_REWARD + INT_REWARD
+ CORRECTNESS_REWARD + TOPIC_RELEVANCE_MAX = 0.5 + 0.5 + 0.5 + 0.5 + 2.0 + 0.5 = 4.5``.
"""

from __future__ import annotations

from typing import Final

# --- correctness ---------------------------------------------------------------------------
#: Reward when the text inside <answer> equals the dataset's ``answer`` column.
CORRECTNESS_REWARD: Final[float] = 2.0
#: Reward when the text inside <answer> is an integer (right type, maybe wrong value).
INT_REWARD: Final[float] = 0.5

# --- format --------------------------------------------------------------------------------
#: Reward for the exact layout "<reasoning>\n...\n</reasoning>\n<answer>\n...\n</answer>".
STRICT_FORMAT_REWARD: Final[float] = 0.5
#: Reward for both tag pairs in order, whitespace between them free.
SOFT_FORMAT_REWARD: Final[float] = 0.5
#: Partial credit per correctly written tag line (four of them), for a smooth format signal.
XML_TAG_REWARD: Final[float] = 0.125
#: Penalty per character of text after the closing </answer> tag.
XML_TRAILING_PENALTY_PER_CHAR: Final[float] = 0.001

# --- anti-repetition -----------------------------------------------------------------------
#: Word n-gram size used to detect loops such as "7 7 7 7" or repeated phrases.
ANTI_REPETITION_NGRAM_SIZE: Final[int] = 3
#: Fraction of repeated n-grams tolerated before any penalty applies.
ANTI_REPETITION_THRESHOLD: Final[float] = 0.2
#: Penalty at 100 % repeated n-grams; it scales linearly above the threshold (a negative reward).
ANTI_REPETITION_PENALTY: Final[float] = 1.0

# --- topic relevance -----------------------------------------------------------------------
#: Weight of "the reasoning uses the numbers of the question" (fraction of them found).
TOPIC_RELEVANCE_NUMBER_WEIGHT: Final[float] = 0.3
#: Words and symbols that show arithmetic reasoning, with their individual weights.
TOPIC_RELEVANCE_KEYWORDS: Final[dict[str, float]] = {
    "=": 0.1,
    "+": 0.05,
    "-": 0.05,
    "*": 0.05,
    "total": 0.05,
    "left": 0.05,
    "each": 0.05,
}
#: Upper bound of the topic relevance reward.
TOPIC_RELEVANCE_MAX: Final[float] = 0.5

# --- weights -------------------------------------------------------------------------------
#: Per-function weights, by function name; pass them to GRPOConfig(reward_weights=...) in
#: REWARD_FUNCTIONS order (reward_functions.reward_weights() does that).
REWARD_WEIGHTS: Final[dict[str, float]] = {
    "xmlcount_reward_func": 1.0,
    "soft_format_reward_func": 1.0,
    "strict_format_reward_func": 1.0,
    "int_reward_func": 1.0,
    "correctness_reward_func": 1.0,
    "anti_repetition_reward_func": 1.0,
    "topic_relevance_reward_func": 1.0,
}
