"""Device and memory on every event, sampled at most once per interval.

The per-event cost is one float comparison: psutil and torch are asked only when the
interval has passed, and torch only when the program already imported it (gemmalog never
imports torch itself).
"""

from __future__ import annotations

import contextlib
import sys
from typing import Any

import psutil

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


_PROCESS: psutil.Process | None = None


def _process() -> psutil.Process:
    global _PROCESS
    if _PROCESS is None:
        _PROCESS = psutil.Process()
    return _PROCESS


def rss_mb() -> float:
    """This process's resident memory in MiB (one /proc read). The one memory sampler: the
    envelope's ``rss_mb``, ``log_memory_usage`` and the TRL callback all read it here."""
    return float(_process().memory_info().rss / _MB)


def process_memory() -> dict[str, float]:
    """``cpu_rss_mb`` and ``cpu_percent`` of this process; empty when psutil cannot tell."""
    out: dict[str, float] = {}
    try:
        out["cpu_rss_mb"] = rss_mb()
        out["cpu_percent"] = _process().cpu_percent(interval=None)
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
