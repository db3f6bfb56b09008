"""What is running in this process: the one piece of gemmalog's global state.

structlog's ``_config`` is the model: every other module asks here. The lifecycle
(:mod:`gemmalog.lifecycle._lifecycle`) changes it; the engine (:mod:`gemmalog.engine._pipeline`) never reads it.
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gemmalog.engine._pipeline import Pipeline


class State:
    """The process's pipeline and what the lifecycle remembers about how the run ends."""

    pipeline: Pipeline | None = None
    lock = threading.RLock()
    final_stats: dict[str, Any] = {}  # noqa: RUF012
    exit_status: tuple[str, str | None] | None = None
    #: What sys.exit() was called with, for the exit hook (see _lifecycle._exit).
    exit_code: tuple[str, str | None] | None = None
    #: sys.last_value when the hooks were installed (an interactive session's old error).
    last_value_at_start: object = None
    #: In a forked child: the parent's pipeline (its listener thread did not survive the fork).
    forked_from: Pipeline | None = None
    #: The last pipeline shut down: its late writer takes the events logged afterwards.
    last: Pipeline | None = None
    hooks_installed = False
    #: The ``sync:`` section's background pusher of the running run (it has a ``finish()``).
    sync: Any = None


def running() -> Pipeline | None:
    """The running pipeline of this process, or None (no syscall: fork is tracked by a hook)."""
    return State.pipeline


def _after_fork_in_child() -> None:
    # The parent's listener thread does not exist here and its locks may be held: replace
    # the lock, and let the next event start a child pipeline on its own shard.
    State.lock = threading.RLock()
    State.sync = None  # the parent's pusher thread does not exist here; the parent pushes
    if State.pipeline is not None:
        State.forked_from = State.pipeline
        State.pipeline = None
    if State.last is not None:
        # The parent's late writer: its shard is named after the parent, and its lock may
        # have been held by a thread that does not exist here. The child gets its own.
        State.last.late = None


os.register_at_fork(after_in_child=_after_fork_in_child)
