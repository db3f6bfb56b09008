"""Plain TRL GRPO run on the tiny Gemma, with no gemmalog code: proof that the stack works.

Usage::

    python examples/grpo_smoke.py [CACHE_DIR] [--steps N] [--gradient-checkpointing]

It builds (or reuses) the tiny model in CACHE_DIR (default /tmp/gemmalog-tiny-gemma), runs
``GRPOTrainer`` with the seven example reward functions on CPU and prints what
``trainer.state.log_history`` holds per step: loss, grad_norm, total reward and its std, the
per-function reward means and the step time. It exits 1 when the run is degenerate (no
step with reward_std > 0, or every grad_norm zero), so it can serve as a CI smoke test.
"""

from __future__ import annotations

import argparse
import functools
import math
import sys
import tempfile
import time
from typing import Any

# Timed on purpose: this import pulls in torch and transformers and dominates start-up.
_t0 = time.perf_counter()
from trl import GRPOConfig, GRPOTrainer  # type: ignore[attr-defined]  # noqa: E402

TRL_IMPORT_SECONDS = time.perf_counter() - _t0

from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402

if __package__:  # imported as examples.grpo_smoke
    from . import gsm_data, reward_functions, tiny_gemma
else:  # run as a script: examples/ is sys.path[0]
    import gsm_data  # type: ignore[no-redef]
    import reward_functions  # type: ignore[no-redef]
    import tiny_gemma  # type: ignore[no-redef]

DEFAULT_CACHE_DIR = "/tmp/gemmalog-tiny-gemma"


def print_kwargs_once(func: reward_functions.RewardFunc) -> reward_functions.RewardFunc:
    """Wrap a reward function to show, once, which keyword arguments TRL passes.

    ``functools.wraps`` keeps ``__name__``, which TRL uses for the ``rewards/<name>/...`` keys.
    """
    seen = False

    @functools.wraps(func)
    def wrapper(prompts: Any, completions: Any, **kwargs: Any) -> list[float]:
        nonlocal seen
        if not seen:
            seen = True
            state = kwargs.get("trainer_state")
            print(
                f"[reward kwargs] {sorted(kwargs)}; {len(completions)} completions; "
                f"completion type {type(completions[0]).__name__}; "
                f"trainer_state.global_step={getattr(state, 'global_step', None)}",
                flush=True,
            )
            print(f"[first completion] {completions[0]!r}", flush=True)
        return func(prompts, completions, **kwargs)

    return wrapper


def _fmt(value: Any) -> str:
    return f"{value:8.4f}" if isinstance(value, (int, float)) else f"{'-':>8}"


def summarize(log_history: list[dict[str, Any]], wall_seconds: float) -> bool:
    """Print the per-step table and the summary; return True when the run is non-degenerate."""
    steps = [entry for entry in log_history if "reward" in entry]
    names = [f.__name__ for f in reward_functions.REWARD_FUNCTIONS]
    short = [n.replace("_reward_func", "")[:8] for n in names]
    header = ["step", "loss", "grad_norm", "reward", "rew_std", "step_s", *short]
    print("\n" + " ".join(f"{h:>8}" for h in header))
    for entry in steps:
        row = [entry.get(k) for k in ("loss", "grad_norm", "reward", "reward_std", "step_time")]
        row += [entry.get(f"rewards/{n}/mean") for n in names]
        print(f"{entry['step']:8d} " + " ".join(_fmt(v) for v in row))

    if not steps:
        print("no training steps were logged")
        return False
    std_steps = sum(1 for e in steps if e.get("reward_std", 0.0) > 0)
    loss_steps = sum(1 for e in steps if e.get("loss", 0.0) != 0)
    grad_steps = sum(
        1
        for e in steps
        if e.get("grad_norm", 0.0) not in (0.0, None) and math.isfinite(e["grad_norm"])
    )
    step_times = [e["step_time"] for e in steps if "step_time" in e]
    print(f"\nsteps logged:               {len(steps)}")
    print(f"steps with reward_std > 0:  {std_steps}/{len(steps)}")
    print(f"steps with loss != 0:       {loss_steps}/{len(steps)}")
    print(f"steps with grad_norm != 0:  {grad_steps}/{len(steps)}")
    if step_times:
        print(
            f"step_time mean (log):       {sum(step_times) / len(step_times):.3f} s "
            f"(first {step_times[0]:.3f} s, rest {sum(step_times[1:]) / max(len(step_times) - 1, 1):.3f} s)"
        )
    print(f"train() wall / step:        {wall_seconds / len(steps):.3f} s")
    print(f"\n{'reward function':32s} {'first step':>10s} {'last step':>10s}")
    for name in names:
        key = f"rewards/{name}/mean"
        print(f"{name:32s} {_fmt(steps[0].get(key)):>10s} {_fmt(steps[-1].get(key)):>10s}")
    summary = [e for e in log_history if "train_runtime" in e]
    if summary:
        print(
            f"\ntrain summary: { {k: round(v, 4) for k, v in summary[-1].items() if isinstance(v, float)} }"
        )
    return std_steps > 0 and grad_steps > 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "cache_dir", nargs="?", default=DEFAULT_CACHE_DIR, help="where the tiny Gemma is cached"
    )
    parser.add_argument("--steps", type=int, default=10, help="GRPO optimizer steps (max_steps)")
    parser.add_argument(
        "--gradient-checkpointing",
        action="store_true",
        help="keep TRL's default gradient_checkpointing=True (slower on CPU)",
    )
    parser.add_argument(
        "--learning-rate", type=float, default=1e-6, help="GRPOConfig default is 1e-6"
    )
    args = parser.parse_args(argv)
    print(f"import trl (incl. torch/transformers): {TRL_IMPORT_SECONDS:.2f} s")

    started = time.perf_counter()
    model_dir = tiny_gemma.build_tiny_gemma(args.cache_dir)
    print(
        f"tiny gemma ready in {time.perf_counter() - started:.2f} s: {model_dir} "
        f"({tiny_gemma.build_info(model_dir).get('parameters')} parameters)"
    )
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    dataset = gsm_data.make_dataset(64, seed=0)

    # list[Any]: TRL's RewardFunc returns list[float | None], and lists are invariant.
    funcs: list[Any] = list(reward_functions.REWARD_FUNCTIONS)
    funcs[0] = print_kwargs_once(funcs[0])
    with tempfile.TemporaryDirectory(prefix="grpo-smoke-") as output_dir:
        config = GRPOConfig(
            output_dir=output_dir,
            max_steps=args.steps,
            per_device_train_batch_size=4,
            num_generations=4,  # 4 completions per step = one prompt group
            max_completion_length=32,
            learning_rate=args.learning_rate,
            bf16=False,  # GRPOConfig defaults bf16=True (when fp16 is unset)
            use_cpu=True,
            # TRL's default gradient_checkpointing=True is slower on CPU, and transformers 5.24
            # warns (FutureWarning) whenever the old name is set: use the new name.
            activation_checkpointing=args.gradient_checkpointing,
            logging_steps=1,
            report_to="none",
            save_strategy="no",
            reward_weights=reward_functions.reward_weights(funcs),
            seed=0,
        )
        trainer = GRPOTrainer(
            model=model,
            reward_funcs=funcs,
            args=config,
            train_dataset=dataset,
            processing_class=tokenizer,
        )
        started = time.perf_counter()
        trainer.train()
        wall = time.perf_counter() - started
    ok = summarize(trainer.state.log_history, wall)
    print(
        "\nOK: rewards and gradients are non-degenerate" if ok else "\nDEGENERATE run (see above)"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
