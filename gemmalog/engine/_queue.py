"""A bounded hand-off between the caller's threads and the listener thread.

``put`` is a ``deque.append``, a length check and a look at the oldest queued event's
time: well under a microsecond, against ~1.5 µs for a ``queue.Queue`` whose every put
takes a lock and notifies a condition. The listener does not need a notification per
event: it sleeps until the work it must do unasked is due (the shard's flush, see
``EventListener.dequeue``), or until ``wake_at`` events wait (one token per batch, not one
per event), or a control item or a waiting producer wakes it. Events that trickle in (a
training step's few dozen) are then taken in one batch per flush instead of one per short
poll: each wake-up of a thread costs it a cold start (its code and data evicted from the
CPU's caches by the training in between), and in a GRPO run those wake-ups were a third
of the listener's CPU. Waking it at ``wake_at`` keeps batches small when events flood in:
a listener that trails by thousands of events pays ~2 × the CPU per event for fetching
them from memory.

The queue is bounded two ways:
- in **count**: at most ``maxsize`` events wait (memory);
- in **time**: a producer does not add an event while the oldest event not yet written
  to the shard (still queued, or taken by the listener and not flushed) was handed over
  more than ``max_lag`` seconds before it. On a loaded machine the listener may get too
  little CPU to keep up with a flooding producer; this bound keeps what a crash can lose
  to a time window, not to ``maxsize`` events, whatever the machine's speed. The listener
  reports what it took (:attr:`inflight_since`) and when it flushed (:meth:`flushed`).

Backpressure when a bound is reached:
- ``block`` (default, lossless): the producer waits until the listener has taken the
  oldest events. Once it waits, it waits until the queue is down to half of ``maxsize``
  (or the time bound is clear again), and is woken as soon as the listener's take gets it
  there. A producer that floods faster than the listener can write is throttled to the
  listener's pace either way; in few long waits it is interrupted once per ``maxsize / 2``
  events instead of once per batch, and each hand-off costs both threads their caches;
- ``drop``: the event is counted as dropped and discarded; the count is reported in
  ``run_end``, ``run.json`` and on stderr.

No Python-level lock is taken on the producer's path: a signal handler or a ``__del__``
that logs can interrupt the main thread anywhere in ``put`` (even while it waits for room)
without deadlocking it. Wake-ups travel through ``queue.SimpleQueue``, whose ``put`` is
implemented in C and documented as safe to call from signal handlers and ``__del__``.
"""

from __future__ import annotations

import contextlib
import itertools
import queue
import threading
from collections import deque
from typing import Any

from gemmalog.config.schema import POLICIES, Policy


