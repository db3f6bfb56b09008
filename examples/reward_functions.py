"""The plan's seven GRPO reward functions, in TRL's reward-function calling convention.

TRL (1.16) calls every function as ``f(prompts=..., completions=..., completion_ids=...,
**reward_kwargs)``, where ``reward_kwargs`` holds each dataset column other than ``prompt``
(here ``question`` and ``answer``, one entry per completion) plus ``trainer_state``,
``log_extra`` and ``log_metric``. Each function therefore takes ``**kwargs`` and ignores what it
does not need, and returns one float per completion. TRL names the logged metrics
``rewards/<__name__>/mean|std``, so these names are part of the logging contract.

Completions are either conversational (``[{"role": "assistant", "content": "..."}]``) or
plain strings; :func:`completion_text` accepts both. Scales and thresholds live in
:mod:`reward_config`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

if __package__:  # imported as examples.reward_functions
    from . import reward_config as cfg
else:  # run as a script, or imported with examples/ on sys.path
    import reward_config as cfg  # type: ignore[no-redef]

RewardFunc = Callable[..., list[float]]

_STRICT_FORMAT = re.compile(
    r"^<reasoning>\n.+?\n</reasoning>\n<answer>\n[^\n]+\n</answer>\n?$", re.DOTALL
)
_SOFT_FORMAT = re.compile(r"<reasoning>.*?</reasoning>\s*<answer>.*?</answer>", re.DOTALL)
_INTEGER = re.compile(r"^[-+]?\d+$")
_NUMBER = re.compile(r"\d+")
_TAG = re.compile(r"</?(?:reasoning|answer)>")
_WORD = re.compile(r"\w+|[^\w\s]")


def _message_text(content: Any) -> str:
    """Text of a message's content: a str, or a list of content blocks (multimodal style)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            part.get("text", "") if isinstance(part, dict) else str(part) for part in content
        )
    return "" if content is None else str(content)


def completion_text(completion: Any) -> str:
    """The generated text of one completion, conversational or plain.

    For a message list, the assistant messages are joined (TRL produces exactly one; tool
    calling can produce more).
    """
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict):
        return _message_text(completion.get("content"))
    if isinstance(completion, Sequence):
        messages = [m for m in completion if isinstance(m, dict)]
        assistant = [m for m in messages if m.get("role", "assistant") == "assistant"] or messages
        return "".join(_message_text(m.get("content")) for m in assistant)
    return str(completion)


def prompt_question(prompt: Any) -> str:
    """The question a prompt asks: the last user message, or the whole string prompt."""
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, Sequence):
        users = [m for m in prompt if isinstance(m, dict) and m.get("role") == "user"]
        if users:
            return _message_text(users[-1].get("content"))
    return ""


def extract_xml_answer(text: str) -> str:
    """Text between the last ``<answer>`` and the next ``</answer>``, stripped.

    Without tags, the whole (stripped) text is returned, which is what the original Gemma
    scripts did; the integer and correctness rewards then judge the raw output.
    """
    answer = text.split("<answer>")[-1]
    answer = answer.split("</answer>")[0]
    return answer.strip()


def extract_xml_reasoning(text: str) -> str:
    """Text inside ``<reasoning>...</reasoning>``; the whole text when the tags are missing."""
    if "<reasoning>" not in text:
        return text.strip()
    return text.split("<reasoning>", 1)[1].split("</reasoning>", 1)[0].strip()


def count_xml(text: str) -> float:
    """Partial format credit: XML_TAG_REWARD per well-written tag line, minus trailing junk.

    Unlike the original script, junk is measured after the last ``</answer>`` only, so a
    completion that simply stops after ``</answer>`` (no final newline, which is what a chat
    template's ``trim`` produces) is not penalised for its own length.
    """
    score = 0.0
    for fragment in ("<reasoning>\n", "\n</reasoning>\n", "\n<answer>\n", "\n</answer>"):
        if text.count(fragment) == 1:
            score += cfg.XML_TAG_REWARD
    if "</answer>" in text:
        trailing = text.rsplit("</answer>", 1)[1].strip()
        score -= len(trailing) * cfg.XML_TRAILING_PENALTY_PER_CHAR
    return score


def xmlcount_reward_func(
    prompts: Sequence[Any], completions: Sequence[Any], **kwargs: Any
) -> list[float]:
    """Smooth format signal: credit for each correctly placed tag line (see :func:`count_xml`)."""
    return [count_xml(completion_text(c)) for c in completions]


def soft_format_reward_func(
    prompts: Sequence[Any], completions: Sequence[Any], **kwargs: Any
) -> list[float]:
    """SOFT_FORMAT_REWARD when a reasoning block is followed by an answer block, any spacing."""
    return [
        cfg.SOFT_FORMAT_REWARD if _SOFT_FORMAT.search(completion_text(c)) else 0.0
        for c in completions
    ]


