"""The end of a run while other threads still log: the calls under way, the late count.

:meth:`Pipeline.stop` switches new log calls to the late writer, waits here for the calls
already past the switch (:func:`wait_for_turns`), and once the process ends or another
run starts, :func:`record_late` counts in run.json what the late writer took.
"""

from __future__ import annotations

import itertools
import os
import sys
import time
from collections.abc import Callable
from types import CodeType, FrameType
from typing import Any, TypeAlias

from gemmalog.notices import say
from gemmalog.processors.redact import Redact
from gemmalog.run._directory import write_manifest
from gemmalog.run._manifest import Run, read_manifest
from gemmalog.sinks.jsonl import JsonlSink

#: (calls that took their turn, calls that handed over): lock-free, see gemmalog.engine._queue.
Turns: TypeAlias = "tuple[itertools.count[int], itertools.count[int]]"


def calls_on_this_thread(owner: object, codes: tuple[CodeType, ...]) -> int:
    """How many of ``owner``'s hand-overs (functions ``codes``) this thread's stack is in:
    ``shutdown()`` from a signal handler or ``__del__`` that interrupted a log call."""
    count = 0
    frame: FrameType | None = sys._getframe(2)
    while frame is not None:
        if frame.f_code in codes and frame.f_locals.get("self") is owner:
            count += 1
        frame = frame.f_back
    return count


def wait_for_turns(turns: Turns, own: int, timeout: float) -> None:
    """Wait until no call but this thread's ``own`` is between its turn and its hand-over.

    Every such call is one hand-over long (after the switch none waits for room or drops);
    ``timeout`` is a safety net: an event queued after it is still taken by its own call.
    """
    deadline = time.monotonic() + timeout
    while True:
        # The repr of a count is "count(N)". Handed-over first: never undercounts.
        left = int(repr(turns[1])[6:-1])
        if int(repr(turns[0])[6:-1]) - left <= own:
            return
        if time.monotonic() > deadline:
            say(f"shutdown() stopped waiting for log calls on other threads after {timeout} s")
            return
        time.sleep(0.001)


def record_late(
    run: Run,
    shard: JsonlSink,
    manifest: dict[str, Any],
    redact: Redact | None,
    recorded: Callable[[tuple[int, int]], bool],
) -> None:
    """Count the late events ``shard`` took in ``run``'s run.json, and say so on stderr.

    ``manifest`` is what the end of the run wrote (empty: nothing to update); ``recorded``
    answers whether these counts were already recorded (and remembers them). run.json
    gets ``late_events`` (written, lost, the shard) and its ``events_lost`` includes the
    late ones lost; it is left alone when it is no longer this segment's (another process
    resumed the run meanwhile).
    """
    written, lost = counts = (shard.lines_written, shard.lines_lost)
    if recorded(counts):
        return
    say(
        f"{written} event(s) logged after shutdown() were appended to run {run.id} "
        f"({shard.path.name})" + (f"; {lost} could not be written and are lost" if lost else "")
    )
    if not manifest:
        return
    on_disk = read_manifest(run.manifest_path)
    if on_disk is not None and (
        on_disk.get("segment") != run.segment or on_disk.get("pid") != os.getpid()
    ):
        return
    extra = dict(manifest)
    extra["events_lost"] = extra.get("events_lost", 0) + lost
    extra["late_events"] = {"written": written, "lost": lost, "shard": shard.path.name}
    write_manifest(run, redact=redact, **extra)
