"""The hand-off between the callers and the listener: wake-ups, room for blocked producers,
and the loss window while a batch is processed in chunks (not timed: bounds are generous)."""

from __future__ import annotations

import math
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import gemmalog
from gemmalog.engine._queue import EventQueue
from tests.helpers import events_of


def test_the_listener_is_woken_once_wake_at_events_wait() -> None:
    # A 30 s poll: only a wake-up from put() can return the batch in time.
    q = EventQueue(maxsize=1000, poll_interval=30.0, wake_at=4)
    got: list[list[Any] | None] = []
    taker = threading.Thread(target=lambda: got.append(q.get(True)))
    taker.start()
    time.sleep(0.05)
    for i in range(5):
        q.put({"ts": float(i)})
    taker.join(timeout=10)
    assert not taker.is_alive()
    batch = got[0]
    assert batch is not None and [e["ts"] for e in batch][:4] == [0.0, 1.0, 2.0, 3.0]


def test_a_blocked_producer_goes_on_once_the_queue_is_down_to_half() -> None:
    q = EventQueue(maxsize=8, policy="block", poll_interval=0.02)
    q.max_batch = 2  # the listener takes two at a time
    for i in range(8):
        q.put({"ts": float(i)})
    producer = threading.Thread(target=q.put, args=({"ts": 8.0},))
    producer.start()
    time.sleep(0.2)
    assert producer.is_alive() and len(q) == 8
    taken = [q.get(False), q.get(False)]  # 4 left: at half, no more
    assert [len(b or []) for b in taken] == [2, 2]
    # Room existed after the first take; the producer waited for half the queue, and the
    # safety-net polls (20 ms) in between found it still above half.
    producer.join(timeout=10)
    assert not producer.is_alive()
    assert [e["ts"] for e in q._dq] == [4.0, 5.0, 6.0, 7.0, 8.0]


def test_a_queue_of_one_never_holds_two() -> None:
    q = EventQueue(maxsize=1, policy="block", poll_interval=0.02)
    q.put({"ts": 0.0})
    producer = threading.Thread(target=q.put, args=({"ts": 1.0},))
    producer.start()
    time.sleep(0.1)
    assert producer.is_alive() and len(q) == 1
    assert [e["ts"] for e in q.get(False) or []] == [0.0]
    producer.join(timeout=10)
    assert not producer.is_alive()
    assert [e["ts"] for e in q._dq] == [1.0]


def test_a_producer_blocked_past_half_is_not_woken_by_every_take() -> None:
    q = EventQueue(maxsize=8, policy="block", poll_interval=30.0)
    q.max_batch = 1
    for i in range(8):
        q.put({"ts": float(i)})
    producer = threading.Thread(target=q.put, args=({"ts": 8.0},))
    producer.start()
    time.sleep(0.1)
    for _ in range(3):  # 5 left: more than half, the producer keeps waiting
        q.get(False)
    time.sleep(0.2)
    assert producer.is_alive() and len(q) == 5
    q.get(False)  # 4 left: woken at once (its own poll is 30 s)
    producer.join(timeout=10)
    assert not producer.is_alive() and len(q) == 5


def test_a_slow_batch_is_flushed_between_chunks(root: Path) -> None:
    """A batch that takes longer than flush_interval is written to the shard while it is
    still being processed: the loss window does not grow with the batch."""
    started = threading.Event()
    release = threading.Event()

    def slow(logger: Any, method: str, event: dict[str, Any]) -> dict[str, Any]:
        if event.get("kind") == "metrics":
            started.set()
            release.wait(10)  # the first event holds the listener until the rest are queued
            time.sleep(0.007)
        return event

    run = gemmalog.initialize(
        root=str(root), flush_interval=0.2, capture_stdlib=False, listener_processors=[slow]
    )
    shard = run.dir / "events.0.jsonl"
    gemmalog.log_training_progress(step=0, metrics={"x": 0.0})
    assert started.wait(10)
    for i in range(1, 300):
        gemmalog.log_training_progress(step=i, metrics={"x": float(i)})
    # Queued within the time bound (0.3 s) of the first one: the listener now takes the rest
    # as one batch of 299 events, 7 ms each: ~2.1 s.
    release.set()
    deadline = time.monotonic() + 1.5
    lines = 0
    while time.monotonic() < deadline:
        lines = shard.read_bytes().count(b'"kind":"metrics"')
        if lines > 1:
            break
        time.sleep(0.01)
    assert 1 < lines < 300, f"{lines} metrics lines in the shard 1.5 s into a 2.1 s batch"
    gemmalog.shutdown()
    assert [e["step"] for e in events_of(run.dir, "metrics")] == list(range(300))


