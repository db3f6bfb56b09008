"""Live mode's rules (``doctor.live: true``): the cheap checks on a rolling window.

:class:`LiveChecks` watches the training ``metrics`` events one at a time, while training
runs, and hands each finding, the first time its rule fires, to ``found``: the live
doctor's sink (:mod:`gemmalog.sinks.live_doctor`) prints it to stderr and appends it to
``doctor.live.jsonl``. The rules are the batch checks' (same names, thresholds and
severities) restricted to what one metric stream shows: ``non_finite``,
``metric_outliers``, ``entropy_collapse``, ``zero_signal`` and ``length_clipping``. Each
costs O(``outlier_window``) per step; ``gemmalog doctor`` after the run applies every check.
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from collections.abc import Callable
from typing import Any

from gemmalog.config.model import DoctorConfig
from gemmalog.doctor._core import REGISTRY, Finding, num
from gemmalog.events import NON_FINITE

#: How a sanitized event spells a non-finite float (the JSONL's strings); float() reads them.
_NON_FINITE = frozenset(NON_FINITE)


class LiveChecks:
    """The live rules over one run's ``metrics`` events; each finding is reported once.

    :meth:`observe` takes one ``metrics`` event (its ``metrics`` a dict) and calls ``found``
    with each finding as its rule fires (that check's first, unless its severity is ``off``).
    """

    __slots__ = (
        "_clipped",
        "_entropy",
        "_first_entropy",
        "_prior",
        "_reported",
        "_window",
        "_zero",
        "config",
        "found",
        "run",
    )

    def __init__(self, config: DoctorConfig, run: str, found: Callable[[Finding], None]) -> None:
        self.config = config
        self.run = run
        self.found = found
        self._window = window = max(config.min_steps, 3)
        self._prior: dict[str, deque[float]] = {
            name: deque(maxlen=config.outlier_window) for name in config.outlier_metrics
        }
        self._entropy: deque[tuple[int, float]] = deque(maxlen=window)
        self._first_entropy: list[float] = []
        self._clipped: deque[tuple[int, float]] = deque(maxlen=window)
        self._zero: list[int] = []  # the current stretch of zero-signal steps
        self._reported: set[tuple[str, str]] = set()

    # -- rules ------------------------------------------------------------------------

    def observe(self, event: dict[str, Any]) -> None:
        step = event.get("step")
        if not isinstance(step, int):
            return
        phase = event.get("phase") or "train"
        values = {
            k: float(v)
            for k, v in event["metrics"].items()
            if (isinstance(v, int | float) and not isinstance(v, bool))
            or (isinstance(v, str) and v in _NON_FINITE)
        }
        for name, value in values.items():
            if not math.isfinite(value):
                self._report(
                    "non_finite",
                    f"{phase}/{name}",
                    step,
                    f"{name} ({phase}) is {value} at step {step}: once a NaN reaches the "
                    "weights, every later step is lost",
                    {"metric": name, "phase": phase, "value": value},
                )
        if phase == "train":
            self._train(step, values)

    def _train(self, step: int, values: dict[str, float]) -> None:
        """The rules over the training phase's steps."""
        for name, prior in self._prior.items():
            current = values.get(name)
            if current is not None and math.isfinite(current):
                self._spike(name, step, current, prior)
                prior.append(current)
        if (entropy := values.get("entropy")) is not None and math.isfinite(entropy):
            self._entropy.append((step, entropy))
            if len(self._first_entropy) < self._window:
                self._first_entropy.append(entropy)
            self._entropy_rule(step)
        if (zero := values.get("frac_reward_zero_std")) is not None:
            self._zero_signal(step, zero)
        if (clipped := values.get("completions/clipped_ratio")) is not None:
            self._clipping(step, clipped)

    def _zero_signal(self, step: int, zero: float) -> None:
        cfg = self.config
        self._zero = [*self._zero, step] if zero >= cfg.zero_std_share else []
        if len(self._zero) == cfg.zero_std_steps:
            self._report(
                "zero_signal",
                str(self._zero[0]),
                step,
                f"for {len(self._zero)} steps ({self._zero[0]}–{step}) at least "
                f"{100 * cfg.zero_std_share:.0f}% of the prompt groups had all completions "
                "scored the same: their advantages are zero",
                {"frac_reward_zero_std": zero},
                steps=list(self._zero),
            )

    def _clipping(self, step: int, clipped: float) -> None:
        self._clipped.append((step, clipped))
        if len(self._clipped) == self._window:
            mean = sum(v for _, v in self._clipped) / len(self._clipped)
            if mean >= self.config.clipped_ratio:
                first = self._clipped[0][0]
                self._report(
                    "length_clipping",
                    "",
                    step,
                    f"{100 * mean:.0f}% of the completions of steps {first}–{step} were "
                    "cut at max_completion_length",
                    {"mean_clipped_ratio": mean},
                    steps=[s for s, _ in self._clipped],
                )

    def _spike(self, name: str, step: int, value: float, prior: deque[float]) -> None:
        cfg = self.config
        if len(prior) < max(3, cfg.outlier_window // 2):
            return
        med = statistics.median(prior)
        mad = statistics.median(abs(x - med) for x in prior)
        scale = 1.4826 * mad if mad > 0 else statistics.stdev(prior)
        spread = max(prior) - min(prior)
        if scale <= 0:
            return
        z = abs(value - med) / scale
        if z >= cfg.outlier_z and abs(value - med) >= cfg.outlier_range * spread:
            self._report(
                "metric_outliers",
                f"{name}@{step}",
                step,
                f"{name} jumped to {num(value)} at step {step}, {z:.0f} robust standard "
                f"deviations from the median of the steps before it ({num(med)})",
                {"metric": name, "value": value, "median": med, "z": z},
            )

    def _entropy_rule(self, step: int) -> None:
        cfg = self.config
        if len(self._entropy) < self._window:
            return
        recent = sum(v for _, v in self._entropy) / len(self._entropy)
        first = sum(self._first_entropy) / len(self._first_entropy)
        dropped = first > 0 and (first - recent) / first >= cfg.entropy_drop
        if recent < cfg.entropy_floor or dropped:
            self._report(
                "entropy_collapse",
                "",
                step,
                f"entropy averaged {num(recent)} over steps {self._entropy[0][0]}–{step} "
                f"(from {num(first)} at the start): the policy samples nearly deterministically",
                {"recent": recent, "first": first},
                steps=[s for s, _ in self._entropy],
            )

    # -- output -----------------------------------------------------------------------

    def _report(
        self,
        check: str,
        key: str,
        step: int,
        message: str,
        values: dict[str, Any],
        steps: list[int] | None = None,
    ) -> None:
        registered = REGISTRY[check]  # the batch check of the same name: title, severity
        severity = self.config.checks.get(check, registered.severity)
        if severity == "off" or (check, key) in self._reported:
            return
        self._reported.add((check, key))
        self.found(
            Finding(check, severity, self.run, registered.title, message, steps or [step], values)
        )
