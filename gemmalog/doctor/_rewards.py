"""Reward checks: reward hacking, a saturated format reward, one dominating function, None scores."""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Any

from gemmalog.doctor._core import (
    COMPUTABLE,
    Check,
    Context,
    Finding,
    Series,
    check,
    example,
    flagged_from,
    num,
    steps_text,
)


def _pct(x: float) -> str:
    return f"{100 * x:.0f}%"


@check("reward_hacking", "warning", "reward rising without accuracy")
def reward_hacking(ctx: Context, chk: Check) -> list[Finding]:
    """The mean total reward rises while exact accuracy stays flat or falls."""
    out: list[Finding] = []
    spread = {run: rows[0]["sd"] for run, rows in ctx.shared("common", "reward_spread").items()}
    for run, rows in ctx.shared("common", "completion_steps").items():
        cfg = ctx.settings[run]
        reward, accuracy = Series.of(rows, "reward"), Series.of(rows, "accuracy")
        rw, aw = reward.windows(cfg), accuracy.windows(cfg)
        sd = spread.get(run)
        if rw is None or aw is None or not sd:
            continue
        (r0, r1), (a0, a1) = rw, aw
        rise, gain = r1.mean() - r0.mean(), a1.mean() - a0.mean()
        if rise < cfg.reward_rise * sd or gain > cfg.accuracy_gain:
            continue
        since = flagged_from(reward.onset((r0.mean() + r1.mean()) / 2), r1)
        examples = ctx.rows(
            "common", "best_wrong", {"run": run, "since": since, "limit": cfg.examples}
        )
        out.append(
            chk.finding(
                ctx,
                run,
                f"mean total reward rose from {num(r0.mean())} (steps {r0.span()}) to "
                f"{num(r1.mean())} (steps {r1.span()}), {rise / sd:.1f} standard deviations of "
                f"the completions' reward, while exact accuracy went from {_pct(a0.mean())} to "
                f"{_pct(a1.mean())}: the policy may be learning what the reward pays for rather "
                f"than the task",
                steps=reward.since(since).steps,
                values={
                    "reward": reward.as_dict(),
                    "accuracy": accuracy.as_dict(),
                    "reward_rise_sd": rise / sd,
                    "accuracy_change": gain,
                    "thresholds": {
                        "reward_rise": cfg.reward_rise,
                        "accuracy_gain": cfg.accuracy_gain,
                    },
                },
                examples=[example(r) for r in examples],
            )
        )
    return out


def _fn_series(ctx: Context) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """run -> reward function -> its per-step rows."""
    out: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for run, rows in ctx.shared("rewards", "fn_steps").items():
        per_fn: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for r in rows:
            per_fn[r["reward_fn"]].append(r)
        out[run] = dict(per_fn)
    return out


@check("format_saturated", "warning", "format reward saturated, answers wrong")
def format_saturated(ctx: Context, chk: Check) -> list[Finding]:
    """Format-type rewards pay (nearly) their top score to (nearly) every completion while
    accuracy stays near zero: the mean score over the last window is at least
    ``format_saturation`` of the function's top (one finding per run, naming each)."""
    out: list[Finding] = []
    steps_of = ctx.shared("common", "completion_steps")
    for run, fns in _fn_series(ctx).items():
        cfg = ctx.settings[run]
        accuracy = Series.of(steps_of.get(run, []), "accuracy")
        aw = accuracy.windows(cfg)
        if aw is None or aw[1].mean() > cfg.correctness_floor:
            continue
        pattern = re.compile(cfg.format_pattern, re.IGNORECASE)
        saturated: dict[str, tuple[float, Series, Series, int]] = {}
        for fn, rows in sorted(fns.items()):
            top = rows[0]["top"]
            if not pattern.search(fn) or top is None or top <= 0:
                continue
            saturation = Series.of(rows, "saturation")
            w = saturation.windows(cfg)
            if w is not None and w[1].mean() >= cfg.format_saturation:
                since = flagged_from(saturation.onset(cfg.format_saturation), w[1])
                saturated[fn] = (top, saturation, w[1], since)
        if not saturated:
            continue
        # the most saturated function speaks for the others in the message and examples
        fn, (top, saturation, last, since) = max(saturated.items(), key=lambda kv: kv[1][2].mean())
        others = sorted(set(saturated) - {fn})
        also = f" (also {', '.join(others)})" if others else ""
        examples = ctx.rows(
            "rewards",
            "top_but_wrong",
            {"run": run, "since": since, "fn": fn, "top": top, "limit": cfg.examples},
        )
        out.append(
            chk.finding(
                ctx,
                run,
                f"{fn}{also} paid on average {_pct(last.mean())} of its top score ({num(top)}) "
                f"to the completions of steps {last.span()} while exact accuracy was "
                f"{_pct(aw[1].mean())}: the format is learned, the task is not",
                steps=saturation.since(min(v[3] for v in saturated.values())).steps,
                values={
                    "reward_fns": {f: round(v[2].mean(), 4) for f, v in saturated.items()},
                    "saturation": {f: v[1].as_dict() for f, v in saturated.items()},
                    "accuracy": accuracy.as_dict(),
                    "thresholds": {
                        "format_saturation": cfg.format_saturation,
                        "correctness_floor": cfg.correctness_floor,
                    },
                },
                examples=[example(r) for r in examples],
            )
        )
    return out


