"""The live stream: server-sent events that say when a run, or the list of runs, changed.

The stream only looks at the files (a ``stat`` of each shard, every ``POLL_S`` seconds for
one run and ``LIST_POLL_S`` for the whole list) and sends a small event when they change;
the page then asks the JSON API for what is new (``since_step``). Nothing is queried for a
client that watches a run that does not change.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import orjson

from gemmalog.serve._errors import ServeError
from gemmalog.serve._store import RunStore, State, run_state, state_size

#: Says whether the client left (``Request.is_disconnected``).
Disconnected = Callable[[], Awaitable[bool]]

POLL_S = 0.2
LIST_POLL_S = 5.0  # a growing run is listed again each time: the runs view over all its events
HEARTBEAT_S = 15.0


def _event(kind: str, data: object) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


async def watch_run(
    store: RunStore, run_id: str, stopping: asyncio.Event, gone: Disconnected
) -> AsyncIterator[bytes]:
    """Events for one run: ``change`` (its shards grew; ``size`` in bytes), ``gone``, and for
    a run of a remote root ``remote`` (``error``: why its copy is not being brought up to
    date, null once it is again)."""
    yield b"retry: 1000\n\n"
    try:
        run_dir = await asyncio.to_thread(store.locate, run_id)
    except ServeError as exc:
        yield _event("error", {"error": exc.message, "status": exc.status})
        return
    last: State | None = await asyncio.to_thread(run_state, run_dir)
    yield _event("hello", {"run": run_id, "size": state_size(last)})
    remote = store.remote(run_dir)
    said: str | None = None
    beat = time.monotonic()
    while not stopping.is_set():
        await _sleep(stopping, POLL_S)
        if await gone():  # the server learns of it only here: writes to a closed socket vanish
            return
        if remote is not None and remote.error != said:
            said = remote.error
            yield _event("remote", {"run": run_id, "url": remote.url, "error": said})
        state = run_state(run_dir)  # a few stat calls: not worth a thread
        if state is None:
            yield _event("gone", {"run": run_id, "error": f"run {run_id} was deleted"})
            return
        if state != last:
            last = state
            beat = time.monotonic()
            yield _event("change", {"run": run_id, "size": state_size(state)})
        elif time.monotonic() - beat > HEARTBEAT_S:
            beat = time.monotonic()
            yield b": heartbeat\n\n"


async def watch_list(
    store: RunStore, stopping: asyncio.Event, gone: Disconnected
) -> AsyncIterator[bytes]:
    """Events for the runs page: ``runs`` whenever a run was added, removed or grew, or a
    remote root's refresh failed or worked again."""
    yield b"retry: 2000\n\n"
    last = await asyncio.to_thread(_list_state, store)
    yield _event("hello", {"runs": len(last[0])})
    beat = time.monotonic()
    while not stopping.is_set():
        await _sleep(stopping, LIST_POLL_S)
        if await gone():
            return
        state = await asyncio.to_thread(_list_state, store)
        if state != last:
            last = state
            beat = time.monotonic()
            yield _event("runs", {"runs": len(state[0])})
        elif time.monotonic() - beat > HEARTBEAT_S:
            beat = time.monotonic()
            yield b": heartbeat\n\n"


def _list_state(store: RunStore) -> tuple[dict[str, State | None], list[str | None]]:
    """Every run's file state, and what each remote root's refresh says (its problem)."""
    dirs = set()
    for root in store.roots:
        for shard in glob.glob(os.path.join(glob.escape(root), "*", "events.*.jsonl")):
            dirs.add(os.path.dirname(shard))
        if glob.glob(os.path.join(glob.escape(root), "events.*.jsonl")):
            dirs.add(root)
    return {d: run_state(d) for d in sorted(dirs)}, [f.problem() for f in store.remotes]


async def _sleep(stopping: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stopping.wait(), timeout=seconds)
