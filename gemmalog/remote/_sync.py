"""The ``sync:`` section at work: a background thread pushes the run to ``dest`` every
``interval`` seconds while it trains, and once more when it ends.

Training never waits for it: the thread only reads the run's files (the listener keeps
writing them), every failure is caught, counted and retried after a wait that doubles up to
five minutes, and the final push at shutdown is given ``final_timeout`` seconds at most. Its
counts go into ``run.json`` under ``sync`` (``pushes``, ``errors``, ``last_error``,
``bytes_sent``...), then that run.json is pushed too.

Each rank pushes its own shard (``events.<rank>.jsonl`` and its children's
``events.<rank>.<pid>.jsonl``); rank 0 also pushes everything else (run.json, the CSV,
TensorBoard's files, the text log), so the ranks of one node never send the same file twice.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import threading
import time
from pathlib import Path
from typing import Any

from gemmalog.remote._fs import public, scrub
from gemmalog.remote._push import push
from gemmalog.remote._store import TEMP_MARK

_MAX_WAIT = 300.0


class SyncWorker:
    """Pushes ``run_dir`` to ``dest`` from its own daemon thread (see the module's docstring)."""

    def __init__(
        self,
        run_dir: str | os.PathLike[str],
        dest: str,
        *,
        rank: int = 0,
        interval: float = 30.0,
        final_timeout: float = 60.0,
    ) -> None:
        self.run_dir = Path(run_dir)
        self.dest = dest
        self.rank = rank
        self.interval = interval
        self.final_timeout = final_timeout
        own = re.compile(rf"events\.{rank}(\.\d+)?\.jsonl")
        self._mine = (lambda name: True) if rank == 0 else (lambda name: bool(own.fullmatch(name)))
        self.stats: dict[str, Any] = {
            "dest": public(dest),
            "pushes": 0,
            "errors": 0,
            "last_error": None,
            "last_push": None,
            "bytes_sent": 0,
        }
        self._lock = threading.Lock()  # one push at a time
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="gemmalog-sync", daemon=True)
        self._thread.start()

    def _push(self) -> bool:
        """One push; False (counted, remembered) when it failed. Never raises."""
        with self._lock:
            try:
                stats = push(self.run_dir, self.dest, only=self._mine)
            except Exception as exc:  # whatever the store says: training goes on
                self.stats["errors"] += 1
                self.stats["last_error"] = scrub(
                    str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                )
                return False
            self.stats["pushes"] += 1
            self.stats["bytes_sent"] += stats.bytes_sent
            self.stats["last_push"] = time.time()
            return True

    def _loop(self) -> None:
        wait = self.interval
        while not self._stop.wait(wait):
            wait = self.interval if self._push() else min(max(wait * 2, self.interval), _MAX_WAIT)

    def finish(self) -> dict[str, Any]:
        """Stop the periodic pushes, push once more (within ``final_timeout`` seconds), write
        the counts into run.json (rank 0) and push it; returns the counts."""
        self._stop.set()
        deadline = time.monotonic() + self.final_timeout
        self._thread.join(max(0.0, deadline - time.monotonic()))
        if not self._within(deadline, self._push):
            self.stats["errors"] += 1
            self.stats["last_error"] = (
                f"the final push did not finish within sync.final_timeout ({self.final_timeout} s)"
            )
            return dict(self.stats)
        if self.rank == 0:
            self._record()
            self._within(deadline, self._push)
        return dict(self.stats)

    @staticmethod
    def _within(deadline: float, fn: Any) -> bool:
        """Run ``fn`` on a daemon thread; False when it has not returned by ``deadline``."""
        thread = threading.Thread(target=fn, name="gemmalog-sync-final", daemon=True)
        thread.start()
        thread.join(max(0.0, deadline - time.monotonic()))
        return not thread.is_alive()

    def _record(self) -> None:
        """Add the counts to run.json, replaced at once like every manifest write."""
        manifest = self.run_dir / "run.json"
        with contextlib.suppress(OSError, ValueError):
            data = json.loads(manifest.read_text(encoding="utf-8"))
            if not isinstance(data, dict):
                return
            data["sync"] = dict(self.stats)
            temp = manifest.with_name(f".run.json{TEMP_MARK}{os.getpid()}")
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump(data, out, indent=2, default=str)
            os.replace(temp, manifest)


def start(
    run_dir: str | os.PathLike[str],
    dest: str,
    *,
    rank: int = 0,
    interval: float = 30.0,
    final_timeout: float = 60.0,
) -> SyncWorker:
    """Start pushing ``run_dir`` to ``dest`` in the background."""
    return SyncWorker(run_dir, dest, rank=rank, interval=interval, final_timeout=final_timeout)


__all__ = ["SyncWorker", "start"]
