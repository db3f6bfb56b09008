"""Each doctor threshold at its boundary: a run planted exactly at the threshold is flagged
(or, for a strict rule, not), and one just past it is not (or is). A comparison turned from
``>=`` into ``>`` (or back) fails here."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import gemmalog
from gemmalog.config.model import DoctorConfig
from gemmalog.doctor import Finding, diagnose

STEPS = 30


#: (text, rewards, correct, length in tokens) of a completion, from (step, sample).
Completion = Callable[[int, int], tuple[str, dict[str, float], bool, int]]


def write_run(
    root: Path,
    name: str,
    metrics: Callable[[int], dict[str, float]],
    memory: Callable[[int], float] | None = None,
    completions: Completion | None = None,
) -> Path:
    """A run of TRL-like metrics (memory samples, one prompt group of 4 completions a step),
    30 steps."""
    run = gemmalog.initialize(root=root, run_name=name, capture_stdlib=False)
    for step in range(1, STEPS + 1):
        for sample in range(4 if completions else 0):
            text, rewards, correct, tokens = completions(step, sample)  # type: ignore[misc]
            gemmalog.log_model_output(
                f"question of step {step}", "42", text, rewards=rewards, correct=correct,
                step=step, sample=sample, length_tokens=tokens,
            )  # fmt: skip
        gemmalog.log_training_progress(step, metrics(step))
        if memory is not None:
            gemmalog.log_memory_usage(step=step, cpu_rss_mb=memory(step))
    gemmalog.shutdown()
    return run.dir


def _completion(
    step: int, sample: int, *, rewards: dict[str, float] | None = None, tokens: int = 50
) -> tuple[str, dict[str, float], bool, int]:
    return f"answer {step}.{sample}", rewards or {"r": float(sample)}, sample == 0, tokens


def findings(run: Path, check: str, **thresholds: Any) -> list[Finding]:
    return diagnose(run, config=DoctorConfig(**thresholds), checks=[check])


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("thresholds")
    none: dict[str, float] = {}
    plans: dict[
        str,
        tuple[Callable[[int], dict[str, float]], Callable[[int], float] | None]
        | tuple[Callable[[int], dict[str, float]], None, Completion],
    ] = {
        # frac_reward_zero_std 1.0 over steps 3-7 (5 steps) and 12-15 (4 steps)
        "zero": (lambda s: {"frac_reward_zero_std": 1.0 if 3 <= s <= 7 or 12 <= s <= 15 else 0.0}, None),
        "zero_half": (lambda s: {"frac_reward_zero_std": 0.5 if 3 <= s <= 7 else 0.0}, None),
        "clipped": (lambda s: {"completions/clipped_ratio": 0.5}, None),
        "step_time": (lambda s: {"step_time": 1.0 if s <= 15 else 2.0}, None),
        "entropy": (lambda s: {"entropy": 1.0 if s <= 15 else 0.25}, None),
        "memory_line": (lambda s: {"loss": 0.0}, lambda s: 1000.0 + 10.0 * s),
        "memory_noisy": (lambda s: {"loss": 0.0}, lambda s: 1000.0 + 10.0 * s + (5.0 if s % 2 else -5.0)),
        # loss alternates 0 and 1 (median 0.5, range 1 over any even window), one spike of 8.5
        "spike": (lambda s: {"loss": 8.5 if s == 25 else float(s % 2)}, None),
        # a_func scores 4, b_func 1: a_func's share of the magnitude is 16/20 = 0.8
        "dominance": (lambda s: none, None, lambda s, i: _completion(s, i, rewards={"a_func": 4.0, "b_func": 1.0})),
        # format_reward pays its top (0.5) to 3 of 4 (saturation 0.75); 1 of 4 correct (0.25)
        "format": (lambda s: none, None, lambda s, i: _completion(s, i, rewards={"format_reward": 0.5 if i < 3 else 0.0})),
        # 100 tokens over the first half, 25 over the second: a fall of 0.75
        "length": (lambda s: none, None, lambda s, i: _completion(s, i, tokens=100 if s <= 15 else 25)),
        # from step 16 two of the four completions share their text: duplicate share 0.5
        "duplicates": (lambda s: none, None, lambda s, i: (
            "same" if s > 15 and i < 2 else f"answer {s}.{i}", {"r": float(i)}, i == 0, 50)),
    }  # fmt: skip
    return {name: write_run(root, name, *plan) for name, plan in plans.items()}


def test_zero_signal_stretch_of_exactly_zero_std_steps(runs: dict[str, Path]) -> None:
    """A stretch of exactly ``zero_std_steps`` is flagged, one step shorter is not."""
    [f] = findings(runs["zero"], "zero_signal", zero_std_steps=5)
    assert f.steps == [3, 4, 5, 6, 7]
    [f] = findings(runs["zero"], "zero_signal", zero_std_steps=4)
    assert f.steps == [3, 4, 5, 6, 7, 12, 13, 14, 15]
    assert findings(runs["zero"], "zero_signal", zero_std_steps=6) == []


def up(x: float) -> float:
    return math.nextafter(x, math.inf)


def down(x: float) -> float:
    return math.nextafter(x, -math.inf)


@dataclass
class Boundary:
    """``key`` set to ``flagged`` gives a finding of ``check`` on ``run``; ``clear`` gives none.
    ``measured`` reads the boundary from the finding when it is not a planted constant."""

    run: str
    check: str
    key: str
    flagged: float | Callable[[Finding], float]
    clear: Callable[[float], float]
    others: dict[str, Any] = field(default_factory=dict)


BOUNDARIES = {
    # >=: the planted value itself is flagged, the next float above is not
    "zero_std_share": Boundary("zero_half", "zero_signal", "zero_std_share", 0.5, up),
    "clipped_ratio": Boundary("clipped", "length_clipping", "clipped_ratio", 0.5, up),
    "min_steps": Boundary("clipped", "length_clipping", "min_steps", 30, lambda n: n + 1),
    "step_time_drift": Boundary("step_time", "step_time_drift", "step_time_drift", 2.0, up),
    "entropy_drop": Boundary(
        "entropy", "entropy_collapse", "entropy_drop", 0.75, up, {"entropy_floor": 0.0}
    ),
    # strict: the last window's mean must be below the floor
    "entropy_floor": Boundary(
        "entropy", "entropy_collapse", "entropy_floor", up(0.25), down, {"entropy_drop": 1.0}
    ),
    "memory_min_mb": Boundary(
        "memory_line",
        "memory_growth",
        "memory_min_mb",
        lambda f: f.values["slope_mib_per_step"] * (f.steps[-1] - f.steps[0]),
        up,
        {"memory_growth": 0.01, "memory_r2": 0.5},
    ),
    "memory_r2": Boundary(
        "memory_noisy",
        "memory_growth",
        "memory_r2",
        lambda f: f.values["r2"],
        up,
        {"memory_growth": 0.01, "memory_min_mb": 1.0},
    ),
    "outlier_z": Boundary(
        "spike",
        "metric_outliers",
        "outlier_z",
        lambda f: f.values["spikes"][25]["z"],
        up,
        {"outlier_range": 1.0, "outlier_metrics": ("loss",)},
    ),
    "dominance_share": Boundary("dominance", "reward_dominance", "dominance_share", 0.8, up),
    "format_saturation": Boundary(
        "format", "format_saturated", "format_saturation", 0.75, up, {"correctness_floor": 0.25}
    ),
    # accuracy at or below the floor is "near zero"
    "correctness_floor": Boundary(
        "format", "format_saturated", "correctness_floor", 0.25, down, {"format_saturation": 0.75}
    ),
    "length_drop": Boundary("length", "length_collapse", "length_drop", 0.75, up),
    "duplicate_share": Boundary("duplicates", "identical_completions", "duplicate_share", 0.5, up),
    "outlier_range": Boundary(
        "spike",
        "metric_outliers",
        "outlier_range",
        8.0,  # |8.5 - 0.5| = 8 times the range 1 of the steps before
        up,
        {"outlier_z": 1.0, "outlier_metrics": ("loss",)},
    ),
}


@pytest.mark.parametrize("name", sorted(BOUNDARIES))
def test_threshold_at_its_boundary(name: str, runs: dict[str, Path]) -> None:
    b = BOUNDARIES[name]
    run = runs[b.run]
    if callable(b.flagged):  # measured: found with a lax value, read back from the finding
        lax = {"memory_min_mb": 0.0, "memory_r2": 0.0, "outlier_z": 1.0}[b.key]
        [seen] = findings(run, b.check, **{**b.others, b.key: lax})
        at = b.flagged(seen)
    else:
        at = b.flagged
    flagged = findings(run, b.check, **{**b.others, b.key: at})
    assert len(flagged) == 1, (name, at)
    assert flagged[0].values["thresholds"].get(b.key, at) == at  # min_steps is not listed
    assert findings(run, b.check, **{**b.others, b.key: b.clear(at)}) == [], (name, b.clear(at))
