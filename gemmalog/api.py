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
from gemmalog._event_builders import (
    as_step,
    generation_metrics_event,
    metric_values,
    model_output_event,
    noted,
    reward_event,
    reward_summary_event,
)
from gemmalog._logger import BoundLogger, _Target
from gemmalog.engine._pipeline import Pipeline
from gemmalog.events import ENVELOPE, KINDS, as_user_fields
from gemmalog.lifecycle._lifecycle import current
from gemmalog.lifecycle._state import running
from gemmalog.notices import warn_once
from gemmalog.processors.conform import declared_fields
from gemmalog.processors.resources import accelerator_memory_mb, detect_device, process_memory
from gemmalog.processors.sanitize import flat_finite_numbers
from gemmalog.processors.textstats import extract_reasoning_and_answer

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
        problems = [problem] if problem is not None else []
        # Keywords are data: a field named like one only gemmalog sets is kept, renamed.
        fields = as_user_fields(fields, keep=_MESSAGE)
        if declared is not None and kind != "log":  # a log event's fields are free-form
            fields = declared_fields(kind, fields, problems)
        event: dict[str, Any] = {
            **fields,
            "kind": kind if declared is not None else "log",
            "logger": pipeline.roles[role],
        }
        if declared is None:
            event["kind_"] = _coerce.text(kind)
        if problems:
            message = fields.get("event", kind)
            event["event"] = _coerce.with_problems(_coerce.text(message), problems)
            if problem is not None:
                warn_once(f"log_event: {problem}", key=f"log_event:{problem}")
            else:
                noted("log_event", problems)
        pipeline.emit(level if level in LEVEL_METHODS else "info", event, force=kind in _FORCED)
    except ValueError:
        if _strict():
            raise
    except Exception as exc:
        _failed("log_event", exc)


_MESSAGE = frozenset({"event"})
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
            event["step"] = as_step(step, problems)
            event["metrics"] = metric_values(metrics, problems)
            if problems:
                event["event"] = _coerce.with_problems("metrics", problems)
                noted("log_training_progress", problems)
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
        values.update(as_user_fields(extra))
        target = _pipeline_for("system")
        if target is not None:
            pipeline, name = target
            event: dict[str, Any] = {"kind": "system", "logger": name, "event": "memory", **values}
            if step is not None:
                problems: list[str] = []
                event["step"] = as_step(step, problems)
                if problems:
                    event["event"] = _coerce.with_problems("memory", problems)
            pipeline.emit("info", event)
    except Exception as exc:
        _failed("log_memory_usage", exc)
    return values
