"""One step's rollouts: each prompt's GRPO group, every completion with its scores and its
advantage within the group.

The advantage is computed here from the group's total rewards, as TRL's GRPOTrainer does:
the reward minus the group's mean, divided by the standard deviation (torch's, n - 1) plus
1e-4 when the run's ``scale_rewards`` says so (``group``/true: the group's; ``batch``: the
whole step's; ``none``/false: not scaled). TRL does not log its advantages, so each one is
marked ``advantage_computed``.
"""

from __future__ import annotations

import math
import statistics
from typing import Any

from gemmalog.serve._series import _number
from gemmalog.serve._sql import queries
from gemmalog.serve._store import RunStore, arguments
from gemmalog.serve._tail import Window
from gemmalog.serve._tail_answers import completion_rows

_EPS = 1e-4  # TRL's: (r - mean) / (std + 1e-4)


def training_args(store: RunStore, run_id: str) -> dict[str, Any]:
    """The GRPOConfig snapshot the training integration logged (empty without one)."""
    _, rows = store.query(run_id, queries("rollouts")["training_args"])
    return arguments(rows[0][0] if rows else None)


def scale_mode(args: dict[str, Any]) -> str:
    """``group``, ``batch`` or ``none``: how TRL scaled the advantages of this run."""
    value = args.get("scale_rewards", True)
    if value is True or value == "group":
        return "group"
    if value is False or value in ("none", "None", None):
        return "none"
    return "batch" if value == "batch" else "group"


def _std(values: list[float]) -> float | None:
    return statistics.stdev(values) if len(values) > 1 else None


def _advantages(totals: list[float | None], scale: str, batch_std: float | None) -> list[Any]:
    known = [t for t in totals if t is not None and math.isfinite(t)]
    if not known:
        return [None] * len(totals)
    mean = statistics.fmean(known)
    std = _std(known) if scale == "group" else batch_std
    out: list[Any] = []
    for t in totals:
        if t is None or not math.isfinite(t):
            out.append(None)
        elif scale == "none":
            out.append(t - mean)
        elif std is None:
            out.append(None)  # one completion: torch's std is NaN
        else:
            out.append((t - mean) / (std + _EPS))
    return out


def _groups(rows: list[dict[str, Any]], size: int | None) -> list[list[dict[str, Any]]]:
    """Completions of the same phase and prompt, in sample order; a prompt asked more than
    once in a step is cut into groups of ``num_generations`` (TRL's grouping) when known."""
    by_key: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for row in rows:
        key = (row["phase"], row["prompt"] if row["prompt"] is not None else row["question"])
        by_key.setdefault(key, []).append(row)
    out: list[list[dict[str, Any]]] = []
    for members in by_key.values():
        if size and len(members) > size and len(members) % size == 0:
            out += [members[i : i + size] for i in range(0, len(members), size)]
        else:
            out.append(members)
    return out


def completions(
    store: RunStore, run_id: str, step: int, phase: str | None = None
) -> dict[str, Any]:
    """``{"run", "step", "phase", "scale_rewards", "reward_functions", "max_completion_length",
    "groups": [{"prompt", "question", "true_answer", "phase", "completions": [...]}]}``."""
    rows, scored, args = _step_rows(store, run_id, step, phase)
    scale = scale_mode(args)
    limit = args.get("max_completion_length")
    size = args.get("num_generations")
    functions = _add_scores(rows, scored, limit)
    batch_std = _batch_stds(rows) if scale == "batch" else {}
    groups = [
        _group(members, scale, batch_std)
        for members in _groups(rows, size if isinstance(size, int) else None)
    ]
    return {
        "run": run_id,
        "step": step,
        "phase": phase,
        "scale_rewards": scale,
        "max_completion_length": limit if isinstance(limit, int) else None,
        "num_generations": size if isinstance(size, int) else None,
        "reward_functions": functions,
        "groups": groups,
    }


