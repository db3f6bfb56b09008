"""Roots given as URLs (``s3://...``, any fsspec URL but ``file://``): served from a local
copy (:class:`gemmalog.remote.Mirror`) that a thread of their own brings up to date every
``interval`` seconds, off the requests' path.

The pages read the copy as they read any root, so a remote run still being pushed is followed
as a local one being written: each refresh appends what is new to the copy's shards, and the
live stream sees them grow. A refresh that fails is kept as one sentence (no traceback, no
secret: :class:`gemmalog.remote.RemoteError` says it), shown on the runs page and the run's
page, and tried again after a wait that doubles, up to a minute; the copy stays as the last
refresh left it.
"""

from __future__ import annotations

import os
import threading
import time

from gemmalog.remote import Mirror, RemoteError, is_url, local_copy

#: Seconds between two refreshes of a remote root's copy (each one listing when nothing
#: changed: docs/remote.md).
REMOTE_POLL_S = 2.0
#: Seconds a request for the runs waits for a root's first copy before answering without it.
FIRST_WAIT_S = 10.0
_MAX_WAIT = 60.0


def is_remote(root: str | os.PathLike[str]) -> bool:
    """Whether ``root`` is a URL read through a copy (``file://`` URLs are read in place)."""
    text = os.fspath(root)
    return is_url(text) and text.split("://", 1)[0].lower() not in ("file", "local")


def in_place(root: str | os.PathLike[str]) -> str:
    """The path of a ``file://`` URL, else ``root`` as given."""
    return local_copy(os.fspath(root))


class Followed:
    """A remote root, its local copy and the thread that keeps the copy up to date."""

    def __init__(
        self,
        url: str,
        *,
        interval: float = REMOTE_POLL_S,
        cache_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        self.mirror = Mirror(url, cache_dir=cache_dir)
        self.url = self.mirror.where(self.mirror.folder)  # without any password it carried
        self.path = str(self.mirror.folder)
        self.interval = interval
        #: The last refresh's failure, one sentence; None after a refresh that worked.
        self.error: str | None = None
        #: When the copy was last found up to date (Unix time), None before.
        self.refreshed_at: float | None = None
        self._first = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._loop, name="gemmalog-serve-remote", daemon=True
        )
        self._thread.start()

    def _loop(self) -> None:
        wait = 0.0
        while not self._stop.wait(wait):
            wait = self.interval if self.refresh() else min(max(wait * 2, 1.0), _MAX_WAIT)

    def refresh(self) -> bool:
        """One refresh; False (and ``error`` set) when it failed. Never raises."""
        try:
            self.mirror.refresh()
        except RemoteError as exc:
            self.error = str(exc)
        except Exception as exc:  # whatever else: the server keeps serving the last copy
            self.error = (
                f"{self.url}: the copy could not be brought up to date ({type(exc).__name__})"
            )
        else:
            self.error = None
            self.refreshed_at = time.time()
        self._first.set()
        return self.error is None

    def ready(self, timeout: float) -> bool:
        """Whether the first refresh has ended (waiting up to ``timeout`` seconds for it)."""
        return self._first.wait(timeout)

    def problem(self) -> str | None:
        """What the runs page says about this root, if anything."""
        if not self._first.is_set():
            return (
                f"{self.url}: the first copy is still being made; its runs appear when it is done"
            )
        if self.error is None:
            return None
        if not self.copied():
            return self.error
        return f"{self.error} (the runs shown are as the copy was last brought up to date)"

    def copied(self) -> bool:
        """Whether the copy holds anything (a refresh has copied runs into it, now or before)."""
        try:
            return any(not name.startswith(".") for name in os.listdir(self.path))
        except OSError:
            return False

    def status(self) -> dict[str, object]:
        return {"url": self.url, "error": self.error, "refreshed_at": self.refreshed_at}

    def owns(self, path: str) -> bool:
        """Whether ``path`` is the copy's folder or lies in it."""
        full = os.path.abspath(path)
        return full == self.path or full.startswith(os.path.join(self.path, ""))

    def where(self, path: str) -> str:
        """The URL of what ``path`` (a path in the copy) is the copy of."""
        return self.mirror.where(path)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)  # a refresh under way ends with the process (a daemon)


__all__ = ["FIRST_WAIT_S", "REMOTE_POLL_S", "Followed", "in_place", "is_remote"]
