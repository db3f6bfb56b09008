"""Reward-function wrappers without TRL: the calls TRL makes, read back from the JSONL."""

from __future__ import annotations

import asyncio
import inspect
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

import gemmalog
from gemmalog.integrations.rewards import (
    RewardCollector,
    answers_match,
    logged_reward,
    wrap_reward_functions,
)
from tests.conftest import events_of

COMPLETIONS = [
    [{"role": "assistant", "content": "<reasoning>\n2+2\n</reasoning>\n<answer>\n4\n</answer>"}],
    [{"role": "assistant", "content": "<reasoning>\nguess\n</reasoning>\n<answer>\n5\n</answer>"}],
    [{"role": "assistant", "content": "no format at all"}],
]
PROMPTS = [
    [{"role": "system", "content": "answer in XML"}, {"role": "user", "content": "What is 2+2?"}]
] * 3


def correctness(
    prompts: list[Any], completions: list[Any], answer: list[str], **kwargs: Any
) -> list[float]:
    """Pays 2.0 for the right answer."""
    return [
        2.0 if "<answer>\n" + a + "\n" in c[0]["content"] else 0.0
        for c, a in zip(completions, answer, strict=True)
    ]


def fmt(prompts: list[Any], completions: list[Any], **kwargs: Any) -> list[float | None]:
    return [0.5 if "<answer>" in c[0]["content"] else None for c in completions]


def call(funcs: list[Any], *, global_step: int, completions: list[Any] = COMPLETIONS) -> list[Any]:
    """What TRL's _calculate_rewards does: the same completions list for every function."""
    state = SimpleNamespace(global_step=global_step)
    kwargs = {
        "answer": ["4", "4", "4"],
        "question": ["What is 2+2?"] * 3,
        "completion_ids": [[1, 2, 3], [4, 5], [6]],
    }
    return [
        f(prompts=PROMPTS, completions=completions, trainer_state=state, **kwargs) for f in funcs
    ]


def test_wrappers_keep_name_signature_and_result(root: Path) -> None:
    gemmalog.initialize(root=str(root))
    wrapped = wrap_reward_functions([correctness, fmt])
    assert [w.__name__ for w in wrapped] == ["correctness", "fmt"]
    assert inspect.signature(wrapped[0]) == inspect.signature(correctness)
    assert wrapped[0].__doc__ == correctness.__doc__
    sentinel = [1.0, 2.0, 3.0]

    def returns_object(prompts: Any, completions: Any, **kwargs: Any) -> list[float]:
        return sentinel

    (w,) = wrap_reward_functions([returns_object])
    assert w(prompts=PROMPTS, completions=COMPLETIONS) is sentinel


def test_one_model_output_per_sample_with_every_score(root: Path) -> None:
    run = gemmalog.initialize(root=str(root))
    wrapped = wrap_reward_functions([correctness, fmt])
    results = call(wrapped, global_step=3)
    assert results == [[2.0, 0.0, 0.0], [0.5, 0.5, None]]
    gemmalog.shutdown()
    outputs = events_of(run.dir, "model_output")
    assert len(outputs) == 3
    assert [o["step"] for o in outputs] == [4, 4, 4]  # TRL scores step N at global_step N-1
    assert [o["sample"] for o in outputs] == [0, 1, 2]
    assert outputs[0]["rewards"] == {"correctness": 2.0, "fmt": 0.5}
    assert outputs[2]["rewards"] == {"correctness": 0.0, "fmt": "NaN"}  # None -> NaN, as TRL does
    assert [o["correct"] for o in outputs] == [True, False, False]
    assert outputs[0]["answer"] == "4" and outputs[0]["reasoning"] == "2+2"
    assert outputs[0]["question"] == "What is 2+2?" and outputs[0]["true_answer"] == "4"
    assert [o["length_tokens"] for o in outputs] == [3, 2, 1]
    assert outputs[0]["total_reward"] == 2.5 and outputs[2]["total_reward"] == 0.0
    rewards = events_of(run.dir, "reward")
    assert {r["reward_fn"] for r in rewards} == {"correctness", "fmt"}
    summary = events_of(run.dir, "reward_summary")[0]["stats"]
    assert summary["fmt"]["count"] == 2 and summary["correctness"]["mean"] == pytest.approx(2 / 3)


