"""TensorBoard files read back with TensorBoard's own EventAccumulator: tags, steps and values."""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import pytest
from tensorboard.backend.event_processing import event_accumulator as ea

import gemmalog
from gemmalog import running
from gemmalog.sinks.tensorboard import TensorBoardSink
from gemmalog.sinks.tensorboard.histogram import histogram_parts
from gemmalog.sinks.tensorboard.tags import metric_tag

CONFIG = """\
version: 1
loggers:
  logging.training: {handlers: [tensorboard], propagate: false}
  logging.model: {handlers: [tensorboard], propagate: false}
  logging.reward: {handlers: [tensorboard], propagate: false}
  logging.metrics: {handlers: [tensorboard], propagate: false}
  logging.system: {handlers: [tensorboard], propagate: false}
handlers:
  tensorboard:
    class: logging.custom.TensorBoardHandler
    log_dir: logs/tensorboard
    flush_secs: 30
    max_queue: 100
    sampling_ratio: RATIO
"""


def start(tmp_path: Path, root: Path, ratio: float = 0.5) -> Path:
    path = tmp_path / "tb.yaml"
    path.write_text(CONFIG.replace("RATIO", str(ratio)))
    return gemmalog.initialize(path, root=root).dir / "logs" / "tensorboard"


def accumulate(log_dir: Path) -> ea.EventAccumulator:
    acc = ea.EventAccumulator(
        str(log_dir), size_guidance={ea.SCALARS: 0, ea.HISTOGRAMS: 0, ea.TENSORS: 0}
    )
    acc.Reload()
    return acc


def scalars(acc: ea.EventAccumulator, tag: str) -> list[tuple[int, float]]:
    return [(s.step, s.value) for s in acc.Scalars(tag)]


def test_metric_scalars_use_transformers_tags(tmp_path: Path, root: Path) -> None:
    log_dir = start(tmp_path, root)
    for step in (1, 2, 3):
        gemmalog.log_training_progress(
            step,
            {
                "loss": 1.0 / step,
                "rewards/correctness_reward_func/mean": step * 0.5,
                "learning_rate": 1e-5,
            },
        )
    gemmalog.log_training_progress(3, {"loss": 0.75, "accuracy": 0.5}, phase="eval")
    gemmalog.log_training_progress(
        4,
        {
            "eval_runtime": 2.5,
            "test_loss": 0.1,
            "training_complete": True,
            "note": "text",
            "bad": float("nan"),
            "big": float("inf"),
            "none": None,
        },
    )
    gemmalog.shutdown()
    acc = accumulate(log_dir)
    assert scalars(acc, "train/loss") == [(1, 1.0), (2, 0.5), (3, pytest.approx(1 / 3))]
    assert scalars(acc, "train/rewards/correctness_reward_func/mean") == [
        (1, 0.5),
        (2, 1.0),
        (3, 1.5),
    ]
    assert [s for s, _ in scalars(acc, "train/learning_rate")] == [1, 2, 3]
    assert scalars(acc, "eval/loss") == [(3, 0.75)]
    assert scalars(acc, "eval/accuracy") == [(3, 0.5)]
    assert scalars(acc, "eval/runtime") == [(4, 2.5)]
    assert scalars(acc, "test/loss") == [(4, pytest.approx(0.1))]
    assert scalars(acc, "train/training_complete") == [(4, 1.0)]
    [(step, nan)] = scalars(acc, "train/bad")
    assert step == 4 and math.isnan(nan)
    assert scalars(acc, "train/big") == [(4, math.inf)]
    tags = acc.Tags()["scalars"]
    assert "train/note" not in tags and "train/none" not in tags


