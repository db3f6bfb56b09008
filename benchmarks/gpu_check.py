"""GPU check: gemmalog's CUDA code paths on a real GPU, read back from the files.

Run on a machine with a CUDA GPU (it exits 2 without one):

    python benchmarks/gpu_check.py [OUT_DIR]

1. logs CUDA tensors of several dtypes and checks they land as numbers/lists;
2. checks every event after torch's CUDA use carries ``device = cuda:N`` and ``gpu_mb``;
   with nvidia-ml-py installed, that NVML's counters are sampled for every visible device
   (utilisation, memory, power, temperature, the UUID torch gives cuda:0);
3. fine-tunes the tiny offline Gemma on the GPU (bf16 when supported) with a plain
   ``transformers.Trainer`` and ``GemmalogCallback``: metrics equal ``log_history``, system
   events carry CUDA allocated/reserved/peak memory, gradient norms per parameter group
   are computed from GPU gradients;
4. times the same training with and without gemmalog (alternating, median step time).
Writes ``gpu_check.json`` to OUT_DIR and exits 1 when a check fails.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "examples"))
sys.path.insert(0, str(HERE.parent))
os.environ.setdefault("TQDM_DISABLE", "1")

import orjson  # noqa: E402
import torch  # noqa: E402

import gemmalog  # noqa: E402

failures: list[str] = []
HOOK_SECONDS: dict[str, float] = {}


def check(condition: bool, what: str) -> None:
    print(("ok   " if condition else "FAIL ") + what, flush=True)
    if not condition:
        failures.append(what)


def events(run_dir: Path) -> list[dict[str, Any]]:
    return [
        orjson.loads(line)
        for p in sorted(run_dir.glob("events.*.jsonl"))
        for line in p.read_bytes().splitlines()
    ]


class Texts(torch.utils.data.Dataset):  # type: ignore[type-arg]
    def __init__(self, tokenizer: Any, n: int) -> None:
        import gsm_data

        problems = list(gsm_data.iter_problems(n, 0))
        self.items = [
            tokenizer(
                p.question + " " + gsm_data.format_completion(p), truncation=True, max_length=64
            )
            for p in problems
        ]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> Any:
        return self.items[i]


def train(
    model_dir: Path,
    out: Path,
    *,
    with_gemmalog: bool,
    steps: int,
    options: dict[str, int] | None = None,
) -> tuple[Any, float]:
    from transformers import (
        AutoModelForCausalLM,
        AutoTokenizer,
        DataCollatorForLanguageModeling,
        Trainer,
        TrainingArguments,
    )

    from gemmalog.integrations.trl import GemmalogCallback

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    callbacks = (
        [GemmalogCallback(**(options or {"logging_frequency": 5, "gradient_frequency": 5}))]
        if with_gemmalog
        else []
    )
    args = TrainingArguments(
        output_dir=str(out),
        max_steps=steps,
        per_device_train_batch_size=16,
        logging_steps=1,
        learning_rate=1e-3,
        bf16=torch.cuda.is_bf16_supported(),
        report_to="none",
        save_strategy="no",
        disable_tqdm=True,
    )
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=Texts(tokenizer, 512),
        data_collator=DataCollatorForLanguageModeling(tokenizer, mlm=False),
        callbacks=callbacks,
    )
    for callback in callbacks:  # time spent in gemmalog's hooks, on the training thread
        for hook in ("on_step_begin", "on_pre_optimizer_step", "on_step_end", "on_log"):
            original = getattr(callback, hook)

            def timed(*a: Any, _original: Any = original, _hook: str = hook, **k: Any) -> Any:
                t0 = time.perf_counter()
                try:
                    return _original(*a, **k)
                finally:
                    HOOK_SECONDS[_hook] = HOOK_SECONDS.get(_hook, 0.0) + time.perf_counter() - t0

            setattr(callback, hook, timed)
    started = time.perf_counter()
    trainer.train()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return trainer, (time.perf_counter() - started) / steps


def nvml_check(work: Path) -> dict[str, Any]:
    """GPU samples while a matmul loop keeps device 0 busy: one per visible device, every
    ``gpu_interval``, counters within what torch and the device say."""
    try:
        import pynvml  # noqa: F401
    except ImportError:
        print("skip NVML counters: pip install nvidia-ml-py (gemmalog[gpu])")
        return {"skipped": "nvidia-ml-py not installed"}
    run = gemmalog.initialize(
        root=str(work / "runs"), run_name="gpu-nvml", gpu_interval=0.2, flush_interval=0.1
    )
    a = torch.randn(4096, 4096, device="cuda")
    started = time.monotonic()
    step = 0
    while time.monotonic() - started < 3.0:
        step += 1
        gemmalog.log_training_progress(step, {"norm": float((a @ a).norm())})
    torch.cuda.synchronize()
    gemmalog.shutdown()
    samples = [e for e in events(run.dir) if e["kind"] == "system" and e.get("event") == "gpu"]
    visible = torch.cuda.device_count()
    check(
        {e["gpu_index"] for e in samples} == set(range(visible)),
        f"{len(samples)} GPU samples over the {visible} visible device(s)",
    )
    first = [e for e in samples if e["gpu_index"] == 0]
    props = torch.cuda.get_device_properties(0)
    total_mb = props.total_memory / 2**20
    check(
        bool(first)
        and all(abs(e["gpu_memory_total_mb"] - total_mb) <= 0.02 * total_mb for e in first),
        f"NVML memory total {first[0]['gpu_memory_total_mb'] if first else None} MiB vs torch {total_mb:.0f}",
    )
    reserved = torch.cuda.memory_reserved(0) / 2**20
    check(
        any(e["gpu_memory_used_mb"] >= 64 for e in first),
        f"NVML memory used while the loop ran (torch reserved {reserved:.0f} MiB)",
    )
    check(
        any(e.get("gpu_utilization_percent", 0) > 0 for e in first),
        f"utilisation {[e.get('gpu_utilization_percent') for e in first]}",
    )
    check(
        all(0 < e.get("gpu_temperature_c", 50) < 120 for e in first)
        and all(e.get("gpu_power_w", 1) > 0 for e in first),
        f"temperature {first[-1].get('gpu_temperature_c') if first else None} C, "
        f"power {first[-1].get('gpu_power_w') if first else None} W",
    )
    uuid = str(getattr(props, "uuid", "") or "")
    check(
        not uuid or (bool(first) and first[0]["gpu_uuid"].endswith(uuid.replace("GPU-", ""))),
        f"device 0 is torch's cuda:0 ({first[0]['gpu_uuid'] if first else None} vs {uuid})",
    )
    check(any(e.get("step") for e in first), "GPU samples carry the step the listener last saw")
    return {"samples": len(samples), "first": first[:1]}


def main() -> int:
    if not torch.cuda.is_available():
        print("no CUDA GPU here")
        return 2
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp())
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp())
    results: dict[str, Any] = {"gpu": torch.cuda.get_device_name(0), "torch": torch.__version__}

    # 1-2: tensors and the envelope
    run = gemmalog.initialize(root=str(work / "runs"), run_name="gpu-tensors", memory_interval=0.01)
    x = torch.linspace(-1, 1, 4, device="cuda")
    time.sleep(0.02)
    log = gemmalog.get_logger("gpu")
    dtypes = {
        "f32": x,
        "bf16": x.to(torch.bfloat16),
        "f16": x.half(),
        "i64": torch.arange(3, device="cuda"),
        "bool": x > 0,
    }
    if hasattr(torch, "float8_e4m3fn"):
        dtypes["f8"] = x.to(torch.float8_e4m3fn)
    log.info("tensors", scalar=x.sum(), nan=torch.tensor(float("nan"), device="cuda"), **dtypes)
    gemmalog.log_memory_usage(step=0)
    gemmalog.shutdown()
    evs = events(run.dir)
    tensors = next(e for e in evs if e.get("event") == "tensors")
    check(
        tensors["f32"] == [-1.0, -1 / 3, 1 / 3, 1.0]
        or all(
            abs(a - b) < 1e-6
            for a, b in zip(tensors["f32"], [-1.0, -1 / 3, 1 / 3, 1.0], strict=True)
        ),
        "cuda float32 tensor -> list",
    )
    check(
        isinstance(tensors["scalar"], float) and abs(tensors["scalar"]) < 1e-6,
        "cuda 0-d tensor -> number",
    )
    check(tensors["nan"] == "NaN", "cuda NaN -> 'NaN'")
    check(
        tensors["bool"] == [False, False, True, True] and tensors["i64"] == [0, 1, 2],
        "cuda bool/int tensors",
    )
    check(all(isinstance(v, float) for v in tensors["bf16"] + tensors["f16"]), "bf16/f16 -> floats")
    if "f8" in dtypes:
        check(all(isinstance(v, float) for v in tensors["f8"]), "float8 -> floats")
    # gpu_mb is rounded to 0.1 MiB: a few tensors of 4 values read 0.0, which is right
    check(
        tensors["device"].startswith("cuda:") and "gpu_mb" in tensors,
        f"envelope device {tensors['device']} gpu_mb {tensors.get('gpu_mb')}",
    )
    memory = next(e for e in evs if e["kind"] == "system" and e.get("event") != "gpu")
    check(
        memory.get("cuda_allocated_mb", 0) > 0 and memory.get("cuda_peak_mb", 0) > 0,
        "system event has CUDA memory",
    )

    # 2b: NVML counters (the optional extra gpu), sampled on the listener's tick
    results["nvml"] = nvml_check(work)

    # 3: training with the callback
    import tiny_gemma

    model_dir = tiny_gemma.build_tiny_gemma(work / "tiny", warmup_steps=50)
    run = gemmalog.initialize(root=str(work / "runs"), run_name="gpu-train")
    trainer, _ = train(model_dir, work / "train", with_gemmalog=True, steps=20)
    gemmalog.shutdown()
    evs = events(run.dir)
    logged = {
        (e["step"], k): v
        for e in evs
        if e["kind"] == "metrics" and e["phase"] == "train"
        for k, v in e["metrics"].items()
    }
    mismatches = [
        (entry["step"], key)
        for entry in trainer.state.log_history
        for key, value in entry.items()
        if key != "step"
        and isinstance(value, float)
        and not (math.isclose(logged.get((entry["step"], key), math.inf), value, rel_tol=1e-9))
    ]
    check(
        not mismatches,
        f"metrics equal log_history ({len(trainer.state.log_history)} entries, mismatches {mismatches[:3]})",
    )
    system = [e for e in evs if e["kind"] == "system"]
    check(
        any(e.get("cuda_reserved_mb", 0) > 0 for e in system),
        f"{len(system)} system events with CUDA memory",
    )
    grads = {
        k for e in evs if e["kind"] == "metrics" and e["phase"] == "gradients" for k in e["metrics"]
    }
    check(
        len(grads) >= 3
        and all(
            math.isfinite(v)
            for e in evs
            if e["kind"] == "metrics" and e["phase"] == "gradients"
            for v in e["metrics"].values()
        ),
        f"gradient norm groups: {sorted(grads)}",
    )
    check(
        all(e["device"].startswith("cuda") for e in evs if e["kind"] == "metrics"),
        "metrics events carry the CUDA device",
    )
    results["train_events"] = len(evs)

    # 4: overhead, alternating; variants show where the cost is
    variants: dict[str, dict[str, int] | None] = {
        "off": None,
        "full (resources and gradient norms every 5 steps)": {
            "logging_frequency": 5,
            "gradient_frequency": 5,
        },
        "no gradient norms": {"logging_frequency": 5, "gradient_frequency": 10**9},
        "on_log metrics and progress only": {
            "logging_frequency": 10**9,
            "gradient_frequency": 10**9,
        },
    }
    times: dict[str, list[float]] = {name: [] for name in variants}
    names = list(variants)
    for i in range(4):
        for name in names if i % 2 == 0 else reversed(names):
            options = variants[name]
            if options is not None:
                gemmalog.initialize(root=str(work / "runs"), run_name=f"gpu-bench-{i}")
            _, per_step = train(
                model_dir,
                work / f"b{i}{len(times[name])}",
                with_gemmalog=options is not None,
                steps=40,
                options=options,
            )
            if options is not None:
                gemmalog.shutdown()
            times[name].append(per_step)
        if i == 0:
            HOOK_SECONDS.clear()
    off = statistics.median(times["off"])
    results["step_ms"] = {name: statistics.median(t) * 1000 for name, t in times.items()}
    steps_timed = 3 * 40 * 3  # rounds 1-3, 40 steps, three gemmalog variants
    results["hook_ms_per_step"] = {h: 1000 * s / steps_timed for h, s in HOOK_SECONDS.items()}
    print(
        "hook ms per step (averaged over the variants):",
        {h: round(v, 3) for h, v in results["hook_ms_per_step"].items()},
    )
    for name, t in times.items():
        print(
            f"{name:52s} {statistics.median(t) * 1000:7.2f} ms/step ({100 * (statistics.median(t) - off) / off:+.1f}%)"
        )
    results["failures"] = failures
    (out / "gpu_check.json").write_text(json.dumps(results, indent=2))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
