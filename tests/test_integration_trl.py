"""A real GRPOTrainer run on the tiny offline Gemma, read back through every output.

One module-scoped run (4 steps, eval every 2 steps, transformers' own TensorBoardCallback
on beside gemmalog) is shared by the tests; a second short run uses gradient accumulation.
"""

from __future__ import annotations

import csv
import math
import os
import sys
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("trl")
pytestmark = pytest.mark.slow

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
sys.path.insert(0, str(EXAMPLES))

import reward_functions  # noqa: E402
import train_grpo_gemma  # noqa: E402

import gemmalog  # noqa: E402
from tests.helpers import events_of, read_events  # noqa: E402

STEPS = 4
EVAL_EVERY = 2
EVAL_PROMPTS = 8
BATCH = 4
GENERATIONS = 4


class Recorder:
    """Wraps the example reward functions (inside gemmalog's wrapper) to keep what they returned."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[float]]] = []

    def wrap(self, func: Callable[..., list[float]]) -> Callable[..., list[float]]:
        import functools

        @functools.wraps(func)
        def inner(*args: Any, **kwargs: Any) -> list[float]:
            result = func(*args, **kwargs)
            self.calls.append((func.__name__, list(result)))
            return result

        return inner


def _train(
    tmp: Path, monkeypatch: pytest.MonkeyPatch, name: str, **overrides: Any
) -> tuple[Any, gemmalog.Run, Recorder]:
    recorder = Recorder()
    monkeypatch.setattr(
        reward_functions,
        "REWARD_FUNCTIONS",
        [recorder.wrap(f) for f in reward_functions.REWARD_FUNCTIONS],
    )
    args = train_grpo_gemma.build_arg_parser().parse_args(
        [
            "--root",
            str(tmp / "runs"),
            "--run-name",
            name,
            "--steps",
            str(STEPS),
            "--dataset-size",
            "32",
        ]
    )
    for key, value in overrides.items():
        setattr(args, key, value)
    trainer, run = train_grpo_gemma.train(args, callback_options={"logging_frequency": 2})
    return trainer, run, recorder


@pytest.fixture(scope="module")
def trained(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Any, gemmalog.Run, Recorder, Path]]:
    tmp = tmp_path_factory.mktemp("grpo")
    tb_dir = tmp / "hf_tensorboard"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TENSORBOARD_LOGGING_DIR", str(tb_dir))
        trainer, run, recorder = _train(
            tmp, mp, "main", eval_steps=EVAL_EVERY, report_to="tensorboard"
        )
    yield trainer, run, recorder, tb_dir


def _equal(a: float, b: float) -> bool:
    if isinstance(a, float) and math.isnan(a):
        return isinstance(b, float) and math.isnan(b)
    return a == pytest.approx(b, rel=1e-9, abs=1e-12)


def test_metrics_view_equals_log_history(trained: Any) -> None:
    trainer, run, _, _ = trained
    con = gemmalog.connect(run.dir)
    rows = con.sql(
        "SELECT phase, step, name, value FROM metrics WHERE phase IN ('train', 'eval')"
    ).fetchall()
    logged = {(phase, step, name): value for phase, step, name, value in rows}
    checked = 0
    for entry in trainer.state.log_history:
        step = entry["step"]
        for key, value in entry.items():
            if key == "step" or isinstance(value, bool) or not isinstance(value, int | float):
                continue
            phase, name = ("eval", key[5:]) if key.startswith("eval_") else ("train", key)
            assert (phase, step, name) in logged, (phase, step, name)
            assert _equal(logged[(phase, step, name)], float(value)), (phase, step, name)
            checked += 1
    assert checked > 100
    # one row per (phase, step, name): the final summary's epoch and the final progress
    # counts are not logged a second time at the last step
    assert (
        con.sql("SELECT phase, step, name FROM metrics GROUP BY ALL HAVING count(*) > 1").fetchall()
        == []
    )
    train_keys = {k for e in trainer.state.log_history for k in e if not k.startswith("eval_")}
    assert {
        "loss",
        "grad_norm",
        "reward",
        "reward_std",
        "rewards/correctness_reward_func/mean",
        "train_runtime",
    } <= train_keys


def test_every_completion_is_logged_per_phase(trained: Any) -> None:
    _, run, _, _ = trained
    outputs = events_of(run.dir, "model_output")
    per_phase: dict[str, int] = defaultdict(int)
    for e in outputs:
        per_phase[e["phase"]] += 1
    assert per_phase["train"] == STEPS * BATCH
    assert per_phase["eval"] == (STEPS // EVAL_EVERY) * EVAL_PROMPTS * GENERATIONS
    train_steps = sorted({e["step"] for e in outputs if e["phase"] == "train"})
    assert train_steps == list(range(1, STEPS + 1))
    assert sorted({e["step"] for e in outputs if e["phase"] == "eval"}) == list(
        range(EVAL_EVERY, STEPS + 1, EVAL_EVERY)
    )
    names = {f.__name__ for f in reward_functions.REWARD_FUNCTIONS}
    for e in outputs:
        assert set(e["rewards"]) == names
        assert e["question"] and e["true_answer"] and e["model_output"] is not None
        assert e["length_tokens"] > 0


def test_every_completion_carries_trls_advantage(trained: Any) -> None:
    """Train and eval completions alike: read from the trainer, zero-sum within each group."""
    _, run, _, _ = trained
    outputs = events_of(run.dir, "model_output")
    assert {e["advantage_source"] for e in outputs} == {"trl"}
    groups: dict[tuple[str, int, str], list[float]] = defaultdict(list)
    for e in outputs:
        groups[(e["phase"], e["step"], e["question"])].append(e["advantage"])
    assert {phase for phase, _, _ in groups} == {"train", "eval"}
    for key, values in groups.items():
        assert len(values) % GENERATIONS == 0 and abs(sum(values)) < 1e-4, key


def test_rewards_equal_what_the_functions_returned(trained: Any) -> None:
    _, run, recorder, _ = trained
    returned: dict[str, list[float]] = defaultdict(list)
    for name, values in recorder.calls:
        returned[name].extend(values)
    outputs = events_of(run.dir, "model_output")
    for name, values in returned.items():
        logged = [e["rewards"][name] for e in outputs]
        assert logged == pytest.approx(values), name


def test_reward_means_equal_trl(trained: Any) -> None:
    trainer, run, _, _ = trained
    outputs = events_of(run.dir, "model_output")
    for entry in trainer.state.log_history:
        if "rewards/correctness_reward_func/mean" not in entry:
            continue
        step = entry["step"]
        rows = [e for e in outputs if e["phase"] == "train" and e["step"] == step]
        for func in reward_functions.REWARD_FUNCTIONS:
            mean = sum(e["rewards"][func.__name__] for e in rows) / len(rows)
            assert mean == pytest.approx(entry[f"rewards/{func.__name__}/mean"], abs=1e-6), (
                step,
                func.__name__,
            )
        total = sum(e["total_reward"] for e in rows) / len(rows)
        assert total == pytest.approx(entry["reward"], abs=1e-5)
    eval_entries = [e for e in trainer.state.log_history if "eval_reward" in e]
    assert len(eval_entries) == STEPS // EVAL_EVERY
    for entry in eval_entries:
        rows = [e for e in outputs if e["phase"] == "eval" and e["step"] == entry["step"]]
        mean = sum(e["rewards"]["correctness_reward_func"] for e in rows) / len(rows)
        assert mean == pytest.approx(entry["eval_rewards/correctness_reward_func/mean"], abs=1e-6)


def test_accuracy_is_exact(trained: Any) -> None:
    _, run, _, _ = trained
    outputs = [e for e in events_of(run.dir, "model_output") if e["phase"] == "train"]
    correct = sum(1 for e in outputs if e["correct"])
    # the example correctness reward pays for exactly the samples gemmalog marks correct
    assert all(e["correct"] == (e["rewards"]["correctness_reward_func"] > 0) for e in outputs)
    end = events_of(run.dir, "run_end")[0]
    assert end["final_stats"]["correct_answers"] == correct
    assert end["final_stats"]["total_answers"] == len(outputs)
    assert end["final_stats"]["accuracy"] == pytest.approx(100.0 * correct / len(outputs))
    assert end["final_stats"]["training_complete"] is True
    progress = [
        e
        for e in events_of(run.dir, "metrics")
        if e["phase"] == "progress" and "accuracy" in e["metrics"]
    ]
    assert [p["step"] for p in progress] == list(range(1, STEPS + 1))
    assert progress[-1]["metrics"]["correct_answers"] == correct
    con = gemmalog.connect(run.dir)
    view = con.execute(
        "SELECT sum(correct), sum(total) FROM accuracy WHERE phase = 'train'"
    ).fetchone()
    assert view == (correct, len(outputs))


def test_run_start_and_resources(trained: Any) -> None:
    trainer, run, _, _ = trained
    starts = events_of(run.dir, "run_start")
    training = [e for e in starts if e.get("training_args")]
    assert len(training) == 1
    info = training[0]
    assert info["num_parameters"] == sum(p.numel() for p in trainer.model.parameters())
    assert info["dataset_size"] == 32
    assert info["training_args"]["max_steps"] == STEPS
    assert "tiny-gemma" in info["model_name"]
    system = events_of(run.dir, "system")
    assert system and all(e["cpu_rss_mb"] > 0 for e in system)
    assert sorted(e["step"] for e in system if e.get("step")) == [
        2,
        4,
        STEPS,
    ]  # logging_frequency 2, + final
    gen = [e for e in events_of(run.dir, "generation_metrics") if e["phase"] == "train"]
    assert [e["step"] for e in gen] == [2, 4]
    for e in gen:
        texts = [
            o["model_output"]
            for o in events_of(run.dir, "model_output")
            if o["phase"] == "train" and o["step"] == e["step"]
        ]
        assert e["count"] == len(texts) == BATCH
        assert e["mean_length_chars"] == pytest.approx(sum(map(len, texts)) / len(texts))
        assert 0 <= e["format_adherence"] <= 1 and e["truncation_rate"] is not None


def test_csv_has_the_same_rows(trained: Any) -> None:
    _, run, _, _ = trained
    path = run.dir / "logs" / "model_outputs.csv"
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    outputs = events_of(run.dir, "model_output")
    assert len(rows) == len(outputs)
    for row, event in zip(rows, outputs, strict=True):
        assert row["question"] == event["question"]
        assert int(row["step"]) == event["step"]


def _scalars(directory: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out: dict[str, list[tuple[int, float]]] = {}
    for events_file in directory.rglob("events.out.tfevents.*"):
        acc = EventAccumulator(str(events_file.parent), size_guidance={"scalars": 0})
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            out.setdefault(tag, []).extend((s.step, s.value) for s in acc.Scalars(tag))
    return out


def test_tensorboard_matches_transformers_callback(trained: Any) -> None:
    _, run, _, hf_dir = trained
    theirs = _scalars(hf_dir)
    ours = _scalars(run.dir / "logs" / "tensorboard")
    assert theirs, "transformers wrote no scalars"
    for tag, points in theirs.items():
        assert tag in ours, tag
        mine = dict(ours[tag])
        for step, value in points:
            assert step in mine, (tag, step)
            assert _equal(mine[step], value), (tag, step)


def test_gradient_accumulation_maps_steps(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    trainer, run, _ = _train(tmp_path, monkeypatch, "accum", gradient_accumulation=2, steps=2)
    outputs = events_of(run.dir, "model_output")
    assert sorted({e["step"] for e in outputs}) == [1, 2]
    # a generation batch spans both micro-batches: its advantages are read after the first
    assert {e["advantage_source"] for e in outputs} == {"trl"}
    for entry in trainer.state.log_history:
        if "rewards/correctness_reward_func/mean" not in entry:
            continue
        rows = [e for e in outputs if e["step"] == entry["step"]]
        assert len(rows) == BATCH * 2
        mean = sum(e["rewards"]["int_reward_func"] for e in rows) / len(rows)
        assert mean == pytest.approx(entry["rewards/int_reward_func/mean"], abs=1e-6)
    assert not [e for e in read_events(run.dir) if e.get("level") == "error"]
    assert os.path.exists(run.dir / "run.json")


def test_two_partials_of_one_reward_function(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """TRL names both partials after the function; gemmalog keeps one row per completion
    and records the second one's values as ``<name>_2``."""
    import functools

    correctness = reward_functions.correctness_reward_func
    funcs = [
        functools.partial(correctness),
        functools.partial(correctness),
        reward_functions.xmlcount_reward_func,
    ]
    monkeypatch.setattr(reward_functions, "REWARD_FUNCTIONS", funcs)
    args = train_grpo_gemma.build_arg_parser().parse_args(
        ["--root", str(tmp_path / "runs"), "--run-name", "partials", "--steps", "2"]
    )
    trainer, run = train_grpo_gemma.train(args)
    outputs = events_of(run.dir, "model_output")
    assert sorted(e["step"] for e in outputs) == [1] * BATCH + [2] * BATCH
    for e in outputs:
        assert set(e["rewards"]) == {
            "correctness_reward_func",
            "correctness_reward_func_2",
            "xmlcount_reward_func",
        }
        assert e["rewards"]["correctness_reward_func"] == e["rewards"]["correctness_reward_func_2"]
    for entry in trainer.state.log_history:
        if "rewards/correctness_reward_func/mean" in entry:
            rows = [e for e in outputs if e["step"] == entry["step"]]
            mean = sum(e["rewards"]["correctness_reward_func"] for e in rows) / len(rows)
            assert mean == pytest.approx(entry["rewards/correctness_reward_func/mean"], abs=1e-6)
    end = events_of(run.dir, "run_end")[0]["final_stats"]
    assert end["total_answers"] == 2 * BATCH
    assert end["correct_answers"] == sum(1 for e in outputs if e["correct"])
