"""The seed plan's logging API: role loggers and one helper per kind of training event.

Each helper builds its event dict and hands it to the running pipeline: no formatting,
serialization or I/O on the caller's thread. Helpers never raise, whatever they are given:
an argument of the wrong type is replaced by a value of its declared type (so the views
can read the line), what was not kept is said in the event's message, and gemmalog says
so once on stderr. A failure nobody foresaw still leaves a ``log`` line naming the helper.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from gemmalog import _coerce
from gemmalog._lifecycle import current
from gemmalog._logger import BoundLogger, _Target
from gemmalog._pipeline import Pipeline
from gemmalog._state import running
from gemmalog.events import ENVELOPE, KINDS
from gemmalog.notices import warn_once
from gemmalog.processors.derive import GENERATIONS, MAX_TOKENS, TOKEN_LENGTHS
from gemmalog.processors.resources import accelerator_memory_mb, detect_device, process_memory
from gemmalog.processors.sanitize import flat_finite_numbers
from gemmalog.processors.textstats import completion_text, extract_reasoning_and_answer, summarize

if TYPE_CHECKING:
    pass


def _pipeline_for(role: str) -> tuple[Pipeline, str] | None:
    pipeline = running() or current()
    name = pipeline.role_names[role]
    return None if name is None else (pipeline, name)


class _RoleTarget(_Target):
    """A role logger resolves its name from the running configuration at call time."""

    __slots__ = ("role",)

    def __init__(self, role: str) -> None:
        super().__init__("")
        self.role = role

    @property
    def name(self) -> str:
        return current().roles[self.role]


def _role_logger(role: str) -> BoundLogger:
    return BoundLogger(_RoleTarget(role), processors=(), context={})


def get_training_logger() -> BoundLogger:
    """The ``training`` role logger (``logging.training`` in the seed configuration)."""
    return _role_logger("training")


def get_model_logger() -> BoundLogger:
    """The ``model`` role logger: model outputs go through it."""
    return _role_logger("model")


def get_reward_logger() -> BoundLogger:
    """The ``reward`` role logger: per-function reward values and summaries."""
    return _role_logger("reward")


def get_metrics_logger() -> BoundLogger:
    """The ``metrics`` role logger: training progress and generation metrics."""
    return _role_logger("metrics")


def get_system_logger() -> BoundLogger:
    """The ``system`` role logger: run start/end, memory and device."""
    return _role_logger("system")


#: Fields every kind may carry besides its own (the envelope and what the caller binds).
_ENVELOPE_NAMES = frozenset(f.name for f in ENVELOPE)


def _strict() -> bool:
    return os.environ.get("GEMMALOG_STRICT", "") not in ("", "0")


def log_event(kind: str, /, *, level: str = "info", **fields: Any) -> None:
    """One event of a declared kind (``gemmalog.events.KINDS``), through its role's logger.

    The way integrations and extensions emit typed events: ``log_event("run_start",
    model_name=..., training_args=...)``. A kind that is not declared, or a field its kind
    does not declare (``log`` events take any field), is an error when ``GEMMALOG_STRICT=1``
    (set it in tests) and otherwise a marker in the line plus one notice on stderr: the
    event is still written, never raised into training.
    """
    try:
        declared = KINDS.get(kind) if type(kind) is str else None
        problem = None
        if declared is None:
            problem = f"unknown event kind {_coerce.text(kind)!r}; declared: {', '.join(KINDS)}"
        elif kind != "log":
            unknown = sorted(set(fields) - set(declared.field_names) - _ENVELOPE_NAMES)
            if unknown:
                problem = f"{kind} declares no field {', '.join(unknown)}"
        if problem is not None and _strict():
            raise ValueError(problem)
        pipeline = running() or current()
        role = declared.role if declared is not None else "training"
        event: dict[str, Any] = {
            **fields,
            "kind": kind if declared is not None else "log",
            "logger": pipeline.roles[role],
        }
        if declared is None:
            event["kind_"] = _coerce.text(kind)
        if problem is not None:
            event["event"] = _coerce.with_problems(str(fields.get("event", kind)), [problem])
            warn_once(f"log_event: {problem}", key=f"log_event:{problem}")
        pipeline.emit(level if level in LEVEL_METHODS else "info", event, force=kind in _FORCED)
    except ValueError:
        if _strict():
            raise
    except Exception as exc:
        _failed("log_event", exc)


#: Kinds that bypass the queue bound (never dropped).
_FORCED = frozenset({"run_start", "run_end"})
LEVEL_METHODS = frozenset({"debug", "info", "warning", "error", "critical"})


def _failed(helper: str, exc: BaseException) -> None:
    """What a helper does instead of raising: one notice, and a line naming the helper."""
    name = _coerce.type_name(exc)
    warn_once(
        f"{helper}() could not log its call ({name}); the rest of the run is unaffected",
        key=f"failed:{helper}",
    )
    try:
        pipeline = running() or current()
        pipeline.emit(
            "warning",
            {
                "kind": "log",
                "logger": "gemmalog",
                "event": f"{helper}() could not log its call: {name}",
            },
        )
    except Exception:
        pass


def _noted(helper: str, problems: list[str]) -> None:
    # One notice per helper: the details of each call are in its event's message.
    warn_once(
        f"{helper}() was given values it could not log as they are; the event's message "
        f"says which (first: {problems[0][:80]})",
        key=f"noted:{helper}",
    )


def _step(step: Any, problems: list[str]) -> int | None:
    """The step as an int (numpy/torch integers too); None and a problem for anything else."""
    if step is None or type(step) is int:
        return step
    try:
        if float(step) == int(step):
            return int(step)
    except Exception:
        pass
    problems.append(f"step {_coerce.text(step)[:40]!r} is not an integer")
    return None


def _metric_values(metrics: Any, problems: list[str]) -> dict[str, Any]:
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


def log_training_progress(step: int, metrics: Mapping[str, Any], *, phase: str = "train") -> None:
    """One ``metrics`` event: ``metrics`` (name -> number) at ``step``."""
    try:
        pipeline = running() or current()
        name = pipeline.role_names["metrics"]
        if name is None:  # the metrics logger is above INFO
            return
        event = {
            "kind": "metrics",
            "logger": name,
            "step": step,
            "phase": phase,
            "metrics": metrics,
        }
        if type(step) is not int or type(metrics) is not dict or not flat_finite_numbers(metrics):
            problems: list[str] = []
            event["step"] = _step(step, problems)
            event["metrics"] = _metric_values(metrics, problems)
            if problems:
                event["event"] = _coerce.with_problems("metrics", problems)
                _noted("log_training_progress", problems)
        if type(phase) is not str:
            event["phase"] = _coerce.text(phase)
        pipeline.emit("info", event)
    except Exception as exc:
        _failed("log_training_progress", exc)


def log_model_output(
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
) -> None:
    """One ``model_output`` event: a completion with its question, answers and reward scores.

    ``model_output`` may be a string or a conversation (list of messages); ``reasoning`` and
    ``answer`` are extracted from it with ``extractor`` when not given. ``total_reward``
    defaults to the sum of ``rewards``.
    """
    try:
        target = _pipeline_for("model")
        if target is None:
            return
        pipeline, name = target
        event = model_output_event(
            name,
            question,
            true_answer,
            model_output,
            reasoning,
            answer=answer,
            rewards=rewards,
            correct=correct,
            step=step,
            phase=phase,
            sample=sample,
            prompt=prompt,
            total_reward=total_reward,
            length_tokens=length_tokens,
            extractor=extractor,
            **extra,
        )
        pipeline.emit("info", event)
    except Exception as exc:
        _failed("log_model_output", exc)


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
    text = _completion(model_output, problems)
    if reasoning is None or answer is None:
        try:
            found_reasoning, found_answer = extractor(text)
        except Exception:
            found_reasoning, found_answer = None, None
        reasoning = found_reasoning if reasoning is None else reasoning
        answer = found_answer if answer is None else answer
    scores, problem = _coerce.mapping(rewards)
    if problem:
        problems.append(f"rewards: {problem}")
    if scores is not None and not flat_finite_numbers(scores):
        scores = _metric_values(scores, problems)
    if total_reward is None and scores:
        numbers = [v for v in scores.values() if type(v) is float or type(v) is int]
        total_reward = sum(numbers) if len(numbers) == len(scores) else None
    event: dict[str, Any] = {
        "kind": "model_output",
        "logger": name,
        "phase": phase if type(phase) is str else _coerce.text(phase),
        "sample": sample if sample is None or type(sample) is int else _step(sample, problems),
        "question": _plain_text(question),
        "true_answer": _plain_text(true_answer),
        "model_output": text,
        "reasoning": _plain_text(reasoning),
        "answer": _plain_text(answer),
        "rewards": scores,
        "total_reward": _coerce.number(total_reward),
        "correct": correct if correct is None or type(correct) is bool else _flag(correct),
        "length_chars": len(text),
        "length_tokens": length_tokens
        if length_tokens is None or type(length_tokens) is int
        else _step(length_tokens, problems),
    }
    if step is not None:
        event["step"] = step if type(step) is int else _step(step, problems)
    if prompt is not None:
        event["prompt"] = _completion(prompt, problems)
    if extra:
        event.update(extra)
    if problems:
        event["event"] = _coerce.with_problems("model_output", problems)
        _noted("log_model_output", problems)
    return event


def _plain_text(value: Any) -> str | None:
    """A VARCHAR field: None stays None, a str stays, anything else becomes its text."""
    return value if value is None or type(value) is str else _coerce.text(value)


def _flag(value: Any) -> bool | None:
    try:
        return bool(value)
    except Exception:
        return None


def _completion(value: Any, problems: list[str]) -> str:
    if type(value) is str:
        return value
    try:
        return completion_text(value)
    except Exception as exc:
        problems.append(f"text of a {_coerce.type_name(value)} raised {_coerce.type_name(exc)}")
        return _coerce.text(value)


def log_reward(
    reward_name: str,
    values: Sequence[Any],
    samples: Sequence[Any] | None = None,
    *,
    step: int | None = None,
    phase: str = "train",
) -> None:
    """One ``reward`` event: one reward function's ``values`` for a batch of ``samples``.

    ``values`` must be a sequence (list, tuple, array, tensor); an iterator or generator is
    not consumed (it is logged as no values, with a notice).
    """
    try:
        target = _pipeline_for("reward")
        if target is None:
            return
        pipeline, name = target
        pipeline.emit("info", reward_event(name, reward_name, values, samples, step, phase))
    except Exception as exc:
        _failed("log_reward", exc)


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
        event["step"] = step if type(step) is int else _step(step, problems)
    if problems:
        event["event"] = _coerce.with_problems("reward", problems)
        _noted("log_reward", problems)
    return event


def log_reward_metrics(
    step: int, rewards_dict: Mapping[str, Sequence[Any]], *, phase: str = "train"
) -> None:
    """One ``reward_summary`` event: mean, std, min, max and count per reward function.

    Each value of ``rewards_dict`` is the list of one function's rewards; a function whose
    value is not a sequence is left out of the summary, with a notice.
    """
    try:
        target = _pipeline_for("reward")
        if target is None:
            return
        pipeline, name = target
        pipeline.emit("info", reward_summary_event(name, step, rewards_dict, phase))
    except Exception as exc:
        _failed("log_reward_metrics", exc)


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
        "step": step if type(step) is int else _step(step, problems),
        "phase": phase if type(phase) is str else _coerce.text(phase),
        "stats": stats,
    }
    if problems:
        event["event"] = _coerce.with_problems("reward_summary", problems)
        _noted("log_reward_metrics", problems)
    return event


def log_generation_metrics(
    step: int,
    generations: Sequence[Any],
    *,
    phase: str = "train",
    token_lengths: Sequence[int] | None = None,
    max_tokens: int | None = None,
) -> None:
    """One ``generation_metrics`` event: lengths, distinct-n, repetition and format adherence.

    The caller only hands over the texts; the statistics are computed on the listener
    thread (:class:`~gemmalog.processors.derive.DeriveGenerationStats`).
    """
    try:
        target = _pipeline_for("metrics")
        if target is None:
            return
        pipeline, name = target
        event = generation_metrics_event(
            name, step, generations, phase=phase, token_lengths=token_lengths, max_tokens=max_tokens
        )
        pipeline.emit("info", event)
    except Exception as exc:
        _failed("log_generation_metrics", exc)


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
        "step": step if type(step) is int else _step(step, problems),
        "phase": phase if type(phase) is str else _coerce.text(phase),
        GENERATIONS: [_completion(g, problems) for g in texts],
    }
    if token_lengths:
        lengths = _coerce.sequence(token_lengths)
        if lengths is None:
            problems.append("token_lengths: expected a sequence")
        else:
            ints = [_step(n, problems) for n in lengths]
            event[TOKEN_LENGTHS] = [n for n in ints if n is not None]
    if max_tokens:
        event[MAX_TOKENS] = max_tokens if type(max_tokens) is int else _step(max_tokens, problems)
    if problems:
        event["event"] = _coerce.with_problems("generation_metrics", problems)
        _noted("log_generation_metrics", problems)
    return event


def memory_snapshot() -> dict[str, Any]:
    """CPU RSS, process CPU percent and CUDA/MPS memory (when torch is in use), in MiB."""
    out: dict[str, Any] = {"device": detect_device()}
    out.update(process_memory())
    out.update(accelerator_memory_mb())
    return out


def log_memory_usage(step: int | None = None, **extra: Any) -> dict[str, Any]:
    """One ``system`` event with memory and device now; returns the values it logged."""
    values: dict[str, Any] = {}
    try:
        values = memory_snapshot()
        values.update(extra)
        target = _pipeline_for("system")
        if target is not None:
            pipeline, name = target
            event: dict[str, Any] = {"kind": "system", "logger": name, "event": "memory", **values}
            if step is not None:
                problems: list[str] = []
                event["step"] = step if type(step) is int else _step(step, problems)
                if problems:
                    event["event"] = _coerce.with_problems("memory", problems)
            pipeline.emit("info", event)
    except Exception as exc:
        _failed("log_memory_usage", exc)
    return values
