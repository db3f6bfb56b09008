"""Collapse checks: entropy, diversity of the generations, identical completions in a group."""

from __future__ import annotations

from gemmalog.doctor._core import Check, Context, Finding, Series, check, example, flagged_from, num


def _repeated(ctx: Context, run: str, since: int) -> list[dict[str, object]]:
    limit = ctx.settings[run].examples
    rows = ctx.rows("common", "most_repeated", {"run": run, "since": since, "limit": limit})
    return [example(r) for r in rows]


@check("entropy_collapse", "error", "policy entropy collapsed")
def entropy_collapse(ctx: Context, chk: Check) -> list[Finding]:
    """TRL's ``entropy`` falls below a floor, or by a large fraction of where it started."""
    out: list[Finding] = []
    for run in ctx.runs:
        cfg = ctx.settings[run]
        entropy = ctx.metric(run, "entropy")
        w = entropy.windows(cfg)
        if w is None:
            continue
        first, last = w[0].mean(), w[1].mean()
        drop = (first - last) / first if first > 0 else 0.0
        if last < cfg.entropy_floor:
            level, why = cfg.entropy_floor, f"below the floor of {num(cfg.entropy_floor)}"
        elif drop >= cfg.entropy_drop:
            level, why = first * (1 - cfg.entropy_drop), f"a fall of {100 * drop:.0f}%"
        else:
            continue
        since = flagged_from(entropy.onset(level, above=False), w[1])
        out.append(
            chk.finding(
                ctx,
                run,
                f"entropy went from {num(first)} (steps {w[0].span()}) to {num(last)} "
                f"(steps {w[1].span()}), {why}: the policy samples nearly deterministically "
                "and GRPO's groups stop differing",
                steps=entropy.since(since).steps,
                values={
                    "entropy": entropy.as_dict(),
                    "first": first,
                    "last": last,
                    "thresholds": {
                        "entropy_floor": cfg.entropy_floor,
                        "entropy_drop": cfg.entropy_drop,
                    },
                },
                examples=_repeated(ctx, run, since),
            )
        )
    return out


@check("diversity_collapse", "warning", "generations lost diversity")
def diversity_collapse(ctx: Context, chk: Check) -> list[Finding]:
    """distinct-2 falls by a large fraction, or the repeated 3-gram ratio rises, over the run."""
    out: list[Finding] = []
    for run, rows in ctx.shared("collapse", "generation_steps").items():
        cfg = ctx.settings[run]
        distinct, repeated = Series.of(rows, "distinct_2"), Series.of(rows, "repeated_ngram_ratio")
        dw, rw = distinct.windows(cfg), repeated.windows(cfg)
        reasons: list[str] = []
        onsets: list[int] = []
        if dw is not None and dw[0].mean() > 0:
            d0, d1 = dw[0].mean(), dw[1].mean()
            if (d0 - d1) / d0 >= cfg.distinct_drop:
                reasons.append(f"distinct-2 fell from {num(d0)} to {num(d1)}")
                onsets.append(flagged_from(distinct.onset((d0 + d1) / 2, above=False), dw[1]))
        if rw is not None:
            r0, r1 = rw[0].mean(), rw[1].mean()
            if r1 - r0 >= cfg.repetition_rise:
                reasons.append(f"the repeated 3-gram ratio rose from {num(r0)} to {num(r1)}")
                onsets.append(flagged_from(repeated.onset((r0 + r1) / 2), rw[1]))
        if not reasons:
            continue
        since = min(onsets)
        last = dw[1] if dw is not None else rw[1] if rw is not None else distinct
        out.append(
            chk.finding(
                ctx,
                run,
                f"{' and '.join(reasons)} (first to last {100 * cfg.window:.0f}% of the steps, "
                f"last steps {last.span()}): completions repeat each other or loop",
                steps=sorted({*distinct.since(since).steps, *repeated.since(since).steps}),
                values={
                    "distinct_2": distinct.as_dict(),
                    "repeated_ngram_ratio": repeated.as_dict(),
                    "thresholds": {
                        "distinct_drop": cfg.distinct_drop,
                        "repetition_rise": cfg.repetition_rise,
                    },
                },
                examples=_repeated(ctx, run, since),
            )
        )
    return out


@check("identical_completions", "warning", "identical completions within prompt groups")
def identical_completions(ctx: Context, chk: Check) -> list[Finding]:
    """The share of completions that duplicate another of the same group is high and rising."""
    out: list[Finding] = []
    for run, rows in ctx.shared("collapse", "duplicate_steps").items():
        cfg = ctx.settings[run]
        share = Series.of(rows, "duplicate_share")
        w = share.windows(cfg)
        if w is None:
            continue
        s0, s1 = w[0].mean(), w[1].mean()
        if s1 < cfg.duplicate_share or s1 <= s0:
            continue
        since = flagged_from(share.onset(cfg.duplicate_share), w[1])
        out.append(
            chk.finding(
                ctx,
                run,
                f"{100 * s1:.0f}% of the completions of steps {w[1].span()} have an exact "
                f"duplicate in their prompt group (from {100 * s0:.0f}% at the start): "
                "identical completions get identical rewards and add no signal",
                steps=share.since(since).steps,
                values={
                    "duplicate_share": share.as_dict(),
                    "thresholds": {"duplicate_share": cfg.duplicate_share},
                },
                examples=_repeated(ctx, run, since),
            )
        )
    return out
