"""Everything TRL knows about a GRPO step, read back from a real GRPOTrainer run.

One run of the tiny offline Gemma with TRL's own ``log_completions=True``: its Parquet tables
are the reference for the advantages and the ``log_extra`` columns, ``log_history`` for the
``log_metric`` values. The dataset is conversational and every prompt carries a tool call
and its result (a credential planted in the result), rendered by a chat template that
supports tool messages.
"""

from __future__ import annotations

import functools
import sys
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("trl")
pytestmark = pytest.mark.slow

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
sys.path.insert(0, str(EXAMPLES))

import gsm_data  # noqa: E402
import reward_functions  # noqa: E402
import tiny_gemma  # noqa: E402
import train_grpo_gemma  # noqa: E402

import gemmalog  # noqa: E402
from gemmalog.integrations.trl import GemmalogCallback  # noqa: E402
from gemmalog.processors.redact import Redact  # noqa: E402
from tests.helpers import events_of  # noqa: E402

STEPS = 3
BATCH = 4
GENERATIONS = 4
SECRET = "hf_" + "ToolResultTokenAb12Cd34Ef56Gh78Ij"

#: Gemma's turn format, with assistant tool calls and ``tool`` turns rendered.
TOOL_TEMPLATE = (
    "{{ bos_token }}"
    "{%- for message in messages -%}"
    "{%- set role = 'model' if message['role'] == 'assistant' else message['role'] -%}"
    "{{ '<start_of_turn>' + role + '\n' }}"
    "{%- if message['tool_calls'] -%}"
    "{%- for call in message['tool_calls'] -%}"
    "{{ '[call ' + call['function']['name'] + ' ' + (call['function']['arguments'] | tojson) + ']' }}"
    "{%- endfor -%}"
    "{%- endif -%}"
    "{{ (message['content'] or '') | trim }}"
    "{{ '<end_of_turn>\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<start_of_turn>model\n' }}{%- endif -%}"
)


def _tool_prompt(question: str) -> list[dict[str, Any]]:
    """System, user, an assistant tool call, its result (holding the secret), the question."""
    return [
        {"role": "system", "content": gsm_data.SYSTEM_PROMPT},
        {"role": "user", "content": "Look up the account first."},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {"type": "function", "function": {"name": "lookup", "arguments": {"key": "acct"}}}
            ],
        },
        {"role": "tool", "name": "lookup", "content": f"account ok, token={SECRET}"},
        {"role": "user", "content": question},
    ]


def judge_reward_func(
    prompts: Any, completions: Any, log_extra: Any = None, log_metric: Any = None, **kwargs: Any
) -> list[float]:
    """A judge that tags each completion and reports a batch metric through TRL's helpers."""
    lengths = [len(reward_functions.completion_text(c)) for c in completions]
    log_extra("judge_tag", [f"len{n % 3}" for n in lengths])
    log_metric("judge/mean_len", sum(lengths) / len(lengths))
    return [0.01 * n for n in lengths]


def raw_reward_func(
    prompts: Any, completions: Any, log_extra: Any = None, **kwargs: Any
) -> list[float]:
    """Not wrapped by gemmalog: its log_extra column is still recorded (from TRL's table)."""
    log_extra("raw_words", [len(reward_functions.completion_text(c).split()) for c in completions])
    return [0.0 for _ in completions]


