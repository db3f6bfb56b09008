"""Live mode (``doctor.live: true``): the cheap checks on a rolling window, while training runs.

:class:`LiveDoctor` is a processor of the listener thread: it watches the training
``metrics`` events as they are written and, the first time a rule fires, prints the finding
to stderr and appends it to ``doctor.live.jsonl`` in the run directory. The rules are the
batch checks' (same names, thresholds and severities) restricted to what one metric stream
shows: ``non_finite``, ``metric_outliers``, ``entropy_collapse``, ``zero_signal`` and
``length_clipping``. Each costs O(``outlier_window``) per step; ``gemmalog doctor`` after the
run applies every check.
"""

from __future__ import annotations

import math
import statistics
import sys
from collections import deque
from pathlib import Path
from typing import Any, TextIO

import orjson

from gemmalog.config.model import DoctorConfig
from gemmalog.doctor._core import REGISTRY, Finding, num
from gemmalog.events import NON_FINITE

#: How a sanitized event spells a non-finite float (the JSONL's strings); float() reads them.
_NON_FINITE = frozenset(NON_FINITE)

#: The file findings are appended to, in the run directory.
LIVE_FILE = "doctor.live.jsonl"


class LiveDoctor:
    """A listener-thread processor: returns every event unchanged, reports findings aside.

    An error inside a rule stops the live checks (reported once on stderr); the event is
    always passed on.
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
        "failed",
        "path",
        "run",
        "stream",
    )

    def __init__(
        self, config: DoctorConfig, run: str, run_dir: Path, stream: TextIO | None = None
    ) -> None:
        self.config = config
        self.run = run
        self.path = run_dir / LIVE_FILE
        self.stream = stream
        self.failed = False
        self._window = window = max(config.min_steps, 3)
        self._prior: dict[str, deque[float]] = {
            name: deque(maxlen=config.outlier_window) for name in config.outlier_metrics
        }
        self._entropy: deque[tuple[int, float]] = deque(maxlen=window)
        self._first_entropy: list[float] = []
        self._clipped: deque[tuple[int, float]] = deque(maxlen=window)
        self._zero: list[int] = []  # the current stretch of zero-signal steps
        self._reported: set[tuple[str, str]] = set()

    def __call__(self, logger: Any, method: str, event: dict[str, Any]) -> dict[str, Any]:
        if (
            not self.failed
            and event.get("kind") == "metrics"
            and isinstance(event.get("metrics"), dict)
        ):
            try:
                self._observe(event)
            except Exception as exc:  # a rule's bug must not cost the event: say so, stop
                self.failed = True
                print(
                    "gemmalog doctor (live): stopped after an internal error: "
                    f"{type(exc).__name__}: {exc}",
                    file=self.stream or sys.stderr,
                )
        return event

    # -- rules ------------------------------------------------------------------------

    def _observe(self, event: dict[str, Any]) -> None:
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
        if phase != "train":
            return
        cfg = self.config
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
        if (clipped := values.get("completions/clipped_ratio")) is not None:
            self._clipped.append((step, clipped))
            if len(self._clipped) == self._window:
                mean = sum(v for _, v in self._clipped) / len(self._clipped)
                if mean >= cfg.clipped_ratio:
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
        finding = Finding(
            check, severity, self.run, registered.title, message, steps or [step], values
        )
        with open(self.path, "ab") as f:
            f.write(orjson.dumps({**finding.to_dict(), "live": True}) + b"\n")
        stream = self.stream or sys.stderr
        print(f"gemmalog doctor (live): {severity} {check}: {message}", file=stream, flush=True)
