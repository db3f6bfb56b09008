"""The newest lines of a live run, parsed on the server: what answers a watching page.

A page that watches a run asks, after each change, for the curves' new points
(``/metrics?since_step=N``) and for the newest step's rollouts. Opening the run's query
connection again for each change (the query cache takes the new lines) and querying it
costs a fraction of a second each time; these answers come instead from the lines the
server parses itself (the shards are append-only and a complete line ends in ``"\\n"``):

* when the run's connection is opened, the last :data:`WINDOW_BYTES` of each shard are
  parsed with orjson, and ``floor`` is set one step above the lowest step they hold. The
  connection counts its events from ``floor`` on; when that count equals the window's,
  every event of a step from ``floor`` on is in the window, and the window is kept;
* afterwards only the bytes appended to each shard since are read (up to the last
  complete line) and parsed;
* a question about steps from ``floor`` on is answered from the window, with the same
  rules as the views (``series.sql``, ``rollouts.sql``). Anything else (an older step, a
  value of a type the views would convert, a resumed run's second segment in the window,
  more points than the curves keep, a shard replaced or cut) is :class:`Unsupported`, and
  the caller asks DuckDB, which builds a new window.
"""

from __future__ import annotations

import bisect
import glob
import math
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import duckdb
import orjson

#: Bytes parsed back from the end of each shard when the window is built.
WINDOW_BYTES = 4 << 20
#: A window that has grown past this is dropped (the next question builds a smaller one).
MAX_WINDOW_BYTES = 32 << 20
_SHARDS = "events.*.jsonl"
_NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
_SYSTEM = (
    "cpu_rss_mb", "cpu_percent", "cuda_allocated_mb", "cuda_reserved_mb", "cuda_peak_mb",
    "mps_allocated_mb", "tokens_per_second",
)  # fmt: skip
_GENERATION = (
    "mean_length_chars", "mean_length_tokens", "truncation_rate", "distinct_1", "distinct_2",
    "repeated_ngram_ratio", "format_adherence", "answer_extraction_rate",
)  # fmt: skip
_TEXTS = ("question", "prompt", "true_answer", "model_output", "reasoning", "answer")


class Unsupported(Exception):
    """A question the window cannot answer exactly as the views would: ask DuckDB."""


