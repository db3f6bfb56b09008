"""Events written to the shard before the call that logs them returns: no listener thread.

A child process's pipeline writes this way (it may leave through ``os._exit()`` or be
terminated by its parent, and then no thread or exit hook of its own runs again), and so
does the late writer of the events logged after a run ended.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Any

from gemmalog.engine._listener import EventListener
from gemmalog.notices import warn_once


class WriteThrough:
    """Hand an event to ``listener.write_through`` on the calling thread, and return once
    it is in the shard. ``notice`` is said once on stderr, at the first event.

    A signal handler that logs while this thread is writing leaves its event in the
    backlog, which the interrupted call writes before it returns: one lock, never taken
    twice by one thread.
    """

    __slots__ = ("_backlog", "_writer", "listener", "lock", "notice")

    def __init__(self, listener: EventListener, notice: str | None = None) -> None:
        self.listener = listener
        self.notice = notice
        self._backlog: deque[dict[str, Any]] = deque()
        #: Held while a thread writes (the backlog it found, and what joins it meanwhile).
        self.lock = threading.Lock()
        self._writer: int | None = None

    def __call__(self, event: dict[str, Any]) -> None:
        self._backlog.append(event)
        me = threading.get_ident()
        if self._writer == me:
            return
        with self.lock:
            self._writer = me
            try:
                if self.notice is not None:
                    notice, self.notice = self.notice, None
                    warn_once(notice)
                backlog = self._backlog
                while backlog:
                    batch = []
                    while backlog:
                        batch.append(backlog.popleft())
                    self.listener.write_through(batch)
            finally:
                self._writer = None
