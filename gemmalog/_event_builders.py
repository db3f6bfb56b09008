"""The event dicts the seed plan's helpers emit, built from whatever they were given.

Every field gets the type its kind declares (``gemmalog.events``), so the views can read the
line: an argument of the wrong type becomes a value of the declared type and a problem text
for the event's message. Builders never touch the pipeline: :mod:`gemmalog.api` emits what
they build on the caller's thread, the TRL integration on the listener thread.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from gemmalog import _coerce
from gemmalog.events import as_user_fields
from gemmalog.notices import warn_once
from gemmalog.processors.conform import as_declared
from gemmalog.processors.derive import GENERATIONS, MAX_TOKENS, TOKEN_LENGTHS
from gemmalog.processors.sanitize import flat_finite_numbers
from gemmalog.processors.textstats import completion_text, extract_reasoning_and_answer, summarize


def noted(helper: str, problems: list[str]) -> None:
    # One notice per helper: the details of each call are in its event's message.
    warn_once(
        f"{helper}() was given values it could not log as they are; the event's message "
        f"says which (first: {problems[0][:80]})",
        key=f"noted:{helper}",
    )


def as_step(step: Any, problems: list[str]) -> int | None:
    """The step as an int (numpy/torch integers too); None and a problem for anything else.

    An int of any size is kept: beyond 64 bits the JSONL writes it as text (the views read
    a NULL step) and TensorBoard leaves its values out, with one notice."""
    if step is None or type(step) is int:
        return step
    if isinstance(step, int):  # a subclass (bool too): its value, not its methods' answers
        return int.__int__(step)
    try:
        if not isinstance(step, str | bytes) and float(step) == int(step):
            return int(step)
    except Exception:
        pass
    problems.append(f"step {_coerce.text(step)[:40]!r} is not an integer")
    return None


def as_integer(value: Any, name: str, problems: list[str]) -> int | None:
    """An ``INTEGER`` field (32-bit): the int, or None and a problem for anything else."""
    if value is None or (type(value) is int and -(2**31) <= value < 2**31):
        return value
    return as_declared(name, "INTEGER", value, problems)  # type: ignore[no-any-return]


def metric_values(metrics: Any, problems: list[str]) -> dict[str, Any]:
    """name -> number (None for a value that is no number, said in ``problems``)."""
    values, problem = _coerce.mapping(metrics)
    if problem:
        problems.append(problem)
    out: dict[str, Any] = {}
    for key, value in (values or {}).items():
        number = _coerce.number(value)
        if number is None and value is not None:
            problems.append(f"metric {key!r} is not a number")
        out[key] = number
    return out


def model_output_event(
    name: str,
    /,
    question: Any,
    true_answer: Any,
    model_output: Any,
    reasoning: str | None = None,
    *,
    answer: str | None = None,
    rewards: Mapping[str, Any] | None = None,
    correct: bool | None = None,
    step: int | None = None,
    phase: str = "train",
    sample: int | None = None,
    prompt: Any = None,
    total_reward: float | None = None,
    length_tokens: int | None = None,
    extractor: Callable[[str], tuple[str | None, str | None]] = extract_reasoning_and_answer,
    **extra: Any,
) -> dict[str, Any]:
    """The event :func:`log_model_output` emits for logger ``name``, before the caller's
    processors (the reward collector builds it on the listener thread). ``name`` is
    positional-only: an ``extra`` field may be called ``name``."""
    problems: list[str] = []
    text = completion(model_output, problems)
    if reasoning is None or answer is None:
        reasoning, answer = _extracted(text, reasoning, answer, extractor)
    scores = _reward_scores(rewards, problems)
    if total_reward is None and scores:
        numbers = [v for v in scores.values() if type(v) is float or type(v) is int]
        total_reward = sum(numbers) if len(numbers) == len(scores) else None
    event: dict[str, Any] = {
        "kind": "model_output",
        "logger": name,
        "phase": phase if type(phase) is str else _coerce.text(phase),
        "sample": as_integer(sample, "sample", problems),
        "question": plain_text(question),
        "true_answer": plain_text(true_answer),
        "model_output": text,
        "reasoning": plain_text(reasoning),
        "answer": plain_text(answer),
        "rewards": scores,
        "total_reward": _coerce.number(total_reward),
        "correct": correct if correct is None or type(correct) is bool else as_flag(correct),
        "length_chars": len(text),
        "length_tokens": as_integer(length_tokens, "length_tokens", problems),
    }
    if step is not None:
        event["step"] = as_step(step, problems)
    if prompt is not None:
        event["prompt"] = completion(prompt, problems)
    if extra:  # keywords are data: one named like a field only gemmalog sets is renamed
        event.update(as_user_fields(extra))
        if not _TYPED_EXTRA.isdisjoint(extra):
            _typed_extra(event, problems)
    if problems:
        event["event"] = _coerce.with_problems("model_output", problems)
        noted("log_model_output", problems)
    return event


def _extracted(
    text: str,
    reasoning: str | None,
    answer: str | None,
    extractor: Callable[[str], tuple[str | None, str | None]],
) -> tuple[str | None, str | None]:
    """The reasoning and answer given, the missing one(s) found by ``extractor`` in ``text``
    (none when it fails)."""
    try:
        found_reasoning, found_answer = extractor(text)
    except Exception:
        found_reasoning, found_answer = None, None
    return (
        found_reasoning if reasoning is None else reasoning,
        found_answer if answer is None else answer,
    )


def _reward_scores(rewards: Any, problems: list[str]) -> dict[str, Any] | None:
    """A model output's ``rewards``: function name -> number (None for a value that is no
    number), or None; what could not be kept is said in ``problems``."""
    scores, problem = _coerce.mapping(rewards)
    if problem:
        problems.append(f"rewards: {problem}")
    if scores is not None and not flat_finite_numbers(scores):
        scores = metric_values(scores, problems)
    return scores


#: model_output fields the TRL integration passes as keywords: typed here like the others.
_TYPED_EXTRA = frozenset({"advantage", "advantage_source", "prompt_turns"})


def _typed_extra(event: dict[str, Any], problems: list[str]) -> None:
    if "advantage" in event:
        value = event["advantage"]
        number = _coerce.number(value)
        if number is None and value is not None:
            problems.append("advantage is not a number")
        event["advantage"] = number
    if "advantage_source" in event:
        event["advantage_source"] = plain_text(event["advantage_source"])
    if "prompt_turns" in event:
        turns = event["prompt_turns"]
        event["prompt_turns"] = (
            turns if turns is None or type(turns) is int else as_step(turns, problems)
        )


def plain_text(value: Any) -> str | None:
    """A VARCHAR field: None stays None, a str stays, anything else becomes its text."""
    return value if value is None or type(value) is str else _coerce.text(value)


def as_flag(value: Any) -> bool | None:
    try:
        return bool(value)
    except Exception:
        return None


def completion(value: Any, problems: list[str]) -> str:
    if type(value) is str:
        return value
    try:
        return completion_text(value)
    except Exception as exc:
        problems.append(f"text of a {_coerce.type_name(value)} raised {_coerce.type_name(exc)}")
        return _coerce.text(value)


def reward_event(
    name: str,
    reward_name: str,
    values: Sequence[Any],
    samples: Sequence[Any] | None = None,
    step: int | None = None,
    phase: str = "train",
) -> dict[str, Any]:
    """The event :func:`log_reward` emits for logger ``name``, before the caller's processors."""
    problems: list[str] = []
    numbers, problem = _coerce.numbers(values)
    if problem:
        problems.append(f"values: {problem}")
    ids = _coerce.sequence(samples) if samples is not None else None
    if samples is not None and ids is None:
        problems.append(f"samples: expected a sequence, got {_coerce.type_name(samples)}")
    event: dict[str, Any] = {
        "kind": "reward",
        "logger": name,
        "phase": phase if type(phase) is str else _coerce.text(phase),
        "reward_fn": _coerce.text(reward_name),
        "values": numbers,
        "samples": [_coerce.text(s) for s in ids]
        if ids is not None
        else [str(i) for i in range(len(numbers))],
    }
    if step is not None:
        event["step"] = as_step(step, problems)
    if problems:
        event["event"] = _coerce.with_problems("reward", problems)
        noted("log_reward", problems)
    return event


