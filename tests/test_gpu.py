"""GPU counters through NVML, with a stand-in ``pynvml`` module at the import boundary.

The stand-in answers as nvidia-ml-py does (handles, UUIDs as str, memory in bytes, power in
milliwatts, NVMLError for a counter a device lacks); ``benchmarks/gpu_check.py`` reads a
real device.
"""

from __future__ import annotations

import sys
import threading
import time
import types
from pathlib import Path
from typing import Any

import orjson
import pytest

import gemmalog
from gemmalog.processors.gpu import GpuCounters, visible_entries
from tests.helpers import events_of

REPO = Path(__file__).resolve().parents[1]


class NVMLError(Exception):
    pass


def stand_in(devices: int = 3, fail_init: bool = False) -> tuple[types.ModuleType, list[str]]:
    """A ``pynvml`` module over ``devices`` devices; the last one reports no power. Returns
    it and the names of the threads that read a counter."""
    threads: list[str] = []
    uuids = [f"GPU-{i}{i}{i}{i}aaaa-0000-0000-0000-00000000000{i}" for i in range(devices)]
    module = types.ModuleType("pynvml")
    module.NVMLError = NVMLError  # type: ignore[attr-defined]
    module.NVML_TEMPERATURE_GPU = 0  # type: ignore[attr-defined]
    state = {"open": 0}

    def init() -> None:
        if fail_init:
            raise NVMLError("Driver Not Loaded")
        state["open"] += 1

    def handle_of(i: int) -> Any:
        return ("handle", i)

    def by_uuid(uuid: str) -> Any:
        if uuid.startswith("MIG-"):
            return ("mig", uuid)
        raise NVMLError("Not Found")

    def utilization(h: Any) -> Any:
        threads.append(threading.current_thread().name)
        return types.SimpleNamespace(gpu=10 * (h[1] + 1), memory=5)

    def memory(h: Any) -> Any:
        return types.SimpleNamespace(used=(h[1] + 1) * 1024**3, total=80 * 1024**3, free=0)

    def power(h: Any) -> int:
        if h[1] == devices - 1:
            raise NVMLError("Not Supported")
        return 250_500

    module.nvmlInit = init  # type: ignore[attr-defined]
    module.nvmlShutdown = lambda: state.__setitem__("open", state["open"] - 1)  # type: ignore[attr-defined]
    module.nvmlDeviceGetCount = lambda: devices  # type: ignore[attr-defined]
    module.nvmlDeviceGetHandleByIndex = handle_of  # type: ignore[attr-defined]
    module.nvmlDeviceGetHandleByUUID = by_uuid  # type: ignore[attr-defined]
    module.nvmlDeviceGetUUID = lambda h: uuids[h[1]] if h[0] == "handle" else h[1]  # type: ignore[attr-defined]
    module.nvmlDeviceGetName = lambda h: "Stand-in H200"  # type: ignore[attr-defined]
    module.nvmlDeviceGetUtilizationRates = utilization  # type: ignore[attr-defined]
    module.nvmlDeviceGetMemoryInfo = memory  # type: ignore[attr-defined]
    module.nvmlDeviceGetPowerUsage = power  # type: ignore[attr-defined]
    module.nvmlDeviceGetTemperature = lambda h, sensor: 40 + h[1]  # type: ignore[attr-defined]
    module.state = state  # type: ignore[attr-defined]
    return module, threads


@pytest.mark.parametrize(
    ("visible", "expected"),
    [
        (None, [0, 1, 2]),
        ("2,0", [2, 0]),
        ("1", [1]),
        ("GPU-1111", [1]),  # an abbreviated UUID, as CUDA accepts it
        ("GPU-2222aaaa-0000-0000-0000-000000000002,0", [2, 0]),
        ("1,7,2", [1]),  # CUDA stops at the first entry it cannot resolve
        ("1,,2", [1]),
        ("", []),
        ("-1", []),
    ],
)
def test_visible_devices_follow_cuda_visible_devices(
    monkeypatch: pytest.MonkeyPatch, visible: str | None, expected: list[int]
) -> None:
    module, _ = stand_in()
    monkeypatch.setitem(sys.modules, "pynvml", module)
    env = {} if visible is None else {"CUDA_VISIBLE_DEVICES": visible}
    counters = GpuCounters.open(environ=env)
    if not expected:
        assert counters is None
        assert module.state["open"] == 0  # type: ignore[attr-defined]
        return
    assert counters is not None
    uuids = [uuid for _i, uuid, _n in counters.devices]
    assert [int(u[4]) for u in uuids] == expected
    assert [i for i, _u, _n in counters.devices] == list(range(len(expected)))  # cuda:N
    counters.close()
    assert module.state["open"] == 0  # type: ignore[attr-defined]


