"""What a GRPO step knows about each completion beyond its rewards: the advantage TRL used,
the columns and metrics reward functions logged (``log_extra`` / ``log_metric``).

TRL hands every reward function ``log_extra`` and ``log_metric``: bound methods of the
``GRPOTrainer`` (``grpo_trainer.py``, ``_calculate_rewards``). Their ``__self__`` is the
trainer, so a wrapped reward function reaches it without any patching. After the reward
functions of a generation batch ran, TRL computes the advantages and appends them, with the
gathered prompts and completions, to ``trainer._logs`` (deques sized to the generation
batch): reading those deques before the next generation gives the exact values TRL used.
Where that is not possible (no trainer, another trainer, the values already gone), the
batch's expansion applies TRL's formula to its rewards (:func:`computed_advantages`, in
``gemmalog/deferred/grpo.py``, re-exported here), and the event says so
(``advantage_source``).

Nothing here imports torch or trl.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from gemmalog.deferred import AdvantageSettings, computed_advantages


class Capture:
    """Pass-through ``log_extra`` / ``log_metric`` for one call of a wrapped reward function.

    The function gets callables that call TRL's own first (TRL's table and metrics are not
    changed) and keep a copy of what was logged. A call without them (not from TRL) is
    left as it is.
    """

    __slots__ = ("extra", "metrics")

    def __init__(self) -> None:
        self.extra: dict[str, list[Any]] = {}
        self.metrics: dict[str, list[Any]] = {}

    def wrap(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        """``kwargs`` with the two helpers replaced by capturing ones (a new dict)."""
        log_extra = kwargs.get("log_extra")
        log_metric = kwargs.get("log_metric")
        if not callable(log_extra) and not callable(log_metric):
            return kwargs  # not called by TRL: the function gets what it was given
        out = dict(kwargs)
        if callable(log_extra):
            out["log_extra"] = self._extra_logger(log_extra)
        if callable(log_metric):
            out["log_metric"] = self._metric_logger(log_metric)
        return out

    def _extra_logger(self, inner: Callable[..., Any]) -> Callable[..., Any]:
        def log_extra(column: str, values: Any) -> Any:
            result = inner(column, values)
            with contextlib.suppress(TypeError):  # not iterable: TRL's extend raised already
                self.extra.setdefault(str(column), []).extend(list(values))
            return result

        return log_extra

    def _metric_logger(self, inner: Callable[..., Any]) -> Callable[..., Any]:
        def log_metric(name: str, value: Any) -> Any:
            result = inner(name, value)
            self.metrics.setdefault(str(name), []).append(value)
            return result

        return log_metric


def trainer_of(kwargs: Mapping[str, Any]) -> Any:
    """The GRPOTrainer behind a reward call (``log_extra.__self__``), or None."""
    owner = getattr(kwargs.get("log_extra"), "__self__", None)
    logs = getattr(owner, "_logs", None)
    if isinstance(logs, Mapping) and "advantages" in logs and "completion" in logs:
        return owner
    return None


def pending_extra(trainer: Any) -> dict[str, list[Any]]:
    """A copy of what reward functions logged through ``log_extra`` in the current batch so
    far (TRL empties the buffer once the batch's rewards are gathered)."""
    pending = getattr(trainer, "_pending_extra_logs", None)
    if not isinstance(pending, Mapping):
        return {}
    return {str(k): list(v) for k, v in pending.items()}


def _processes(trainer: Any) -> tuple[int, int]:
    accelerator = getattr(trainer, "accelerator", None)
    world = getattr(accelerator, "num_processes", 1)
    rank = getattr(accelerator, "process_index", 0)
    return (world if type(world) is int and world > 0 else 1), (rank if type(rank) is int else 0)


def read_logged(
    trainer: Any, completions: Sequence[Any]
) -> tuple[list[float], dict[str, list[Any]]] | None:
    """The advantages TRL computed for ``completions`` (this rank's batch, in order) and the
    ``log_extra`` columns of its completions table, read from ``trainer._logs`` after the
    batch's generation; None when the deques no longer (or do not yet) end with this batch.

    TRL extends ``_logs`` with the gathered batch (rank 0's part first, then rank 1's ...),
    so this rank's part starts at ``rank * n`` within the last ``n * world`` entries. A
    ``log_extra`` column is read when its deque is as long as the completions' (TRL's
    table needs every column logged for every completion).
    """
    logs = getattr(trainer, "_logs", None)
    if not isinstance(logs, Mapping):
        return None
    logged = logs.get("completion")
    advantages = logs.get("advantages")
    if logged is None or advantages is None or len(logged) != len(advantages):
        return None
    n = len(completions)
    world, rank = _processes(trainer)
    total = n * world
    size = len(logged)
    if n == 0 or size < total:
        return None
    start = size - total + rank * n
    mine = [logged[start + i] for i in range(n)]
    if any(a is not b and a != b for a, b in zip(mine, completions, strict=True)):
        return None
    values = [float(advantages[start + i]) for i in range(n)]
    extra: dict[str, list[Any]] = {}
    columns = logs.get("extra")
    if isinstance(columns, Mapping):
        for column, logged_values in columns.items():
            if len(logged_values) == size:
                extra[str(column)] = [logged_values[start + i] for i in range(n)]
    return values, extra


__all__ = [
    "AdvantageSettings",
    "Capture",
    "computed_advantages",
    "pending_extra",
    "read_logged",
    "trainer_of",
]