class Seen:
    """What the reward functions were given, per call (prompts and completions)."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, Any]] = []

    def wrap(self, func: Any) -> Any:
        @functools.wraps(func)
        def inner(*args: Any, **kwargs: Any) -> Any:
            self.calls.append((kwargs["prompts"], kwargs["completions"]))
            return func(*args, **kwargs)

        return inner


@pytest.fixture(scope="module")
def grpo(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Any, gemmalog.Run, Seen, Path]]:
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer  # type: ignore[attr-defined]

    tmp = tmp_path_factory.mktemp("stepdata")
    run = gemmalog.initialize(
        train_grpo_gemma.DEFAULT_CONFIG, root=tmp / "runs", run_name="stepdata"
    )
    path = tiny_gemma.build_tiny_gemma(train_grpo_gemma.DEFAULT_TINY)
    model = AutoModelForCausalLM.from_pretrained(path)
    tokenizer = AutoTokenizer.from_pretrained(path)
    tokenizer.chat_template = TOOL_TEMPLATE
    from datasets import Dataset

    plain = gsm_data.make_dataset(16, seed=3)
    dataset = Dataset.from_dict(
        {
            "prompt": [_tool_prompt(q) for q in plain["question"]],
            "question": plain["question"],
            "answer": plain["answer"],
        }
    )
    seen = Seen()
    callback = GemmalogCallback()
    funcs = [*reward_functions.REWARD_FUNCTIONS, seen.wrap(judge_reward_func)]
    wrapped = [*callback.wrap(funcs), raw_reward_func]
    out = tmp / "trainer"  # outside the run directory: TRL's own files keep the secret
    config = GRPOConfig(
        output_dir=str(out),
        max_steps=STEPS,
        per_device_train_batch_size=BATCH,
        num_generations=GENERATIONS,
        max_completion_length=24,
        learning_rate=1e-6,
        bf16=False,
        use_cpu=True,
        activation_checkpointing=False,
        logging_steps=1,
        report_to="none",
        save_strategy="no",
        log_completions=True,
        reward_weights=[*reward_functions.reward_weights(funcs), 1.0],
        seed=0,
    )
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=wrapped,
        args=config,
        train_dataset=dataset,
        processing_class=tokenizer,
        callbacks=[callback],
    )
    with run, pytest.MonkeyPatch.context() as mp:
        # TRL's console table reads every message's tool_calls, which the dataset's Arrow
        # storage sets to None on the messages without one (TRL 1.16, utils.py:814).
        mp.setattr("trl.trainer.grpo_trainer.is_rich_available", lambda: False)
        trainer.train()
    yield trainer, run, seen, out
    gemmalog.shutdown()


def _parquet_rows(out: Path) -> list[dict[str, Any]]:
    import pandas as pd

    rows: list[dict[str, Any]] = []
    for path in sorted((out / "completions").glob("completions_*.parquet")):
        rows.extend(pd.read_parquet(path).to_dict("records"))
    return rows


def _text(completion: Any) -> str:
    return "".join(str(m["content"] or "") for m in completion)


def _by_step_and_text(rows: list[dict[str, Any]], key: str) -> dict[tuple[int, str], list[Any]]:
    out: dict[tuple[int, str], list[Any]] = defaultdict(list)
    for row in rows:
        out[(int(row["step"]), _text(row["completion"]))].append(row[key])
    return out


def test_advantages_equal_trl_parquet(grpo: Any) -> None:
    _, run, _, out = grpo
    rows = _parquet_rows(out)
    assert len(rows) == STEPS * BATCH  # TRL logged every step's generation batch
    outputs = [e for e in events_of(run.dir, "model_output") if e["phase"] == "train"]
    assert {e["advantage_source"] for e in outputs} == {"trl"}
    ours: dict[tuple[int, str], list[float]] = defaultdict(list)
    for e in outputs:
        ours[(e["step"], e["model_output"])].append(e["advantage"])
    theirs = _by_step_and_text(rows, "advantage")
    assert set(theirs) <= set(ours)
    for key, values in theirs.items():
        assert sorted(ours[key]) == pytest.approx(sorted(values), abs=1e-6), key
    assert any(abs(v) > 1e-3 for vs in theirs.values() for v in vs), "all advantages zero"
    # ... and the completions view gives the same numbers
    con = gemmalog.connect(run.dir)
    view = con.sql(
        "SELECT step, model_output, advantage FROM completions WHERE advantage_source = 'trl'"
    ).fetchall()
    assert sorted(view) == sorted((e["step"], e["model_output"], e["advantage"]) for e in outputs)


def test_computed_advantages_equal_trl(grpo: Any) -> None:
    """TRL's formula over the logged rewards gives TRL's values (float32 there)."""
    from gemmalog.integrations.advantages import computed_advantages

    trainer, run, _, _ = grpo
    outputs = [e for e in events_of(run.dir, "model_output") if e["phase"] == "train"]
    names = [*(f.__name__ for f in reward_functions.REWARD_FUNCTIONS), "judge_reward_func"]
    weights = [*trainer.reward_weights.tolist()]
    for step in range(1, STEPS + 1):
        batch = sorted((e for e in outputs if e["step"] == step), key=lambda e: e["sample"])
        scores = [[e["rewards"][n] for e in batch] for n in names] + [[0.0] * len(batch)]
        computed = computed_advantages(scores, weights, GENERATIONS)
        assert computed == pytest.approx([e["advantage"] for e in batch], rel=1e-4, abs=1e-4)


def test_log_extra_equals_trl_parquet(grpo: Any) -> None:
    _, run, _, out = grpo
    rows = _parquet_rows(out)
    outputs = [e for e in events_of(run.dir, "model_output") if e["phase"] == "train"]
    for column in ("judge_tag", "raw_words"):  # a wrapped function's and an unwrapped one's
        ours: dict[tuple[int, str], list[Any]] = defaultdict(list)
        for e in outputs:
            ours[(e["step"], e["model_output"])].append(e["extra"][column])
        theirs = _by_step_and_text(rows, column)
        for key, values in theirs.items():
            assert sorted(ours[key]) == sorted(values), (column, key)
    con = gemmalog.connect(run.dir)
    tags = con.sql("SELECT DISTINCT extra->>'judge_tag' FROM completions").fetchall()
    assert {t for (t,) in tags} <= {"len0", "len1", "len2"} and tags


def test_log_metric_equals_log_history_and_tensorboard(grpo: Any) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    trainer, run, _, _ = grpo
    history = {
        e["step"]: e["judge/mean_len"] for e in trainer.state.log_history if "judge/mean_len" in e
    }
    assert sorted(history) == list(range(1, STEPS + 1))
    con = gemmalog.connect(run.dir)
    rows = con.sql(
        "SELECT step, value FROM metrics WHERE phase = 'train' AND name = 'judge/mean_len'"
    ).fetchall()
    assert dict(rows) == pytest.approx(history)
    acc = EventAccumulator(str(run.dir / "logs" / "tensorboard"), size_guidance={"scalars": 0})
    acc.Reload()
    points = {s.step: s.value for s in acc.Scalars("train/judge/mean_len")}
    assert points == pytest.approx(history, rel=1e-6)  # TensorBoard keeps float32


def test_messages_round_trip(grpo: Any) -> None:
    _, run, seen, _ = grpo
    outputs = [e for e in events_of(run.dir, "model_output") if e["phase"] == "train"]
    given = []
    for prompts, completions in seen.calls:
        given.extend([*p, *c] for p, c in zip(prompts, completions, strict=True))
    assert len(given) == len(outputs)
    redact = Redact()
    for event, conversation in zip(outputs, given, strict=True):
        # the conversation as TRL gave it, the planted secret redacted
        expected = redact.value(conversation)
        assert SECRET not in str(expected) and SECRET in str(conversation)
        assert event["messages"] == expected
        assert event["prompt_turns"] == 5
        roles = [m["role"] for m in event["messages"]]
        assert roles == ["system", "user", "assistant", "tool", "user", "assistant"]
        assert event["messages"][2]["tool_calls"][0]["function"]["name"] == "lookup"


def test_secret_in_a_tool_result_is_in_no_file(grpo: Any) -> None:
    _, run, _, out = grpo
    assert any(SECRET.encode() in p.read_bytes() for p in out.rglob("*.parquet"))  # TRL's has it
    files = [p for p in run.dir.rglob("*") if p.is_file()]
    assert any(p.suffix == ".csv" for p in files) and any("tfevents" in p.name for p in files)
    leaking = [p for p in files if SECRET.encode() in p.read_bytes()]
    assert leaking == []
    redacted = [e for e in events_of(run.dir, "model_output") if "REDACTED" in str(e["messages"])]
    assert redacted


# -- a tool-calling completion, through TRL's own tool loop ------------------------------


def lookup(key: str) -> str:
    """Look up an account.

    Args:
        key: the account key
    """
    return f"account {key} ok, token={SECRET}"


TOOL_CALL = '<tool_call>\n{"name": "lookup", "arguments": {"key": "acct"}}\n</tool_call><|im_end|>'


def _call_the_tool(prompts: list[Any], trainer: Any) -> dict[str, Any]:
    """A rollout whose first turn is a tool call (the tiny model would not make one): TRL
    parses it, runs ``lookup``, appends its result and lets the model answer after it."""
    tokenizer = trainer.processing_class
    prompt_ids = [
        tokenizer.apply_chat_template(
            p, tools=[lookup], add_generation_prompt=True, tokenize=True, return_dict=False
        )
        for p in prompts
    ]
    ids = tokenizer(TOOL_CALL, add_special_tokens=False)["input_ids"]
    # logprobs None, as TRL's own transformers generation gives (grpo_trainer.py:1889)
    return {
        "prompt_ids": prompt_ids,
        "completion_ids": [list(ids) for _ in prompts],
        "logprobs": None,
    }


@pytest.fixture(scope="module")
def tool_run(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[gemmalog.Run, Seen, Path]]:
    """GRPOTrainer(tools=[lookup]) with Qwen3's chat template and TRL's tool-call parsing."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer  # type: ignore[attr-defined]
    from trl.chat_template_utils import qwen3_chat_template

    tmp = tmp_path_factory.mktemp("toolcall")
    run = gemmalog.initialize(train_grpo_gemma.DEFAULT_CONFIG, root=tmp / "runs", run_name="tools")
    path = tiny_gemma.build_tiny_gemma(train_grpo_gemma.DEFAULT_TINY)
    # RoPE positions: the byte-level tokenizer makes the tool schema ~600 tokens long
    model = AutoModelForCausalLM.from_pretrained(path, max_position_embeddings=4096)
    tokenizer = AutoTokenizer.from_pretrained(path)
    tokenizer.chat_template = qwen3_chat_template  # TRL knows how to parse its tool calls
    plain = gsm_data.make_dataset(8, seed=5)
    dataset = Dataset.from_dict(
        {"prompt": [[{"role": "user", "content": q}] for q in plain["question"]]}
    )
    seen = Seen()
    callback = GemmalogCallback()
    out = tmp / "trainer"
    config = GRPOConfig(
        output_dir=str(out),
        max_steps=1,
        per_device_train_batch_size=BATCH,
        num_generations=GENERATIONS,
        max_completion_length=400,
        bf16=False,
        use_cpu=True,
        activation_checkpointing=False,
        logging_steps=1,
        report_to="none",
        save_strategy="no",
        log_completions=True,
        seed=0,
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TRL_EXPERIMENTAL_SILENCE", "1")
        mp.setattr("trl.trainer.grpo_trainer.is_rich_available", lambda: False)
        trainer = GRPOTrainer(
            model=model,
            reward_funcs=callback.wrap([seen.wrap(judge_reward_func)]),
            args=config,
            train_dataset=dataset,
            processing_class=tokenizer,
            callbacks=[callback],
            tools=[lookup],
            rollout_func=_call_the_tool,
        )
        with run:
            trainer.train()
    yield run, seen, out
    gemmalog.shutdown()


def test_a_tool_calling_completion_round_trips(tool_run: Any) -> None:
    run, seen, _ = tool_run
    outputs = events_of(run.dir, "model_output")
    given = [
        [*p, *c]
        for prompts, completions in seen.calls
        for p, c in zip(prompts, completions, strict=True)
    ]
    assert len(outputs) == len(given) == BATCH
    redact = Redact()
    for event, conversation in zip(outputs, given, strict=True):
        roles = [m["role"] for m in conversation]
        assert roles == ["user", "assistant", "tool", "assistant"]  # TRL ran the tool
        assert SECRET in conversation[2]["content"]
        assert event["messages"] == redact.value(conversation)
        assert event["prompt_turns"] == 1
        assert event["messages"][1]["tool_calls"] == conversation[1]["tool_calls"]
        assert event["advantage_source"] == "trl"


def test_a_tool_results_secret_is_in_no_file_of_the_run(tool_run: Any) -> None:
    run, _, out = tool_run
    assert any(SECRET.encode() in p.read_bytes() for p in out.rglob("*.parquet"))  # TRL's has it
    files = [p for p in run.dir.rglob("*") if p.is_file()]
    assert any(p.suffix == ".csv" for p in files) and any("tfevents" in p.name for p in files)
    assert [p for p in files if SECRET.encode() in p.read_bytes()] == []
    con = gemmalog.connect(run.dir)
    tools = con.sql(
        "SELECT messages->'$[2]'->>'content' FROM completions WHERE messages IS NOT NULL"
    ).fetchall()
    assert len(tools) == BATCH and all("account acct ok" in t for (t,) in tools)