def test_mig_devices_are_found_by_uuid(monkeypatch: pytest.MonkeyPatch) -> None:
    module, _ = stand_in()
    monkeypatch.setitem(sys.modules, "pynvml", module)
    counters = GpuCounters.open(environ={"CUDA_VISIBLE_DEVICES": "MIG-abc"})
    assert counters is not None and counters.devices == [(0, "MIG-abc", "Stand-in H200")]
    assert visible_entries(" 0 , 1 ") == ["0", "1"]


def test_without_nvml_nothing_is_sampled_or_said(
    monkeypatch: pytest.MonkeyPatch, root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import pynvml raises ImportError
    assert GpuCounters.open() is None
    failing, _ = stand_in(fail_init=True)
    monkeypatch.setitem(sys.modules, "pynvml", failing)
    assert GpuCounters.open() is None
    run = gemmalog.initialize(root=root, gpu_interval=0.01, flush_interval=0.02)
    gemmalog.get_training_logger().info("step", step=1)
    time.sleep(0.1)
    gemmalog.shutdown()
    assert [e for e in events_of(run.dir, "system") if e.get("event") == "gpu"] == []
    err = capsys.readouterr().err
    assert "Driver Not Loaded" not in err and "pynvml" not in err and "GPU" not in err


def _config(tmp_path: Path) -> Path:
    """The seed configuration with the system logger also routed to TensorBoard."""
    seed = (REPO / "configs" / "gemma_logging.yaml").read_text()
    routed = seed.replace(
        "  logging.system:\n    level: INFO\n    handlers: [file]",
        "  logging.system:\n    level: INFO\n    handlers: [file, tensorboard]",
    )
    assert routed != seed
    path = tmp_path / "config.yaml"
    path.write_text(routed + "\ngemmalog:\n  gpu_interval: 0.05\n  flush_interval: 0.05\n")
    return path


def test_gpu_counters_are_system_events_and_scalars(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, root: Path
) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    module, threads = stand_in()
    monkeypatch.setitem(sys.modules, "pynvml", module)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,1")
    run = gemmalog.initialize(_config(tmp_path), root=root)
    for step in range(1, 4):
        gemmalog.log_training_progress(step, {"loss": 0.1})
        time.sleep(0.12)
    gemmalog.shutdown()
    samples = [e for e in events_of(run.dir, "system") if e.get("event") == "gpu"]
    assert samples and {e["gpu_index"] for e in samples} == {0, 1}
    first = {e["gpu_index"]: e for e in reversed(samples)}
    # visible device 0 is physical device 2 (no power counter), 1 is physical device 1
    assert first[0]["gpu_uuid"].startswith("GPU-2222") and "gpu_power_w" not in first[0]
    assert first[1]["gpu_power_w"] == 250.5
    assert first[1]["gpu_utilization_percent"] == 20.0
    assert first[1]["gpu_memory_used_mb"] == 2048.0 and first[1]["gpu_memory_total_mb"] == 81920.0
    assert first[0]["gpu_temperature_c"] == 42.0
    assert all(e["run"] == run.id and e.get("step") in (1, 2, 3, None) for e in samples)
    assert any(e.get("step") is not None for e in samples)
    # read on the listener thread, never on the caller's
    assert threads and threading.main_thread().name not in threads
    con = gemmalog.connect(run.dir)
    rows = con.sql(
        "SELECT gpu_index, gpu_power_w FROM system WHERE gpu_index IS NOT NULL ORDER BY ts"
    ).fetchall()
    assert {(i, p) for i, p in rows} == {(0, None), (1, 250.5)}
    acc = EventAccumulator(str(run.dir / "logs" / "tensorboard"), size_guidance={"scalars": 0})
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    assert {"system/gpu0/gpu_utilization_percent", "system/gpu1/gpu_power_w"} <= tags
    assert "system/gpu0/gpu_power_w" not in tags and "system/gpu_index" not in tags
    assert {s.value for s in acc.Scalars("system/gpu1/gpu_temperature_c")} == {41.0}
    assert module.state["open"] == 0  # type: ignore[attr-defined]  # shut down at the end
    lines = (run.dir / "events.0.jsonl").read_bytes().splitlines()
    assert all(orjson.loads(line)["kind"] for line in lines)
