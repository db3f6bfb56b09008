"""Resource and logging checks: memory growth, step-time drift, lost events, sinks, bad lines, failure."""

from __future__ import annotations

import json
import math
import os
import statistics
from typing import Any

from gemmalog.doctor._core import Check, Context, Finding, Series, check, flagged_from, num


def _fit(series: Series) -> tuple[float, float, float]:
    """Least-squares slope, intercept and R² of value over step."""
    n = len(series)
    mx, my = sum(series.steps) / n, series.mean()
    sxx = sum((x - mx) ** 2 for x in series.steps)
    syy = sum((y - my) ** 2 for y in series.values)
    sxy = sum((x - mx) * (y - my) for x, y in zip(series.steps, series.values, strict=True))
    if sxx == 0:
        return 0.0, my, 0.0
    slope = sxy / sxx
    r2 = (sxy * sxy) / (sxx * syy) if syy > 0 else 0.0
    return slope, my - slope * mx, r2


@check("memory_growth", "warning", "memory growing step after step")
def memory_growth(ctx: Context, chk: Check) -> list[Finding]:
    """Resident or accelerator memory rises steadily (a straight-line fit) over the steps."""
    out: list[Finding] = []
    for run, rows in ctx.by_run(ctx.rows("resources", "memory_steps")).items():
        cfg = ctx.settings[run]
        for key, label in (("cpu_mb", "resident (CPU)"), ("gpu_mb", "accelerator")):
            series = Series.of(rows, key)
            # the first steps allocate optimizer state and caches once: fit after them
            series = series.slice(max(1, len(series) // 10), len(series))
            if len(series) < max(cfg.min_steps, 4):
                continue
            slope, intercept, r2 = _fit(series)
            start = intercept + slope * series.steps[0]
            growth = slope * (series.steps[-1] - series.steps[0])
            if (
                not math.isfinite(growth / start if start > 0 else math.nan)
                or growth < cfg.memory_min_mb
                or start <= 0
                or growth / start < cfg.memory_growth
                or r2 < cfg.memory_r2
            ):
                continue
            out.append(
                chk.finding(
                    ctx,
                    run,
                    f"{label} memory grew by {num(growth)} MiB ({100 * growth / start:.0f}%) "
                    f"from step {series.steps[0]} to {series.steps[-1]}, {num(slope)} MiB a step "
                    f"on a straight line (R² {r2:.2f}): something keeps tensors or texts alive "
                    "across steps",
                    steps=series.steps,
                    values={
                        "memory": label,
                        "mib": series.as_dict(2),
                        "slope_mib_per_step": slope,
                        "r2": r2,
                        "thresholds": {
                            "memory_growth": cfg.memory_growth,
                            "memory_min_mb": cfg.memory_min_mb,
                            "memory_r2": cfg.memory_r2,
                        },
                    },
                )
            )
    return out


@check("step_time_drift", "info", "steps getting slower")
def step_time_drift(ctx: Context, chk: Check) -> list[Finding]:
    """The median of TRL's ``step_time`` over the last steps is much above the first steps'."""
    out: list[Finding] = []
    for run in ctx.runs:
        cfg = ctx.settings[run]
        times = ctx.metric(run, "step_time")
        w = times.windows(cfg)
        if w is None:
            continue
        first, last = statistics.median(w[0].values), statistics.median(w[1].values)
        if first <= 0 or last / first < cfg.step_time_drift:
            continue
        since = flagged_from(times.onset((first + last) / 2), w[1])
        out.append(
            chk.finding(
                ctx,
                run,
                f"median step time went from {num(first)} s (steps {w[0].span()}) to "
                f"{num(last)} s (steps {w[1].span()}), {last / first:.1f}× slower",
                steps=times.since(since).steps,
                values={
                    "step_time": times.as_dict(),
                    "thresholds": {"step_time_drift": cfg.step_time_drift},
                },
            )
        )
    return out


def _info(ctx: Context) -> dict[str, dict[str, Any]]:
    return {run: rows[0] for run, rows in ctx.shared("common", "runs").items()}


@check("dropped_events", "warning", "events dropped or lost")
def dropped_events(ctx: Context, chk: Check) -> list[Finding]:
    """Events dropped by the ``drop`` backpressure policy, or lines the JSONL sink failed to write."""
    out: list[Finding] = []
    for run, info in _info(ctx).items():
        drops, lost = info["drops"] or 0, info["events_lost"] or 0
        if not drops and not lost:
            continue
        parts = [f"{drops} events dropped by backpressure"] if drops else []
        parts += [f"{lost} lines the JSONL sink failed to write"] if lost else []
        out.append(
            chk.finding(
                ctx,
                run,
                f"{' and '.join(parts)}: the views miss them (raise gemmalog.queue_size, or use "
                "backpressure: block)",
                values={"drops": drops, "events_lost": lost},
            )
        )
    return out


def _sink_error(err: Any) -> str:
    """run.json keeps ``{error, missed, when}`` per failed sink (older runs: the text alone)."""
    if not isinstance(err, dict):
        return str(err)
    missed = err.get("missed")
    return str(err.get("error")) + (f" ({missed} events missed)" if missed else "")


@check("sink_errors", "warning", "a sink failed")
def sink_errors(ctx: Context, chk: Check) -> list[Finding]:
    """A sink that failed and was disabled during the run (run.json's ``sink_errors``)."""
    out: list[Finding] = []
    for run, info in _info(ctx).items():
        errors = json.loads(info["sink_errors"]) if info["sink_errors"] else {}
        if not errors:
            continue
        text = "; ".join(f"{name}: {_sink_error(err)}" for name, err in sorted(errors.items()))
        out.append(
            chk.finding(
                ctx,
                run,
                f"{len(errors)} sink(s) failed and were disabled: {text}",
                values={"sink_errors": errors},
            )
        )
    return out


@check("unreadable_lines", "warning", "unreadable log lines")
def unreadable_lines(ctx: Context, chk: Check) -> list[Finding]:
    """Lines of the run's shards that are not JSON events (a torn write, a corrupted file)."""
    bad = ctx.rows("resources", "read_errors")
    out: list[Finding] = []
    for run, info in _info(ctx).items():
        run_dir = str(info["dir"] or "").rstrip("/")
        files = {r["file"]: r["lines"] for r in bad if os.path.dirname(r["file"]) == run_dir}
        if not files:
            continue
        total = sum(files.values())
        out.append(
            chk.finding(
                ctx,
                run,
                f"{total} line(s) could not be read ("
                + ", ".join(f"{n} in {os.path.basename(f)}" for f, n in sorted(files.items()))
                + "): skipped by every view; one torn last line is what a kill leaves",
                values={"files": files},
            )
        )
    return out


@check("run_failed", "error", "the run failed")
def run_failed(ctx: Context, chk: Check) -> list[Finding]:
    """The run ended with an exception (run.json status ``failed``), e.g. a reward function raised."""
    out: list[Finding] = []
    for run, info in _info(ctx).items():
        if info["status"] != "failed":
            continue
        error = str(info["error"] or "no error recorded")
        out.append(
            chk.finding(
                ctx,
                run,
                f"the run failed: {error.splitlines()[0] if error.strip() else error}",
                values={"error": error, "status": info["status"]},
            )
        )
    return out
