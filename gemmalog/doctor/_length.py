"""Length checks: completions running into the length limit, or collapsing towards nothing."""

from __future__ import annotations

from gemmalog.doctor._core import Check, Context, Finding, Series, check, example, flagged_from, num


def _examples(ctx: Context, run: str, query: str, since: int) -> list[dict[str, object]]:
    limit = ctx.settings[run].examples
    return [
        example(r) for r in ctx.rows("common", query, {"run": run, "since": since, "limit": limit})
    ]


@check("length_clipping", "warning", "completions cut at the length limit")
def length_clipping(ctx: Context, chk: Check) -> list[Finding]:
    """TRL's ``completions/clipped_ratio`` (else gemmalog's truncation rate) is high at the end."""
    out: list[Finding] = []
    generation = ctx.shared("collapse", "generation_steps")
    for run in ctx.runs:
        cfg = ctx.settings[run]
        source = "completions/clipped_ratio"
        ratio = ctx.metric(run, source)
        if not ratio.steps:
            source, ratio = "truncation_rate", Series.of(generation.get(run, []), "truncation_rate")
        w = ratio.windows(cfg)
        if w is None or w[1].mean() < cfg.clipped_ratio:
            continue
        since = flagged_from(ratio.onset(cfg.clipped_ratio), w[1])
        out.append(
            chk.finding(
                ctx,
                run,
                f"{100 * w[1].mean():.0f}% of the completions of steps {w[1].span()} were cut at "
                f"max_completion_length ({source}; {100 * w[0].mean():.0f}% at the start): "
                "truncated answers rarely score, and the length keeps growing if they do",
                steps=ratio.since(since).steps,
                values={
                    source: ratio.as_dict(),
                    "thresholds": {"clipped_ratio": cfg.clipped_ratio},
                },
                examples=_examples(ctx, run, "longest", since),
            )
        )
    return out


@check("length_collapse", "warning", "completions collapsing in length")
def length_collapse(ctx: Context, chk: Check) -> list[Finding]:
    """The mean completion length falls by a large fraction from the first to the last steps."""
    out: list[Finding] = []
    steps_of = ctx.shared("common", "completion_steps")
    for run in ctx.runs:
        cfg = ctx.settings[run]
        rows = steps_of.get(run, [])
        unit, length = "tokens", Series.of(rows, "tokens")
        if len(length) < len(Series.of(rows, "chars")):
            unit, length = "characters", Series.of(rows, "chars")
        if not length.steps:
            unit, length = "tokens", ctx.metric(run, "completions/mean_length")
        w = length.windows(cfg)
        if w is None:
            continue
        first, last = w[0].mean(), w[1].mean()
        if first <= 0 or (first - last) / first < cfg.length_drop:
            continue
        since = flagged_from(length.onset((first + last) / 2, above=False), w[1])
        out.append(
            chk.finding(
                ctx,
                run,
                f"mean completion length fell from {num(first)} {unit} (steps {w[0].span()}) "
                f"to {num(last)} (steps {w[1].span()}), {100 * (first - last) / first:.0f}% "
                "shorter: the policy may be dodging a length penalty or stopping early",
                steps=length.since(since).steps,
                values={
                    f"mean_length_{unit}": length.as_dict(),
                    "thresholds": {"length_drop": cfg.length_drop},
                },
                examples=_examples(ctx, run, "shortest", since),
            )
        )
    return out