class EventQueue:
    """Bounded multi-producer, single-consumer queue of event dicts with a batch ``get``.

    Events are the dicts the caller's processors built: their ``ts`` (wall-clock seconds,
    set by the envelope) gives the time bound. Control items (flush requests, the
    sentinel) go through :meth:`put_nowait` and are exempt from both bounds.
    """

    def __init__(
        self,
        maxsize: int = 100_000,
        policy: Policy = "block",
        poll_interval: float = 0.05,
        max_lag: float = float("inf"),
        wake_at: int = 64,
    ) -> None:
        if maxsize < 1:
            raise ValueError(f"queue_size must be at least 1, got {maxsize}")
        if policy not in POLICIES:
            raise ValueError(f"backpressure policy must be one of {POLICIES}, got {policy!r}")
        if not max_lag > 0:
            raise ValueError(f"max_lag must be positive, got {max_lag}")
        self.maxsize = maxsize
        self.policy = policy
        self.poll_interval = poll_interval
        self.max_lag = max_lag
        # Small batches keep the listener's working set (events, rendered lines) in cache.
        self.max_batch = 1024
        self._high = max(1, maxsize // 2)
        # A producer that waits for room goes on at or below this length (maxsize 1: empty).
        self._resume = min(self._high, maxsize - 1)
        #: The listener is woken once this many events wait (see the module's docstring).
        self.wake_at = max(1, min(wake_at, self._high))
        self._dq: deque[Any] = deque()
        # Tokens that wake the listener (one pending at a time is enough).
        self._wake: queue.SimpleQueue[None] = queue.SimpleQueue()
        self._wake_pending = False
        # One SimpleQueue per waiting producer; the listener puts into each after a batch.
        self._waiters: deque[queue.SimpleQueue[None]] = deque()
        # next() on an itertools.count is one C call: an exact count without a lock.
        self._drop_seq = itertools.count()
        # Threads waiting for room (set.add/discard are atomic): see _make_room.
        self._waiting: set[int] = set()
        self._sentinel_seen = False
        self.closed = False
        #: ``ts`` of the oldest event the listener took and has not flushed yet, else None.
        self.inflight_since: float | None = None

    def __len__(self) -> int:
        return len(self._dq)

    @property
    def drops(self) -> int:
        # The repr of a count is "count(N)": N is the next value, i.e. how many were taken.
        return int(repr(self._drop_seq)[6:-1])

    def put(self, item: dict[str, Any]) -> None:
        """Hand an event to the listener, applying the backpressure policy at a bound."""
        dq = self._dq
        n = len(dq)
        if n >= self.wake_at and not self._wake_pending:
            self._wake_pending = True
            self._wake.put(None)
        if (n >= self._high or self._late(item)) and not self._make_room(item):
            return
        dq.append(item)

    def _late(self, item: dict[str, Any]) -> bool:
        """True when the oldest unwritten event is more than ``max_lag`` older than ``item``."""
        try:
            oldest = self.inflight_since
            if oldest is None:
                oldest = self._dq[0]["ts"]
            return bool(item["ts"] - oldest > self.max_lag)
        except (IndexError, KeyError, TypeError):  # empty, a control item, a foreign dict
            return False

    def _make_room(self, item: dict[str, Any]) -> bool:
        self.wake()
        dq = self._dq
        if len(dq) < self.maxsize and not self._late(item):
            return True  # past the high-water mark only: the listener is woken, carry on
        if self.closed:
            # The run is ending: shutdown() takes every event queued after the close (see
            # Pipeline.stop), so neither wait nor drop an event it would then count wrong.
            return True
        if self.policy == "drop":
            next(self._drop_seq)
            return False
        me = threading.get_ident()
        if me in self._waiting:
            # A signal handler (or __del__) logging while this thread waits for room: it
            # must not wait too (the waits would nest until the stack overflows, and the
            # thread it interrupted cannot go on meanwhile). One event over the bound.
            return True
        self._waiting.add(me)
        try:
            self._wait_for_room(item)
        finally:
            self._waiting.discard(me)
        return True

    def _wait_for_room(self, item: dict[str, Any]) -> None:
        dq = self._dq
        resume = self._resume  # see "Backpressure" in the module's docstring
        while (len(dq) > resume or self._late(item)) and not self.closed:
            token: queue.SimpleQueue[None] = queue.SimpleQueue()
            # Registered before the check below: a batch taken after this line wakes us,
            # one taken before it has already made the room the check sees.
            self._waiters.append(token)
            if len(dq) <= resume and not self._late(item):
                break
            self.wake()
            # The timeout is a safety net only: the listener wakes every waiter after
            # each batch it takes.
            with contextlib.suppress(queue.Empty):
                token.get(timeout=self.poll_interval)

    def wake(self) -> None:
        """Wake the listener now (signal-safe)."""
        if not self._wake_pending:
            self._wake_pending = True
            self._wake.put(None)

    def put_nowait(self, item: Any) -> None:
        """Enqueue a control item (sentinel, flush request) regardless of the bounds."""
        self._dq.append(item)
        self._wake_pending = True
        self._wake.put(None)

    def get(self, block: bool = True, timeout: float | None = None) -> list[Any] | None:
        """Return the queued events (possibly none), or None once the sentinel is reached.

        ``block``: first wait, while fewer than ``wake_at`` events are queued, for a wake-up
        or ``timeout`` seconds (``poll_interval`` when None), whichever comes first.
        """
        if self._sentinel_seen:
            return None
        dq = self._dq
        if block and len(dq) < self.wake_at:  # fewer than a wake-up's worth: wait (see above)
            with contextlib.suppress(queue.Empty):
                self._wake.get(timeout=self.poll_interval if timeout is None else timeout)
        self._wake_pending = False
        batch: list[Any] = []
        append = batch.append
        pop = dq.popleft
        try:
            for _ in range(min(len(dq), self.max_batch)):
                item = pop()
                if item is None:
                    self._sentinel_seen = True
                    break
                append(item)
        except IndexError:
            pass
        if batch and self.inflight_since is None:
            first = batch[0]
            self.inflight_since = first.get("ts") if type(first) is dict else None
        if len(dq) > self.max_batch:
            self.wake()  # more waiting: come straight back
        if len(dq) <= self._resume:
            # Not before: a producer waiting for room would wake only to wait again (see
            # _wait_for_room), and take the GIL from this thread to find that out.
            self._release_waiters()
        if self._sentinel_seen and not batch:
            return None
        return batch

    def oldest(self) -> float | None:
        """``ts`` of the oldest event not written to the shard yet (taken by the listener, or
        queued), None when there is none or it has no time (a control item)."""
        since = self.inflight_since
        if since is not None:
            return since
        try:
            first = self._dq[0]
            return first["ts"] if type(first) is dict else None
        except (IndexError, KeyError):
            return None

    def flushed(self, rest_since: float | None = None) -> None:
        """The listener wrote what it took to the shard: producers may go on.

        ``rest_since``: the ``ts`` of the oldest event it took and has still to write (it
        flushed in the middle of a batch), else None.
        """
        self.inflight_since = rest_since
        self._release_waiters()

    def _release_waiters(self) -> None:
        waiters = self._waiters
        while waiters:
            try:
                waiters.popleft().put(None)
            except IndexError:
                break

    def leftover(self) -> Any:
        """Take the oldest item still queued (the listener has stopped); IndexError when none."""
        return self._dq.popleft()

    def close(self) -> None:
        """The run is ending: release producers blocked at a bound and let later ones in
        without waiting or dropping (the pipeline takes what is queued after the close)."""
        self.closed = True
        self._release_waiters()