def _step_rows(
    store: RunStore, run_id: str, step: int, phase: str | None
) -> tuple[list[dict[str, Any]], list[tuple[Any, ...]], dict[str, Any]]:
    """The step's completions, its reward events' scores and the run's training arguments."""

    def from_window(window: Window) -> tuple[Any, ...]:
        return (*completion_rows(window, step, phase), window.training_args)

    # a live run's newest steps come from the lines the server parsed (no query)
    found = store.from_window(run_id, from_window)
    if found is not None:
        rows, scored, args = found
        return rows, scored, args
    q = queries("rollouts")
    params = {"step": step, "phase": phase}
    rows = store.records(run_id, q["completions"], params)
    scored = store.query(run_id, q["reward_events"], params)[1]
    return rows, scored, training_args(store, run_id)


def _add_scores(rows: list[dict[str, Any]], scored: list[tuple[Any, ...]], limit: Any) -> list[str]:
    """Complete each row's rewards with its reward events' scores (the logged map wins) and
    say whether it was truncated; return the reward functions, in the order first seen."""
    extra: dict[tuple[Any, ...], dict[str, float | None]] = {}
    for rank, ph, sample, fn, value in scored:
        extra.setdefault((rank, ph, sample), {})[fn] = _number(value)
    functions: dict[str, None] = {}
    for row in rows:
        scores = {str(k): _number(v) for k, v in (row["rewards"] or {}).items()}
        for fn, value in extra.get((row["rank"], row["phase"], row["sample"]), {}).items():
            scores.setdefault(fn, value)
        row["rewards"] = scores
        functions.update(dict.fromkeys(scores))
        total = row["total_reward"]
        row["total_reward"] = None if total is None else float(total)
        tokens = row["length_tokens"]
        row["truncated"] = None if tokens is None or not isinstance(limit, int) else tokens >= limit
    return list(functions)


def _batch_stds(rows: list[dict[str, Any]]) -> dict[str, float | None]:
    """Per phase, the standard deviation of the whole step's total rewards (``batch`` scaling)."""
    batch_std: dict[str, float | None] = {}
    for ph in {r["phase"] for r in rows}:
        totals = [
            r["total_reward"]
            for r in rows
            if r["phase"] == ph
            and r["total_reward"] is not None
            and math.isfinite(r["total_reward"])
        ]
        batch_std[ph] = _std(totals)
    return batch_std


def _group(
    members: list[dict[str, Any]], scale: str, batch_std: dict[str, float | None]
) -> dict[str, Any]:
    """One GRPO group: its completions, each with its advantage, and the group's rewards."""
    phase_of = members[0]["phase"]
    totals = [m["total_reward"] for m in members]
    advantages = _advantages(totals, scale, batch_std.get(phase_of))
    for member, advantage in zip(members, advantages, strict=True):
        member["advantage"] = advantage
        member["advantage_computed"] = True
        member["total_reward"] = _number(member["total_reward"])
    known = [t for t in totals if t is not None and math.isfinite(t)]
    return {
        "phase": phase_of,
        "prompt": members[0]["prompt"],
        "question": members[0]["question"],
        "true_answer": members[0]["true_answer"],
        "mean_reward": statistics.fmean(known) if known else None,
        "reward_std": _std(known),
        "completions": members,
    }


def steps(store: RunStore, run_id: str) -> dict[str, Any]:
    """The steps that have completions: ``{"run", "steps": [...], "phases": {step: [...]}}``."""
    _, rows = store.query(run_id, queries("rollouts")["steps"])
    return {
        "run": run_id,
        "steps": [r[0] for r in rows],
        "phases": {str(r[0]): list(r[1]) for r in rows},
        "completions": {str(r[0]): r[2] for r in rows},
    }


def prompt_history(store: RunStore, run_id: str, prompt: str) -> dict[str, Any]:
    """How one prompt's groups went across the run, a row per step and phase."""
    rows = store.records(run_id, queries("rollouts")["prompt_history"], {"prompt": prompt})
    for row in rows:
        for key in ("mean_reward", "min_reward", "max_reward", "accuracy", "mean_length"):
            row[key] = _number(row[key])
    return {"run": run_id, "prompt": prompt, "steps": rows}
