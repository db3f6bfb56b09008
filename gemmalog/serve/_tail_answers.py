"""What a window of a live run's newest lines answers: the curves' new points and one step's
rollouts, row for row as ``series.sql`` and ``rollouts.sql`` give them (see :mod:`._tail`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gemmalog.serve._tail_values import (
    Unsupported,
    integer,
    length,
    mean,
    number,
    sample,
    scores,
    text,
    total_reward,
)

if TYPE_CHECKING:
    from gemmalog.serve._tail import Window

_SYSTEM = (
    "cpu_rss_mb", "cpu_percent", "cuda_allocated_mb", "cuda_reserved_mb", "cuda_peak_mb",
    "mps_allocated_mb", "tokens_per_second",
)  # fmt: skip
_GENERATION = (
    "mean_length_chars", "mean_length_tokens", "truncation_rate", "distinct_1", "distinct_2",
    "repeated_ngram_ratio", "format_adherence", "answer_extraction_rate",
)  # fmt: skip
_TEXTS = ("question", "prompt", "true_answer", "model_output", "reasoning", "answer")

#: (phase, name, step, mean value, latest ts): a row of ``series.sql``'s ``wanted``.
Point = tuple[str, str, int, float | None, float | None]


def points(window: Window, since_step: int) -> list[Point]:
    """``series.sql``'s ``wanted`` rows: (phase, name, step, mean value, latest ts) of
    the steps after ``since_step``, ordered by phase, name and step (each part of the
    query apart, as its UNION ALL keeps a name two parts give)."""
    if not window.covers(since_step):
        raise Unsupported(f"steps after {since_step} start before the window")
    series = _Series()
    for e in window.after(since_step):
        series.take(e)
    return series.rows()


def _note(slot: list[Any], value: float | None, ts: float | None) -> None:
    """Add ``value`` to a ``[values, latest ts]`` slot and keep its latest ``ts``."""
    if value is not None:
        slot[0].append(value)
    if ts is not None and (slot[1] is None or ts > slot[1]):
        slot[1] = ts


class _Series:
    """The points of ``series.sql``'s parts, by (part, phase, name, step), gathered an event
    at a time; each function's mean score waits for both of its sources (:meth:`rows`)."""

    def __init__(self) -> None:
        self.acc: dict[tuple[Any, ...], list[Any]] = {}
        self.outputs: dict[tuple[Any, ...], list[Any]] = {}  # model outputs' reward maps
        self.batches: dict[tuple[Any, ...], list[Any]] = {}  # reward events' values

    def add(
        self, part: int, phase: Any, name: str, step: int, value: float | None, ts: float | None
    ) -> None:
        _note(self.acc.setdefault((part, phase, name, step), [[], None]), value, ts)

    def take(self, e: dict[str, Any]) -> None:
        step = e["step"]
        kind, phase, ts = e["kind"], text(e.get("phase")), number(e.get("ts"))
        if kind == "metrics":
            self._metrics(e, phase, step, ts)
        elif kind == "model_output":
            self._model_output(e, phase, step, ts)
        elif kind == "reward":
            self._reward(e, phase, step, ts)
        elif kind == "system":
            for column in _SYSTEM:
                value = number(e.get(column))
                if value is not None:
                    self.add(6, "system", "system/" + column, step, value, ts)
        elif kind == "generation_metrics":
            for column in _GENERATION:
                value = number(e.get(column))
                if value is not None:
                    self.add(7, phase, "generation/" + column, step, value, ts)

    def _metrics(self, e: dict[str, Any], phase: Any, step: int, ts: float | None) -> None:
        values = e.get("metrics")
        if values is None:
            return
        if not isinstance(values, dict):
            raise Unsupported("metrics that are not an object")
        for name, value in values.items():
            self.add(0, phase, str(name), step, number(value), ts)

    def _model_output(self, e: dict[str, Any], phase: Any, step: int, ts: float | None) -> None:
        rewards = scores(e.get("rewards"))
        for fn, value in (rewards or {}).items():
            _note(self.outputs.setdefault((phase, step, fn), [[], None]), value, ts)
        total = total_reward(e, rewards)
        if total is not None:
            self.add(2, phase, "reward/total", step, total, ts)
        correct = e.get("correct")
        if correct is not None:
            if not isinstance(correct, bool):
                raise Unsupported("correct that is not true or false")
            self.add(3, phase, "accuracy", step, float(correct), ts)
        tokens = integer(e.get("length_tokens"))
        if tokens is not None:
            self.add(4, phase, "completions/length_tokens", step, float(tokens), ts)
        chars = length(e)
        if chars is not None:
            self.add(5, phase, "completions/length_chars", step, float(chars), ts)

    def _reward(self, e: dict[str, Any], phase: Any, step: int, ts: float | None) -> None:
        reward_fn = text(e.get("reward_fn"))
        values = e.get("values")
        if values is None:
            return
        if reward_fn is None or not isinstance(values, list):
            raise Unsupported("a reward event without a function or a list of values")
        if not values:
            return
        slot = self.batches.setdefault((phase, step, reward_fn), [[], None])
        for value in values:
            found = number(value)
            if found is not None:
                slot[0].append(found)
        _note(slot, None, ts)

    def _reward_means(self) -> None:
        """Each function's mean score: the outputs' maps, else the reward events (a FULL JOIN)."""
        for key in {*self.outputs, *self.batches}:
            o, b = self.outputs.get(key), self.batches.get(key)
            o_value = mean(o[0]) if o and o[0] else None
            b_value = mean(b[0]) if b and b[0] else None
            value = o_value if o_value is not None else b_value
            o_ts = o[1] if o else None
            ts = o_ts if o_ts is not None else (b[1] if b else None)
            phase, step, fn = key
            self.acc[(1, phase, "reward/" + fn, step)] = [[] if value is None else [value], ts]

    def rows(self) -> list[Point]:
        self._reward_means()
        rows = [
            ("train" if phase is None else phase, name, step, mean(values) if values else None, ts)
            for (_, phase, name, step), (values, ts) in self.acc.items()
        ]
        rows.sort(key=lambda r: (r[0], r[1], r[2]))
        return rows