def _number(value: Any) -> float | None:
    """A DOUBLE field as DuckDB reads it from JSON (the writer's non-finite strings too)."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise Unsupported("a boolean where a number is declared")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str) and value in _NON_FINITE:
        return _NON_FINITE[value]
    raise Unsupported(f"{value!r} where a number is declared")


def _int(value: Any) -> int | None:
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    raise Unsupported(f"{value!r} where an integer is declared")


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise Unsupported(f"{value!r} where a text is declared")


def _scores(value: Any) -> dict[str, float | None] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise Unsupported("rewards that are not an object")
    return {str(k): _number(v) for k, v in value.items()}


def _mean(values: list[float]) -> float:
    total = 0.0
    for v in values:
        total += v
    return total / len(values)


@dataclass
class _Shard:
    ino: int
    offset: int  # the first byte not parsed yet (a line start)
    # the bytes after the last newline are a whole event: the views read it, the window not
    pending: bool = False


@dataclass
class Window:
    """The parsed events of the last lines of every shard of one run (see the module)."""

    dir: str
    floor: int
    shards: dict[str, _Shard]
    by_step: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    steps: list[int] = field(default_factory=list)  # the keys of by_step, in order
    size: int = 0  # bytes parsed
    training_args: dict[str, Any] = field(default_factory=dict)
    segment: int | None = None

    # -- building and following ---------------------------------------------------------------

    @classmethod
    def build(
        cls,
        run_dir: str,
        sizes: dict[str, tuple[int, int]],
        con: duckdb.DuckDBPyConnection,
        training_args: dict[str, Any],
    ) -> Window | None:
        """The window over the shards as they were (``sizes``: name -> size, inode) when
        ``con`` was opened; None when it cannot be proven to hold every event from its floor."""
        shards: dict[str, _Shard] = {}
        events: list[dict[str, Any]] = []
        parsed = 0
        for name, (size, ino) in sorted(sizes.items()):
            try:
                with open(os.path.join(run_dir, name), "rb") as fh:
                    if os.fstat(fh.fileno()).st_ino != ino:
                        return None
                    start = max(0, size - WINDOW_BYTES)
                    fh.seek(start)
                    data = fh.read(size - start)
            except OSError:
                return None
            end = data.rfind(b"\n") + 1
            first = 0 if start == 0 else data.find(b"\n") + 1
            if start and first == 0:  # one line longer than the window
                return None
            first = min(first, end)
            events += _parse(data[first:end])
            parsed += end - first
            shards[name] = _Shard(ino, start + end, _whole(data[end:]))
        steps = [e["step"] for e in events if type(e.get("step")) is int]
        if not steps:
            return None
        floor = min(steps) + 1
        counted = sum(1 for e in events if _counted(e) and e["step"] >= floor)
        try:
            row = con.execute("SELECT count(*) FROM events WHERE step >= $f", {"f": floor})
            found = row.fetchone()
        except duckdb.Error:
            return None
        if found is None or found[0] != counted:
            return None  # an older event of a newer step lies before the window: not provable
        window = cls(run_dir, floor, shards, training_args=training_args)
        try:
            window._take(events, parsed, following=False)
        except Unsupported:
            return None
        return window

    def follow(self) -> bool:
        """Parse what was appended since; False when the window no longer describes the
        shards (one replaced, cut or gone, a line the window cannot take, or grown too big)."""
        try:
            names = {
                os.path.basename(p) for p in glob.glob(os.path.join(glob.escape(self.dir), _SHARDS))
            }
        except OSError:
            return False
        if not set(self.shards) <= names:
            return False
        new: list[dict[str, Any]] = []
        parsed = 0
        for name in sorted(names):
            shard = self.shards.get(name)
            try:
                with open(os.path.join(self.dir, name), "rb") as fh:
                    st = os.fstat(fh.fileno())
                    if shard is None:  # a shard begun after the window was built
                        shard = self.shards[name] = _Shard(st.st_ino, 0)
                    if st.st_ino != shard.ino or st.st_size < shard.offset:
                        return False
                    if st.st_size == shard.offset:
                        continue
                    if st.st_size - shard.offset > MAX_WINDOW_BYTES:
                        return False
                    fh.seek(shard.offset)
                    data = fh.read(st.st_size - shard.offset)
            except OSError:
                return False
            end = data.rfind(b"\n") + 1
            new += _parse(data[:end])
            parsed += end
            shard.offset += end
            shard.pending = _whole(data[end:])
        try:
            self._take(new, parsed, following=True)
        except Unsupported:
            return False
        return self.size <= MAX_WINDOW_BYTES

    def _take(self, events: list[dict[str, Any]], parsed: int, *, following: bool) -> None:
        for e in events:
            if not _counted(e):
                if _event(e) and e.get("step") is not None:  # a step the views would cast
                    raise Unsupported(f"step {e.get('step')!r} is not an integer")
                continue
            segment = _int(e.get("segment")) or 0
            if self.segment is None:
                self.segment = segment
            elif segment != self.segment:
                raise Unsupported("a second segment (a resumed run): the views keep the latest")
            if following and e["kind"] == "run_start":
                raise Unsupported("a new run_start: the training arguments may have changed")
            step = e["step"]
            if step not in self.by_step:
                self.by_step[step] = []
                bisect.insort(self.steps, step)
            self.by_step[step].append(e)
        self.size += parsed

    def _after(self, since_step: int) -> Iterator[dict[str, Any]]:
        """The events of the steps after ``since_step``, a step at a time, as written."""
        for step in self.steps[bisect.bisect_right(self.steps, since_step) :]:
            yield from self.by_step[step]

    def covers(self, since_step: int) -> bool:
        """Whether every event of a step after ``since_step`` is in the window."""
        if any(shard.pending for shard in self.shards.values()):
            return False  # a last line without its newline that the views read
        return since_step >= self.floor - 1

    # -- answers ------------------------------------------------------------------------------

    def points(self, since_step: int) -> list[tuple[str, str, int, float | None, float | None]]:
        """``series.sql``'s ``wanted`` rows: (phase, name, step, mean value, latest ts) of
        the steps after ``since_step``, ordered by phase, name and step (each part of the
        query apart, as its UNION ALL keeps a name two parts give)."""
        if not self.covers(since_step):
            raise Unsupported(f"steps after {since_step} start before the window")
        acc: dict[tuple[Any, ...], list[Any]] = {}

        def add(
            part: int, phase: Any, name: str, step: int, value: float | None, ts: float | None
        ) -> None:
            slot = acc.setdefault((part, phase, name, step), [[], None])
            if value is not None:
                slot[0].append(value)
            if ts is not None and (slot[1] is None or ts > slot[1]):
                slot[1] = ts

        outputs: dict[tuple[Any, ...], list[Any]] = {}
        batches: dict[tuple[Any, ...], list[Any]] = {}
        for e in self._after(since_step):
            step = e["step"]
            kind, phase, ts = e["kind"], _text(e.get("phase")), _number(e.get("ts"))
            if kind == "metrics":
                values = e.get("metrics")
                if values is None:
                    continue
                if not isinstance(values, dict):
                    raise Unsupported("metrics that are not an object")
                for name, value in values.items():
                    add(0, phase, str(name), step, _number(value), ts)
            elif kind == "model_output":
                scores = _scores(e.get("rewards"))
                for fn, value in (scores or {}).items():
                    slot = outputs.setdefault((phase, step, fn), [[], None])
                    if value is not None:
                        slot[0].append(value)
                    if ts is not None and (slot[1] is None or ts > slot[1]):
                        slot[1] = ts
                total = _total(e, scores)
                if total is not None:
                    add(2, phase, "reward/total", step, total, ts)
                correct = e.get("correct")
                if correct is not None:
                    if not isinstance(correct, bool):
                        raise Unsupported("correct that is not true or false")
                    add(3, phase, "accuracy", step, float(correct), ts)
                tokens = _int(e.get("length_tokens"))
                if tokens is not None:
                    add(4, phase, "completions/length_tokens", step, float(tokens), ts)
                length = _length(e)
                if length is not None:
                    add(5, phase, "completions/length_chars", step, float(length), ts)
            elif kind == "reward":
                reward_fn = _text(e.get("reward_fn"))
                values = e.get("values")
                if values is None:
                    continue
                if reward_fn is None or not isinstance(values, list):
                    raise Unsupported("a reward event without a function or a list of values")
                if not values:
                    continue
                slot = batches.setdefault((phase, step, reward_fn), [[], None])
                for value in values:
                    number = _number(value)
                    if number is not None:
                        slot[0].append(number)
                if ts is not None and (slot[1] is None or ts > slot[1]):
                    slot[1] = ts
            elif kind == "system":
                for column in _SYSTEM:
                    value = _number(e.get(column))
                    if value is not None:
                        add(6, "system", "system/" + column, step, value, ts)
            elif kind == "generation_metrics":
                for column in _GENERATION:
                    value = _number(e.get(column))
                    if value is not None:
                        add(7, phase, "generation/" + column, step, value, ts)
        # each function's mean score: the outputs' maps, else the reward events (a FULL JOIN)
        for key in {*outputs, *batches}:
            o, b = outputs.get(key), batches.get(key)
            o_value = _mean(o[0]) if o and o[0] else None
            b_value = _mean(b[0]) if b and b[0] else None
            value = o_value if o_value is not None else b_value
            o_ts = o[1] if o else None
            ts = o_ts if o_ts is not None else (b[1] if b else None)
            phase, step, fn = key
            acc[(1, phase, "reward/" + fn, step)] = [[] if value is None else [value], ts]
        rows = [
            ("train" if phase is None else phase, name, step, _mean(values) if values else None, ts)
            for (_, phase, name, step), (values, ts) in acc.items()
        ]
        rows.sort(key=lambda r: (r[0], r[1], r[2]))
        return rows

    def completion_rows(
        self, step: int, phase: str | None
    ) -> tuple[list[dict[str, Any]], list[tuple[Any, ...]]]:
        """``rollouts.sql``'s ``completions`` and ``reward_events`` rows of one step."""
        if not self.covers(step - 1):
            raise Unsupported(f"step {step} starts before the window")
        rows: list[dict[str, Any]] = []
        scores: list[tuple[Any, ...]] = []
        for e in self.by_step.get(step, ()):
            ph = _text(e.get("phase"))
            if phase is not None and ph != phase:
                continue
            kind = e["kind"]
            if kind == "model_output":
                rewards = _scores(e.get("rewards"))
                row: dict[str, Any] = {
                    "rank": _int(e.get("rank")),
                    "phase": ph,
                    "step": step,
                    "sample": _int(e.get("sample")),
                    "ts": _number(e.get("ts")),
                }
                for name in _TEXTS:
                    row[name] = _text(e.get(name))
                correct = e.get("correct")
                if correct is not None and not isinstance(correct, bool):
                    raise Unsupported("correct that is not true or false")
                row["correct"] = correct
                row["rewards"] = rewards
                row["total_reward"] = _total(e, rewards)
                row["length"] = _length(e)
                row["length_tokens"] = _int(e.get("length_tokens"))
                rows.append(row)
            elif kind == "reward":
                values, samples = e.get("values"), e.get("samples")
                if values is None:
                    continue
                if not isinstance(values, list) or not (
                    samples is None or isinstance(samples, list)
                ):
                    raise Unsupported("a reward event whose values or samples are not lists")
                fn, rank = _text(e.get("reward_fn")), _int(e.get("rank"))
                for i, value in enumerate(values):
                    sample = _sample(
                        samples[i] if samples is not None and i < len(samples) else None
                    )
                    scores.append((rank, ph, i if sample is None else sample, fn, _number(value)))
        rows.sort(key=_completion_order)
        return rows, scores


