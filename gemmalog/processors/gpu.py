"""GPU counters through NVIDIA's own bindings (``nvidia-ml-py``, imported as ``pynvml``).

:meth:`GpuCounters.open` finds the devices this process can see (``CUDA_VISIBLE_DEVICES``:
indices, full or abbreviated ``GPU-`` UUIDs, ``MIG-`` UUIDs, as CUDA reads it) and returns
None without NVML (the package missing, no driver, no device): then nothing is sampled and
nothing is said. :meth:`GpuCounters.sample` reads each device's utilisation, memory, power
and temperature into one ``system`` event a device; the listener calls it on its tick, so
the training thread never waits on the driver. A counter a device does not report is left
out of its event.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Sequence
from typing import Any

_MIB = 1024.0 * 1024.0


def visible_entries(value: str | None) -> list[str] | None:
    """``CUDA_VISIBLE_DEVICES`` as CUDA reads it: None when unset (every device), else the
    entries up to the first empty one (CUDA ignores what follows an invalid entry)."""
    if value is None:
        return None
    out = []
    for entry in value.split(","):
        entry = entry.strip()
        if not entry:
            break
        out.append(entry)
    return out


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class GpuCounters:
    """The visible devices' NVML handles and the reads of one sample."""

    __slots__ = ("_devices", "_nvml", "interval")

    def __init__(self, nvml: Any, devices: Sequence[tuple[int, Any, str, str]], interval: float):
        self._nvml = nvml
        self._devices = list(devices)  # (visible index, handle, uuid, name)
        self.interval = interval

    @classmethod
    def open(cls, interval: float = 10.0, environ: Any = None) -> GpuCounters | None:
        """Counters for the devices this process sees; None without NVML or devices."""
        try:
            import pynvml  # type: ignore[import-not-found,unused-ignore]

            pynvml.nvmlInit()
        except Exception:
            return None
        try:
            env = os.environ if environ is None else environ
            devices = _visible(pynvml, visible_entries(env.get("CUDA_VISIBLE_DEVICES")))
        except Exception:
            devices = []
        if not devices:
            _shutdown(pynvml)
            return None
        return cls(pynvml, devices, interval)

    @property
    def devices(self) -> list[tuple[int, str, str]]:
        """(visible index, uuid, name) of each device sampled."""
        return [(i, uuid, name) for i, _h, uuid, name in self._devices]

    def sample(self) -> list[dict[str, Any]]:
        """One ``system`` event (kind, event and counters; no envelope) per device."""
        return [self._device(*device) for device in self._devices]

    def _device(self, index: int, handle: Any, uuid: str, name: str) -> dict[str, Any]:
        nvml = self._nvml
        event: dict[str, Any] = {
            "kind": "system",
            "event": "gpu",
            "gpu_index": index,
            "gpu_uuid": uuid,
            "gpu_name": name,
        }
        rates = _get(nvml.nvmlDeviceGetUtilizationRates, handle)
        if rates is not None:
            event["gpu_utilization_percent"] = float(rates.gpu)
        memory = _get(nvml.nvmlDeviceGetMemoryInfo, handle)
        if memory is not None:
            event["gpu_memory_used_mb"] = memory.used / _MIB
            event["gpu_memory_total_mb"] = memory.total / _MIB
        power = _get(nvml.nvmlDeviceGetPowerUsage, handle)  # milliwatts
        if power is not None:
            event["gpu_power_w"] = power / 1000.0
        temperature = _get(nvml.nvmlDeviceGetTemperature, handle, nvml.NVML_TEMPERATURE_GPU)
        if temperature is not None:
            event["gpu_temperature_c"] = float(temperature)
        return event

    def close(self) -> None:
        _shutdown(self._nvml)


def _get(read: Callable[..., Any], *args: Any) -> Any:
    try:
        return read(*args)
    except Exception:  # NVMLError_NotSupported and the like: that counter is left out
        return None


def _shutdown(nvml: Any) -> None:
    with contextlib.suppress(Exception):
        nvml.nvmlShutdown()


def _visible(nvml: Any, entries: list[str] | None) -> list[tuple[int, Any, str, str]]:
    """(visible index, handle, uuid, name) in CUDA's order of the visible devices."""
    count = int(nvml.nvmlDeviceGetCount())
    handles = [nvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
    uuids = [_text(nvml.nvmlDeviceGetUUID(h)) for h in handles]
    chosen: list[Any] = []
    if entries is None:
        chosen = list(handles)
    else:
        for entry in entries:
            handle = _by_entry(nvml, entry, handles, uuids)
            if handle is None:
                break  # CUDA stops at the first entry it cannot resolve
            chosen.append(handle)
    out = []
    for index, handle in enumerate(chosen):
        uuid = _text(_get(nvml.nvmlDeviceGetUUID, handle) or "")
        name = _text(_get(nvml.nvmlDeviceGetName, handle) or "")
        out.append((index, handle, uuid, name))
    return out


def _by_entry(nvml: Any, entry: str, handles: list[Any], uuids: list[str]) -> Any:
    """The handle one ``CUDA_VISIBLE_DEVICES`` entry names, or None."""
    if entry.isdigit():
        i = int(entry)
        return handles[i] if i < len(handles) else None
    if entry.startswith("MIG-"):
        return _get(nvml.nvmlDeviceGetHandleByUUID, entry)
    wanted = entry if entry.startswith("GPU-") else f"GPU-{entry}"
    matches = [h for h, u in zip(handles, uuids, strict=True) if u.startswith(wanted)]
    return matches[0] if len(matches) == 1 else None  # an ambiguous prefix names none
