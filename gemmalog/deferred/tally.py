"""What the listener thread learns from a reward collector's batches in one run: the answers.

A reward batch is judged on the listener thread (``gemmalog.deferred.reward_batch``), in the
order the batches were handed over; its correct and total answers are added to the
:class:`Tally` it carries. A progress event handed over after it reads the same tally on
the same thread, so its counts include every batch before it, exactly. The collector that
made the tally reads it from the training thread after a ``flush()``.
"""

from __future__ import annotations

import threading


class Tally:
    """Correct and total answers per phase, and how many batches could not be logged.

    One per collector and run: a new run starts a new one, so a batch of a run that ended
    adds to that run's tally, which no one reads any more.
    """

    __slots__ = ("_lock", "by_phase", "failures")

    def __init__(self, by_phase: dict[str, list[int]] | None = None) -> None:
        #: phase -> [correct, total].
        self.by_phase: dict[str, list[int]] = by_phase if by_phase is not None else {}
        #: Reward batches whose events could not all be built (the first one is said).
        self.failures = 0
        # Taken by the listener to add and by readers on other threads; never held while
        # waiting on anything else.
        self._lock = threading.Lock()

    def add(self, phase: str, correct: int, total: int) -> None:
        with self._lock:
            counts = self.by_phase.setdefault(phase, [0, 0])
            counts[0] += correct
            counts[1] += total

    def get(self, phase: str) -> tuple[int, int]:
        """``(correct, total)`` of ``phase`` so far."""
        with self._lock:
            correct, total = self.by_phase.get(phase, [0, 0])
        return correct, total

    def replace(self, by_phase: dict[str, list[int]]) -> None:
        """Start from ``by_phase`` (the counts a resumed run had logged)."""
        with self._lock:
            self.by_phase = by_phase