def test_tags_match_transformers_rewrite_logs() -> None:
    logs = {
        "loss": 0.1,
        "eval_loss": 0.2,
        "test_acc": 1.0,
        "rewards/fn/mean": 0.3,
        "completions/mean_length": 12.0,
    }
    expected = {
        "loss": "train/loss",
        "eval_loss": "eval/loss",
        "test_acc": "test/acc",
        "rewards/fn/mean": "train/rewards/fn/mean",
        "completions/mean_length": "train/completions/mean_length",
    }
    assert {k: metric_tag(k, "train") for k in logs} == expected
    assert metric_tag("loss", "eval") == "eval/loss"


@pytest.mark.slow
def test_tags_match_transformers_itself() -> None:
    integration = pytest.importorskip("transformers.integrations.integration_utils")
    logs = {
        "loss": 0.1,
        "eval_loss": 0.2,
        "test_acc": 1.0,
        "rewards/fn/mean": 0.3,
        "grad_norm": 2.0,
    }
    assert {metric_tag(k, "train") for k in logs} == set(integration.rewrite_logs(logs))


def test_generation_reward_summary_and_system_scalars(tmp_path: Path, root: Path) -> None:
    log_dir = start(tmp_path, root)
    outputs = ["one two three", "<reasoning>r</reasoning><answer>4</answer>"]
    gemmalog.log_generation_metrics(5, outputs)
    gemmalog.log_generation_metrics(6, ["a"], phase="eval")
    gemmalog.log_reward_metrics(5, {"correctness": [0.0, 2.0, 2.0], "format": [0.5]})
    gemmalog.log_memory_usage(step=5, tokens_per_second=123.0)
    gemmalog.shutdown()
    acc = accumulate(log_dir)
    assert scalars(acc, "generation/count") == [(5, 2.0)]
    assert scalars(acc, "generation/mean_length_chars") == [(5, sum(map(len, outputs)) / 2)]
    assert scalars(acc, "generation/format_adherence") == [(5, 0.5)]
    assert scalars(acc, "eval_generation/count") == [(6, 1.0)]
    assert scalars(acc, "reward/correctness/mean") == [(5, pytest.approx(4 / 3))]
    assert scalars(acc, "reward/correctness/max") == [(5, 2.0)]
    assert scalars(acc, "reward/correctness/count") == [(5, 3.0)]
    assert scalars(acc, "reward/format/std") == [(5, 0.0)]
    assert scalars(acc, "system/tokens_per_second") == [(5, 123.0)]
    [(step, rss)] = scalars(acc, "system/cpu_rss_mb")
    assert step == 5 and rss > 1
    assert not [
        t
        for t in acc.Tags()["scalars"]
        if t.startswith("system/") and t.split("/")[1] in ("device", "run", "ts", "rank")
    ]


def test_histograms_of_rewards_and_lengths_per_step(tmp_path: Path, root: Path) -> None:
    log_dir = start(tmp_path, root)
    gemmalog.log_reward("correctness", [0.0, 2.0], step=1)
    gemmalog.log_reward("correctness", [2.0, 2.0, float("nan")], step=1)  # same step: one histogram
    gemmalog.log_reward("correctness", [1.0], step=2)
    gemmalog.log_reward("format", [0.5, 0.25], step=2, phase="eval")
    for i, text in enumerate(["abc", "abcdef", "a" * 30]):
        gemmalog.log_model_output("q", "1", text, step=1, rewards={"correctness": float(i)})
    gemmalog.log_model_output("q", "1", "xy", step=2, length_tokens=7)
    gemmalog.shutdown()
    acc = accumulate(log_dir)
    hist = acc.Histograms("reward_values/correctness")
    assert [h.step for h in hist] == [1, 2]
    first = hist[0].histogram_value
    assert (first.num, first.min, first.max, first.sum, first.sum_squares) == (
        4,
        0.0,
        2.0,
        6.0,
        12.0,
    )
    assert sum(first.bucket) == 4 and first.bucket_limit[-1] == 2.0
    assert hist[1].histogram_value.num == 1
    assert acc.Histograms("eval_reward_values/format")[0].histogram_value.sum == 0.75
    lengths = acc.Histograms("completion/length_chars")
    assert [
        (h.step, h.histogram_value.num, h.histogram_value.min, h.histogram_value.max)
        for h in lengths
    ] == [(1, 3, 3, 30), (2, 1, 2, 2)]
    assert [(h.step, h.histogram_value.sum) for h in acc.Histograms("completion/total_reward")] == [
        (1, 3.0)
    ]
    assert [
        (h.step, h.histogram_value.max) for h in acc.Histograms("completion/length_tokens")
    ] == [(2, 7.0)]


