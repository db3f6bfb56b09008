"""Advantages, log_extra/log_metric and conversations through the reward wrappers, without TRL.

A stand-in trainer has what GRPOTrainer exposes to reward functions (``log_extra`` and
``log_metric`` bound to it, ``_logs`` deques filled after the rewards): the real trainer is
covered by tests/test_trl_step_data.py.
"""

from __future__ import annotations

import csv
import math
from collections import defaultdict, deque
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import gemmalog
from gemmalog.integrations.advantages import (
    AdvantageSettings,
    computed_advantages,
    read_logged,
)
from gemmalog.integrations.rewards import RewardCollector, wrap_reward_functions
from gemmalog.processors.messages import IMAGE, conversation
from gemmalog.sinks.csvrows import messages_text
from tests.helpers import events_of

SECRET = "hf_" + "ToolResultTokenAb12Cd34Ef56Gh78Ij"


class State:
    def __init__(self, step: int) -> None:
        self.global_step = step


class Accelerator:
    def __init__(self, world: int = 1, rank: int = 0) -> None:
        self.num_processes = world
        self.process_index = rank


class StandIn:
    """What a reward call can reach of a GRPOTrainer: ``_logs`` and the two log helpers."""

    def __init__(self, generations: int = 2, world: int = 1, rank: int = 0) -> None:
        self._logs: dict[str, Any] = {
            "prompt": deque(maxlen=8),
            "completion": deque(maxlen=8),
            "advantages": deque(maxlen=8),
            "extra": defaultdict(lambda: deque(maxlen=8)),
        }
        self._pending_extra_logs: dict[str, list[Any]] = defaultdict(list)
        self.metrics: dict[str, list[float]] = defaultdict(list)
        self.num_generations = generations
        self.scale_rewards = "group"
        self.multi_objective_aggregation = "sum_then_normalize"
        self.accelerator = Accelerator(world, rank)

    def _log_completion_extra(self, column: str, values: list[Any]) -> None:
        self._pending_extra_logs[column].extend(values)

    def _log_metric(self, name: str, value: float) -> None:
        self.metrics[name].append(value)

    def generate(
        self, funcs: list[Any], prompts: list[Any], completions: list[Any], step: int
    ) -> None:
        """A generation step as TRL runs it: rewards, then advantages into ``_logs``."""
        kwargs = {
            "trainer_state": State(step),
            "log_extra": self._log_completion_extra,
            "log_metric": self._log_metric,
        }
        scores = [f(prompts=prompts, completions=completions, **kwargs) for f in funcs]
        advantages = computed_advantages(scores, [1.0] * len(scores), self.num_generations)
        assert advantages is not None
        self._logs["completion"].extend(completions)
        self._logs["advantages"].extend(advantages)
        for column, values in self._pending_extra_logs.items():
            self._logs["extra"][column].extend(values)
        self._pending_extra_logs.clear()


def length_reward(
    prompts: Any, completions: Any, log_extra: Any = None, log_metric: Any = None, **kw: Any
) -> list[float]:
    texts = [c if isinstance(c, str) else c[-1]["content"] for c in completions]
    log_extra("shout", [t.upper() for t in texts])
    log_metric("judge/mean_len", sum(map(len, texts)) / len(texts))
    return [float(len(t)) for t in texts]


def test_trainers_advantages_are_recorded_as_trl(root: Path) -> None:
    run = gemmalog.initialize(root=root)
    collector = RewardCollector()
    funcs = wrap_reward_functions([length_reward], collector)
    collector.hooked = True  # a GemmalogCallback flushes after each generation
    trainer = StandIn()
    completions = ["a", "abc", "ab", "ab"]
    trainer.generate(funcs, ["p", "p", "q", "q"], completions, step=0)
    trainer._logs["advantages"][-4] = 0.25  # TRL's own value, not what the formula gives
    collector.flush()
    gemmalog.shutdown()
    outputs = events_of(run.dir, "model_output")
    assert [e["advantage"] for e in outputs] == [
        0.25,
        *computed_advantages([[1.0, 3.0, 2.0, 2.0]], [1.0], 2)[1:],
    ]  # type: ignore[index]
    assert {e["advantage_source"] for e in outputs} == {"trl"}
    assert [e["extra"] for e in outputs] == [{"shout": t.upper()} for t in completions]
    # TRL's own helpers were still called: its table and metric got the values
    assert list(trainer._logs["extra"]["shout"]) == [t.upper() for t in completions]
    assert trainer.metrics["judge/mean_len"] == [2.0]
    # with a callback, log_metric values arrive through on_log: not logged twice
    assert not [e for e in events_of(run.dir, "metrics") if "judge/mean_len" in e["metrics"]]


