"""Health checks over a run's views: the failures of GRPO runs that are visible in the logs.

    from gemmalog.doctor import diagnose
    for finding in diagnose("gemmalog_runs/my-run"):
        print(finding.severity, finding.check, finding.message)

Each check is one small rule (``REGISTRY``; SQL in the ``.sql`` files beside the modules)
with a default severity and thresholds from the ``doctor:`` section of the configuration.
``docs/doctor.md`` explains every check, its causes and how to tune it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence

import duckdb

from gemmalog.config.loader import load, parse_doctor
from gemmalog.config.model import DOCTOR_CHECKS, DoctorConfig
from gemmalog.doctor import _collapse, _length, _resources, _rewards, _signal, _stability
from gemmalog.doctor._core import (
    RANK,
    REGISTRY,
    Check,
    Context,
    Finding,
    queries,
    steps_text,
)

_MODULES = (_collapse, _length, _resources, _rewards, _signal, _stability)  # they register checks

#: Event fields the checks read; the others are not parsed when a run is loaded.
DOCTOR_COLUMNS = (
    "v", "ts", "kind", "run", "rank", "step", "segment", "phase", "metrics", "rewards",
    "reward_fn", "values", "samples", "sample", "question", "prompt", "model_output", "correct",
    "total_reward", "length_chars", "length_tokens", "rss_mb", "gpu_mb", "cpu_rss_mb",
    "cuda_allocated_mb", "mps_allocated_mb", "distinct_1", "distinct_2", "repeated_ngram_ratio",
    "truncation_rate",
)  # fmt: skip


def _settings(
    con: duckdb.DuckDBPyConnection, config: DoctorConfig | None
) -> dict[str, DoctorConfig]:
    """Each run's thresholds: ``config`` when given, else the doctor section the run was
    logged with (its configuration snapshot in run.json), else the defaults."""
    rows = con.execute(queries("common")["runs"]).fetchall()
    out: dict[str, DoctorConfig] = {}
    for run, section, *_ in rows:
        if config is not None:
            out[run] = config
            continue
        data = json.loads(section) if section else None
        if isinstance(data, dict):
            # a snapshot holds every key; keys this version does not know are left out
            data = {k: v for k, v in data.items() if k in DoctorConfig.__dataclass_fields__}
        out[run] = parse_doctor(data, f"run {run}: run.json configuration")
    return out


def check_connection(
    con: duckdb.DuckDBPyConnection,
    config: DoctorConfig | None = None,
    *,
    checks: Iterable[str] | None = None,
) -> list[Finding]:
    """Run the checks over every run of an open connection (best after ``freeze``).

    ``checks`` limits the run to those names. Findings come most severe first, then by run
    and in check order.
    """
    ctx = Context(con, _settings(con, config))
    wanted = list(DOCTOR_CHECKS if checks is None else checks)
    unknown = [c for c in wanted if c not in REGISTRY]
    if unknown:
        raise ValueError(
            f"unknown check(s) {', '.join(unknown)}; known: {', '.join(DOCTOR_CHECKS)}"
        )
    findings: list[Finding] = []
    prepare = queries("prepare")
    try:
        for table in ("completions", "rewards", "metrics"):
            con.execute(prepare[table])
        for name in wanted:
            chk = REGISTRY[name]
            if all(cfg.checks.get(name) == "off" for cfg in ctx.settings.values()):
                continue
            findings += [
                f for f in chk.fn(ctx, chk) if ctx.settings[f.run].checks.get(name) != "off"
            ]
    finally:
        con.execute(prepare["cleanup"])
    order = {name: i for i, name in enumerate(DOCTOR_CHECKS)}
    findings.sort(key=lambda f: (-RANK[f.severity], f.run, order[f.check]))
    return findings


def diagnose(
    paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    *,
    root: str | os.PathLike[str] | None = None,
    config: DoctorConfig | str | os.PathLike[str] | None = None,
    checks: Iterable[str] | None = None,
) -> list[Finding]:
    """Check the runs under ``paths`` (run directories, run ids under ``root``, roots, globs).

    ``config`` is a :class:`~gemmalog.config.model.DoctorConfig` or a YAML file whose
    ``doctor:`` section sets the thresholds; without it each run is checked with the
    section it was logged with. Raises ``gemmalog.queries.QueryError`` for a path with no
    run and ``gemmalog.ConfigError`` for a bad configuration.
    """
    from gemmalog.queries import connect, freeze

    cfg = load(config).doctor if isinstance(config, str | os.PathLike) else config
    items = [paths] if isinstance(paths, str | os.PathLike) else list(paths)
    findings: list[Finding] = []
    seen: set[str] = set()
    for path in items:
        con = connect(path, root=root)
        try:
            freeze(con, DOCTOR_COLUMNS)
            for f in check_connection(con, cfg, checks=checks):
                if f.run not in seen:
                    findings.append(f)
            seen |= {r for (r,) in con.execute("SELECT run FROM runs").fetchall()}
        finally:
            con.close()
    order = {name: i for i, name in enumerate(DOCTOR_CHECKS)}
    findings.sort(key=lambda f: (-RANK[f.severity], f.run, order[f.check]))
    return findings


def worst(findings: Iterable[Finding]) -> str | None:
    """The highest severity among ``findings``, or None when there are none."""
    ranked = [RANK[f.severity] for f in findings]
    return None if not ranked else list(RANK)[max(ranked)]


__all__ = [
    "DOCTOR_COLUMNS",
    "RANK",
    "REGISTRY",
    "Check",
    "Finding",
    "check_connection",
    "diagnose",
    "steps_text",
    "worst",
]