def completion_rows(
    window: Window, step: int, phase: str | None
) -> tuple[list[dict[str, Any]], list[tuple[Any, ...]]]:
    """``rollouts.sql``'s ``completions`` and ``reward_events`` rows of one step."""
    if not window.covers(step - 1):
        raise Unsupported(f"step {step} starts before the window")
    rows: list[dict[str, Any]] = []
    scored: list[tuple[Any, ...]] = []
    for e in window.by_step.get(step, ()):
        ph = text(e.get("phase"))
        if phase is not None and ph != phase:
            continue
        kind = e["kind"]
        if kind == "model_output":
            rows.append(_completion(e, ph, step))
        elif kind == "reward":
            scored += _reward_scores(e, ph)
    rows.sort(key=_completion_order)
    return rows, scored


def _completion(e: dict[str, Any], phase: str | None, step: int) -> dict[str, Any]:
    """One row of ``completions`` from a ``model_output`` event."""
    rewards = scores(e.get("rewards"))
    row: dict[str, Any] = {
        "rank": integer(e.get("rank")),
        "phase": phase,
        "step": step,
        "sample": integer(e.get("sample")),
        "ts": number(e.get("ts")),
    }
    for name in _TEXTS:
        row[name] = text(e.get(name))
    correct = e.get("correct")
    if correct is not None and not isinstance(correct, bool):
        raise Unsupported("correct that is not true or false")
    row["correct"] = correct
    row["rewards"] = rewards
    row["total_reward"] = total_reward(e, rewards)
    row["length"] = length(e)
    row["length_tokens"] = integer(e.get("length_tokens"))
    return row


def _reward_scores(e: dict[str, Any], phase: str | None) -> list[tuple[Any, ...]]:
    """The ``reward_events`` rows of a ``reward`` event: (rank, phase, sample, fn, value)."""
    values, samples = e.get("values"), e.get("samples")
    if values is None:
        return []
    if not isinstance(values, list) or not (samples is None or isinstance(samples, list)):
        raise Unsupported("a reward event whose values or samples are not lists")
    fn, rank = text(e.get("reward_fn")), integer(e.get("rank"))
    out: list[tuple[Any, ...]] = []
    for i, value in enumerate(values):
        found = sample(samples[i] if samples is not None and i < len(samples) else None)
        out.append((rank, phase, i if found is None else found, fn, number(value)))
    return out


def _completion_order(row: dict[str, Any]) -> tuple[Any, ...]:
    """ORDER BY phase, rank, sample, ts (NULLs last, as DuckDB orders)."""
    return tuple(
        (row[k] is None, row[k] if row[k] is not None else 0)
        for k in ("phase", "rank", "sample", "ts")
    )