def test_without_a_callback_the_formula_is_used_and_metrics_are_logged(root: Path) -> None:
    run = gemmalog.initialize(root=root)
    collector = RewardCollector()
    funcs = wrap_reward_functions([length_reward], collector)
    trainer = StandIn()
    trainer.generate(funcs, ["p", "p", "q", "q"], ["a", "abc", "ab", "ab"], step=4)
    gemmalog.shutdown()
    outputs = events_of(run.dir, "model_output")
    expected = computed_advantages([[1.0, 3.0, 2.0, 2.0]], [1.0], 2)
    assert [e["advantage"] for e in outputs] == expected
    assert {e["advantage_source"] for e in outputs} == {"computed"}
    assert expected is not None and expected[2:] == [0.0, 0.0]  # a group scored the same
    metrics = [e for e in events_of(run.dir, "metrics") if "judge/mean_len" in e["metrics"]]
    assert [(e["step"], e["metrics"]["judge/mean_len"]) for e in metrics] == [(5, 2.0)]
    con = gemmalog.connect(run.dir)
    assert con.sql("SELECT value FROM metrics WHERE name = 'judge/mean_len'").fetchall() == [(2.0,)]


def test_a_batch_is_logged_with_the_options_it_was_handed_over_with(root: Path) -> None:
    """The listener reads the options a batch carries, not the collector's at the time it
    gets to the batch: the callback's end of training (``hooked`` cleared) or a changed
    option right after the hand-over change nothing of a batch already handed over."""
    run = gemmalog.initialize(root=root)
    collector = RewardCollector()
    funcs = wrap_reward_functions([length_reward], collector)
    collector.hooked = True
    StandIn().generate(funcs, ["p", "p", "q", "q"], ["a", "abc", "ab", "ab"], step=0)
    collector.flush()  # handed over; the listener has not expanded it yet
    collector.hooked = False  # what on_train_end does next
    collector.correct_fn = lambda sample: True
    gemmalog.shutdown()
    assert not [e for e in events_of(run.dir, "metrics") if "judge/mean_len" in e["metrics"]]
    assert [e["correct"] for e in events_of(run.dir, "model_output")] == [None] * 4


def test_a_batch_the_trainer_no_longer_holds_falls_back_to_the_formula(root: Path) -> None:
    run = gemmalog.initialize(root=root)
    collector = RewardCollector()
    funcs = wrap_reward_functions([length_reward], collector)
    collector.hooked = True
    trainer = StandIn()
    trainer.generate(funcs, ["p", "p"], ["a", "abc"], step=0)
    trainer._logs["completion"].extend(["other", "texts"])  # the deques moved on
    trainer._logs["advantages"].extend([9.0, 9.0])
    collector.flush()
    gemmalog.shutdown()
    outputs = events_of(run.dir, "model_output")
    assert [e["advantage_source"] for e in outputs] == ["computed", "computed"]
    assert [e["advantage"] for e in outputs] == computed_advantages([[1.0, 3.0]], [1.0], 2)


def test_read_logged_takes_this_ranks_part() -> None:
    trainer = StandIn(world=2, rank=1)
    trainer._logs["completion"].extend(["old", "r0a", "r0b", "r1a", "r1b"])
    trainer._logs["advantages"].extend([7.0, 1.0, 2.0, 3.0, 4.0])
    trainer._logs["extra"]["tag"].extend(["x", "a", "b", "c", "d"])
    trainer._logs["extra"]["short"].extend(["c", "d"])  # not logged for every completion
    assert read_logged(trainer, ["r1a", "r1b"]) == ([3.0, 4.0], {"tag": ["c", "d"]})
    assert read_logged(trainer, ["r0a", "r0b"]) is None  # rank 1 reads rank 1's part only


