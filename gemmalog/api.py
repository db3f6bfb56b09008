"""The seed plan's logging API: role loggers and one helper per kind of training event.

Each helper builds its event dict and hands it to the running pipeline: no formatting,
serialization or I/O on the caller's thread. Helpers never raise because of a value they
were given; a value that cannot be converted becomes a marker in the line.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import psutil

from gemmalog._logger import BoundLogger, _Target
from gemmalog._pipeline import Pipeline, _State, current
from gemmalog.processors.derive import GENERATIONS, MAX_TOKENS, TOKEN_LENGTHS
from gemmalog.processors.resources import accelerator_memory_mb, detect_device
from gemmalog.textstats import completion_text, extract_reasoning_and_answer, summarize


def _pipeline_for(role: str) -> tuple[Pipeline, str] | None:
    pipeline = _State.pipeline or current()
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


def log_training_progress(step: int, metrics: Mapping[str, Any], *, phase: str = "train") -> None:
    """One ``metrics`` event: ``metrics`` (name -> number) at ``step``."""
    pipeline = _State.pipeline or current()
    name = pipeline.role_names["metrics"]
    if name is not None:  # None: the metrics logger is above INFO
        pipeline.emit(
            "info",
            {"kind": "metrics", "logger": name, "step": step, "phase": phase, "metrics": metrics},
        )


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
    target = _pipeline_for("model")
    if target is None:
        return
    pipeline, name = target
    text = completion_text(model_output)
    if reasoning is None or answer is None:
        try:
            found_reasoning, found_answer = extractor(text)
        except Exception:
            found_reasoning, found_answer = None, None
        reasoning = found_reasoning if reasoning is None else reasoning
        answer = found_answer if answer is None else answer
    if total_reward is None and rewards:
        numbers = [
            v for v in rewards.values() if isinstance(v, int | float) and not isinstance(v, bool)
        ]
        total_reward = sum(numbers) if len(numbers) == len(rewards) else None
    event: dict[str, Any] = {
        "kind": "model_output",
        "logger": name,
        "phase": phase,
        "sample": sample,
        "question": question,
        "true_answer": true_answer,
        "model_output": text,
        "reasoning": reasoning,
        "answer": answer,
        "rewards": rewards,
        "total_reward": total_reward,
        "correct": correct,
        "length_chars": len(text),
        "length_tokens": length_tokens,
    }
    if step is not None:
        event["step"] = step
    if prompt is not None:
        event["prompt"] = completion_text(prompt)
    if extra:
        event.update(extra)
    pipeline.emit("info", event)


def log_reward(
    reward_name: str,
    values: Sequence[Any],
    samples: Sequence[Any] | None = None,
    *,
    step: int | None = None,
    phase: str = "train",
) -> None:
    """One ``reward`` event: one reward function's ``values`` for a batch of ``samples``."""
    target = _pipeline_for("reward")
    if target is None:
        return
    pipeline, name = target
    event: dict[str, Any] = {
        "kind": "reward",
        "logger": name,
        "phase": phase,
        "reward_fn": reward_name,
        "values": list(values),
        "samples": [str(s) for s in samples]
        if samples is not None
        else [str(i) for i in range(len(values))],
    }
    if step is not None:
        event["step"] = step
    pipeline.emit("info", event)


def log_reward_metrics(
    step: int, rewards_dict: Mapping[str, Sequence[Any]], *, phase: str = "train"
) -> None:
    """One ``reward_summary`` event: mean, std, min, max and count per reward function."""
    target = _pipeline_for("reward")
    if target is None:
        return
    pipeline, name = target
    stats = {str(fn): summarize(values) for fn, values in rewards_dict.items()}
    pipeline.emit(
        "info",
        {"kind": "reward_summary", "logger": name, "step": step, "phase": phase, "stats": stats},
    )


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
    target = _pipeline_for("metrics")
    if target is None:
        return
    pipeline, name = target
    event: dict[str, Any] = {
        "kind": "generation_metrics",
        "logger": name,
        "step": step,
        "phase": phase,
        GENERATIONS: [completion_text(g) for g in generations],
    }
    if token_lengths:
        event[TOKEN_LENGTHS] = list(token_lengths)
    if max_tokens:
        event[MAX_TOKENS] = max_tokens
    pipeline.emit("info", event)


_PROCESS: psutil.Process | None = None


def memory_snapshot() -> dict[str, Any]:
    """CPU RSS, process CPU percent and CUDA/MPS memory (when torch is in use), in MiB."""
    global _PROCESS
    if _PROCESS is None:
        _PROCESS = psutil.Process()
    out: dict[str, Any] = {"device": detect_device()}
    try:
        out["cpu_rss_mb"] = _PROCESS.memory_info().rss / (1024 * 1024)
        out["cpu_percent"] = _PROCESS.cpu_percent(interval=None)
    except Exception:
        pass
    out.update(accelerator_memory_mb())
    return out


def log_memory_usage(step: int | None = None, **extra: Any) -> dict[str, Any]:
    """One ``system`` event with memory and device now; returns the values it logged."""
    values = memory_snapshot()
    values.update(extra)
    target = _pipeline_for("system")
    if target is not None:
        pipeline, name = target
        event: dict[str, Any] = {"kind": "system", "logger": name, "event": "memory", **values}
        if step is not None:
            event["step"] = step
        pipeline.emit("info", event)
    return values
