"""Reading completions: extract reasoning and answer, and measure a batch of generations.

Pure functions over strings, shared by the plan's helpers (``log_model_output``,
``log_generation_metrics``, ``log_reward_metrics``) and the TRL integration.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

_REASONING = re.compile(r"<reasoning>\s*(.*?)\s*(?:</reasoning>|<answer>|$)", re.DOTALL)
_FORMAT = re.compile(r"<reasoning>.*?</reasoning>\s*<answer>.*?</answer>", re.DOTALL)


def completion_text(completion: Any) -> str:
    """The text of a completion: a plain string, or the assistant messages of a conversation."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, Mapping):
        content = completion.get("content", "")
        return content if isinstance(content, str) else str(content)
    if isinstance(completion, Sequence):
        return "".join(completion_text(m) for m in completion)
    return "" if completion is None else str(completion)


def extract_reasoning_and_answer(text: str) -> tuple[str | None, str | None]:
    """``(reasoning, answer)`` from the ``<reasoning>…</reasoning><answer>…</answer>`` format.

    Either part is None when its opening tag is missing; an unclosed tag takes the rest of
    the text (a truncated completion still shows what it had). When several answer blocks
    appear, the last one is the answer.
    """
    reasoning = _REASONING.search(text)
    answer = None
    if "<answer>" in text:  # the last answer block wins, as in the seed's extract_xml_answer
        answer = text.rsplit("<answer>", 1)[1].split("</answer>", 1)[0].strip()
    return (reasoning.group(1) if reasoning else None, answer)


def follows_format(text: str) -> bool:
    """Whether the text has a closed reasoning block followed by a closed answer block."""
    return _FORMAT.search(text) is not None


def _words(text: str) -> list[str]:
    return text.split()


def _ngrams(words: Sequence[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]


def distinct_n(texts: Iterable[str], n: int) -> float | None:
    """Distinct n-grams over all n-grams of the batch (word level); None when there are none."""
    total = 0
    seen: set[tuple[str, ...]] = set()
    for text in texts:
        grams = _ngrams(_words(text), n)
        total += len(grams)
        seen.update(grams)
    return len(seen) / total if total else None


def repeated_ngram_ratio(text: str, n: int = 3) -> float:
    """Share of a completion's n-grams that repeat an earlier n-gram of the same completion."""
    grams = _ngrams(_words(text), n)
    if not grams:
        return 0.0
    return 1.0 - len(set(grams)) / len(grams)


def generation_stats(
    generations: Sequence[Any],
    *,
    token_lengths: Sequence[int] | None = None,
    max_tokens: int | None = None,
    extractor: Any = extract_reasoning_and_answer,
) -> dict[str, Any]:
    """The ``generation_metrics`` fields for a batch of completions (strings or conversations)."""
    texts = [completion_text(g) for g in generations]
    count = len(texts)
    if count == 0:
        return {"count": 0}
    lengths = [len(t) for t in texts]
    out: dict[str, Any] = {
        "count": count,
        "mean_length_chars": sum(lengths) / count,
        "min_length_chars": min(lengths),
        "max_length_chars": max(lengths),
        "distinct_1": distinct_n(texts, 1),
        "distinct_2": distinct_n(texts, 2),
        "repeated_ngram_ratio": sum(repeated_ngram_ratio(t) for t in texts) / count,
        "format_adherence": sum(follows_format(t) for t in texts) / count,
        "answer_extraction_rate": sum(bool(extractor(t)[1]) for t in texts) / count,
    }
    if token_lengths:
        out["mean_length_tokens"] = sum(token_lengths) / len(token_lengths)
        if max_tokens:
            out["truncation_rate"] = sum(n >= max_tokens for n in token_lengths) / len(
                token_lengths
            )
    return out


def summarize(values: Iterable[Any]) -> dict[str, float | int | None]:
    """mean, std (sample, n-1, as torch.std), min, max and count of the finite values."""
    finite = [
        float(v)
        for v in values
        if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
    ]
    n = len(finite)
    if n == 0:
        return {"mean": None, "std": None, "min": None, "max": None, "count": 0}
    # Neither raises for the largest finite floats (``x ** 2`` raises OverflowError where
    # ``x * x`` is inf) nor overflows a mean that fits (each term is divided first).
    mean = sum(finite) / n
    if not math.isfinite(mean):
        mean = sum(v / n for v in finite)
    std = math.sqrt(sum((v - mean) * (v - mean) for v in finite) / (n - 1)) if n > 1 else 0.0
    return {"mean": mean, "std": std, "min": min(finite), "max": max(finite), "count": n}
