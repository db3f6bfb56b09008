"""Instability checks: robust outliers in loss, grad_norm and kl; NaN or Inf anywhere."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gemmalog.doctor._core import Check, Context, Finding, check, num, steps_text

if TYPE_CHECKING:
    from gemmalog.config.model import DoctorConfig


@check("metric_outliers", "warning", "spikes in loss, grad_norm or kl")
def metric_outliers(ctx: Context, chk: Check) -> list[Finding]:
    """Steps whose value is far from the median of the steps before it: many robust standard
    deviations (median/MAD) and several times the range those steps spanned, so that the
    ordinary swings of a noisy metric (GRPO's loss jumps between ~0 and a few tenths) are not
    spikes."""
    out: list[Finding] = []
    for run, found in ctx.by_run(_outlier_rows(ctx)).items():
        cfg = ctx.settings[run]
        per_metric: dict[str, list[dict[str, Any]]] = {}
        for r in found:
            far = abs(r["value"] - r["med"]) >= cfg.outlier_range * r["spread"]
            if r["name"] in cfg.outlier_metrics and r["z"] >= cfg.outlier_z and far:
                per_metric.setdefault(r["name"], []).append(r)
        for name, spikes in sorted(per_metric.items()):
            out.append(_spikes(ctx, chk, run, cfg, name, spikes))
    return out


def _outlier_rows(ctx: Context) -> list[dict[str, Any]]:
    """The candidate spikes of every run, one query per outlier window the runs use."""
    by_window: dict[int, list[str]] = {}
    for run, cfg in ctx.settings.items():
        by_window.setdefault(cfg.outlier_window, []).append(run)
    rows: list[dict[str, Any]] = []
    for window, runs in by_window.items():
        cfgs = [ctx.settings[r] for r in runs]
        rows += ctx.rows(
            "stability",
            "outliers",
            {
                "names": sorted({n for c in cfgs for n in c.outlier_metrics}),
                "runs": runs,
                "z": min(c.outlier_z for c in cfgs),
            },
            window=window,
            min_prior=max(3, window // 2),
        )
    return rows


def _spikes(
    ctx: Context,
    chk: Check,
    run: str,
    cfg: DoctorConfig,
    name: str,
    spikes: list[dict[str, Any]],
) -> Finding:
    """The finding of one metric's spikes in one run."""
    worst = max(spikes, key=lambda r: r["z"])
    steps = [r["step"] for r in spikes]
    return chk.finding(
        ctx,
        run,
        f"{name} jumped at {len(steps)} step(s) ({steps_text(steps)}); the largest, "
        f"{num(worst['value'])} at step {worst['step']}, is {worst['z']:.0f} robust "
        f"standard deviations from the median of the {cfg.outlier_window} steps "
        f"before it ({num(worst['med'])})",
        steps=steps,
        values={
            "metric": name,
            "spikes": {
                r["step"]: {
                    "value": r["value"],
                    "median": r["med"],
                    "z": r["z"],
                    "window_range": r["spread"],
                }
                for r in spikes
            },
            "thresholds": {
                "outlier_z": cfg.outlier_z,
                "outlier_range": cfg.outlier_range,
                "outlier_window": cfg.outlier_window,
            },
        },
    )


@check("non_finite", "error", "NaN or Inf values")
def non_finite(ctx: Context, chk: Check) -> list[Finding]:
    """Any NaN or infinite metric value, or an infinite reward score."""
    rows = ctx.rows("stability", "non_finite_metrics") + ctx.rows("stability", "non_finite_rewards")
    out: list[Finding] = []
    for run, found in ctx.by_run(rows).items():
        steps = sorted({s for r in found for s in r["steps"] if s is not None})
        names = [f"{r['name']} ({r['phase']}, {r['n']}×)" for r in found]
        shown = ", ".join(names[:6]) + (f" and {len(names) - 6} more" if len(names) > 6 else "")
        out.append(
            chk.finding(
                ctx,
                run,
                f"non-finite values in {shown}, first at step "
                f"{steps[0] if steps else 'unknown'}: once a NaN reaches the weights, every "
                "later step is lost",
                steps=steps,
                values={
                    f"{r['phase']}/{r['name']}": {
                        "count": r["n"],
                        "nan": r["nan"],
                        "steps": r["steps"],
                    }
                    for r in found
                },
            )
        )
    return out
