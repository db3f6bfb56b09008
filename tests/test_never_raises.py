"""No exception into the caller, ever (issue 12 item 1, defects note 7).

Hypothesis drives every public logging function with arbitrary arguments, wrong types and
objects whose every protocol raises; every call must return, and every line it wrote must
parse and be readable by the views (a value that does not cast to its declared column
would make DuckDB drop the whole line).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import gemmalog


class Hostile:
    """Every protocol a logging call might touch raises."""

    def __str__(self) -> str:
        raise RuntimeError("str")

    __repr__ = __str__

    def __iter__(self) -> Iterator[Any]:
        raise RuntimeError("iter")

    def __len__(self) -> int:
        raise RuntimeError("len")

    def __getitem__(self, index: Any) -> Any:
        raise RuntimeError("getitem")

    def __float__(self) -> float:
        raise RuntimeError("float")

    def __index__(self) -> int:
        raise RuntimeError("index")

    def __bool__(self) -> bool:
        raise RuntimeError("bool")


class BadMapping(Mapping[str, Any]):
    """A mapping whose reading raises half-way."""

    def __getitem__(self, key: str) -> Any:
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        yield "a"
        raise RuntimeError("iter")

    def __len__(self) -> int:
        return 2

    def values(self) -> Any:
        raise RuntimeError("values")

    def items(self) -> Any:
        raise RuntimeError("items")


def _generator() -> Iterator[float]:
    yield from (1.0, 2.0)


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.binary(max_size=10),
    st.builds(Hostile),
    st.builds(BadMapping),
    st.builds(_generator),
    st.builds(lambda: np.float32("nan")),
    st.builds(lambda: np.arange(3)),
    st.builds(object),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.tuples(inner, inner),
        st.dictionaries(
            st.one_of(st.text(max_size=8), st.integers(), st.builds(Hostile)), inner, max_size=4
        ),
    ),
    max_leaves=8,
)
texts = st.one_of(values, st.text(max_size=200))
numbers = st.lists(
    st.one_of(st.floats(allow_nan=True), st.integers(-5, 5), st.none(), values), max_size=5
)
# Keyword fields a caller may pass: envelope names, declared fields of other kinds, anything
# (not the helpers' own parameter names: Python itself rejects those twice).
FIELD_NAMES = ["ts", "run", "rank", "v", "kind", "epoch", "samples", "metrics", "x"]
kwargs = st.dictionaries(
    st.sampled_from([*FIELD_NAMES, "step", "level", "values", "rewards"]), values, max_size=3
)
extras = st.dictionaries(st.sampled_from(FIELD_NAMES), values, max_size=3)


def _calls() -> st.SearchStrategy[tuple[str, Callable[[], Any]]]:
    log = gemmalog.get_logger("fuzz")
    method = st.sampled_from(["debug", "info", "warning", "error", "critical", "exception", "msg"])
    return st.one_of(
        st.builds(
            lambda m, e, a, k: ("logger." + m, lambda: getattr(log, m)(e, *a, **k)),
            method,
            texts,
            st.lists(values, max_size=2),
            kwargs,
        ),
        st.builds(
            lambda lvl, e, k: ("logger.log", lambda: log.log(lvl, e, **k)), values, texts, extras
        ),
        st.builds(
            lambda e, ei: ("exc_info", lambda: log.error(e, exc_info=ei)),
            texts,
            st.one_of(values, st.just((1, 2, 3)), st.just(True)),
        ),
        st.builds(
            lambda n, e: ("get_logger", lambda: gemmalog.get_logger(n).info(e)), values, texts
        ),
        st.builds(
            lambda step, metrics, phase: (
                "log_training_progress",
                lambda: gemmalog.log_training_progress(step, metrics, phase=phase),
            ),
            values,
            st.one_of(values, st.dictionaries(st.text(max_size=6), st.one_of(st.floats(), values))),
            texts,
        ),
        st.builds(
            lambda q, a, o, r, rewards, correct, step, sample, prompt, extra: (
                "log_model_output",
                lambda: gemmalog.log_model_output(
                    q,
                    a,
                    o,
                    r,
                    rewards=rewards,
                    correct=correct,
                    step=step,
                    sample=sample,
                    prompt=prompt,
                    **extra,
                ),
            ),
            texts,
            texts,
            texts,
            texts,
            st.one_of(values, st.dictionaries(st.text(max_size=6), st.one_of(st.floats(), values))),
            values,
            values,
            values,
            values,
            extras,
        ),
        st.builds(
            lambda name, vals, samples, step: (
                "log_reward",
                lambda: gemmalog.log_reward(name, vals, samples, step=step),
            ),
            texts,
            st.one_of(values, numbers),
            st.one_of(st.none(), values),
            values,
        ),
        st.builds(
            lambda step, d: ("log_reward_metrics", lambda: gemmalog.log_reward_metrics(step, d)),
            values,
            st.one_of(values, st.dictionaries(st.text(max_size=6), st.one_of(numbers, values))),
        ),
        st.builds(
            lambda step, gens, lengths, limit: (
                "log_generation_metrics",
                lambda: gemmalog.log_generation_metrics(
                    step, gens, token_lengths=lengths, max_tokens=limit
                ),
            ),
            values,
            st.one_of(values, st.lists(texts, max_size=3)),
            st.one_of(st.none(), values),
            values,
        ),
        st.builds(
            lambda step, extra: (
                "log_memory_usage",
                lambda: gemmalog.log_memory_usage(step, **extra),
            ),
            values,
            extras,
        ),
        st.builds(
            lambda extra, e: ("bind", lambda: _bound_call(log, extra, e)),
            kwargs,
            texts,
        ),
    )


def _bound_call(log: gemmalog.BoundLogger, extra: dict[str, Any], event: Any) -> None:
    with gemmalog.bound(**extra):
        log.info(event)


def test_no_public_logging_call_raises_and_every_line_is_readable(root: Path) -> None:
    run = gemmalog.initialize(root=root, run_name="fuzz", capture_stdlib=False, level="debug")
    made: list[str] = []

    @settings(
        max_examples=300,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(st.lists(_calls(), min_size=1, max_size=5))
    def drive(calls: list[tuple[str, Callable[[], Any]]]) -> None:
        for name, call in calls:
            call()  # must not raise
            made.append(name)

    drive()
    gemmalog.shutdown()
    lines = [
        line
        for shard in sorted(run.dir.glob("events.*.jsonl"))
        for line in shard.read_bytes().splitlines()
    ]
    events = [orjson.loads(line) for line in lines]  # every line parses
    assert all(e["run"] == run.id for e in events)
    # every call left at least one line (run_start and run_end besides)
    assert len(events) >= len(made) + 2
    con = gemmalog.connect(run.dir)
    assert con.execute("SELECT count(*) FROM events").fetchone() == (len(events),)
    assert con.execute("SELECT count(*) FROM gemmalog_read_errors").fetchone() == (0,)