def test_a_call_outside_trl_is_left_as_it_is(root: Path) -> None:
    gemmalog.initialize(root=root)

    def strict(prompts: Any, completions: Any) -> list[float]:  # takes no log helpers
        return [1.0 for _ in completions]

    (wrapped,) = wrap_reward_functions([strict], RewardCollector())
    assert wrapped(prompts=["p"], completions=["c"]) == [1.0]


def _trl_formula(rewards: list[float], g: int, scale: str) -> list[float]:
    """TRL 1.16's sum_then_normalize (grpo_trainer.py:2761-2788) on one function, with torch."""
    torch = pytest.importorskip("torch")
    from trl.trainer.utils import nanstd

    r = torch.tensor(rewards, dtype=torch.float64)
    mean = torch.nanmean(r.view(-1, g), dim=1).repeat_interleave(g)
    if scale == "batch":
        std = nanstd(r).expand_as(r)
    else:
        std = nanstd(r.view(-1, g), dim=1).repeat_interleave(g)
    adv = r - mean
    if scale != "none":
        adv = adv / (std + 1e-4)
    return [float(x) for x in torch.nan_to_num(adv, nan=0.0)]


@pytest.mark.parametrize("scale", ["group", "batch", "none"])
def test_computed_advantages_follow_trls_formula(scale: str) -> None:
    pytest.importorskip("trl")
    rewards = [0.5, 1.5, 2.0, -1.0, 3.0, 3.0, 0.25, 7.0]
    ours = computed_advantages([rewards], [1.0], 4, scale)
    # TRL's nanstd computes Bessel's factor count / (count - 1) in float32 (utils.py:1041)
    assert ours == pytest.approx(_trl_formula(rewards, 4, scale), rel=1e-7, abs=1e-9)


def test_computed_advantages_weights_and_abstentions() -> None:
    nan = math.nan
    # two functions, weights 2 and 1; the second abstains on one completion; the last
    # completion is unscorable (every function abstained): no signal for it
    scores = [[1.0, 0.0, 2.0, nan], [nan, 1.0, 1.0, nan]]
    out = computed_advantages(scores, [2.0, 1.0], 4)
    totals = [2.0, 1.0, 5.0]
    mean = sum(totals) / 3
    std = math.sqrt(sum((t - mean) ** 2 for t in totals) / 2)
    assert out == pytest.approx([(t - mean) / (std + 1e-4) for t in totals] + [0.0])
    assert computed_advantages([[1.0, 2.0, 3.0]], [1.0], 2) is None  # not whole groups
    assert AdvantageSettings.of(StandIn(generations=3)) == AdvantageSettings(
        3, "group", "sum_then_normalize", None
    )


def test_conversation_keeps_every_message() -> None:
    picture = object.__new__(type("Image", (), {"__module__": "PIL.Image"}))
    prompt = [
        {"role": "system", "content": "Be brief."},
        {
            "role": "user",
            "content": [
                {"type": "image", "image": picture},
                {"type": "text", "text": "What is it?"},
            ],
        },
    ]
    completion = [
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {"type": "function", "function": {"name": "look", "arguments": {"x": 1}}}
            ],
        },
        {"role": "tool", "name": "look", "content": "a cat"},
        {"role": "assistant", "content": "A cat."},
    ]
    messages, turns = conversation(prompt, completion)  # type: ignore[misc]
    assert turns == 2
    assert messages[1]["content"][0] == {"type": "image", "image": IMAGE}
    assert messages[2:] == completion
    assert conversation("plain prompt", "plain completion") is None
    assert conversation("q", [{"role": "assistant", "content": "a"}]) == (
        [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}],
        1,
    )
    assert messages_text(messages[2:]) == (
        'assistant -> look({"x":1})\ntool[look]: a cat\nassistant: A cat.'
    )


