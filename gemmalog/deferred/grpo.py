"""GRPO's advantage formula, for a reward batch whose trainer did not give its advantages.

TRL computes each completion's advantage from every reward function's scores after the
batch's reward functions ran (``GRPOTrainer._generate_and_score_completions``). Where the
trainer's own values cannot be read (no trainer, another trainer, the values already gone),
a reward batch's expansion applies the same formula to the scores it was handed, and the
event says so (``advantage_source: "computed"``).

Nothing here imports torch or trl.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

#: TRL's ``std + 1e-4`` in the advantage's denominator.
_EPSILON = 1e-4


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
    formula = _Formula(weights, num_generations, n, scores)
    if aggregation == "sum_then_normalize":
        advantages = formula.sum_then_normalize(scores, scale_rewards)
    elif aggregation == "normalize_then_sum":
        advantages = formula.normalize_then_sum(scores)
    else:
        return None
    if advantages is None:
        return None
    # TRL: nan_to_num(nan=0.0) -- unscorable completions (and NaN stds) carry no signal.
    return [a if a == a else 0.0 for a in advantages]


class _Formula:
    """The two aggregations of TRL's formula over one batch of ``n`` completions."""

    __slots__ = ("groups", "n", "num_generations", "unscorable", "weights")

    def __init__(
        self,
        weights: Sequence[float],
        num_generations: int,
        n: int,
        scores: Sequence[Sequence[float]],
    ) -> None:
        self.weights = weights
        self.num_generations = num_generations
        self.n = n
        self.groups = [range(g, g + num_generations) for g in range(0, n, num_generations)]
        # Scored by no function at all: NaN, whatever the weights.
        self.unscorable = [all(s[i] != s[i] for s in scores) for i in range(n)]

    def weighted_sum(self, columns: Sequence[Sequence[float]]) -> list[float]:
        out = []
        for i in range(self.n):
            if self.unscorable[i]:
                out.append(math.nan)
            else:
                out.append(
                    sum(
                        w * c[i] for w, c in zip(self.weights, columns, strict=True) if c[i] == c[i]
                    )
                )
        return out

    def sum_then_normalize(
        self, scores: Sequence[Sequence[float]], scale_rewards: str
    ) -> list[float] | None:
        n = self.n
        rewards = self.weighted_sum(scores)
        means = [0.0] * n
        stds = [0.0] * n
        batch_std = _nanstd(rewards) if n > 1 else 0.0
        for group in self.groups:
            values = [rewards[i] for i in group]
            mean = _nanmean(values)
            std = _nanstd(values) if self.num_generations > 1 else 0.0
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
        return advantages

    def normalize_then_sum(self, scores: Sequence[Sequence[float]]) -> list[float]:
        normalized: list[list[float]] = []
        for column in scores:
            out = [0.0] * self.n
            for group in self.groups:
                values = [column[i] for i in group]
                mean = _nanmean(values)
                std = _nanstd(values) if self.num_generations > 1 else 0.0
                for i in group:
                    out[i] = (column[i] - mean) / (std + _EPSILON)
            normalized.append(out)
        rewards = self.weighted_sum(normalized)
        std = _nanstd(rewards) if self.n > 1 else 0.0
        mean = _nanmean(rewards)
        return [(r - mean) / (std + _EPSILON) for r in rewards]
