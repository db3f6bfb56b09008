"""The doctor's findings of each run, kept while the run is unchanged.

A run being written changes every second; its checks run again at most every
``interval`` seconds (the answer in between says ``stale``). The runs page's counts by
severity come from a worker thread that checks the listed runs one at a time (a changing
run at most every ``LIST_INTERVAL`` seconds), so a root of a thousand runs is listed at once
and its counts fill in as they are found.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import duckdb

from gemmalog.config import ConfigError
from gemmalog.doctor import diagnose
from gemmalog.queries import QueryError
from gemmalog.serve._errors import ServeError
from gemmalog.serve._store import RunStore, State

#: Seconds between two checks of a run that keeps changing, for its own page (``of``) and
#: for the runs page's counts (``want``: a list of live runs must not keep a core busy).
INTERVAL = 5.0
LIST_INTERVAL = 60.0


@dataclass
class _Checked:
    state: State
    at: float
    findings: list[dict[str, Any]]
    error: str | None = None


class Findings:
    """Memoized doctor results of the runs of a :class:`RunStore`."""

    def __init__(self, store: RunStore, interval: float = INTERVAL) -> None:
        self.store = store
        self.interval = interval
        self._done: dict[str, _Checked] = {}
        self._lock = threading.Lock()
        self._wanted: list[str] = []
        self._wake = threading.Condition(self._lock)
        self._stop = False
        self._thread: threading.Thread | None = None
        self._checking: dict[str, threading.Lock] = {}

    def of(self, run_id: str) -> dict[str, Any]:
        """``{"run", "findings": [...], "stale": bool, "checked_at", "error"}`` for one run."""
        state = self.store.state(run_id)
        with self._lock:
            done = self._done.get(run_id)
        fresh = done is not None and done.state == state
        if done is None or not (fresh or time.monotonic() - done.at < self.interval):
            done = self._check(run_id)
            fresh = True
        return {
            "run": run_id,
            "findings": done.findings,
            "stale": not fresh,
            "checked_at": time.time() - (time.monotonic() - done.at),
            "error": done.error,
        }

    def counts(self, run_id: str) -> dict[str, int] | None:
        """Findings by severity from the last check, None before the first."""
        with self._lock:
            done = self._done.get(run_id)
        if done is None or done.error is not None:
            return None
        out = {"error": 0, "warning": 0, "info": 0}
        for f in done.findings:
            out[f["severity"]] = out.get(f["severity"], 0) + 1
        return out

    def _check(self, run_id: str) -> _Checked:
        with self._lock:
            lock = self._checking.setdefault(run_id, threading.Lock())
        with lock:  # the page and the worker asking at once: one check
            state = self.store.state(run_id)
            with self._lock:
                done = self._done.get(run_id)
            if done is not None and done.state == state:
                return done
            return self._run_checks(run_id, state)

    def _run_checks(self, run_id: str, state: State) -> _Checked:
        error = None
        findings: list[dict[str, Any]] = []
        try:
            # a connection of its own: the checks of a large run take seconds, and the run's
            # shared connection answers the pages meanwhile
            findings = [f.to_dict() for f in diagnose(self.store.locate(run_id))]
        except QueryError as exc:
            self.store.state(run_id)  # 410 when it was deleted meanwhile
            raise ServeError(404, str(exc)) from None
        except duckdb.Error as exc:
            raise ServeError(500, f"the doctor could not read run {run_id}: {exc}") from None
        except ConfigError as exc:
            error = f"the doctor could not read run {run_id}'s configuration: {exc}"
        done = _Checked(state, time.monotonic(), findings, error)
        with self._lock:
            self._done[run_id] = done
        return done

    # -- the background worker for the runs page -----------------------------------------------

    def want(self, run_ids: list[str], states: dict[str, State | None]) -> None:
        """Check these runs in the background where their last check is out of date."""
        with self._lock:
            for run_id in run_ids:
                done = self._done.get(run_id)
                stale = done is None or (
                    done.state != states.get(run_id) and time.monotonic() - done.at >= self.interval
                )
                if stale and run_id not in self._wanted:
                    self._wanted.append(run_id)
            if self._wanted:
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._work, name="gemmalog-serve-doctor", daemon=True
                    )
                    self._thread.start()
                self._wake.notify()

    def _work(self) -> None:
        while True:
            with self._lock:
                while not self._wanted and not self._stop:
                    self._wake.wait()
                if self._stop:
                    return
                run_id = self._wanted.pop(0)
            try:
                self._check(run_id)
            except ServeError:
                pass  # deleted or unreadable meanwhile: the run's own page says why
            except Exception as exc:  # a check's bug must not end the worker for every run
                failed = _Checked((), time.monotonic(), [], f"the doctor failed: {exc!r}")
                with self._lock:  # tried again once the interval has passed
                    self._done[run_id] = failed

    def close(self) -> None:
        with self._lock:
            self._stop = True
            self._wanted.clear()
            self._wake.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(timeout=30)
