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


def write_run(
    root: Path,
    name: str,
    metrics: Callable[[int], dict[str, float]],
    memory: Callable[[int], float] | None = None,
) -> Path:
    """A run of TRL-like metrics (and memory samples) only, 30 steps."""
    run = gemmalog.initialize(root=root, run_name=name, capture_stdlib=False)
    for step in range(1, STEPS + 1):
        gemmalog.log_training_progress(step, metrics(step))
        if memory is not None:
            gemmalog.log_memory_usage(step=step, cpu_rss_mb=memory(step))
    gemmalog.shutdown()
    return run.dir


def findings(run: Path, check: str, **thresholds: Any) -> list[Finding]:
    return diagnose(run, config=DoctorConfig(**thresholds), checks=[check])


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("thresholds")
    plans: dict[str, tuple[Callable[[int], dict[str, float]], Callable[[int], float] | None]] = {
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