def test_text_samples_are_chosen_by_sampling_ratio(tmp_path: Path, root: Path) -> None:
    log_dir = start(tmp_path, root, ratio=0.25)
    for i in range(10):
        gemmalog.log_model_output(
            f"question {i} with ``` fence",
            str(i),
            f"<answer>{i}</answer>",
            step=i,
            rewards={"correctness": 2.0},
            correct=True,
        )
    gemmalog.log_model_output("eval question", "1", "x", step=10, phase="eval")
    gemmalog.shutdown()
    acc = accumulate(log_dir)
    assert acc.SummaryMetadata("samples/train").plugin_data.plugin_name == "text"
    samples = acc.Tensors("samples/train")
    assert [t.step for t in samples] == [0, 4, 8]  # outputs 0, 4 and 8 of 11 at ratio 0.25
    text = samples[1].tensor_proto.string_val[0].decode("utf-8")
    assert "question 4 with ``` fence" in text and "````" in text
    assert "correct: True" in text and "correctness: 2.0" in text
    assert "samples/eval" not in acc.Tags()["tensors"]  # output 10 was not sampled


@pytest.mark.parametrize(
    ("ratio", "count", "chosen"), [(0.0, 20, 0), (1.0, 20, 20), (0.1, 100, 10), (0.3, 10, 3)]
)
def test_sampling_is_deterministic_and_proportional(
    tmp_path: Path, ratio: float, count: int, chosen: int
) -> None:
    with TensorBoardSink(tmp_path / "tb", sampling_ratio=ratio, histograms=False) as sink:
        sink.write(
            [({"kind": "model_output", "step": i, "question": str(i)}, b"") for i in range(count)]
        )
    acc = accumulate(tmp_path / "tb")
    steps = [t.step for t in acc.Tensors("samples/train")] if chosen else []
    assert len(steps) == chosen
    assert "tensors" in acc.Tags() and (chosen > 0) == ("samples/train" in acc.Tags()["tensors"])


def test_options_switch_off_histograms_and_text(tmp_path: Path) -> None:
    with TensorBoardSink(
        tmp_path / "tb", histograms=False, text_samples=False, sampling_ratio=1.0
    ) as sink:
        sink.write(
            [
                ({"kind": "model_output", "step": 1, "length_chars": 3}, b""),
                ({"kind": "reward", "step": 1, "reward_fn": "f", "values": [1.0]}, b""),
                ({"kind": "metrics", "step": 1, "metrics": {"loss": 1.0}}, b""),
            ]
        )
    tags = accumulate(tmp_path / "tb").Tags()
    assert tags["histograms"] == [] and tags["tensors"] == [] and tags["scalars"] == ["train/loss"]


