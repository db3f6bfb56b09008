"""No-learning-signal check: whole prompt groups whose advantages are all zero."""

from __future__ import annotations

from gemmalog.doctor._core import Check, Context, Finding, Series, check, example, steps_text


def _stretches(series: Series, level: float) -> list[list[int]]:
    """Runs of consecutive logged steps whose value is at or above ``level``."""
    out: list[list[int]] = []
    current: list[int] = []
    for step, value in zip(series.steps, series.values, strict=True):
        if value >= level:
            current.append(step)
        elif current:
            out.append(current)
            current = []
    if current:
        out.append(current)
    return out


@check("zero_signal", "error", "no learning signal")
def zero_signal(ctx: Context, chk: Check) -> list[Finding]:
    """The share of prompt groups whose advantages are all zero stays above a threshold for
    many consecutive steps: read from the advantages the completions carry (the TRL
    integration logs the ones GRPO used), else TRL's ``frac_reward_zero_std``, else the
    groups' total rewards."""
    out: list[Finding] = []
    advantages = ctx.by_run(ctx.rows("signal", "zero_advantage_steps"))
    computed = ctx.by_run(ctx.rows("signal", "zero_spread_steps"))
    for run in ctx.runs:
        cfg = ctx.settings[run]
        source, share = "advantages", Series.of(advantages.get(run, []), "zero_share")
        if not share.steps:
            source, share = "frac_reward_zero_std", ctx.metric(run, "frac_reward_zero_std")
        if not share.steps:
            source, share = "completions", Series.of(computed.get(run, []), "zero_share")
        long = [s for s in _stretches(share, cfg.zero_std_share) if len(s) >= cfg.zero_std_steps]
        if not long:
            continue
        steps = [s for stretch in long for s in stretch]
        flagged = Series(
            steps, [v for s, v in zip(share.steps, share.values, strict=True) if s in set(steps)]
        )
        rows = ctx.rows(
            "signal", "zero_spread_examples", {"run": run, "since": steps[0], "limit": cfg.examples}
        )
        out.append(
            chk.finding(
                ctx,
                run,
                f"at {len(steps)} of {len(share)} steps ({steps_text(steps)}) at least "
                f"{100 * cfg.zero_std_share:.0f}% of the prompt groups had all completions "
                f"scored the same (mean share {100 * flagged.mean():.0f}%, from {source}): their "
                "advantages are zero and those steps teach nothing",
                steps=steps,
                values={
                    source: share.as_dict(),
                    "thresholds": {
                        "zero_std_share": cfg.zero_std_share,
                        "zero_std_steps": cfg.zero_std_steps,
                    },
                },
                examples=[example(r) for r in rows],
            )
        )
    return out