def strict_format_reward_func(
    prompts: Sequence[Any], completions: Sequence[Any], **kwargs: Any
) -> list[float]:
    """STRICT_FORMAT_REWARD for exactly the system prompt's layout and nothing around it."""
    return [
        cfg.STRICT_FORMAT_REWARD if _STRICT_FORMAT.match(completion_text(c)) else 0.0
        for c in completions
    ]


def int_reward_func(
    prompts: Sequence[Any], completions: Sequence[Any], **kwargs: Any
) -> list[float]:
    """INT_REWARD when the extracted answer is an integer, rewarding the answer's type early on."""
    return [
        cfg.INT_REWARD if _INTEGER.match(extract_xml_answer(completion_text(c))) else 0.0
        for c in completions
    ]


def correctness_reward_func(
    prompts: Sequence[Any],
    completions: Sequence[Any],
    answer: Sequence[Any] | None = None,
    **kwargs: Any,
) -> list[float]:
    """CORRECTNESS_REWARD when the extracted answer equals the dataset's ``answer`` column.

    Answers compare as integers when both parse (so "07" matches "7"), else as stripped text.
    Without an ``answer`` column the function cannot judge and raises, rather than silently
    returning zeros that would look like a model that is always wrong.
    """
    if answer is None:
        raise ValueError(
            "correctness_reward_func needs the dataset's 'answer' column (passed by TRL as a kwarg)"
        )
    rewards = []
    for completion, expected in zip(completions, answer, strict=True):
        got, want = extract_xml_answer(completion_text(completion)), str(expected).strip()
        if _INTEGER.match(got) and _INTEGER.match(want):
            correct = int(got) == int(want)
        else:
            correct = got == want
        rewards.append(cfg.CORRECTNESS_REWARD if correct else 0.0)
    return rewards


def repeated_ngram_fraction(text: str, n: int = cfg.ANTI_REPETITION_NGRAM_SIZE) -> float:
    """Share of word n-grams that repeat an earlier one (0.0 for texts shorter than n words).

    Format tags are removed first: they legitimately occur twice each and would otherwise
    count as repetition in every well-formatted answer.
    """
    words = _WORD.findall(_TAG.sub(" ", text).lower())
    if len(words) < n:
        return 0.0
    ngrams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
    return 1.0 - len(set(ngrams)) / len(ngrams)


def anti_repetition_reward_func(
    prompts: Sequence[Any], completions: Sequence[Any], **kwargs: Any
) -> list[float]:
    """Zero or negative: -ANTI_REPETITION_PENALTY scaled by repetition above the threshold.

    Small policies under GRPO easily collapse into loops ("7 7 7 7 ..."); this pushes back
    before the format rewards can be gamed by repeating tags or numbers.
    """
    threshold = cfg.ANTI_REPETITION_THRESHOLD
    rewards = []
    for completion in completions:
        excess = repeated_ngram_fraction(completion_text(completion)) - threshold
        rewards.append(
            -cfg.ANTI_REPETITION_PENALTY * excess / (1.0 - threshold) if excess > 0 else 0.0
        )
    return rewards


def topic_relevance_reward_func(
    prompts: Sequence[Any], completions: Sequence[Any], **kwargs: Any
) -> list[float]:
    """Reward reasoning that works with the question: uses its numbers and arithmetic words.

    The question comes from the prompt's last user message, or from a ``question`` column
    when the prompt is missing. Capped at TOPIC_RELEVANCE_MAX.
    """
    questions = kwargs.get("question")
    rewards = []
    for i, completion in enumerate(completions):
        question = prompt_question(prompts[i]) if prompts else ""
        if not question and questions is not None:
            question = str(questions[i])
        reasoning = extract_xml_reasoning(completion_text(completion))
        wanted = set(_NUMBER.findall(question))
        used = set(_NUMBER.findall(reasoning))
        score = cfg.TOPIC_RELEVANCE_NUMBER_WEIGHT * (
            len(wanted & used) / len(wanted) if wanted else 0.0
        )
        words = set(re.findall(r"[a-z]+", reasoning.lower()))
        for keyword, weight in cfg.TOPIC_RELEVANCE_KEYWORDS.items():
            if (keyword in words) if keyword.isalpha() else (keyword in reasoning):
                score += weight
        rewards.append(min(score, cfg.TOPIC_RELEVANCE_MAX))
    return rewards


#: In the plan's order; GRPOTrainer(reward_funcs=REWARD_FUNCTIONS).
REWARD_FUNCTIONS: list[RewardFunc] = [
    xmlcount_reward_func,
    soft_format_reward_func,
    strict_format_reward_func,
    int_reward_func,
    correctness_reward_func,
    anti_repetition_reward_func,
    topic_relevance_reward_func,
]


def reward_weights(functions: Sequence[RewardFunc] = REWARD_FUNCTIONS) -> list[float]:
    """``GRPOConfig(reward_weights=...)`` values from reward_config.REWARD_WEIGHTS, in order."""
    return [cfg.REWARD_WEIGHTS.get(getattr(f, "__name__", ""), 1.0) for f in functions]