def reward_summary_event(
    name: str, step: int, rewards_dict: Mapping[str, Sequence[Any]], phase: str = "train"
) -> dict[str, Any]:
    """The event :func:`log_reward_metrics` emits for logger ``name``, before the caller's
    processors."""
    problems: list[str] = []
    per_fn, problem = _coerce.mapping(rewards_dict)
    if problem:
        problems.append(problem)
    stats = {}
    for fn, values in (per_fn or {}).items():
        numbers, problem = _coerce.numbers(values)
        if problem and not numbers:
            problems.append(f"{fn}: {problem}")
            continue
        stats[fn] = summarize(numbers)
    event: dict[str, Any] = {
        "kind": "reward_summary",
        "logger": name,
        "step": as_step(step, problems),
        "phase": phase if type(phase) is str else _coerce.text(phase),
        "stats": stats,
    }
    if problems:
        event["event"] = _coerce.with_problems("reward_summary", problems)
        noted("log_reward_metrics", problems)
    return event


def generation_metrics_event(
    name: str,
    step: int,
    generations: Sequence[Any],
    *,
    phase: str = "train",
    token_lengths: Sequence[int] | None = None,
    max_tokens: int | None = None,
) -> dict[str, Any]:
    """The event :func:`log_generation_metrics` emits for logger ``name`` (raw texts, which
    the listener turns into the statistics), before the caller's processors."""
    problems: list[str] = []
    texts = _coerce.sequence(generations)
    if texts is None:
        problems.append(f"generations: expected a sequence, got {_coerce.type_name(generations)}")
        texts = []
    event: dict[str, Any] = {
        "kind": "generation_metrics",
        "logger": name,
        "step": as_step(step, problems),
        "phase": phase if type(phase) is str else _coerce.text(phase),
        GENERATIONS: [completion(g, problems) for g in texts],
    }
    if token_lengths:
        lengths = _coerce.sequence(token_lengths)
        if lengths is None:
            problems.append("token_lengths: expected a sequence")
        else:
            ints = [as_step(n, problems) for n in lengths]
            event[TOKEN_LENGTHS] = [n for n in ints if n is not None]
    if max_tokens:
        event[MAX_TOKENS] = max_tokens if type(max_tokens) is int else as_step(max_tokens, problems)
    if problems:
        event["event"] = _coerce.with_problems("generation_metrics", problems)
        noted("log_generation_metrics", problems)
    return event
