"""Findings, the check registry, and what every check shares: SQL files, windows, trends."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from functools import cache
from importlib import resources
from typing import Any

import duckdb

from gemmalog.config.model import DOCTOR_CHECKS, SEVERITIES, DoctorConfig
from gemmalog.events import nonfinite_text

#: Severity -> rank, for sorting and ``--fail-on``.
RANK = {name: i for i, name in enumerate(SEVERITIES)}
#: TRL metrics the checks read (besides each run's ``outlier_metrics``).
METRIC_NAMES = (
    "entropy",
    "frac_reward_zero_std",
    "completions/clipped_ratio",
    "completions/mean_length",
    "step_time",
)


@dataclass(slots=True)
class Finding:
    """One problem a check found in one run, with the evidence a person needs to judge it.

    ``steps`` are the steps where the pattern holds; ``values`` holds the numbers behind
    ``message`` (series as ``{step: value}``, window means, thresholds used); ``examples``
    are a few completions that show a text pattern.
    """

    check: str
    severity: str
    run: str
    title: str
    message: str
    steps: list[int] = field(default_factory=list)
    values: dict[str, Any] = field(default_factory=dict)
    examples: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: non-finite floats as strings, step keys as text."""
        return _plain(asdict(self))  # type: ignore[no-any-return]