def test_a_tool_calling_completion_round_trips_and_its_secret_is_in_no_file(
    tmp_path: Path, root: Path
) -> None:
    """The completion shape TRL's tool loop builds (grpo_trainer.py:1947-2030): the
    assistant's tool call, the tool's result, the assistant's answer."""
    seed = (Path(__file__).resolve().parents[1] / "configs" / "gemma_logging.yaml").read_text()
    columns = "columns: [timestamp, question, answer, llm_reasoning, llm_answer]"
    assert columns in seed
    config = tmp_path / "config.yaml"
    config.write_text(seed.replace(columns, "columns: [step, question, messages, advantage]"))
    run = gemmalog.initialize(config, root=root)
    prompt = [{"role": "user", "content": "What is my balance?"}]
    completion = [
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {"type": "function", "function": {"name": "balance", "arguments": {"acct": "7"}}}
            ],
        },
        {"role": "tool", "name": "balance", "content": f"42 EUR (session {SECRET})"},
        {"role": "assistant", "content": "<answer>42</answer>"},
    ]
    collector = RewardCollector()
    funcs = wrap_reward_functions([length_reward], collector)
    StandIn(generations=2).generate(funcs, [prompt, prompt], [completion, completion], step=0)
    gemmalog.shutdown()
    outputs = events_of(run.dir, "model_output")
    assert len(outputs) == 2
    expected = [*prompt, *completion]
    expected[2] = {**completion[1], "content": outputs[0]["messages"][2]["content"]}
    assert outputs[0]["messages"] == expected
    assert SECRET not in outputs[0]["messages"][2]["content"]
    assert "42 EUR" in outputs[0]["messages"][2]["content"]
    files = [p for p in run.dir.rglob("*") if p.is_file()]
    assert {p.suffix for p in files} >= {".csv", ".jsonl", ".log"}
    assert [p for p in files if SECRET.encode() in p.read_bytes()] == []
    with open(run.dir / "logs" / "model_outputs.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert rows[0]["messages"].splitlines()[:2] == [
        "user: What is my balance?",
        'assistant -> balance({"acct":"7"})',
    ]
    assert float(rows[0]["advantage"]) == outputs[0]["advantage"]
    con = gemmalog.connect(run.dir)
    (messages,) = con.sql("SELECT messages FROM completions WHERE sample = 0").fetchall()[0]
    assert orjson.loads(messages) == outputs[0]["messages"]


def _signal_run(root: Path, name: str, advantage: Any, total: Any) -> Path:
    """30 steps of 4 prompt groups of 4 completions with the given advantages and totals."""
    run = gemmalog.initialize(root=root, run_name=name)
    for step in range(1, 31):
        for prompt in range(4):
            for gen in range(4):
                gemmalog.log_model_output(
                    f"question {prompt}",
                    "4",
                    f"<answer>{gen}</answer>",
                    rewards={"r": total(step, gen)},
                    step=step,
                    sample=prompt * 4 + gen,
                    advantage=advantage(step, gen),
                    advantage_source="trl",
                )
    gemmalog.shutdown()
    return run.dir


def test_doctor_reads_zero_signal_from_the_advantages(root: Path) -> None:
    from gemmalog.doctor import diagnose

    # rewards differ in every group, but steps 10-20 had zero advantages (what GRPO used)
    flat = _signal_run(
        root, "flat", lambda s, g: 0.0 if 10 <= s <= 20 else g - 1.5, lambda s, g: float(g)
    )
    (finding,) = [f for f in diagnose(flat) if f.check == "zero_signal"]
    assert finding.steps == list(range(10, 21)) and "advantages" in finding.values
    assert finding.examples and {e["advantage"] for e in finding.examples} == {0.0}
    # equal rewards in every group, but non-zero advantages: the steps did teach something
    moving = _signal_run(root, "moving", lambda s, g: g - 1.5, lambda s, g: 1.0)
    assert [f for f in diagnose(moving) if f.check == "zero_signal"] == []


def test_report_shows_advantages_and_conversations(root: Path, tmp_path: Path) -> None:
    from gemmalog.report import build_report

    run = gemmalog.initialize(root=root)
    collector = RewardCollector()
    funcs = wrap_reward_functions([length_reward], collector)
    prompt = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi?"}]
    completions = [[{"role": "assistant", "content": t}] for t in ("a", "abcd")]
    StandIn(generations=2).generate(funcs, [prompt, prompt], completions, step=0)
    gemmalog.shutdown()
    html = build_report(run.dir, tmp_path / "report.html").read_text(encoding="utf-8")
    expected = computed_advantages([[1.0, 4.0]], [1.0], 2)
    assert expected is not None
    assert "<th>advantage</th>" in html
    assert f'<td class="num">{expected[1]:.4g}</td>' in html  # the report's 4 digits
    assert "system: Be brief.\nuser: Hi?\nassistant: abcd" in html


