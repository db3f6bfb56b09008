"""What the pipeline does to a run directory: create it, resume it, lock it down, record it."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import socket
import struct
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gemmalog.config.loader import ConfigError
from gemmalog.notices import warn_once
from gemmalog.processors.redact import Redact
from gemmalog.run._manifest import Run, last_segment_in, read_manifest, segment_history


def resumed_segment(run_dir: Path, rank: int) -> tuple[int, list[dict[str, Any]]]:
    """(segment, earlier segments) for a run directory: (0, []) for a new run.

    A rank continues after the last segment its own shard records; rank 0 also after the
    last one run.json records (a segment killed before its first line was written).
    """
    last = last_segment_in(run_dir / f"events.{rank}.jsonl")
    history: list[dict[str, Any]] = []
    if rank == 0:
        history = segment_history(read_manifest(run_dir / "run.json"))
        recorded = [e["segment"] for e in history if type(e.get("segment")) is int]
        if recorded:
            last = max(last if last is not None else -1, *recorded)
    return (0, []) if last is None else (last + 1, history)


class WriterLock:
    """One writer per rank of a run: an exclusive lock on ``.writer.<rank>.lock`` in its directory.

    Taken before the segment is chosen and held until ``run.json`` is final, so two processes
    started at once with one run id can never both write segment n of rank r. It is a POSIX
    record lock (``lockf``): the kernel releases it when the holder dies, however it dies (no
    stale lock after a SIGKILL or an OOM kill), forked children do not inherit it (a DataLoader
    worker that outlives a killed trainer does not keep the run locked), and it works on NFS
    through the lock daemon. The file holds the holder's pid, host and start time, for the
    error the next one gets.
    """

    __slots__ = ("_fd", "path")

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, run_dir: Path, run_id: str, rank: int, private: bool) -> WriterLock | None:
        """The lock of ``run_id``'s rank ``rank``; raises :class:`ConfigError` when another
        process holds it. None when the directory cannot hold a lock (it cannot be created or
        written, or the file system has no locks): the run goes on as it would have."""
        path = run_dir / f".writer.{rank}.lock"
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600 if private else 0o666)
        except OSError:
            return None  # no directory to write into: make_run_dir has said so
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = _read_holder(fd)
            os.close(fd)
            if exc.errno in (errno.EACCES, errno.EAGAIN):
                raise ConfigError(
                    f"run {run_id!r} (rank {rank}) is being written by {holder} "
                    f"(lock {path}): two processes cannot write one rank of a run at once; "
                    "wait until that one ends to resume the run, or give this one another "
                    "run_id"
                ) from None
            warn_once(
                f"cannot lock {path} ({type(exc).__name__}: {exc}): a second process started "
                "with this run id would not be refused"
            )
            return None
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
            stamp = time.strftime("%Y-%m-%d %H:%M:%S")
            os.pwrite(fd, f"{os.getpid()} {socket.gethostname()} {stamp}\n".encode(), 0)
        return cls(path, fd)

    def release(self) -> None:
        """Let the next process write this rank (a resume). Safe to call twice."""
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)  # closing the descriptor drops the lock


def _read_holder(fd: int) -> str:
    """Who holds the lock: its pid from the kernel (the file may not name it yet), its host
    and start time from the file when the file names that pid."""
    pid = _locking_pid(fd)
    with contextlib.suppress(OSError, ValueError):
        written, host, *since = os.pread(fd, 200, 0).decode("utf-8", "replace").split()
        if pid in (None, int(written)):
            return f"process {int(written)} on {host} (started {' '.join(since)})"
    return "another process" if pid is None else f"process {pid} on {socket.gethostname()}"


def _locking_pid(fd: int) -> int | None:
    if not sys.platform.startswith("linux"):  # struct flock's layout is Linux's
        return None
    layout = "hhqqi"  # l_type, l_whence, l_start, l_len, l_pid
    with contextlib.suppress(OSError, struct.error):
        probe = struct.pack(layout, fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0)
        kind, _, _, _, pid = struct.unpack(layout, fcntl.fcntl(fd, fcntl.F_GETLK, probe))
        if kind != fcntl.F_UNLCK and pid > 0:  # 0: a lock held on another NFS client
            return int(pid)
    return None


def make_run_dir(run_dir: Path, private: bool) -> None:
    try:
        run_dir.mkdir(parents=True, exist_ok=True, mode=0o700 if private else 0o777)
        if private:
            os.chmod(run_dir, 0o700)
    except OSError as exc:  # the JSONL sink retries; the training must not stop here
        warn_once(
            f"cannot create the run directory {run_dir} ({type(exc).__name__}: {exc}); "
            "events are counted as lost until it can be written (check the root setting)"
        )


def tighten(run_dir: Path) -> None:
    """A private run: user-only modes on everything the sinks created (umask may allow more).

    Each path on its own: one that vanished or cannot be changed does not stop the others.
    """
    try:
        paths = [run_dir, *run_dir.rglob("*")]
    except OSError:
        return
    for path in paths:
        try:
            if not path.is_symlink():
                os.chmod(path, 0o700 if path.is_dir() else 0o600)
        except OSError:
            continue


# run.json fields that hold no user text: what is left when redaction itself fails.
_PLAIN_FIELDS = ("id", "status", "start", "start_iso", "end", "end_iso", "duration_s", "segment")


def _redactor(redact: Redact) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def manifest(data: dict[str, Any]) -> dict[str, Any]:
        try:
            return redact.manifest(data)
        except Exception as exc:  # never write what could not be checked
            warn_once(f"run.json written without argv, error and config ({type(exc).__name__})")
            return {k: data.get(k) for k in _PLAIN_FIELDS} | {"redaction_failed": True}

    return manifest


def write_manifest(run: Run, *, redact: Redact | None = None, **extra: Any) -> None:
    """Write run.json through ``redact`` (the listener's instance: argv, the error, the
    configuration and the TRL arguments can quote a credential); a failure (disk full,
    directory gone read-only) is warned, not raised.

    The first write of a private run (at ``initialize``, after the sinks opened their files)
    also sets user-only modes on what the sinks created, as ``shutdown`` does at the end.
    """
    try:
        run.write_manifest(redact=None if redact is None else _redactor(redact), **extra)
    except OSError as exc:
        warn_once(f"cannot write {run.manifest_path} ({type(exc).__name__}: {exc})")
    if run.private and run.status == "running":
        tighten(run.dir)