def test_a_trickle_is_written_in_the_window_with_one_wake_up_per_flush(root: Path) -> None:
    """Events logged a few at a time (fewer than ``wake_at``) are each on disk within
    ``flush_interval`` plus scheduling, and the listener does not wake in between: it sleeps
    until the flush is due instead of polling. Not timed: the window's bound is generous,
    and the wake-up count only grows with the timer (a loaded machine wakes it less)."""
    interval = 0.3
    run = gemmalog.initialize(root=str(root), flush_interval=interval, capture_stdlib=False)
    listener = gemmalog.running().listener  # type: ignore[union-attr]
    wakes: list[int] = []
    handle = listener.handle

    def counted(batch: Any) -> None:
        wakes.append(len(batch))
        handle(batch)

    listener.handle = counted  # type: ignore[method-assign]
    shard = run.dir / "events.0.jsonl"
    start = time.monotonic()
    delays = []
    for i in range(6):
        gemmalog.log_training_progress(step=i, metrics={"x": float(i)})
        logged = time.monotonic()
        needle = b'"step":%d,' % i
        while needle not in shard.read_bytes() and time.monotonic() - logged < 30:
            time.sleep(0.005)
        delays.append(time.monotonic() - logged)
        time.sleep(0.05)
    time.sleep(1.0)  # idle: only the flush tick wakes the listener
    span = time.monotonic() - start
    n = len(wakes)
    gemmalog.shutdown()
    assert max(delays) < interval + 5.0, delays
    # Ticks (one per flush_interval), one deadline per event, each at most once more for a
    # timer that fires a hair early, and the start. A 50 ms poll would wake it ~span / 0.05.
    assert n <= 2 * (span / interval + 6) + 2, (n, span)
    assert [e["step"] for e in events_of(run.dir, "metrics")] == list(range(6))


@pytest.mark.parametrize("stamp", ["clock stepped back 30 s", "nanoseconds", "infinite", "NaN"])
def test_a_shifted_or_foreign_ts_never_stalls_the_shard(root: Path, stamp: str) -> None:
    """The listener's wait is bounded by its monotonic tick, whatever the events' ``ts``: a
    wall clock stepped back after the events were stamped (here: stamped 30 s ahead), or a
    caller processor that rewrites ``ts`` (huge, infinite, NaN). The lines reach the shard
    within the loss window and shutdown returns."""
    rewrite = {
        "clock stepped back 30 s": lambda ts: ts + 30.0,
        "nanoseconds": lambda ts: ts * 1e9,
        "infinite": lambda ts: math.inf,
        "NaN": lambda ts: math.nan,
    }[stamp]

    def restamp(logger: Any, method: str, event: dict[str, Any]) -> dict[str, Any]:
        event["ts"] = rewrite(event["ts"])
        return event

    run = gemmalog.initialize(
        root=str(root), flush_interval=0.2, capture_stdlib=False, processors=[restamp]
    )
    shard = run.dir / "events.0.jsonl"
    for i in range(5):
        gemmalog.log_training_progress(step=i, metrics={"x": float(i)})
    logged = time.monotonic()
    while shard.read_bytes().count(b'"kind":"metrics"') < 5 and time.monotonic() - logged < 20:
        time.sleep(0.01)
    waited = time.monotonic() - logged
    assert shard.read_bytes().count(b'"kind":"metrics"') == 5, f"not written after {waited:.1f} s"
    assert waited < 10.0  # the window (0.2 s) plus scheduling; a stalled wait is 30 s or more
    gemmalog.shutdown()
    assert [e["step"] for e in events_of(run.dir, "metrics")] == list(range(5))
