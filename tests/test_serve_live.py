"""A watched live run: the pages' questions about its new steps (``/metrics?since_step=``,
``/completions?step=<newest>``) are answered from the lines the server parsed itself, with
exactly what DuckDB answers, and without a query (no connection opened again per change)."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("starlette")
from starlette.testclient import TestClient

import gemmalog
from gemmalog.serve import create_app
from tests.serve_support import log_step

LOCAL = "http://127.0.0.1"


def _step(step: int) -> None:
    """A step of every kind the curves and the rollouts read, odd values included."""
    log_step(step)
    gemmalog.log_reward(
        "length_penalty", [-0.1 * step, 0.2, None, math.nan], samples=[0, 1, "x", 3], step=step
    )
    gemmalog.log_reward("eval_only", [1.0, 0.5], step=step, phase="eval")
    gemmalog.log_generation_metrics(
        step, ["a b", "a b c", ""], token_lengths=[2, 3, 0], max_tokens=3
    )
    gemmalog.log_memory_usage(step)
    gemmalog.log_training_progress(
        step, {"loss": math.inf if step == 4 else 0.5, "accuracy": 0.25}, phase="eval"
    )
    gemmalog.log_model_output(
        "q eval",
        "1",
        "1",
        rewards={"correctness": 1.0},
        correct=True,
        step=step,
        sample=0,
        phase="eval",
    )


def _points(body: dict[str, Any]) -> dict[str, Any]:
    """A /metrics answer with each series' points as a sorted list: a name two sources give
    (a logged ``accuracy`` metric and the completions') has two points a step, in no order."""
    if "series" not in body:
        return body
    series = {
        (s["phase"], s["name"]): (
            s["points"],
            s["non_finite"],
            sorted(zip(s["steps"], map(str, s["values"]), s["ts"], strict=True)),
        )
        for s in body["series"]
    }
    order = [(s["phase"], s["name"]) for s in body["series"]]
    return {**body, "series": series, "order": order}


@pytest.fixture
def clients(root: Path) -> Iterator[tuple[TestClient, TestClient, list[str]]]:
    """The server as it runs, one that asks DuckDB every question, and the first's queries
    (one entry a question asked of DuckDB)."""
    with (
        TestClient(create_app([root]), base_url=LOCAL) as live,
        TestClient(create_app([root]), base_url=LOCAL) as ref,
    ):
        ref.app.state.store.from_window = lambda *args, **kwargs: None  # type: ignore[attr-defined]
        store = live.app.state.store  # type: ignore[attr-defined]
        asked: list[str] = []
        connection = store.connection

        def counted(run_id: str) -> Any:
            asked.append(run_id)  # every DuckDB query goes through the run's connection
            return connection(run_id)

        store.connection = counted
        yield live, ref, asked


def test_new_steps_come_from_the_parsed_lines(
    root: Path, clients: tuple[TestClient, TestClient, list[str]]
) -> None:
    live, ref, asked = clients
    run = gemmalog.initialize(root=root, run_name="watched", capture_stdlib=False)
    try:
        for step in (1, 2):
            _step(step)
        gemmalog.flush()
        path = f"/api/runs/{run.id}"
        assert _points(live.get(path + "/metrics").json()) == _points(
            ref.get(path + "/metrics").json()
        )
        for step in (3, 4, 5):
            _step(step)
            gemmalog.flush()
            asked.clear()
            for query in (
                f"/metrics?since_step={step - 2}",
                f"/metrics?since_step={step - 1}&names=loss,reward/length_penalty",
                f"/completions?step={step}",
                f"/completions?step={step}&phase=eval",
            ):
                got = live.get(path + query)
                assert got.status_code == 200, got.text
                assert _points(got.json()) == _points(ref.get(path + query).json()), query
            assert asked == []
            # more points than the curves keep: downsampled by DuckDB (ties in no fixed order)
            got = live.get(path + f"/metrics?since_step={step - 3}&max_points=2&names=loss")
            assert got.status_code == 200 and len(asked) == 1
        newest = live.get(path + "/metrics?since_step=4").json()
        loss = {(s["phase"], s["name"]): s for s in newest["series"]}[("eval", "loss")]
        assert loss["steps"] == [5] and newest["last_step"] == 5
        four = live.get(path + "/metrics?since_step=3&names=loss").json()["series"]
        assert {s["phase"]: s["non_finite"] for s in four} == {"eval": 1, "train": 0}
    finally:
        gemmalog.shutdown()


def test_a_torn_line_and_a_replaced_shard(
    root: Path, clients: tuple[TestClient, TestClient, list[str]]
) -> None:
    live, ref, _ = clients
    run = gemmalog.initialize(root=root, run_name="torn", capture_stdlib=False)
    try:
        for step in (1, 2, 3):
            _step(step)
        gemmalog.flush()
    finally:
        gemmalog.shutdown()
    path = f"/api/runs/{run.id}"
    shard = next(Path(run.dir).glob("events.*.jsonl"))
    live.get(path + "/metrics?since_step=1")  # the window is built
    with open(shard, "ab") as fh:
        fh.write(b'{"v":1,"kind":"metrics","run":"' + run.id.encode() + b'","step":4,"metr')
    for query in ("/metrics?since_step=2", "/completions?step=3"):
        assert _points(live.get(path + query).json()) == _points(ref.get(path + query).json())
    with open(shard, "ab") as fh:  # the torn line completed
        fh.write(b'ics":{"loss":0.125},"ts":1700000000.5}\n')
    for query in ("/metrics?since_step=2", "/metrics?since_step=3"):
        assert _points(live.get(path + query).json()) == _points(ref.get(path + query).json())
    # a whole last line without its newline: the views read it
    with open(shard, "ab") as fh:
        line = b'{"v":1,"kind":"metrics","run":"%s","step":4,"metrics":{"loss":0.25},"ts":1.7e9}'
        fh.write(line % run.id.encode())
    for query in ("/metrics?since_step=2", "/metrics?since_step=3"):
        assert _points(live.get(path + query).json()) == _points(ref.get(path + query).json())
    with open(shard, "ab") as fh:
        fh.write(b"\n")
    # a step written as a float: the views read it as step 4, so the window does not answer
    with open(shard, "ab") as fh:
        line = b'{"v":1,"kind":"metrics","run":"%s","step":4.0,"metrics":{"loss":0.5},"ts":1.7e9}\n'
        fh.write(line % run.id.encode())
    for query in ("/metrics?since_step=2", "/metrics?since_step=3"):
        assert _points(live.get(path + query).json()) == _points(ref.get(path + query).json())
    # the shard rewritten shorter (not appended to): answered from the files as they are
    data = shard.read_bytes()
    shard.write_bytes(data[: data.rfind(b"\n", 0, len(data) - 1) + 1])
    for query in ("/metrics?since_step=2", "/completions?step=3"):
        assert _points(live.get(path + query).json()) == _points(ref.get(path + query).json())


def test_curves_are_remembered_in_the_query_cache(root: Path) -> None:
    """A run page opened again, by this server or the next, reads its curves back from the
    query cache instead of computing them again."""
    # No stdlib bridge: the test client's request log after shutdown() would be a late
    # event of the run, a change of its data (and a new state to compute).
    run = gemmalog.initialize(root=root, run_name="kept", capture_stdlib=False)
    for step in (1, 2, 3):
        _step(step)
    gemmalog.shutdown()
    results = Path(run.dir) / ".gemmalog-cache" / "results"
    path = f"/api/runs/{run.id}/metrics"
    with TestClient(create_app([root]), base_url=LOCAL) as first:
        answer = first.get(path).json()
    kept = sorted(results.iterdir())
    assert any(b"reward/total" in f.read_bytes() for f in kept)
    with TestClient(create_app([root]), base_url=LOCAL) as second:
        assert _points(second.get(path).json()) == _points(answer)
    assert sorted(results.iterdir()) == kept  # read back: nothing computed or written again


def test_browsers_asking_at_once_share_one_answer(root: Path) -> None:
    """Five browsers opening a live run's page at once: one computes the curves and the
    others take its answer, though the run changed while they waited (else each computed it
    again, on a large run several seconds each)."""
    run = gemmalog.initialize(root=root, run_name="crowded", capture_stdlib=False)
    try:
        _step(1)
        gemmalog.flush()
        app = create_app([root])
        with TestClient(app, base_url=LOCAL):
            store = app.state.store
            store.listing()
            started, release = threading.Event(), threading.Event()
            calls: list[str] = []
            answers: list[str] = []

            def first() -> str:
                calls.append("first")
                started.set()
                release.wait(60)
                return "first answer"

            def others() -> str:
                calls.append("other")
                return "other answer"

            asking = [
                threading.Thread(
                    target=lambda: answers.append(store.remembered(run.id, "k", first))
                )
            ]
            asking[0].start()
            assert started.wait(60)
            asking += [
                threading.Thread(
                    target=lambda: answers.append(store.remembered(run.id, "k", others))
                )
                for _ in range(4)
            ]
            for t in asking[1:]:
                t.start()
            time.sleep(1.0)  # they are waiting for the first (a thread's start, not a speed)
            _step(2)
            gemmalog.flush()  # the run changed meanwhile
            release.set()
            for t in asking:
                t.join(60)
        assert calls == ["first"] and answers == ["first answer"] * 5
    finally:
        gemmalog.shutdown()
