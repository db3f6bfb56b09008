"""What a GRPO step knows about each completion beyond its rewards: the advantage TRL used,
the columns and metrics reward functions logged (``log_extra`` / ``log_metric``).

TRL hands every reward function ``log_extra`` and ``log_metric``: bound methods of the
``GRPOTrainer`` (``grpo_trainer.py``, ``_calculate_rewards``). Their ``__self__`` is the
trainer, so a wrapped reward function reaches it without any patching. After the reward
functions of a generation batch ran, TRL computes the advantages and appends them, with the
gathered prompts and completions, to ``trainer._logs`` (deques sized to the generation
batch): reading those deques before the next generation gives the exact values TRL used.
Where that is not possible (no trainer, another trainer, the values already gone),
:func:`computed_advantages` applies TRL's formula to the batch's rewards, and the event
says so (``advantage_source``).

Nothing here imports torch or trl.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

#: TRL's ``std + 1e-4`` in the advantage's denominator.
_EPSILON = 1e-4


class Capture:
    """Pass-through ``log_extra`` / ``log_metric`` for one call of a wrapped reward function.

    The function gets callables that call TRL's own first (TRL's table and metrics are not
    changed) and keep a copy of what was logged. A call without them (not from TRL) is
    left as it is.
    """

    __slots__ = ("extra", "metrics")

    def __init__(self) -> None:
        self.extra: dict[str, list[Any]] = {}
        self.metrics: dict[str, list[Any]] = {}

    def wrap(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        """``kwargs`` with the two helpers replaced by capturing ones (a new dict)."""
        log_extra = kwargs.get("log_extra")
        log_metric = kwargs.get("log_metric")
        if not callable(log_extra) and not callable(log_metric):
            return kwargs  # not called by TRL: the function gets what it was given
        out = dict(kwargs)
        if callable(log_extra):
            out["log_extra"] = self._extra_logger(log_extra)
        if callable(log_metric):
            out["log_metric"] = self._metric_logger(log_metric)
        return out

    def _extra_logger(self, inner: Callable[..., Any]) -> Callable[..., Any]:
        def log_extra(column: str, values: Any) -> Any:
            result = inner(column, values)
            with contextlib.suppress(TypeError):  # not iterable: TRL's extend raised already
                self.extra.setdefault(str(column), []).extend(list(values))
            return result

        return log_extra

    def _metric_logger(self, inner: Callable[..., Any]) -> Callable[..., Any]:
        def log_metric(name: str, value: Any) -> Any:
            result = inner(name, value)
            self.metrics.setdefault(str(name), []).append(value)
            return result

        return log_metric


@dataclass(frozen=True, slots=True)
class AdvantageSettings:
    """What TRL's advantage formula depends on, as the trainer (or GRPOConfig) has it."""

    num_generations: int
    scale_rewards: str = "group"
    aggregation: str = "sum_then_normalize"
    weights: tuple[float, ...] | None = None  # by position in reward_funcs; None: all 1

    @classmethod
    def of(cls, source: Any, phase: str = "train") -> AdvantageSettings | None:
        """From a GRPOTrainer or a GRPOConfig (None when it has no ``num_generations``)."""
        generations = getattr(source, "num_generations", None)
        if phase != "train":
            generations = getattr(source, "num_generations_eval", None) or generations
        if type(generations) is not int or generations < 1:
            return None
        scale: Any = getattr(source, "scale_rewards", "group")
        if scale is True or scale is False:  # GRPOConfig's older boolean form
            scale = "group" if scale else "none"
        weights: Any = getattr(source, "reward_weights", None)
        try:
            listed = weights.tolist() if hasattr(weights, "tolist") else weights
            values = None if listed is None else tuple(float(w) for w in listed)
        except (TypeError, ValueError):
            values = None
        return cls(
            generations,
            str(scale),
            str(getattr(source, "multi_objective_aggregation", "sum_then_normalize")),
            values,
        )


def trainer_of(kwargs: Mapping[str, Any]) -> Any:
    """The GRPOTrainer behind a reward call (``log_extra.__self__``), or None."""
    owner = getattr(kwargs.get("log_extra"), "__self__", None)
    logs = getattr(owner, "_logs", None)
    if isinstance(logs, Mapping) and "advantages" in logs and "completion" in logs:
        return owner
    return None


def pending_extra(trainer: Any) -> dict[str, list[Any]]:
    """A copy of what reward functions logged through ``log_extra`` in the current batch so
    far (TRL empties the buffer once the batch's rewards are gathered)."""
    pending = getattr(trainer, "_pending_extra_logs", None)
    if not isinstance(pending, Mapping):
        return {}
    return {str(k): list(v) for k, v in pending.items()}


def _processes(trainer: Any) -> tuple[int, int]:
    accelerator = getattr(trainer, "accelerator", None)
    world = getattr(accelerator, "num_processes", 1)
    rank = getattr(accelerator, "process_index", 0)
    return (world if type(world) is int and world > 0 else 1), (rank if type(rank) is int else 0)