def _plain(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return nonfinite_text(value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


@dataclass(slots=True)
class Context:
    """What a check reads: the connection (frozen or live), the runs in it, each run's settings."""

    con: duckdb.DuckDBPyConnection
    settings: dict[str, DoctorConfig]
    _memo: dict[tuple[Any, ...], Any] = field(default_factory=dict)

    @property
    def runs(self) -> list[str]:
        return list(self.settings)

    def rows(
        self, group: str, name: str, params: dict[str, Any] | None = None, **fill: Any
    ) -> list[dict[str, Any]]:
        """Rows of the ``-- name: <name>`` query of ``<group>.sql`` as dicts.

        ``fill`` substitutes ``${key}`` placeholders (validated integers only: window sizes
        cannot be bound parameters); ``params`` are bound as ``$key``.
        """
        sql = queries(group)[name]
        for key, value in fill.items():
            sql = sql.replace("${" + key + "}", str(int(value)))
        cur = self.con.execute(sql, params or {})
        names = [d[0] for d in cur.description or ()]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    def shared(
        self, group: str, name: str, params: dict[str, Any] | None = None
    ) -> dict[str, list[dict[str, Any]]]:
        """``rows`` grouped by run, computed once per context (several checks read them)."""
        key = (group, name, tuple(sorted((params or {}).items())))
        if key not in self._memo:
            self._memo[key] = self.by_run(self.rows(group, name, params))
        return self._memo[key]  # type: ignore[no-any-return]

    def metric(self, run: str, name: str) -> Series:
        """The per-step training series of one TRL metric (read once for every check)."""
        key = ("metric_series",)
        if key not in self._memo:
            series: dict[tuple[str, str], list[dict[str, Any]]] = {}
            names = {*METRIC_NAMES, *(n for c in self.settings.values() for n in c.outlier_metrics)}
            for r in self.rows("common", "metric_series", {"names": sorted(names)}):
                series.setdefault((r["run"], r["name"]), []).append(r)
            self._memo[key] = {k: Series.of(v, "value") for k, v in series.items()}
        return self._memo[key].get((run, name), Series([], []))  # type: ignore[no-any-return]

    def by_run(self, rows: Iterable[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
        """Rows grouped by their ``run`` column, for the runs being checked only."""
        out: dict[str, list[dict[str, Any]]] = {}
        for r in rows:
            if r["run"] in self.settings:
                out.setdefault(r["run"], []).append(r)
        return out


@cache
def queries(group: str) -> dict[str, str]:
    """The ``-- name: x`` blocks of ``gemmalog/doctor/<group>.sql``."""
    text = resources.files("gemmalog.doctor").joinpath(f"{group}.sql").read_text("utf-8")
    parts = re.split(r"^-- name: (\w+)\s*$", text, flags=re.MULTILINE)
    return {parts[i]: parts[i + 1].strip().rstrip(";") for i in range(1, len(parts), 2)}


CheckFn = Callable[[Context, "Check"], list[Finding]]


@dataclass(frozen=True, slots=True)
class Check:
    """A named rule: its default severity, a short title, and the function that applies it."""

    name: str
    severity: str
    title: str
    fn: CheckFn

    def finding(self, ctx: Context, run: str, message: str, **evidence: Any) -> Finding:
        """A finding of this check in ``run``, at the severity the run's settings give it."""
        severity = ctx.settings[run].checks.get(self.name, self.severity)
        return Finding(self.name, severity, run, self.title, message, **evidence)


REGISTRY: dict[str, Check] = {}


def check(name: str, severity: str, title: str) -> Callable[[CheckFn], CheckFn]:
    """Register a check function under ``name`` (one of ``DOCTOR_CHECKS``)."""
    if name not in DOCTOR_CHECKS or severity not in RANK:
        raise ValueError(f"undeclared check {name!r} or severity {severity!r}")

    def register(fn: CheckFn) -> CheckFn:
        REGISTRY[name] = Check(name, severity, title, fn)
        return fn

    return register


# -- series helpers -------------------------------------------------------------------


#: Values of a larger magnitude are left out of a :class:`Series` like NaN and infinities
#: (the ``non_finite`` check reports those): a check's means, variances and fits square
#: them, and a square beyond a double's range is inf (or raises OverflowError), which would
#: make its message say ``nan%``.
COMPUTABLE = 1e150


@dataclass(slots=True)
class Series:
    """A per-step curve of one run, in step order, finite values only (of a magnitude up to
    :data:`COMPUTABLE`)."""

    steps: list[int]
    values: list[float]

    @classmethod
    def of(cls, rows: Iterable[dict[str, Any]], key: str) -> Series:
        pairs = sorted(
            (int(r["step"]), float(r[key]))
            for r in rows
            if r.get(key) is not None
            and r.get("step") is not None
            and -COMPUTABLE <= r[key] <= COMPUTABLE
        )
        return cls([s for s, _ in pairs], [v for _, v in pairs])

    def __len__(self) -> int:
        return len(self.steps)

    def windows(self, cfg: DoctorConfig) -> tuple[Series, Series] | None:
        """The first and last ``window`` share of the steps, or None below ``min_steps``."""
        n = len(self.steps)
        if n < max(cfg.min_steps, 4):
            return None
        w = max(2, math.ceil(cfg.window * n))
        return self.slice(0, w), self.slice(n - w, n)

    def slice(self, start: int, stop: int) -> Series:
        return Series(self.steps[start:stop], self.values[start:stop])

    def span(self) -> str:
        """``first–last`` step, for messages."""
        return f"{self.steps[0]}–{self.steps[-1]}" if self.steps else ""

    def mean(self) -> float:
        return sum(self.values) / len(self.values) if self.values else math.nan

    def since(self, step: int) -> Series:
        keep = [i for i, s in enumerate(self.steps) if s >= step]
        return Series([self.steps[i] for i in keep], [self.values[i] for i in keep])

    def as_dict(self, digits: int = 6) -> dict[int, float]:
        return {s: round(v, digits) for s, v in zip(self.steps, self.values, strict=True)}

    def onset(self, level: float, *, above: bool = True, smooth: int = 3) -> int | None:
        """The first step from which the trailing mean of ``smooth`` values stays beyond ``level``.

        Smoothing keeps one lucky step from moving the onset; the onset is the first step of
        the first smoothing window that crosses, so a sharp change is dated where it starts.
        """
        n = len(self.values)
        if n == 0:
            return None
        k = max(1, min(smooth, n))

        def beyond(x: float) -> bool:
            return x >= level if above else x <= level

        window = [self.values[max(0, i - k + 1) : i + 1] for i in range(n)]
        smoothed = [beyond(sum(w) / len(w)) for w in window]
        if not smoothed[-1]:
            return None
        i = n - 1
        while i > 0 and smoothed[i - 1]:
            i -= 1
        # the trailing window that crossed first starts up to k-1 steps earlier: date the
        # onset at the first of those steps that is itself beyond the level
        start = next((j for j in range(max(0, i - k + 1), i + 1) if beyond(self.values[j])), i)
        return self.steps[start]


def flagged_from(onset: int | None, last: Series) -> int:
    """The first flagged step: the onset, or the start of the last window if that is earlier
    (the messages state the last window's mean, so its steps are among those flagged)."""
    return last.steps[0] if onset is None else min(onset, last.steps[0])


def steps_text(steps: Sequence[int]) -> str:
    """``[1, 2, 3, 7, 9, 10]`` as ``1–3, 7, 9–10``; long lists keep their ends."""
    if not steps:
        return ""
    ranges: list[tuple[int, int]] = []
    for s in sorted(set(steps)):
        if ranges and s == ranges[-1][1] + 1:
            ranges[-1] = (ranges[-1][0], s)
        else:
            ranges.append((s, s))
    parts = [f"{a}" if a == b else f"{a}–{b}" for a, b in ranges]
    if len(parts) > 6:
        parts = [*parts[:3], "…", *parts[-2:]]
    return ", ".join(parts)


def num(value: float) -> str:
    """A number for a message: 3 significant digits."""
    return f"{value:.3g}"


def example(row: dict[str, Any], chars: int = 240) -> dict[str, Any]:
    """A completion as evidence: where it is, its scores, and its text cut to ``chars``."""
    text = str(row.get("model_output") or "")
    out = {
        k: row[k]
        for k in (
            "step",
            "sample",
            "question",
            "total_reward",
            "advantage",
            "correct",
            "rewards",
            "count",
        )
        if row.get(k) is not None
    }
    out["text"] = text if len(text) <= chars else text[:chars] + "…"
    return out