def test_bad_values_never_raise_and_steps_carry_over(tmp_path: Path) -> None:
    events: list[dict[str, Any]] = [
        {"kind": "metrics", "step": 7, "metrics": {"loss": 1.0}},
        {"kind": "metrics", "metrics": {"loss": 2.0}},  # no step: the last one seen
        {"kind": "metrics", "step": "x", "metrics": "not a mapping"},
        {
            "kind": "reward_summary",
            "step": 8,
            "stats": {"f": "odd", "g": {"mean": None, "count": 0}},
        },
        {"kind": "reward", "step": 8, "reward_fn": "f", "values": ["a", None, "NaN", 1]},
        {"kind": "reward", "step": 8, "reward_fn": "g", "values": "nope"},
        {
            "kind": "model_output",
            "step": 8,
            "question": None,
            "rewards": [1, 2],
            "length_chars": "long",
        },
        {"kind": "generation_metrics", "step": 8, "count": 2, "weird": [1]},
        {"kind": "unknown_kind", "step": 9},
        {"no kind": True},
    ]
    with TensorBoardSink(tmp_path / "tb", sampling_ratio=1.0) as sink:
        sink.write([(e, b"") for e in events])
    acc = accumulate(tmp_path / "tb")
    assert scalars(acc, "train/loss") == [(7, 1.0), (7, 2.0)]
    assert scalars(acc, "reward/g/count") == [(8, 0.0)]
    assert [h.histogram_value.num for h in acc.Histograms("reward_values/f")] == [1]
    assert scalars(acc, "generation/count") == [(8, 2.0)]
    assert "generation/weird" not in acc.Tags()["scalars"]


def test_histogram_buckets() -> None:
    values = [float(v) for v in range(100)]
    lo, hi, count, _sum, _squares, limits, counts = histogram_parts(values)
    assert (lo, hi, count) == (0.0, 99.0, 100)
    assert len(counts) == 30 and sum(counts) == 100 and limits[-1] == 99.0
    assert limits == sorted(limits)
    single = histogram_parts([3.0, 3.0])
    assert single[5:] == ([3.0], [2.0])


def test_seed_config_writes_tensorboard_without_torch_or_tensorflow(
    tmp_path: Path, root: Path
) -> None:
    config = Path(__file__).resolve().parents[1] / "configs" / "gemma_logging.yaml"
    run = gemmalog.initialize(config, root=root)
    pipeline = running()
    assert pipeline is not None
    sink = pipeline.router.sinks["tensorboard"]
    assert isinstance(sink, TensorBoardSink) and sink.writer.max_pending == 100
    gemmalog.log_training_progress(1, {"loss": 0.5})
    gemmalog.log_reward("correctness", [1.0, 0.0], step=1)
    gemmalog.log_model_output("q", "1", "<answer>1</answer>", step=1)
    gemmalog.get_system_logger().info(
        "system events are not routed to tensorboard in the seed file"
    )
    gemmalog.shutdown()
    acc = accumulate(run.dir / "logs" / "tensorboard")
    assert scalars(acc, "train/loss") == [(1, 0.5)]
    assert acc.Histograms("reward_values/correctness")[0].histogram_value.num == 2
    assert [t.step for t in acc.Tensors("samples/train")] == [1]
    assert "tensorflow" not in sys.modules and "tensorboardX" not in sys.modules


def test_a_resumed_segment_starts_with_a_session_log_start(tmp_path: Path) -> None:
    """Segment n > 0 writes one SessionLog START at the first step it logs (TensorBoard then
    drops the earlier segments' points from that step on); a first segment writes none."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
    from tensorboard.compat.proto import event_pb2

    def starts(log_dir: Path, segment: int | None) -> list[int]:
        extra = {} if segment is None else {"segment": segment}
        batch = [({"kind": "log", "step": 1, **extra}, b"")] + [
            ({"kind": "metrics", "step": s, "metrics": {"loss": 1.0}, **extra}, b"")
            for s in (0, 7, 8)
        ]
        with TensorBoardSink(log_dir) as sink:
            sink.write(batch)
        (path,) = log_dir.glob("events.out.tfevents.*")
        return [
            e.step
            for e in EventFileLoader(str(path)).Load()
            if e.HasField("session_log") and e.session_log.status == event_pb2.SessionLog.START
        ]

    assert starts(tmp_path / "resumed", 2) == [7]
    assert starts(tmp_path / "first", 0) == []
    assert starts(tmp_path / "plain", None) == []
