"""The report's figures: one inline SVG per section, runs overlaid, built from ``RunData``."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from gemmalog.report._data import RunData, Series
from gemmalog.report._plots import Histogram, Line, Panel, color, figure_svg

_PHASE_ORDER = {"train": 0, "eval": 1}
_RATIO = (-0.03, 1.03)
#: Metrics drawn in the KL and entropy section, when a run logged them.
POLICY_METRICS = ("kl", "entropy")


def run_labels(runs: Sequence[RunData]) -> dict[str, str]:
    """Each run's legend name: its name, or its id where two runs share a name."""
    names = [str(d.info.get("name") or d.run) for d in runs]
    return {
        d.run: name if names.count(name) == 1 else d.run
        for d, name in zip(runs, names, strict=True)
    }


def _phases(keys: Sequence[str] | set[str]) -> list[str]:
    return sorted(keys, key=lambda p: (_PHASE_ORDER.get(p, 2), p))


def _lines(
    runs: Sequence[RunData], labels: dict[str, str], pick: Callable[[RunData], dict[str, Series]]
) -> list[Line]:
    """One line per run and phase: solid for train, dashed for the others."""
    lines: list[Line] = []
    for i, d in enumerate(runs):
        by_phase = pick(d)
        for phase in _phases(set(by_phase)):
            s = by_phase[phase]
            name = phase if len(runs) == 1 else f"{labels[d.run]} · {phase}"
            lines.append(Line(name, s.x, s.y, color(i), dashed=phase != "train"))
    return lines


def _metric(name: str) -> Callable[[RunData], dict[str, Series]]:
    return lambda d: {phase: s for (n, phase), s in d.metrics.items() if n == name}


def _reward_fn(fn: str) -> Callable[[RunData], dict[str, Series]]:
    return lambda d: {phase: s for (f, phase), s in d.reward_fns.items() if f == fn}


def _one(panel: Panel, key: str) -> str | None:
    return figure_svg([panel], key=key) if panel.lines else None


def loss(runs: Sequence[RunData], labels: dict[str, str]) -> str | None:
    return _one(Panel("", "loss", _lines(runs, labels, _metric("loss"))), "loss")


def total_reward(runs: Sequence[RunData], labels: dict[str, str]) -> str | None:
    lines = _lines(runs, labels, lambda d: d.total_reward)
    return _one(Panel("", "total reward (sum of function means)", lines), "reward")


def reward_functions(runs: Sequence[RunData], labels: dict[str, str]) -> str | None:
    fns = sorted({fn for d in runs for fn, _ in d.reward_fns})
    panels = [Panel(fn, "mean score", _lines(runs, labels, _reward_fn(fn))) for fn in fns]
    if not panels:
        return None
    return figure_svg(panels, key="reward-fns", ncols=2 if len(panels) > 1 else 1, height=2.6)


def accuracy(runs: Sequence[RunData], labels: dict[str, str]) -> str | None:
    per_step = _lines(runs, labels, lambda d: d.accuracy)
    if not per_step:
        return None
    cumulative = _lines(runs, labels, lambda d: d.cumulative_accuracy)
    panels = [
        Panel("per step", "accuracy", per_step, ylim=_RATIO),
        Panel("cumulative", "accuracy", cumulative, ylim=_RATIO),
    ]
    return figure_svg(panels, key="accuracy", ncols=2)


def lengths(runs: Sequence[RunData], labels: dict[str, str]) -> str | None:
    groups: list[tuple[str, Sequence[float], str]] = [
        (labels[d.run], d.lengths, color(i)) for i, d in enumerate(runs) if d.lengths
    ]
    if not groups:
        return None
    drift: list[Line] = []
    for i, d in enumerate(runs):
        for phase in _phases(set(d.drift)):
            s = d.drift[phase]
            name = phase if len(runs) == 1 else f"{labels[d.run]} · {phase}"
            band = (s.p10, s.p90) if phase == "train" else None
            drift.append(Line(name, s.steps, s.p50, color(i), phase != "train", band))
    panels: list[Panel | Histogram] = [Histogram("distribution", "characters", groups)]
    panels.append(Panel("median per step, 10th–90th percentile shaded", "characters", drift))
    return figure_svg(panels, key="lengths", ncols=2)


def policy_metrics(runs: Sequence[RunData], labels: dict[str, str]) -> str | None:
    panels = [Panel(n, n, _lines(runs, labels, _metric(n))) for n in POLICY_METRICS]
    panels = [p for p in panels if p.lines]
    if not panels:
        return None
    return figure_svg(panels, key="policy", ncols=len(panels))


def memory(runs: Sequence[RunData], labels: dict[str, str]) -> str | None:
    lines: list[Line] = []
    for i, d in enumerate(runs):
        ranks = {rank for rank, _ in d.memory}
        for (rank, which), s in sorted(d.memory.items()):
            what = "resident (CPU)" if which == "cpu_rss_mb" else "accelerator"
            parts = [labels[d.run]] if len(runs) > 1 else []
            parts += [f"rank {rank}"] if len(ranks) > 1 else []
            name = " · ".join([*parts, what])
            lines.append(Line(name, s.x, s.y, color(i + rank), dashed=which != "cpu_rss_mb"))
    return _one(Panel("", "MiB", lines, xlabel="seconds since the run started"), "memory")