def test_model_output_fields_of_the_wrong_type_keep_the_line_readable(root: Path) -> None:
    run = gemmalog.initialize(root=root)
    gemmalog.log_model_output("q", "4", "<answer>4</answer>", step=1, advantage="high")
    gemmalog.log_model_output(
        "q", "4", "<answer>4</answer>", step=1, advantage=0.5, prompt_turns=2.0
    )
    gemmalog.shutdown()
    con = gemmalog.connect(run.dir)
    rows = con.sql("SELECT advantage, prompt_turns FROM completions ORDER BY ts").fetchall()
    assert rows == [(None, None), (0.5, 2)]
    (first, _) = events_of(run.dir, "model_output")
    assert "advantage is not a number" in first["event"]


_rewards = st.lists(
    st.one_of(st.floats(-10, 10, allow_nan=False), st.just(math.nan)), min_size=8, max_size=8
)


@settings(max_examples=60, deadline=None)
@given(rewards=_rewards, scale=st.sampled_from(["group", "batch", "none"]))
def test_computed_advantages_equal_trls_for_any_rewards(rewards: list[float], scale: str) -> None:
    pytest.importorskip("trl")
    torch = pytest.importorskip("torch")
    from trl.trainer.utils import nanstd

    ours = computed_advantages([rewards], [1.0], 4, scale)
    # TRL 1.16 (grpo_trainer.py:2757-2815) on one function, in float64
    r = torch.tensor(rewards, dtype=torch.float64)
    mean = torch.nanmean(r.view(-1, 4), dim=1).repeat_interleave(4)
    std = (
        nanstd(r).expand_as(r)
        if scale == "batch"
        else nanstd(r.view(-1, 4), dim=1).repeat_interleave(4)
    )
    adv = r - mean
    if scale != "none":
        adv = adv / (std + 1e-4)
    theirs = [float(x) for x in torch.nan_to_num(adv, nan=0.0)]
    assert ours == pytest.approx(theirs, rel=1e-6, abs=1e-6)


_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20)
_message = st.one_of(
    st.fixed_dictionaries(
        {"role": st.sampled_from(["system", "user", "assistant"]), "content": _text}
    ),
    st.fixed_dictionaries(
        {
            "role": st.just("assistant"),
            "content": st.just(""),
            "tool_calls": st.lists(
                st.fixed_dictionaries(
                    {
                        "type": st.just("function"),
                        "function": st.fixed_dictionaries(
                            {
                                "name": st.from_regex(r"[a-z]{1,8}", fullmatch=True),
                                "arguments": st.dictionaries(
                                    st.from_regex(r"[a-z]{1,5}", fullmatch=True),
                                    st.integers(-(2**63), 2**63 - 1) | _text,
                                    max_size=2,
                                ),
                            }
                        ),
                    }
                ),
                min_size=1,
                max_size=2,
            ),
        }
    ),
    st.fixed_dictionaries({"role": st.just("tool"), "name": st.just("t"), "content": _text}),
)


@settings(max_examples=25, deadline=None)
@given(
    prompt=st.lists(_message, min_size=1, max_size=4),
    completion=st.lists(_message, min_size=1, max_size=3),
)
def test_messages_round_trip_through_jsonl_and_duckdb(
    prompt: list[dict[str, Any]],
    completion: list[dict[str, Any]],
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """Exactly, for what JSON holds (integers beyond 64 bits become text, as in any event)."""
    root = tmp_path_factory.mktemp("messages")
    run = gemmalog.initialize(root=root, redact=False)
    collector = RewardCollector()
    (func,) = wrap_reward_functions(
        [lambda prompts, completions, **kw: [0.0] * len(completions)], collector
    )
    func(prompts=[prompt], completions=[completion])
    gemmalog.shutdown()
    (event,) = events_of(run.dir, "model_output")
    assert event["messages"] == [*prompt, *completion]
    assert event["prompt_turns"] == len(prompt)
    con = gemmalog.connect(run.dir)
    ((stored,),) = con.sql("SELECT messages FROM completions").fetchall()
    assert orjson.loads(stored) == [*prompt, *completion]
