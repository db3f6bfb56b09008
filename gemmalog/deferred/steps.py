"""A training step's progress and memory events, finished on the listener thread.

The TRL callback logs both at the end of a step. What they need from the listener's side
is read there: the answers counted so far (the reward batches are judged on that thread, in
order, so a progress event counts every batch handed over before it, without waiting), and
the process's memory and CPU from ``/proc`` (0.05-1 ms on a loaded machine).
"""

from __future__ import annotations

from typing import Any

from gemmalog.deferred.tally import Tally
from gemmalog.processors.expand import ExpandContext
from gemmalog.processors.resources import accelerator_memory_mb, detect_device, process_memory


class Progress:
    """The step's ``metrics`` event of phase ``progress``, with the training answers of
    ``tally`` (none: zero) counted when it is written."""

    kind = "progress"

    __slots__ = ("logger", "percent", "step", "tally")

    def __init__(self, logger: str, step: int, percent: float, tally: Tally | None) -> None:
        self.logger = logger
        self.step = step
        self.percent = percent
        self.tally = tally

    def events(self, context: ExpandContext) -> list[dict[str, Any]]:
        correct, total = self.tally.get("train") if self.tally is not None else (0, 0)
        return [
            {
                "kind": "metrics",
                "logger": self.logger,
                "step": self.step,
                "phase": "progress",
                "metrics": {
                    "progress_percent": self.percent,
                    "correct_answers": correct,
                    "total_answers": total,
                    "accuracy": 100.0 * (correct / total) if total else 0.0,
                },
            }
        ]


class MemorySample:
    """What ``log_memory_usage(step=step, **extra)`` logs, its ``/proc`` reads made when it is
    written. Make it with :meth:`now` on the training thread: torch's current device and
    the CUDA counters are that thread's."""

    kind = "system"

    __slots__ = ("accelerator", "device", "extra", "logger", "step")

    def __init__(
        self,
        logger: str,
        step: int,
        device: str,
        accelerator: dict[str, float],
        extra: dict[str, Any],
    ) -> None:
        self.logger = logger
        self.step = step
        self.device = device
        self.accelerator = accelerator
        self.extra = extra

    @classmethod
    def now(cls, logger: str, step: int, extra: dict[str, Any]) -> MemorySample:
        """The sample of the calling thread's device and accelerator memory, now."""
        return cls(logger, step, detect_device(), accelerator_memory_mb(), extra)

    def events(self, context: ExpandContext) -> list[dict[str, Any]]:
        values: dict[str, Any] = {"device": self.device, **process_memory(), **self.accelerator}
        values.update(self.extra)
        return [
            {
                "kind": "system",
                "logger": self.logger,
                "event": "memory",
                **values,
                "step": self.step,
            }
        ]