def test_eval_phase_and_steps(root: Path) -> None:
    run = gemmalog.initialize(root=str(root))
    collector = RewardCollector()
    wrapped = wrap_reward_functions([correctness], collector)
    collector.phase_of = lambda: "eval"
    call(wrapped, global_step=10)
    call(wrapped, global_step=10)  # a second eval batch at the same step
    collector.phase_of = lambda: "train"
    call(wrapped, global_step=10)
    gemmalog.shutdown()
    outputs = events_of(run.dir, "model_output")
    assert [(o["phase"], o["step"], o["sample"]) for o in outputs] == [
        *[("eval", 10, i) for i in range(6)],
        *[("train", 11, i) for i in range(3)],
    ]
    assert collector.accuracy("eval") == (2, 6, pytest.approx(1 / 3))
    assert collector.accuracy("train") == (1, 3, pytest.approx(1 / 3))


def test_functions_not_all_wrapped_are_flushed(root: Path) -> None:
    run = gemmalog.initialize(root=str(root))
    collector = RewardCollector()
    only = logged_reward(collector)(correctness)
    collector.expected.append("never_called")  # a function that did not report
    call([only], global_step=0)
    assert events_of(run.dir, "model_output") == []
    call([only], global_step=1, completions=list(COMPLETIONS))  # a new batch flushes the old
    collector.flush()
    gemmalog.shutdown()
    assert [o["step"] for o in events_of(run.dir, "model_output")] == [1, 1, 1, 2, 2, 2]


def test_plain_string_completions_and_correct_reward_option(root: Path) -> None:
    run = gemmalog.initialize(root=str(root))

    def plain(prompts: list[str], completions: list[str], **kwargs: Any) -> list[float]:
        return [1.0 if "4" in c else 0.0 for c in completions]

    wrapped = wrap_reward_functions([plain], correct_reward="plain")
    wrapped[0](
        prompts=["2+2?", "2+2?"],
        completions=["<answer>4</answer>", "<answer>5</answer>"],
        trainer_state=SimpleNamespace(global_step=0),
    )
    gemmalog.shutdown()
    outputs = events_of(run.dir, "model_output")
    assert [o["correct"] for o in outputs] == [True, False]
    assert outputs[0]["question"] == "2+2?" and outputs[0]["model_output"] == "<answer>4</answer>"


def test_async_reward_functions_stay_async(root: Path) -> None:
    run = gemmalog.initialize(root=str(root))

    async def slow(prompts: Any, completions: Any, **kwargs: Any) -> list[float]:
        await asyncio.sleep(0)
        return [1.0] * len(completions)

    (wrapped,) = wrap_reward_functions([slow])
    assert inspect.iscoroutinefunction(wrapped)
    assert (
        asyncio.run(
            wrapped(
                prompts=PROMPTS,
                completions=COMPLETIONS,
                trainer_state=SimpleNamespace(global_step=0),
            )
        )
        == [1.0] * 3
    )
    gemmalog.shutdown()
    assert [o["rewards"] for o in events_of(run.dir, "model_output")] == [{"slow": 1.0}] * 3


def test_reward_models_pass_through() -> None:
    class RewardModel:
        def forward(self, x: Any) -> Any:
            return x

        def parameters(self) -> list[Any]:
            return []

    model = RewardModel()
    funcs = wrap_reward_functions(["org/reward-model", model, correctness])
    assert (
        funcs[0] == "org/reward-model" and funcs[1] is model and funcs[2].__name__ == "correctness"
    )


def test_logging_failures_never_reach_training(
    root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gemmalog.initialize(root=str(root))

    def odd(prompts: Any, completions: Any, **kwargs: Any) -> list[float]:
        return [1.0]

    (wrapped,) = wrap_reward_functions([odd], extractor=lambda text: 1 / 0)  # type: ignore[arg-type, return-value]
    assert wrapped(
        prompts=PROMPTS, completions=COMPLETIONS, trainer_state=SimpleNamespace(global_step=0)
    ) == [1.0]
    assert "could not log a reward batch" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("answer", "truth", "expected"),
    [
        ("4", "4", True),
        ("07", "7", True),
        ("1,000", "1000", True),
        ("4.0", "4", True),
        ("five", "five", True),
        ("5", "4", False),
        (None, "4", False),
        ("4", None, None),
        ("nan", "nan", True),
    ],
)
def test_answers_match(answer: str | None, truth: str | None, expected: bool | None) -> None:
    assert answers_match(answer, truth) is expected


