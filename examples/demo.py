"""`make demo`: a short GRPO training of a tiny offline Gemma with full logging, then a summary.

1. builds (or reuses) a tiny Gemma-architecture model and tokenizer, offline;
2. trains it with TRL's GRPOTrainer for ~20 steps on CPU, logging with the seed plan's
   configuration (configs/gemma_logging.yaml): console, rotating text file, model-output
   CSV, TensorBoard and the JSONL source of truth;
3. prints ``gemmalog summary`` for the run, computed by DuckDB over the JSONL, then
   ``gemmalog doctor``'s health checks, and where every file is.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
os.environ.setdefault("TQDM_DISABLE", "1")  # the training's progress bars would bury the output

import train_grpo_gemma  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--root", default="runs")
    args_in = parser.parse_args(argv)
    args = train_grpo_gemma.build_arg_parser().parse_args(
        [
            "--steps",
            str(args_in.steps),
            "--root",
            args_in.root,
            "--run-name",
            "demo",
            "--eval-steps",
            "10",
        ]
    )
    started = time.perf_counter()
    trainer, run = train_grpo_gemma.train(args)
    seconds = time.perf_counter() - started
    print(
        f"\n=== trained {trainer.state.global_step} GRPO steps in {seconds:.1f} s; summary from DuckDB over the JSONL ===\n",
        flush=True,
    )
    gemmalog_cli = [sys.executable, "-m", "gemmalog", "summary", str(run.dir)]
    code = subprocess.call(gemmalog_cli)
    print("\n=== gemmalog doctor: health checks over the same views ===\n", flush=True)
    # findings are information here, not a failure of the demo: its exit code is ignored
    subprocess.call([sys.executable, "-m", "gemmalog", "doctor", str(run.dir)])
    files = {
        "JSONL (source of truth)": sorted(run.dir.glob("events.*.jsonl")),
        "run manifest": [run.dir / "run.json"],
        "model outputs CSV": sorted(run.dir.rglob("*.csv")),
        "text log": sorted(run.dir.rglob("*.log")),
        "TensorBoard": sorted({p.parent for p in run.dir.rglob("events.out.tfevents.*")}),
    }
    print("\nfiles:")
    for label, paths in files.items():
        for path in paths:
            print(f"  {label:24s} {path}")
    print(
        "\nnext:\n"
        f'  gemmalog sql {run.dir} "SELECT step, reward_fn, avg(value) FROM rewards GROUP BY ALL ORDER BY ALL"\n'
        f"  gemmalog tensorboard {run.dir}\n"
        f"  gemmalog to-parquet {run.dir} {args_in.root}/parquet"
    )
    print(
        f"\nwatch the runs in a browser (curves, every rollout group, the doctor):\n  gemmalog serve {args_in.root}"
    )
    return code


if __name__ == "__main__":
    sys.exit(main())
