"""One segment of a GRPO run for tests/test_resume_trl.py, in its own process, as a user runs it.

    python tests/_trl_resume_child.py ROOT RUN_ID OUTPUT_DIR MAX_STEPS SAVE_STEPS PAUSE_AT

Trains the tiny offline Gemma (examples/tiny_gemma.py, cached) with GRPOTrainer, the reward
functions wrapped by ``wrap_reward_functions`` and a separately made ``GemmalogCallback()``
(the shared default collector joins them), checkpoints every SAVE_STEPS steps and resumes
from the latest checkpoint in OUTPUT_DIR when there is one. With PAUSE_AT > 0 it stops after
step PAUSE_AT was logged (before that step's checkpoint is written): it flushes gemmalog,
writes ``OUTPUT_DIR/paused-<step>`` and waits to be killed, so the parent kills it at a known
point, not after a sleep. Without a pause it trains to the end and writes the trainer's
``log_history`` to ``OUTPUT_DIR/log_history.json``.
"""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path
from typing import Any

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
sys.path.insert(0, str(EXAMPLES))

import gsm_data  # noqa: E402
import reward_functions  # noqa: E402
import tiny_gemma  # noqa: E402
import train_grpo_gemma  # noqa: E402

import gemmalog  # noqa: E402

BATCH = 4
GENERATIONS = 4


def main(argv: list[str]) -> int:
    root, run_id, output_dir = argv[0], argv[1], Path(argv[2])
    max_steps, save_steps, pause_at = (int(a) for a in argv[3:6])
    run = gemmalog.initialize(str(train_grpo_gemma.DEFAULT_CONFIG), root=root, run_id=run_id)

    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from transformers.trainer_utils import get_last_checkpoint
    from trl import GRPOConfig, GRPOTrainer  # type: ignore[attr-defined]

    from gemmalog.integrations.trl import GemmalogCallback, wrap_reward_functions

    class PauseAfter(TrainerCallback):  # type: ignore[misc]
        """After step ``pause_at`` was logged (GemmalogCallback's on_log ran first)."""

        def on_log(
            self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any
        ) -> Any:
            if state.global_step == pause_at and logs and "loss" in logs:
                gemmalog.flush()
                (output_dir / f"paused-{pause_at}").write_text("paused\n")
                threading.Event().wait()  # until the parent's signal ends the process
            return control

    model_path = tiny_gemma.build_tiny_gemma(train_grpo_gemma.DEFAULT_TINY)
    funcs = wrap_reward_functions(reward_functions.REWARD_FUNCTIONS)
    config = GRPOConfig(
        output_dir=str(output_dir),
        max_steps=max_steps,
        per_device_train_batch_size=BATCH,
        num_generations=GENERATIONS,
        max_completion_length=32,
        learning_rate=1e-6,
        bf16=False,
        use_cpu=True,
        activation_checkpointing=False,
        logging_steps=1,
        save_strategy="steps",
        save_steps=save_steps,
        report_to="none",
        reward_weights=reward_functions.reward_weights(funcs),
        seed=0,
    )
    trainer = GRPOTrainer(
        model=AutoModelForCausalLM.from_pretrained(model_path),
        reward_funcs=funcs,
        args=config,
        train_dataset=gsm_data.make_dataset(64, seed=0),
        processing_class=AutoTokenizer.from_pretrained(model_path),
        callbacks=[GemmalogCallback(logging_frequency=2), PauseAfter()],
    )
    checkpoint = get_last_checkpoint(str(output_dir)) if output_dir.is_dir() else None
    with run:
        trainer.train(resume_from_checkpoint=checkpoint)
    (output_dir / "log_history.json").write_text(json.dumps(trainer.state.log_history))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