@check("reward_dominance", "warning", "one reward function dominates")
def reward_dominance(ctx: Context, chk: Check) -> list[Finding]:
    """One function carries most of the summed reward magnitude in the last window."""
    out: list[Finding] = []
    for run, fns in _fn_series(ctx).items():
        cfg = ctx.settings[run]
        if len(fns) < 2:
            continue
        per_step: dict[int, dict[str, float]] = defaultdict(dict)
        for fn, rows in fns.items():
            for r in rows:
                # Left out like a Series leaves them out (the non_finite check reports
                # them): one inf would make every share nan.
                if r["magnitude"] is not None and -COMPUTABLE <= r["magnitude"] <= COMPUTABLE:
                    per_step[r["step"]][fn] = r["magnitude"]
        steps = sorted(per_step)
        whole = Series(steps, [sum(per_step[s].values()) for s in steps])
        w = whole.windows(cfg)
        if w is None or sum(w[1].values) <= 0:
            continue
        last = w[1].steps
        totals = {fn: sum(per_step[s].get(fn, 0.0) for s in last) for fn in fns}
        fn, top = max(totals.items(), key=lambda kv: kv[1])
        share = top / sum(w[1].values)
        if share < cfg.dominance_share:
            continue
        pairs = [
            (s, per_step[s].get(fn, 0.0) / v)
            for s, v in zip(steps, whole.values, strict=True)
            if v > 0
        ]
        series = Series([s for s, _ in pairs], [x for _, x in pairs])
        out.append(
            chk.finding(
                ctx,
                run,
                f"{fn} made up {_pct(share)} of the summed reward magnitude (unweighted scores) "
                f"over steps {w[1].span()}: the other {len(fns) - 1} functions barely move "
                "the advantages",
                steps=last,
                values={
                    "reward_fn": fn,
                    "share": series.as_dict(4),
                    "shares": {
                        f: round(t / sum(w[1].values), 4) for f, t in sorted(totals.items())
                    },
                    "thresholds": {"dominance_share": cfg.dominance_share},
                },
            )
        )
    return out


@check("reward_none", "warning", "reward function returned None or failed")
def reward_none(ctx: Context, chk: Check) -> list[Finding]:
    """Scores that are NaN (None returned) or missing on completions other functions scored."""
    problems: dict[tuple[str, str], dict[str, Any]] = {}
    for kind, count in (("none_values", "none"), ("missing", "missing")):
        for run, rows in ctx.by_run(ctx.rows("rewards", kind)).items():
            for r in rows:
                p = problems.setdefault(
                    (run, r["reward_fn"]),
                    {"none": 0, "missing": 0, "steps": set(), "phases": set()},
                )
                p[count] += r[count]
                p["phases"].add(r["phase"])
                if r["step"] is not None:
                    p["steps"].add(r["step"])
    out: list[Finding] = []
    for (run, fn), p in sorted(problems.items()):
        cfg = ctx.settings[run]
        parts = []
        if p["none"]:
            parts.append(f"returned None (NaN) for {p['none']} completions")
        if p["missing"]:
            parts.append(f"has no score for {p['missing']} completions other functions scored")
        steps = sorted(p["steps"])
        examples = ctx.rows(
            "rewards", "none_examples", {"run": run, "fn": fn, "limit": cfg.examples}
        )
        out.append(
            chk.finding(
                ctx,
                run,
                f"{fn} {' and '.join(parts)} ({', '.join(sorted(p['phases']))}, steps "
                f"{steps_text(steps)}); TRL counts those as 0 in the total reward",
                steps=steps,
                values={"reward_fn": fn, "none": p["none"], "missing": p["missing"]},
                examples=[example(r) for r in examples],
            )
        )
    return out