def read_logged(
    trainer: Any, completions: Sequence[Any]
) -> tuple[list[float], dict[str, list[Any]]] | None:
    """The advantages TRL computed for ``completions`` (this rank's batch, in order) and the
    ``log_extra`` columns of its completions table, read from ``trainer._logs`` after the
    batch's generation; None when the deques no longer (or do not yet) end with this batch.

    TRL extends ``_logs`` with the gathered batch (rank 0's part first, then rank 1's ...),
    so this rank's part starts at ``rank * n`` within the last ``n * world`` entries. A
    ``log_extra`` column is read when its deque is as long as the completions' (TRL's
    table needs every column logged for every completion).
    """
    logs = getattr(trainer, "_logs", None)
    if not isinstance(logs, Mapping):
        return None
    logged = logs.get("completion")
    advantages = logs.get("advantages")
    if logged is None or advantages is None or len(logged) != len(advantages):
        return None
    n = len(completions)
    world, rank = _processes(trainer)
    total = n * world
    size = len(logged)
    if n == 0 or size < total:
        return None
    start = size - total + rank * n
    mine = [logged[start + i] for i in range(n)]
    if any(a is not b and a != b for a, b in zip(mine, completions, strict=True)):
        return None
    values = [float(advantages[start + i]) for i in range(n)]
    extra: dict[str, list[Any]] = {}
    columns = logs.get("extra")
    if isinstance(columns, Mapping):
        for column, logged_values in columns.items():
            if len(logged_values) == size:
                extra[str(column)] = [logged_values[start + i] for i in range(n)]
    return values, extra


def _nanmean(values: Sequence[float]) -> float:
    finite = [v for v in values if v == v]
    return sum(finite) / len(finite) if finite else math.nan


def _nanstd(values: Sequence[float]) -> float:
    """TRL's ``nanstd``: Bessel-corrected, NaN when fewer than two values are not NaN."""
    finite = [v for v in values if v == v]
    if len(finite) < 2:
        return math.nan
    mean = sum(finite) / len(finite)
    return math.sqrt(sum((v - mean) ** 2 for v in finite) / (len(finite) - 1))


def computed_advantages(
    scores: Sequence[Sequence[float]],
    weights: Sequence[float],
    num_generations: int,
    scale_rewards: str = "group",
    aggregation: str = "sum_then_normalize",
) -> list[float] | None:
    """TRL's advantages for one whole batch, from every reward function's scores.

    ``scores`` holds one list per reward function in ``reward_funcs`` order (NaN where a
    function abstained), ``weights`` TRL's ``reward_weights`` in the same order. The batch
    must hold whole groups of ``num_generations`` consecutive completions, as TRL's sampler
    lays them out. Computed in double precision (TRL uses float32: the two differ in the
    seventh significant digit). None when the inputs do not describe such a batch.
    """
    if not scores or len(weights) != len(scores) or num_generations < 1:
        return None
    n = len(scores[0])
    if n == 0 or n % num_generations or any(len(s) != n for s in scores):
        return None
    groups = [range(g, g + num_generations) for g in range(0, n, num_generations)]
    unscorable = [all(s[i] != s[i] for s in scores) for i in range(n)]

    def weighted_sum(columns: Sequence[Sequence[float]]) -> list[float]:
        out = []
        for i in range(n):
            if unscorable[i]:
                out.append(math.nan)
            else:
                out.append(
                    sum(w * c[i] for w, c in zip(weights, columns, strict=True) if c[i] == c[i])
                )
        return out

    if aggregation == "sum_then_normalize":
        rewards = weighted_sum(scores)
        means = [0.0] * n
        stds = [0.0] * n
        batch_std = _nanstd(rewards) if n > 1 else 0.0
        for group in groups:
            values = [rewards[i] for i in group]
            mean = _nanmean(values)
            std = _nanstd(values) if num_generations > 1 else 0.0
            for i in group:
                means[i] = mean
                stds[i] = std
        if scale_rewards == "batch":
            stds = [batch_std] * n
        elif scale_rewards not in ("group", "none"):
            return None
        advantages = [r - m for r, m in zip(rewards, means, strict=True)]
        if scale_rewards != "none":
            advantages = [a / (s + _EPSILON) for a, s in zip(advantages, stds, strict=True)]
    elif aggregation == "normalize_then_sum":
        normalized: list[list[float]] = []
        for column in scores:
            out = [0.0] * n
            for group in groups:
                values = [column[i] for i in group]
                mean = _nanmean(values)
                std = _nanstd(values) if num_generations > 1 else 0.0
                for i in group:
                    out[i] = (column[i] - mean) / (std + _EPSILON)
            normalized.append(out)
        rewards = weighted_sum(normalized)
        std = _nanstd(rewards) if n > 1 else 0.0
        mean = _nanmean(rewards)
        advantages = [(r - mean) / (std + _EPSILON) for r in rewards]
    else:
        return None
    # TRL: nan_to_num(nan=0.0) -- unscorable completions (and NaN stds) carry no signal.
    return [a if a == a else 0.0 for a in advantages]
