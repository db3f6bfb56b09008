"""The examples run offline as a user would run them, and their outputs read back."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("trl")
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
sys.path.insert(0, str(EXAMPLES))

import reward_functions  # noqa: E402
import tiny_gemma  # noqa: E402

from tests.helpers import events_of  # noqa: E402


def run_example(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TQDM_DISABLE": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


def test_demo_trains_and_summarizes(tmp_path: Path) -> None:
    result = run_example(
        [str(EXAMPLES / "demo.py"), "--steps", "3", "--root", str(tmp_path / "runs")], tmp_path
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    out = result.stdout
    assert "trained 3 GRPO steps" in out and "summary of demo-" in out
    assert "accuracy train" in out and "reward train correctness_reward_func first" in out
    (run_dir,) = (tmp_path / "runs").glob("demo-*")
    for label in ("JSONL (source of truth)", "model outputs CSV", "text log", "TensorBoard"):
        assert label in out
    outputs = events_of(run_dir, "model_output")
    assert sum(1 for o in outputs if o["phase"] == "train") == 3 * 4
    assert {o["phase"] for o in outputs} <= {"train", "eval"}


def test_optimized_example_keeps_outputs_off_the_text_log(tmp_path: Path) -> None:
    result = run_example(
        [
            str(EXAMPLES / "train_grpo_gemma_optimized.py"),
            "--steps",
            "2",
            "--root",
            str(tmp_path / "runs"),
        ],
        tmp_path,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    (run_dir,) = (tmp_path / "runs").glob("grpo-gemma-optimized-*")
    text_log = (run_dir / "logs" / "training.log").read_text(encoding="utf-8")
    assert "Training completed" in text_log
    assert (
        "model_output" not in text_log
    )  # configs/optimized.yaml routes model outputs to CSV/TensorBoard only
    with (run_dir / "logs" / "model_outputs.csv").open(newline="", encoding="utf-8") as f:
        assert len(list(csv.DictReader(f))) == 2 * 4
    assert len(events_of(run_dir, "model_output")) == 2 * 4


def test_tiny_gemma_build_is_cached(tmp_path: Path) -> None:
    cache = Path.home() / ".cache" / "gemmalog" / "tiny-gemma"
    first = tiny_gemma.build_tiny_gemma(cache)
    started = time.perf_counter()
    second = tiny_gemma.build_tiny_gemma(cache)
    assert second == first and time.perf_counter() - started < 1.0
    assert (first / tiny_gemma.MARKER_FILE).exists()
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(first)
    tokenizer = AutoTokenizer.from_pretrained(first)
    assert type(model).__name__ == "Gemma3ForCausalLM"
    assert sum(p.numel() for p in model.parameters()) == tiny_gemma.build_info(first)["parameters"]
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is 2 + 3?"}], tokenize=False, add_generation_prompt=True
    )
    assert prompt.rstrip().endswith("<start_of_turn>model")


def test_reward_functions_agree_on_conversational_and_plain_completions() -> None:
    texts = [
        "<reasoning>\n2 + 3 = 5\n</reasoning>\n<answer>\n5\n</answer>\n",
        "<reasoning>\nguess\n</reasoning>\n<answer>\n7\n</answer>",
        "five five five five five five",
    ]
    prompts = [[{"role": "user", "content": "What is 2 + 3?"}]] * 3
    conversational = [[{"role": "assistant", "content": t}] for t in texts]
    for func in reward_functions.REWARD_FUNCTIONS:
        kwargs = {"answer": ["5"] * 3}
        assert func(prompts=prompts, completions=conversational, **kwargs) == func(
            prompts=prompts, completions=texts, **kwargs
        ), func.__name__
    correctness = reward_functions.correctness_reward_func(
        prompts=prompts, completions=texts, answer=["5"] * 3
    )
    assert correctness[0] > 0 and correctness[1] == correctness[2] == 0
