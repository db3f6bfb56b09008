"""Device and memory on every event, sampled at most once per interval.

The per-event cost is one float comparison: memory and torch are asked only when the
interval has passed, and torch only when the program already imported it (gemmalog never
imports torch itself).

The samplers avoid psutil where the OS answers directly: RSS is one ``pread`` of
``/proc/self/statm`` on a descriptor kept open (psutil opens, reads and closes the file, and
every one of those calls lets go of the GIL, which a busy training thread then holds for up
to a switch interval), and the CPU percentage is a delta of ``time.process_time`` (one
``clock_gettime``, no file) where psutil parses ``/proc/self/stat``. psutil, imported on
first need, remains the RSS source where there is no ``/proc`` (macOS, Windows).
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from typing import Any

_MB = 1024.0 * 1024.0


def detect_device() -> str:
    """Return ``cuda:N``, ``mps`` or ``cpu`` without importing torch or initializing CUDA."""
    torch = sys.modules.get("torch")
    if torch is None:
        return "cpu"
    try:
        if torch.cuda.is_available():
            index = torch.cuda.current_device() if torch.cuda.is_initialized() else 0
            return f"cuda:{index}"
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return "mps"
    except Exception:  # a broken driver must not break logging
        return "cpu"
    return "cpu"


def accelerator_memory_mb() -> dict[str, float]:
    """CUDA/MPS memory counters in MiB; empty when torch is not imported or unused."""
    torch = sys.modules.get("torch")
    if torch is None:
        return {}
    out: dict[str, float] = {}
    try:
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            out["cuda_allocated_mb"] = torch.cuda.memory_allocated() / _MB
            out["cuda_reserved_mb"] = torch.cuda.memory_reserved() / _MB
            out["cuda_peak_mb"] = torch.cuda.max_memory_allocated() / _MB
        else:
            mps = getattr(torch, "mps", None)
            backend = getattr(torch.backends, "mps", None)
            if mps is not None and backend is not None and backend.is_available():
                out["mps_allocated_mb"] = mps.current_allocated_memory() / _MB
    except Exception:
        return {}
    return out


class _Sampler:
    """Where this process's RSS is read from, and the CPU baseline of ``cpu_percent``.

    Both belong to one process: ``/proc/self`` is resolved when the file is opened, so a
    forked child would read its parent's memory through an inherited descriptor, and its
    CPU clock starts afresh. The child therefore starts with a new sampler (see the
    ``register_at_fork`` below), as psutil's first call in a new process would.
    """

    __slots__ = ("cpu", "file_id", "process", "statm")

    def __init__(self) -> None:
        self.statm: int | None = None  # descriptor of /proc/self/statm; -1: none to be had
        self.file_id: tuple[int, int] | None = None  # its (st_dev, st_ino)
        self.process: Any = None  # psutil.Process, where there is no /proc
        self.cpu: tuple[float, float] | None = None  # (process CPU s, monotonic s) last time


_SAMPLER = _Sampler()
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _after_fork() -> None:
    global _SAMPLER
    old, _SAMPLER = _SAMPLER, _Sampler()
    if old.statm is not None and old.statm >= 0:
        with contextlib.suppress(OSError):
            os.close(old.statm)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


def _statm(sampler: _Sampler) -> int:
    """The open ``/proc/self/statm`` descriptor, or -1 where there is none.

    No lock: this runs on the caller's thread, where a signal handler that logs may interrupt
    it (a lock held by the interrupted frame would deadlock). Two threads opening it at once
    keep one descriptor; the other is closed (at worst, in a race, left open: one descriptor).
    """
    fd = sampler.statm
    if fd is None:
        try:
            fd = os.open("/proc/self/statm", os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
            st = os.fstat(fd)
            file_id: tuple[int, int] | None = (st.st_dev, st.st_ino)
        except OSError:
            fd, file_id = -1, None
        if sampler.statm is None:
            sampler.file_id = file_id
            sampler.statm = fd
        else:  # another thread was first
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
            fd = sampler.statm
    return fd


def rss_mb() -> float:
    """This process's resident memory in MiB (one /proc read). The one memory sampler: the
    envelope's ``rss_mb``, ``log_memory_usage`` and the TRL callback all read it here.

    The same figure as psutil's ``memory_info().rss``: the second field of ``statm``
    (resident pages) times the page size."""
    sampler = _SAMPLER
    fd = _statm(sampler)
    if fd >= 0:
        try:
            # The same file still? A program that closes every descriptor may have had this
            # number reused for one of its own files, which must not be read as memory.
            st = os.fstat(fd)
            if (st.st_dev, st.st_ino) != sampler.file_id:
                raise ValueError("descriptor reused")
            return int(os.pread(fd, 256, 0).split()[1]) * _PAGE / _MB
        except (OSError, ValueError, IndexError):
            # Closed or reused behind our back (a program that closes every descriptor):
            # psutil from now on. The descriptor is not closed, it may be someone else's.
            sampler.statm = -1
    if sampler.process is None:
        import psutil  # only where /proc cannot answer

        sampler.process = psutil.Process()
    return float(sampler.process.memory_info().rss / _MB)


def cpu_percent() -> float:
    """The process's CPU use since the previous call, in percent of one CPU (above 100 with
    several busy threads), rounded to 0.1: what psutil's ``Process.cpu_percent(None)``
    reports, and 0.0 on the first call of a process as there. Child processes not counted."""
    sampler = _SAMPLER
    now = (time.process_time(), time.monotonic())
    last, sampler.cpu = sampler.cpu, now
    if last is None or now[1] <= last[1]:
        return 0.0
    return round(100.0 * (now[0] - last[0]) / (now[1] - last[1]), 1)


def process_memory() -> dict[str, float]:
    """``cpu_rss_mb`` and ``cpu_percent`` of this process; empty when the OS cannot tell."""
    out: dict[str, float] = {}
    try:
        out["cpu_rss_mb"] = rss_mb()
        out["cpu_percent"] = cpu_percent()
    except Exception:
        pass
    return out


class AddResources:
    """Add ``device``, ``rss_mb`` and (on a GPU) ``gpu_mb``, refreshed every ``interval`` s."""

    __slots__ = ("_device", "_gpu", "_next", "_rss", "interval")

    def __init__(self, interval: float = 1.0) -> None:
        self.interval = interval
        self._next = 0.0
        self._device = "cpu"
        self._rss = 0.0
        self._gpu: float | None = None

    def refresh(self, now: float) -> None:
        self._next = now + self.interval
        with contextlib.suppress(Exception):
            self._rss = round(rss_mb(), 1)
        self._device = detect_device()
        acc = accelerator_memory_mb()
        gpu = acc.get("cuda_allocated_mb", acc.get("mps_allocated_mb"))
        self._gpu = None if gpu is None else round(gpu, 1)

    def __call__(self, logger: Any, method_name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
        ts = event_dict["ts"]
        if ts >= self._next:
            self.refresh(ts)
        event_dict["device"] = self._device
        event_dict["rss_mb"] = self._rss
        if self._gpu is not None:
            event_dict["gpu_mb"] = self._gpu
        return event_dict
