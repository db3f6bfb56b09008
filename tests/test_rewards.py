"""Reward-function wrappers without TRL: the calls TRL makes, read back from the JSONL."""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

import gemmalog
from gemmalog.integrations import rewards as rewards_module
from gemmalog.integrations.rewards import (
    RewardCollector,
    answers_match,
    default_collector,
    logged_reward,
    wrap_reward_functions,
)
from tests.helpers import events_of, read_events


@pytest.fixture(autouse=True)
def _fresh_default_collector(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test starts with its own default collector: options given to the process-wide
    one (a failing extractor, say) must not leak from one test into the next."""
    monkeypatch.setattr(rewards_module, "_default", None)
    yield


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
    gemmalog.flush()  # the batch is expanded (and the extractor fails) on the listener thread
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


def _steps(callback: Any, wrapped: list[Any], steps: int, max_steps: int | None = None) -> None:
    """Drive the callback's hooks the way Trainer does around TRL's reward calls."""
    args = SimpleNamespace(
        max_steps=max_steps or steps, reward_weights=None, max_completion_length=None
    )
    state = SimpleNamespace(global_step=0, epoch=0.0, max_steps=max_steps or steps)
    callback.on_train_begin(args, state, None, model=None)
    for _ in range(steps):
        call(wrapped, global_step=state.global_step, completions=list(COMPLETIONS))
        state.global_step += 1
        callback.on_step_end(args, state, None)
        callback.on_log(args, state, None, logs={"loss": 0.5, "epoch": state.global_step / 10})
    # the final summary repeats the last step's epoch, as Trainer's does
    callback.on_log(args, state, None, logs={"train_runtime": 1.0, "epoch": state.global_step / 10})
    callback.on_train_end(args, state, None)


@pytest.mark.parametrize("wrappers_first", [True, False])
def test_wrappers_and_callback_made_apart_share_one_collector(
    root: Path, wrappers_first: bool
) -> None:
    from gemmalog.integrations.trl import GemmalogCallback

    run = gemmalog.initialize(root=str(root))
    if wrappers_first:
        wrapped = wrap_reward_functions([correctness, fmt])
        callback = GemmalogCallback()
    else:
        callback = GemmalogCallback()
        wrapped = wrap_reward_functions([correctness, fmt])
    assert callback.collector is default_collector()
    _steps(callback, wrapped, 2)
    gemmalog.shutdown()
    outputs = events_of(run.dir, "model_output")
    assert len(outputs) == 6
    correct = sum(1 for o in outputs if o["correct"])
    assert correct == 2  # one right answer a batch
    end = events_of(run.dir, "run_end")[0]["final_stats"]
    assert (end["correct_answers"], end["total_answers"]) == (correct, 6)
    assert end["accuracy"] == pytest.approx(100 * 2 / 6)
    con = gemmalog.connect(run.dir)
    progress = con.execute(
        "SELECT step, value FROM metrics WHERE name = 'total_answers' ORDER BY step"
    ).fetchall()
    assert progress == [(1, 3.0), (2, 6.0)]


def test_final_progress_and_summary_epoch_are_logged_once(root: Path) -> None:
    from gemmalog.integrations.trl import GemmalogCallback

    run = gemmalog.initialize(root=str(root))
    callback = GemmalogCallback()
    _steps(callback, callback.wrap([correctness]), 3)
    gemmalog.shutdown()
    con = gemmalog.connect(run.dir)
    assert (
        con.execute(
            "SELECT phase, step, name, count(*) FROM metrics GROUP BY ALL HAVING count(*) > 1"
        ).fetchall()
        == []
    )
    last = dict(con.execute("SELECT name, value FROM metrics WHERE step = 3").fetchall())
    assert last["correct_answers"] == 3 and last["total_answers"] == 9
    assert last["final_accuracy"] == pytest.approx(100 / 3) and last["training_complete"] == 1
    assert last["epoch"] == pytest.approx(0.3) and last["train_runtime"] == 1.0


def test_final_counts_are_logged_when_no_step_logged_them(root: Path) -> None:
    from gemmalog.integrations.trl import GemmalogCallback

    run = gemmalog.initialize(root=str(root))
    callback = GemmalogCallback()
    args = SimpleNamespace(max_steps=5, reward_weights=None, max_completion_length=None)
    state = SimpleNamespace(global_step=0, epoch=0.0, max_steps=5)
    callback.on_train_begin(args, state, None, model=None)
    callback.on_train_end(args, state, None)  # stopped before the first step
    gemmalog.shutdown()
    final = [
        e["metrics"] for e in events_of(run.dir, "metrics") if "final_accuracy" in e["metrics"]
    ]
    assert final == [
        {"final_accuracy": 0.0, "correct_answers": 0, "total_answers": 0, "training_complete": 0.0}
    ]


def fmt_strict(
    prompts: list[Any], completions: list[Any], strict: bool = True, **kwargs: Any
) -> list[float]:
    tag = "<answer>\n" if strict else "<answer>"
    return [1.0 if tag in c[0]["content"] else 0.0 for c in completions]


def test_two_partials_of_one_function_are_two_columns_not_two_batches(root: Path) -> None:
    from gemmalog.integrations.trl import GemmalogCallback

    run = gemmalog.initialize(root=str(root))
    funcs = [
        functools.partial(fmt_strict, strict=True),
        functools.partial(fmt_strict, strict=False),
        correctness,
    ]
    wrapped = wrap_reward_functions(funcs)
    callback = GemmalogCallback()
    # TRL names both partials after the function: the wrappers keep that name
    assert [w.__name__ for w in wrapped] == ["fmt_strict", "fmt_strict", "correctness"]
    _steps(callback, wrapped, 2)
    gemmalog.shutdown()
    outputs = events_of(run.dir, "model_output")
    assert len(outputs) == 6  # 3 completions a step, not 6
    assert [(o["step"], o["sample"]) for o in outputs] == [(s, i) for s in (1, 2) for i in range(3)]
    assert outputs[0]["rewards"] == {"fmt_strict": 1.0, "fmt_strict_2": 1.0, "correctness": 2.0}
    end = events_of(run.dir, "run_end")[0]["final_stats"]
    assert (end["correct_answers"], end["total_answers"]) == (2, 6)
    con = gemmalog.connect(run.dir)
    assert con.execute(
        "SELECT reward_fn, count(*) FROM rewards GROUP BY ALL ORDER BY ALL"
    ).fetchall() == [("correctness", 6), ("fmt_strict", 6), ("fmt_strict_2", 6)]
    assert con.execute("SELECT sum(total) FROM accuracy").fetchone() == (6,)


def test_duplicate_names_get_distinct_labels_weights_by_position(root: Path) -> None:
    run = gemmalog.initialize(root=str(root))
    collector = RewardCollector()
    funcs = [
        functools.partial(fmt_strict, strict=True),
        correctness,
        functools.partial(fmt_strict, strict=False),
    ]
    wrapped = wrap_reward_functions(funcs, collector)
    assert collector.expected == ["fmt_strict", "correctness", "fmt_strict_2"]
    assert collector.positions == {"fmt_strict": 0, "correctness": 1, "fmt_strict_2": 2}
    extra = logged_reward(collector)(functools.partial(fmt_strict, strict=False))
    assert collector.expected[-1] == "fmt_strict_3" and extra.__name__ == "fmt_strict"
    collector.expected.pop()  # not called below
    collector.reward_weights = {"fmt_strict": 1.0, "correctness": 0.0, "fmt_strict_2": 10.0}
    call(wrapped, global_step=0)
    gemmalog.shutdown()
    first = events_of(run.dir, "model_output")[0]
    assert first["total_reward"] == 1.0 * 1.0 + 0.0 * 2.0 + 10.0 * 1.0


def test_options_configure_the_default_collector() -> None:
    wrap_reward_functions([correctness], answer_column="solution")
    assert default_collector().answer_column == "solution"
    with pytest.raises(TypeError, match="unknown RewardCollector option"):
        wrap_reward_functions([correctness], answer_colum="solution")


def test_counts_follow_the_running_run(root: Path) -> None:
    collector = default_collector()
    (wrapped,) = wrap_reward_functions([correctness])
    gemmalog.initialize(root=str(root), run_name="one")
    call([wrapped], global_step=0)
    assert collector.accuracy() == (1, 3, pytest.approx(1 / 3))
    gemmalog.shutdown()
    run = gemmalog.initialize(root=str(root), run_name="two")
    assert collector.accuracy() == (0, 0, 0.0)  # a new run starts its own counts
    call([wrapped], global_step=0)
    gemmalog.shutdown()
    assert [o["sample"] for o in events_of(run.dir, "model_output")] == [0, 1, 2]


def test_a_resumed_callback_continues_the_counts_from_the_logs(root: Path) -> None:
    from gemmalog.integrations.trl import GemmalogCallback

    first = gemmalog.initialize(root=str(root), run_id="resumed")
    callback = GemmalogCallback()
    wrapped = callback.wrap([correctness])
    args = SimpleNamespace(max_steps=4, reward_weights=None, max_completion_length=None)
    state = SimpleNamespace(global_step=0, epoch=0.0, max_steps=4)
    callback.on_train_begin(args, state, None, model=None)
    for _ in range(3):  # the checkpoint was at step 2; step 3 is logged, then the run dies
        call(wrapped, global_step=state.global_step, completions=list(COMPLETIONS))
        state.global_step += 1
        callback.on_step_end(args, state, None)
    gemmalog.shutdown()
    second = gemmalog.initialize(root=str(root), run_id="resumed")
    assert second.dir == first.dir and second.segment == 1
    callback = GemmalogCallback()
    wrapped = callback.wrap([correctness])
    state = SimpleNamespace(global_step=2, epoch=0.0, max_steps=4)
    callback.on_train_begin(args, state, None, model=None)
    assert callback.collector.accuracy() == (2, 6, pytest.approx(1 / 3))  # steps 1 and 2
    for _ in range(2):
        call(wrapped, global_step=state.global_step, completions=list(COMPLETIONS))
        state.global_step += 1
        callback.on_step_end(args, state, None)
    callback.on_train_end(args, state, None)
    gemmalog.shutdown()
    end = [e for e in read_events(second.dir) if e["kind"] == "run_end"][-1]
    assert (end["final_stats"]["correct_answers"], end["final_stats"]["total_answers"]) == (4, 12)
    con = gemmalog.connect(second.dir)
    assert con.execute("SELECT sum(correct), sum(total) FROM accuracy").fetchone() == (4, 12)
    assert con.execute(
        "SELECT step, value FROM metrics WHERE name = 'total_answers' ORDER BY step"
    ).fetchall() == [(1, 3.0), (2, 6.0), (3, 9.0), (4, 12.0)]


# -- the per-sample work runs on the listener thread ------------------------------------------
def test_samples_are_made_on_the_listener_thread_with_the_callers_envelope(root: Path) -> None:
    run = gemmalog.initialize(root=str(root))
    threads: set[str] = set()

    def extractor(text: str) -> tuple[str | None, str | None]:
        import threading

        threads.add(threading.current_thread().name)
        return gemmalog.extract_reasoning_and_answer(text)

    wrapped = wrap_reward_functions([correctness, fmt], RewardCollector(extractor=extractor))
    with gemmalog.bound(epoch=1.5, experiment="listener"):
        call(wrapped, global_step=6)
    assert threads == set()  # nothing extracted while the reward functions ran
    gemmalog.shutdown()
    import threading

    assert threads and threading.main_thread().name not in threads
    events = read_events(run.dir)
    assert {"reward_batch", "progress"}.isdisjoint(e["kind"] for e in events)  # no carrier lines
    outputs = events_of(run.dir, "model_output")
    assert [(o["step"], o["sample"], o["answer"]) for o in outputs] == [
        (7, 0, "4"),
        (7, 1, "5"),
        (7, 2, None),
    ]
    for event in [*outputs, *events_of(run.dir, "reward"), *events_of(run.dir, "reward_summary")]:
        # what the caller's processors give every event: envelope, bound context, resources
        assert event["run"] == run.id and event["rank"] == 0 and event["level"] == "info"
        assert event["epoch"] == 1.5 and event["experiment"] == "listener"
        assert event["device"] == "cpu" and event["rss_mb"] > 0 and event["event"] == event["kind"]
    assert outputs[0]["ts"] <= events_of(run.dir, "run_end")[0]["ts"]


def test_expanded_events_go_through_redaction_and_truncation(root: Path) -> None:
    run = gemmalog.initialize(root=str(root), max_string_length=200)
    secret = "hf_" + "xQzKpLmNoPqRsTuVwXyZaBcDeFgHiJkLmN"
    leaky = [
        [{"role": "assistant", "content": f"my token is {secret} <answer>\n4\n</answer>"}],
        [{"role": "assistant", "content": "x" * 500}],
        [{"role": "assistant", "content": "<answer>\n4\n</answer>"}],
    ]
    call(wrap_reward_functions([correctness]), global_step=0, completions=leaky)
    gemmalog.shutdown()
    outputs = events_of(run.dir, "model_output")
    assert secret not in (run.dir / "events.0.jsonl").read_text()
    assert "[REDACTED]" in outputs[0]["model_output"] and outputs[0]["answer"] == "4"
    assert len(outputs[1]["model_output"]) == 200 and outputs[1]["truncated"] == ["model_output"]


def test_progress_counts_include_every_batch_handed_over_before_them(root: Path) -> None:
    from gemmalog.integrations.trl import GemmalogCallback

    run = gemmalog.initialize(root=str(root))
    callback = GemmalogCallback(RewardCollector())
    wrapped = callback.wrap([correctness])
    args = SimpleNamespace(max_steps=4, reward_weights=None, max_completion_length=None)
    state = SimpleNamespace(global_step=0, epoch=0.0, max_steps=4)
    callback.on_train_begin(args, state, None, model=None)
    for _ in range(4):
        call(wrapped, global_step=state.global_step)
        state.global_step += 1
        callback.on_step_end(args, state, None)  # no wait for the listener here
    callback.on_train_end(args, state, None)
    gemmalog.shutdown()
    progress = [
        (m["step"], m["metrics"]["correct_answers"], m["metrics"]["total_answers"])
        for m in events_of(run.dir, "metrics")
        if m["phase"] == "progress" and "total_answers" in m["metrics"]
    ]
    assert progress == [(1, 1, 3), (2, 2, 6), (3, 3, 9), (4, 4, 12)]
    last = [m for m in events_of(run.dir, "metrics") if m["phase"] == "progress"][3]
    assert last["metrics"]["accuracy"] == pytest.approx(100 / 3)
    assert last["metrics"]["progress_percent"] == 100.0
    memory = [e for e in events_of(run.dir, "system") if e.get("event") == "memory"]
    assert [e["step"] for e in memory] == [0]  # logging_frequency 5: the start sample only
    end = [e for e in read_events(run.dir) if e["kind"] == "run_end"][-1]
    assert end["final_stats"]["correct_answers"] == 4
    assert end["final_stats"]["total_answers"] == 12


def test_resource_samples_read_proc_on_the_listener_and_keep_their_fields(root: Path) -> None:
    from gemmalog.integrations.trl import GemmalogCallback

    run = gemmalog.initialize(root=str(root))
    callback = GemmalogCallback(RewardCollector(), logging_frequency=2)
    args = SimpleNamespace(max_steps=4, reward_weights=None, max_completion_length=None)
    state = SimpleNamespace(global_step=0, epoch=0.0, max_steps=4)
    callback.on_train_begin(args, state, None, model=None)
    callback.tokens_per_second = 123.0
    for _ in range(4):
        state.global_step += 1
        callback.on_step_end(args, state, None)
    gemmalog.shutdown()
    memory = [e for e in events_of(run.dir, "system") if e.get("event") == "memory"]
    assert [e["step"] for e in memory] == [0, 2, 4]
    for event in memory:
        assert event["device"] == "cpu" and event["cpu_rss_mb"] > 0 and "cpu_percent" in event
    assert "tokens_per_second" not in memory[0] and memory[1]["tokens_per_second"] == 123.0


def test_correct_fn_gets_the_sample_and_correct_reward_comes_first(root: Path) -> None:
    seen: list[dict[str, Any]] = []

    def judge(sample: dict[str, Any]) -> bool:
        seen.append(sample)
        return bool(sample["index"] == 1)

    run = gemmalog.initialize(root=str(root))
    call(
        wrap_reward_functions([correctness, fmt], RewardCollector(correct_fn=judge)), global_step=0
    )
    gemmalog.shutdown()
    assert [sorted(s) for s in seen] == [["answer", "index", "rewards", "text", "true_answer"]] * 3
    assert seen[1]["answer"] == "5" and seen[1]["true_answer"] == "4"
    assert seen[2]["text"] == "no format at all"
    assert seen[0]["rewards"] == {"correctness": 2.0, "fmt": 0.5}
    nan = seen[2]["rewards"]["fmt"]
    assert nan != nan  # TRL's NaN for a None reward
    outputs = events_of(run.dir, "model_output")
    assert [o["correct"] for o in outputs] == [False, True, False]
    assert [o["total_reward"] for o in outputs] == [2.5, 0.5, 0.0]  # NaN left out of the sum

    seen.clear()
    run = gemmalog.initialize(root=str(root))
    collector = RewardCollector(correct_fn=judge, correct_reward="fmt", correct_threshold=0.1)
    call(wrap_reward_functions([correctness, fmt], collector), global_step=0)
    gemmalog.shutdown()
    assert seen == []  # correct_reward decides; correct_fn is not asked
    assert [o["correct"] for o in events_of(run.dir, "model_output")] == [True, True, None]


def _batch_events_of_every_shape() -> list[dict[str, Any]]:
    import numpy as np

    nan, inf = float("nan"), float("inf")
    samples = ["train:1:0", "train:1:1", "train:1:2"]
    reward = {"kind": "reward", "logger": "r", "phase": "train", "reward_fn": "f", "step": 1}
    summary = {"kind": "reward_summary", "logger": "r", "step": 1, "phase": "train"}
    stats = {"mean": 0.5, "std": 0.1, "min": 0.0, "max": 1.0, "count": 3}
    generation = {"kind": "generation_metrics", "logger": "m", "step": 5, "phase": "train"}
    return [
        {**reward, "values": [0.5, 1.0, -0.0], "samples": samples},  # the common case
        {**reward, "values": [0.5, nan, inf], "samples": samples},
        {**reward, "values": [1e308, 1e308], "samples": samples[:2]},  # a sum that overflows
        {**reward, "values": [1.0] * 9, "samples": [f"s{i}" for i in range(9)]},  # > max_items
        {**reward, "values": [1, 2.0, True, None], "samples": ["a", "b" * 80, "c", "d"]},
        {**reward, "values": [np.float32(0.5), 1.0], "samples": [1, "x"]},
        {**reward, "values": [], "samples": []},
        {**summary, "stats": {"f": stats, "g": dict(stats)}},
        {**summary, "stats": {"f": {**stats, "mean": None, "count": 0}, "g": stats}},
        {**summary, "stats": {"f": {**stats, "max": inf}}},
        {**summary, "stats": {1: stats}},
        {**summary, "stats": {f"f{i}": stats for i in range(9)}},
        {**summary, "stats": {"f": {f"k{i}": 1.0 for i in range(9)}}},
        {**summary, "stats": {"f": [1.0]}},
        {**generation, "_generations": ["short", "x" * 10], "_token_lengths": [3, 4]},
        {**generation, "_generations": ["y" * 100, "z"], "_token_lengths": [3, True]},
        {**generation, "_generations": ["a", 5], "_token_lengths": [3.0, 4]},
        {
            "kind": "model_output",
            "logger": "m",
            "model_output": "w" * 100,
            "rewards": {"f": nan},
            "values": [nan],
        },
        {"kind": "metrics", "logger": "m", "metrics": {"a": 1.0}, "values": [inf]},
    ]


def test_batch_sanitize_gives_what_the_pipelines_sanitize_gives(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The reward batch's shortcut past the sanitizer's walk: for every shape of field it
    may see, the same line (values, types and key order) as the full walk, which it still
    takes for anything it cannot prove plain; and it does skip the walk in the common case."""
    import copy

    import orjson

    from gemmalog.processors.batch_sanitize import BatchSanitize
    from gemmalog.processors.sanitize import Sanitize, Sanitizer

    sanitize = Sanitize(Sanitizer(max_string_length=64, max_items=5))
    shortcut = BatchSanitize(sanitize)
    for event in _batch_events_of_every_shape():
        expected = sanitize(None, "info", copy.deepcopy(event))
        got = shortcut(None, "info", copy.deepcopy(event))
        assert list(got) == list(expected)
        assert orjson.dumps(got) == orjson.dumps(expected), event["kind"]
        assert [type(v) for v in got.values()] == [type(v) for v in expected.values()]

    walks: list[Any] = []
    original = Sanitizer.clean

    def counted(self: Sanitizer, value: Any, *args: Any) -> Any:
        walks.append(value)
        return original(self, value, *args)

    monkeypatch.setattr(Sanitizer, "clean", counted)
    fresh = BatchSanitize(sanitize)
    plain = _batch_events_of_every_shape()
    for event in (plain[0], plain[7], plain[14]):
        fresh(None, "info", event)
    assert walks == []
    values = plain[1]["values"]  # a NaN and an infinity: walked, the samples are not
    fresh(None, "info", plain[1])
    assert len(walks) == 1 and walks[0] is values

    # Another sanitizer than gemmalog's own: every event goes through it whole.
    calls: list[str] = []

    def other(logger: Any, method: str, event: dict[str, Any]) -> dict[str, Any]:
        calls.append(event["kind"])
        return event

    event = _batch_events_of_every_shape()[0]
    assert BatchSanitize(other)(None, "info", dict(event)) == event
    assert calls == ["reward"]