def test_partials_callable_instances_and_generators_keep_trl_semantics(root: Path) -> None:
    import functools

    from trl.trainer.utils import get_callable_name, is_async_callable

    run = gemmalog.initialize(root=str(root))

    def length_reward(
        prompts: Any, completions: Any, scale: float = 1.0, **kwargs: Any
    ) -> list[float]:
        return [scale * len(c[0]["content"]) for c in completions]

    class Judge:
        async def __call__(self, prompts: Any, completions: Any, **kwargs: Any) -> list[float]:
            return [0.25] * len(completions)

    def lazy(prompts: Any, completions: Any, **kwargs: Any) -> Any:
        return (1.0 for _ in completions)  # a generator: TRL accepts any iterable

    half = functools.partial(length_reward, scale=0.5)
    double = functools.partial(length_reward, scale=2.0)
    funcs = [half, Judge(), lazy]
    wrapped = wrap_reward_functions(funcs)
    # the names TRL derives, and TRL's own async test, see through the wrappers
    assert (
        [get_callable_name(w) for w in wrapped]
        == [get_callable_name(f) for f in funcs]
        == ["length_reward", "Judge", "lazy"]
    )
    assert [is_async_callable(w) for w in wrapped] == [False, True, False]
    state = SimpleNamespace(global_step=0)
    assert wrapped[0](prompts=PROMPTS, completions=COMPLETIONS, trainer_state=state) == half(
        PROMPTS, COMPLETIONS
    )
    assert (
        asyncio.run(wrapped[1](prompts=PROMPTS, completions=COMPLETIONS, trainer_state=state))
        == [0.25] * 3
    )
    assert (
        list(wrapped[2](prompts=PROMPTS, completions=COMPLETIONS, trainer_state=state)) == [1.0] * 3
    )
    (other,) = wrap_reward_functions([double])
    assert other.__name__ == "length_reward"
    gemmalog.shutdown()
    outputs = events_of(run.dir, "model_output")
    assert len(outputs) == 3
    assert outputs[0]["rewards"] == {
        "length_reward": 0.5 * len(COMPLETIONS[0][0]["content"]),
        "Judge": 0.25,
        "lazy": 1.0,
    }


def test_reward_weights_follow_trl_positions_with_a_reward_model(root: Path) -> None:
    from gemmalog.integrations.trl import GemmalogCallback

    class RewardModel:
        def forward(self, x: Any) -> Any:
            return x

        def parameters(self) -> list[Any]:
            return []

    run = gemmalog.initialize(root=str(root))
    callback = GemmalogCallback()
    wrapped = callback.wrap([RewardModel(), correctness, fmt])
    args = SimpleNamespace(reward_weights=[5.0, 1.0, 10.0], max_completion_length=None)
    callback.on_train_begin(args, SimpleNamespace(global_step=0), None, model=None)
    assert callback.collector.reward_weights == {"correctness": 1.0, "fmt": 10.0}
    call(wrapped[1:], global_step=0)
    gemmalog.shutdown()
    first = events_of(run.dir, "model_output")[0]
    assert first["total_reward"] == 1.0 * 2.0 + 10.0 * 0.5


def test_validation_metrics_switch_keeps_eval_completions_out(root: Path, tmp_path: Path) -> None:
    config = tmp_path / "no_eval.yaml"
    config.write_text("version: 1\nmetrics:\n  enable:\n    validation_metrics: false\n")
    run = gemmalog.initialize(str(config), root=str(root))
    collector = RewardCollector()
    wrapped = wrap_reward_functions([correctness], collector)
    collector.phase_of = lambda: "eval"
    call(wrapped, global_step=4)
    collector.phase_of = lambda: "train"
    call(wrapped, global_step=4)
    gemmalog.shutdown()
    assert {o["phase"] for o in events_of(run.dir, "model_output")} == {"train"}
