"""GRPO training of a Gemma model with full gemmalog logging (the seed plan's new_gemma_training flow).

Offline by default: it builds a tiny Gemma-architecture model (examples/tiny_gemma.py) and
trains it for a few steps on CPU. Point ``--model`` at a real checkpoint directory (for
example a local copy of google/gemma-3-1b-it) to run the same script on a GPU machine.

    python examples/train_grpo_gemma.py --steps 20
    python examples/train_grpo_gemma.py --model /models/gemma-3-1b-it --steps 500 --batch-size 8

What changes against a plain TRL script is marked ``# gemmalog``: initialize with the
seed's YAML, a logger instead of print, the reward functions wrapped, one callback.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import gsm_data  # noqa: E402
import reward_functions  # noqa: E402
import tiny_gemma  # noqa: E402

import gemmalog  # noqa: E402  # gemmalog

DEFAULT_CONFIG = HERE.parent / "configs" / "gemma_logging.yaml"
DEFAULT_TINY = Path.home() / ".cache" / "gemmalog" / "tiny-gemma"


def build_arg_parser(description: str = __doc__.splitlines()[0]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--model", help="model directory or hub id (default: build the tiny offline Gemma)"
    )
    parser.add_argument(
        "--tiny-cache", default=str(DEFAULT_TINY), help="where the tiny Gemma is cached"
    )
    parser.add_argument("--config", default=str(DEFAULT_CONFIG), help="gemmalog YAML configuration")
    parser.add_argument("--root", default="runs", help="directory holding gemmalog runs")
    parser.add_argument("--run-name", default="grpo-gemma")
    parser.add_argument(
        "--output-dir", default=None, help="trainer output (default: <run dir>/trainer)"
    )
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--num-generations", type=int, default=4)
    parser.add_argument("--max-completion-length", type=int, default=32)
    parser.add_argument("--gradient-accumulation", type=int, default=1)
    parser.add_argument("--learning-rate", type=float, default=1e-6)
    parser.add_argument("--logging-steps", type=int, default=1)
    parser.add_argument(
        "--eval-steps", type=int, default=0, help="evaluate every N steps (0: no eval)"
    )
    parser.add_argument("--dataset-size", type=int, default=64)
    parser.add_argument("--report-to", default="none", help="also report to (e.g. tensorboard)")
    parser.add_argument("--seed", type=int, default=0)
    return parser


def train(
    args: argparse.Namespace, *, callback_options: dict[str, Any] | None = None
) -> tuple[Any, gemmalog.Run]:
    """Run GRPO with gemmalog; returns (trainer, run). The logging run is shut down at the end."""
    run = gemmalog.initialize(args.config, root=args.root, run_name=args.run_name)  # gemmalog
    logger = gemmalog.get_training_logger()  # gemmalog

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer  # type: ignore[attr-defined]

    from gemmalog.integrations.trl import GemmalogCallback  # gemmalog

    use_cpu = not torch.cuda.is_available()
    is_mps_available = torch.backends.mps.is_available()
    logger.info(f"MPS (Apple Silicon GPU) available: {is_mps_available}")  # was print(...)
    logger.info(
        "CUDA available", cuda=torch.cuda.is_available(), device_count=torch.cuda.device_count()
    )

    model_path = args.model
    if model_path is None:
        started = time.perf_counter()
        model_path = str(tiny_gemma.build_tiny_gemma(args.tiny_cache, seed=args.seed))
        logger.info(
            "tiny Gemma ready", path=model_path, seconds=round(time.perf_counter() - started, 2)
        )
    model = AutoModelForCausalLM.from_pretrained(model_path)
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    dataset = gsm_data.make_dataset(args.dataset_size, seed=args.seed)
    eval_dataset = gsm_data.make_dataset(8, seed=args.seed + 1) if args.eval_steps else None
    gemmalog.log_memory_usage(step=0)  # gemmalog

    callback = GemmalogCallback(**(callback_options or {}))  # gemmalog
    funcs: list[Any] = callback.wrap(reward_functions.REWARD_FUNCTIONS)  # gemmalog
    output_dir = args.output_dir or str(run.dir / "trainer")
    config = GRPOConfig(
        output_dir=output_dir,
        max_steps=args.steps,
        per_device_train_batch_size=args.batch_size,
        per_device_eval_batch_size=args.batch_size,
        num_generations=args.num_generations,
        max_completion_length=args.max_completion_length,
        gradient_accumulation_steps=args.gradient_accumulation,
        learning_rate=args.learning_rate,
        bf16=not use_cpu and torch.cuda.is_bf16_supported(),
        use_cpu=use_cpu,
        activation_checkpointing=False,
        logging_steps=args.logging_steps,
        eval_strategy="steps" if args.eval_steps else "no",
        eval_steps=args.eval_steps or None,
        report_to=args.report_to,
        save_strategy="no",
        reward_weights=reward_functions.reward_weights(funcs),
        seed=args.seed,
    )
    logger.info(
        "training configuration",
        max_steps=args.steps,
        batch_size=args.batch_size,
        num_generations=args.num_generations,
    )
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=funcs,
        args=config,
        train_dataset=dataset,
        eval_dataset=eval_dataset,
        processing_class=tokenizer,
        callbacks=[callback],  # gemmalog
    )
    # gemmalog: leaving the block flushes everything and finishes run.json: status completed,
    # or failed/interrupted with the traceback logged if training raised.
    with run:
        trainer.train()
        gemmalog.log_memory_usage(step=trainer.state.global_step)
    return trainer, run


def main(argv: list[str] | None = None) -> int:
    args = build_arg_parser().parse_args(argv)
    trainer, run = train(args)
    print(f"run {run.id}: {trainer.state.global_step} steps, files in {run.dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
