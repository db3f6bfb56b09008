"""Training overhead: the same GRPO run with gemmalog fully on vs. without gemmalog.

"On" is the seed configuration (console, rotating file, CSV, TensorBoard, JSONL), the
callback and the wrapped reward functions: every completion of every step is logged.
"Off" is the plain TRL run with ``report_to="none"``. Runs alternate (off, on, on, off, ...)
in one process, after a warm-up run of each; the figure is the median over runs of the
median ``step_time`` TRL reports, plus wall time per step, the RSS difference and the CPU
time of gemmalog's listener thread.

    python benchmarks/bench_training_overhead.py --runs 6 --steps 20
    python benchmarks/bench_training_overhead.py --matrix   # batch sizes x logging frequencies
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "examples"))
os.environ.setdefault("TQDM_DISABLE", "1")

import gsm_data  # noqa: E402
import reward_functions  # noqa: E402
import tiny_gemma  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402
from trl import GRPOConfig, GRPOTrainer  # type: ignore[attr-defined]  # noqa: E402

import gemmalog  # noqa: E402
from gemmalog import running
from gemmalog.integrations.trl import GemmalogCallback  # noqa: E402

CONFIG = HERE.parent / "configs" / "gemma_logging.yaml"


def _time_training_thread(callback: GemmalogCallback) -> dict[str, float]:
    """Accumulate the seconds gemmalog spends on the training thread: hooks and reward logging."""
    seconds: dict[str, float] = {}
    targets = [
        (callback, h)
        for h in (
            "on_train_begin",
            "on_step_begin",
            "on_pre_optimizer_step",
            "on_step_end",
            "on_log",
        )
    ]
    targets.append((callback.collector, "record"))
    for owner, name in targets:
        original = getattr(owner, name)

        def timed(*a: Any, _original: Any = original, _name: str = name, **k: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return _original(*a, **k)
            finally:
                seconds[_name] = seconds.get(_name, 0.0) + time.perf_counter() - t0

        setattr(owner, name, timed)
    return seconds


def one_run(
    model_dir: Path,
    *,
    on: bool,
    steps: int,
    batch: int,
    logging_steps: int,
    frequency: int,
    tmp: Path,
    config: Path = CONFIG,
) -> dict[str, float]:
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    funcs: list[Any] = list(reward_functions.REWARD_FUNCTIONS)
    callbacks: list[Any] = []
    listener_cpu = 0.0
    if on:
        gemmalog.initialize(str(config), root=str(tmp / "runs"), capture_stdlib=True)
        callback = GemmalogCallback(logging_frequency=frequency)
        funcs = callback.wrap(funcs)
        callbacks = [callback]
        timed = _time_training_thread(callback)
    config = GRPOConfig(
        output_dir=str(tmp / "out"),
        max_steps=steps,
        per_device_train_batch_size=batch,
        num_generations=4,
        max_completion_length=32,
        bf16=False,
        use_cpu=True,
        activation_checkpointing=False,
        logging_steps=logging_steps,
        report_to="none",
        save_strategy="no",
        disable_tqdm=True,
        seed=0,
    )
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=funcs,
        args=config,
        train_dataset=gsm_data.make_dataset(256),
        processing_class=tokenizer,
        callbacks=callbacks,
    )
    process = psutil.Process()
    rss_before = process.memory_info().rss
    started = time.perf_counter()
    trainer.train()
    wall = time.perf_counter() - started
    rss_after = process.memory_info().rss
    if on:
        pipeline = running()
        assert pipeline is not None
        thread = pipeline.listener._thread
        native = getattr(thread, "native_id", None)
        for t in process.threads():
            if t.id == native:
                listener_cpu = t.user_time + t.system_time
        gemmalog.shutdown()
    step_times = [e["step_time"] for e in trainer.state.log_history if "step_time" in e]
    caller_ms = 1000 * sum(timed.values()) / steps if on else 0.0
    return {
        "step_time": statistics.median(step_times) if step_times else float("nan"),
        "wall_per_step": wall / steps,
        "rss_delta_mb": (rss_after - rss_before) / 2**20,
        "listener_cpu_s": listener_cpu,
        "caller_ms_per_step": caller_ms,
        "wall": wall,
    }


def compare(
    model_dir: Path,
    *,
    runs: int,
    steps: int,
    batch: int,
    logging_steps: int,
    frequency: int,
    config: Path = CONFIG,
) -> dict[str, Any]:
    results: dict[bool, list[dict[str, float]]] = {False: [], True: []}
    with tempfile.TemporaryDirectory() as tmp:
        for on in (False, True):  # warm-up, not counted
            one_run(
                model_dir,
                on=on,
                steps=2,
                batch=batch,
                logging_steps=logging_steps,
                frequency=frequency,
                tmp=Path(tmp) / f"w{on}",
                config=config,
            )
        for i in range(runs):
            order = (False, True) if i % 2 == 0 else (True, False)
            for on in order:
                results[on].append(
                    one_run(
                        model_dir,
                        on=on,
                        steps=steps,
                        batch=batch,
                        logging_steps=logging_steps,
                        frequency=frequency,
                        tmp=Path(tmp) / f"r{i}{on}",
                        config=config,
                    )
                )
    off = statistics.median(r["step_time"] for r in results[False])
    on_ = statistics.median(r["step_time"] for r in results[True])
    off_wall = statistics.median(r["wall_per_step"] for r in results[False])
    on_wall = statistics.median(r["wall_per_step"] for r in results[True])
    return {
        "batch": batch,
        "logging_steps": logging_steps,
        "frequency": frequency,
        "off_step_ms": off * 1000,
        "on_step_ms": on_ * 1000,
        "overhead_pct": 100 * (on_ - off) / off,
        "off_wall_ms": off_wall * 1000,
        "on_wall_ms": on_wall * 1000,
        "wall_overhead_pct": 100 * (on_wall - off_wall) / off_wall,
        "caller_ms_per_step": statistics.median(r["caller_ms_per_step"] for r in results[True]),
        "listener_cpu_pct_of_wall": 100
        * statistics.median(r["listener_cpu_s"] / r["wall"] for r in results[True]),
        "rss_delta_on_minus_off_mb": statistics.median(r["rss_delta_mb"] for r in results[True])
        - statistics.median(r["rss_delta_mb"] for r in results[False]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=6)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument(
        "--matrix", action="store_true", help="batch sizes 4, 8 x logging_steps 1, 5"
    )
    parser.add_argument(
        "--config", type=Path, default=CONFIG, help="gemmalog configuration of the 'on' runs"
    )
    parser.add_argument(
        "--tiny-cache", default=str(Path.home() / ".cache" / "gemmalog" / "tiny-gemma")
    )
    args = parser.parse_args()
    model_dir = tiny_gemma.build_tiny_gemma(args.tiny_cache)
    grid = [(4, 1, 5), (8, 1, 5), (4, 5, 20), (8, 5, 20)] if args.matrix else [(4, 1, 5)]
    print(
        "| batch | TRL logging_steps | gemmalog frequency | off: step ms | on: step ms | overhead | off: wall ms/step | on: wall ms/step | wall overhead | gemmalog on the training thread, ms/step | listener CPU % of wall | RSS on − off MB |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for batch, logging_steps, frequency in grid:
        r = compare(
            model_dir,
            runs=args.runs,
            steps=args.steps,
            batch=batch,
            logging_steps=logging_steps,
            frequency=frequency,
            config=args.config,
        )
        print(
            f"| {batch} | {logging_steps} | {frequency} | {r['off_step_ms']:.1f} | {r['on_step_ms']:.1f} | {r['overhead_pct']:+.1f}% | "
            f"{r['off_wall_ms']:.1f} | {r['on_wall_ms']:.1f} | {r['wall_overhead_pct']:+.1f}% | {r['caller_ms_per_step']:.2f} | {r['listener_cpu_pct_of_wall']:.1f}% | {r['rss_delta_on_minus_off_mb']:+.1f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