def _parse(data: bytes) -> Iterator[dict[str, Any]]:
    for line in data.split(b"\n"):
        if not line.strip():
            continue
        try:
            value = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue  # a torn or malformed line: the views count it as a read error
        if isinstance(value, dict):
            yield value


def _whole(rest: bytes) -> bool:
    """Whether the bytes after a shard's last newline hold an event the views would read."""
    if not rest.strip():
        return False
    try:
        value = orjson.loads(rest)
    except orjson.JSONDecodeError:
        return False  # a line being written, or torn: a read error for the views too
    return isinstance(value, dict) and _event(value)


def _event(e: dict[str, Any]) -> bool:
    """A line the ``events`` view keeps: a kind and a run."""
    return e.get("kind") is not None and e.get("run") is not None


def _counted(e: dict[str, Any]) -> bool:
    """An event of the ``events`` view with an integer step (a text kind)."""
    return _event(e) and isinstance(e["kind"], str) and type(e.get("step")) is int


def _total(e: dict[str, Any], scores: dict[str, float | None] | None) -> float | None:
    """``completions.total_reward``: the logged one, else the sum of the rewards."""
    total = _number(e.get("total_reward"))
    if total is not None or scores is None:
        return total
    known = [v for v in scores.values() if v is not None]
    if not known:
        return None
    out = 0.0
    for v in known:
        out += v
    return out


def _length(e: dict[str, Any]) -> int | None:
    """``completions.length``: the logged length in characters, else the text's."""
    length = _int(e.get("length_chars"))
    if length is not None:
        return length
    text = _text(e.get("model_output"))
    return None if text is None else len(text)


def _sample(value: Any) -> int | None:
    """``TRY_CAST(samples[i] AS INTEGER)`` for a sample id (a text in the views)."""
    if isinstance(value, str) and re.fullmatch(r"-?[0-9]{1,9}", value):
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) < 10**9:
        return value
    if value is None or (isinstance(value, str) and not any(c.isdigit() for c in value)):
        return None  # not a number: the position stands in
    raise Unsupported(f"a sample id {value!r} the views might read otherwise")


def _completion_order(row: dict[str, Any]) -> tuple[Any, ...]:
    """ORDER BY phase, rank, sample, ts (NULLs last, as DuckDB orders)."""
    return tuple(
        (row[k] is None, row[k] if row[k] is not None else 0)
        for k in ("phase", "rank", "sample", "ts")
    )
