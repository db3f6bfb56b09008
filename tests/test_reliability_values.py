"""Hostile values never reach the caller as an exception and always make a readable line."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import gemmalog
from tests.helpers import events_of, read_events


class BadRepr:
    def __repr__(self) -> str:
        raise RuntimeError("no repr")

    __str__ = __repr__


class BadKey:
    def __hash__(self) -> int:
        return 1

    def __repr__(self) -> str:
        raise ValueError("no repr for a key either")


surrogates = st.sampled_from(["\ud800", "\udfff", "a\udc80b", "\x00", "\x1b[31m", "\u2028"])
texts = st.text(st.characters(min_codepoint=0, max_codepoint=0x10FFFF), max_size=30)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),  # beyond 64 bits too
    st.floats(),  # NaN, ±inf, -0.0, subnormals
    texts,
    surrogates,
    st.binary(max_size=20),
    st.builds(BadRepr),
    st.sampled_from(
        [np.int8(-3), np.uint64(2**64 - 1), np.float16(0.5), np.float32("nan"), np.bool_(False)]
    ),
    st.sampled_from([np.array([1.5, math.inf]), np.zeros((2, 2), dtype=np.int16), np.array([])]),
)
keys = st.one_of(texts, surrogates, st.integers(), st.none(), st.floats(), st.builds(BadKey))
values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.tuples(children, children),
        st.dictionaries(keys, children, max_size=4),
    ),
    max_leaves=20,
)

EXAMPLES = 300


def test_hostile_values_always_make_a_parseable_line(root: Path) -> None:
    run = gemmalog.initialize(root=str(root), capture_stdlib=False)
    log = gemmalog.get_logger("hostile")
    logged: list[int] = []

    @settings(max_examples=EXAMPLES, deadline=None, database=None)
    @given(value=values, message=st.one_of(texts, surrogates, st.none()))
    def log_one(value: Any, message: Any) -> None:
        n = len(logged)
        if n % 3 == 0 and isinstance(value, list):  # a cycle
            value.append(value)
        log.info(message, n=n, value=value, nested={"deeper": [value, {"v": value}]})
        gemmalog.log_model_output(question=message, true_answer=value, model_output=message, step=n)
        gemmalog.log_training_progress(n, {"x": value, "y": 1.0} if n % 2 else {"x": 1.0})
        logged.append(n)

    log_one()
    gemmalog.shutdown()
    events = read_events(run.dir)  # orjson parses every line
    got = sorted(e["n"] for e in events if e.get("logger") == "hostile")
    assert got == logged and len(logged) == EXAMPLES
    assert len(events_of(run.dir, "model_output")) == EXAMPLES
    con = gemmalog.connect(run.dir)
    assert con.execute("SELECT count(*) FROM events").fetchone() == (len(events),)
    assert con.execute("SELECT count(*) FROM gemmalog_read_errors").fetchone() == (0,)
    assert con.execute("SELECT count(*) FROM completions").fetchone() == (EXAMPLES,)
    assert con.execute("SELECT count(DISTINCT step) FROM metrics").fetchone() == (EXAMPLES,)
    con.close()
    print(f"\nhypothesis examples run: {len(logged)} (each logged three ways)")


def test_every_numpy_and_torch_dtype(root: Path) -> None:
    torch = pytest.importorskip("torch")
    run = gemmalog.initialize(root=str(root), capture_stdlib=False)
    log = gemmalog.get_logger("dtypes")
    np_types = sorted({np.dtype(c).name for c in np.typecodes["All"] if c not in "OVMm"})
    for name in np_types:
        arr = np.ones(3, dtype=name)
        log.info("np", dtype=name, scalar=arr[0], array=arr, matrix=arr.reshape(3, 1))
    torch_types = [t for t in vars(torch).values() if isinstance(t, torch.dtype)]
    for dtype in sorted(set(torch_types), key=str):
        try:
            t = torch.ones(3).to(dtype)
        except Exception:  # quantized and other dtypes with no plain constructor
            continue
        log.info("torch", dtype=str(dtype), scalar=t[0], tensor=t)
    gemmalog.shutdown()
    events = read_events(run.dir)
    nps = [e for e in events if e.get("event") == "np"]
    ts = [e for e in events if e.get("event") == "torch"]
    assert len(nps) == len(np_types) and len(ts) >= 12
    for e in nps + ts:
        flat = e.get("array", e.get("tensor"))
        assert isinstance(flat, list) and len(flat) == 3, e  # converted, not a marker string
        for value in [*flat, e["scalar"]]:
            # a one of every dtype: a number (or True), complex as its text, strings as "1"
            assert value is True or value == 1 or value in ("(1+0j)", "1"), (e["dtype"], value)
    con = gemmalog.connect(run.dir)
    assert con.execute("SELECT count(*) FROM events").fetchone() == (len(events),)
    con.close()


def test_a_10mb_completion_is_truncated_with_a_flag(root: Path) -> None:
    run = gemmalog.initialize(root=str(root), capture_stdlib=False)
    limit = run.config["settings"]["max_string_length"]
    big = "y" * 10_000_000
    gemmalog.log_model_output(question="q", true_answer="a", model_output=big, step=1)
    gemmalog.get_logger("big").info("big field", blob=big, nested={"blob": big})
    gemmalog.shutdown()
    (out,) = events_of(run.dir, "model_output")
    assert len(out["model_output"]) == limit == 1_000_000
    assert out["truncated"] == ["model_output"] and out["length_chars"] == 10_000_000
    line = next(e for e in read_events(run.dir) if e.get("event") == "big field")
    assert len(line["blob"]) == limit and line["truncated"] == ["blob"]
    assert line["nested"]["blob"].endswith("[truncated 9000000 characters]")
    con = gemmalog.connect(run.dir)
    got = con.execute(
        "SELECT length(model_output), truncated FROM events WHERE kind = 'model_output'"
    ).fetchone()
    assert got == (limit, ["model_output"])
    con.close()
    assert orjson.loads(orjson.dumps(out))  # the line is plain JSON


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.text(max_size=200))
def test_run_names_never_leave_the_root(name: str) -> None:
    from gemmalog.run import safe_name

    root = Path("/runs/root")
    cleaned = safe_name(name)
    target = (root / cleaned).resolve()
    assert target.parent == root and cleaned not in ("", ".", "..")
    assert "/" not in cleaned and "\\" not in cleaned and "\0" not in cleaned
    assert not cleaned.startswith((".", "-"))
