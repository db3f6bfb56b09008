"""GRPO training with the seed plan's optimized logging (its optimized_gemma_training flow).

The same training as ``train_grpo_gemma.py``; what differs is how much is logged and how
often, as in the plan's optimized script: ``configs/optimized.yaml`` keeps model outputs
and rewards off the console and the text file (they still reach the JSONL, CSV and
TensorBoard), TRL logs every 5 steps, and gemmalog's resource and generation metrics come
every 20 steps (``metrics.logging_frequency``). The background CSV thread the optimized
script wrote by hand is gemmalog's listener thread.

    python examples/train_grpo_gemma_optimized.py --steps 40
    python examples/train_grpo_gemma_optimized.py --model /models/gemma-3-1b-it --steps 1000
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import train_grpo_gemma  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = train_grpo_gemma.build_arg_parser(__doc__.splitlines()[0])
    parser.set_defaults(
        config=str(HERE.parent / "configs" / "optimized.yaml"),
        run_name="grpo-gemma-optimized",
        logging_steps=5,
    )
    args = parser.parse_args(argv)
    trainer, run = train_grpo_gemma.train(args)
    print(f"run {run.id}: {trainer.state.global_step} steps, files in {run.dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
