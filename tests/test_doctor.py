"""gemmalog doctor: each check finds its pattern planted in a synthetic run, at the right
steps and with evidence; a healthy control run gives no finding at the default thresholds.

The runs are written through the public API (initialize, log_training_progress,
log_model_output, log_generation_metrics, log_memory_usage, shutdown) and read back through
the views, as a real run would be.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner

import gemmalog
from gemmalog.cli import cli
from gemmalog.config.model import DOCTOR_CHECKS, DoctorConfig
from gemmalog.doctor import REGISTRY, Finding, diagnose

STEPS = 30
PROMPTS = 4
GENERATIONS = 4
MAX_TOKENS = 256
WORDS = [f"w{i}" for i in range(400)]


@dataclass
class Plan:
    """How a synthetic run behaves; each hook overrides one aspect from ``start`` on."""

    start: int = 15
    accuracy: Callable[[int], float] = lambda step: 0.2 + 0.4 * step / STEPS
    text: Callable[[random.Random, int, int, int], str] | None = None
    tokens: Callable[[random.Random, int, str], int] | None = None
    rewards: Callable[[random.Random, int, int, bool, str], dict[str, float]] | None = None
    metrics: Callable[[int, dict[str, float]], None] | None = None
    memory: Callable[[int], float] = lambda step: 2000.0 + 3.0 * math.sin(step)
    extra: dict[str, Any] = field(default_factory=dict)


def _text(rng: random.Random, step: int, prompt: int, gen: int) -> str:
    words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(20, 40)))
    return f"<reasoning>\n{words}\n</reasoning>\n<answer>\n{rng.randint(0, 99)}\n</answer>"


def _rewards(
    rng: random.Random, step: int, prompt: int, correct: bool, text: str
) -> dict[str, float]:
    return {
        "correctness_reward_func": 2.0 if correct else 0.0,
        "soft_format_reward_func": 0.5 if rng.random() < 0.6 else 0.0,
        "topic_reward_func": round(rng.random() * 0.5, 3),
    }


def make_run(
    root: Path, name: str, plan: Plan | None = None, config: Path | None = None, **settings: Any
) -> Path:
    """Write a 30-step GRPO-like run: 4 prompt groups of 4 completions a step, TRL's metrics,
    generation statistics and memory; returns the run directory."""
    plan = plan or Plan()
    rng = random.Random(7)
    run = gemmalog.initialize(config, root=root, run_name=name, **settings)
    for step in range(1, STEPS + 1):
        texts, lengths, totals = [], [], []
        zero_groups = 0
        for prompt in range(PROMPTS):
            group = []
            for gen in range(GENERATIONS):
                text = (plan.text or _text)(rng, step, prompt, gen)
                tokens = plan.tokens(rng, step, text) if plan.tokens else len(text.split()) + 12
                correct = rng.random() < plan.accuracy(step)
                rewards = (plan.rewards or _rewards)(rng, step, prompt, correct, text)
                numbers = [v for v in rewards.values() if not math.isnan(v)]
                gemmalog.log_model_output(
                    f"question {prompt} of step {step}",
                    "42",
                    text,
                    rewards=rewards,
                    correct=correct,
                    step=step,
                    sample=prompt * GENERATIONS + gen,
                    total_reward=sum(numbers),
                    length_tokens=tokens,
                )
                texts.append(text)
                lengths.append(tokens)
                group.append(sum(numbers))
            zero_groups += max(group) - min(group) <= 1e-8
            totals += group
        metrics = {
            "loss": rng.gauss(0.0, 0.02),
            "grad_norm": 0.5 + abs(rng.gauss(0.0, 0.05)),
            "kl": 0.01 + 0.0005 * step + rng.gauss(0.0, 0.001),
            "entropy": 1.5 - 0.005 * step + rng.gauss(0.0, 0.02),
            "reward": sum(totals) / len(totals),
            "frac_reward_zero_std": zero_groups / PROMPTS,
            "completions/clipped_ratio": sum(n >= MAX_TOKENS for n in lengths) / len(lengths),
            "completions/mean_length": sum(lengths) / len(lengths),
            "step_time": 1.0 + rng.gauss(0.0, 0.03),
        }
        if plan.metrics:
            plan.metrics(step, metrics)
        gemmalog.log_training_progress(step, metrics)
        gemmalog.log_generation_metrics(step, texts, token_lengths=lengths, max_tokens=MAX_TOKENS)
        gemmalog.log_memory_usage(step=step, cpu_rss_mb=plan.memory(step))
    gemmalog.shutdown()
    return run.dir


#: A step or a range of steps named in a finding's message.
STEP_RANGE = re.compile(r"\bsteps? (\d+)(?:–(\d+))?")


def assert_text_agrees_with_steps(f: Finding) -> None:
    """Every step range a message names lies among the finding's ``steps`` (the ones the live
    page links to), or wholly before them (a baseline window it compares with)."""
    if not f.steps:
        return
    low, high = min(f.steps), max(f.steps)
    named = [(int(m[1]), int(m[2] or m[1])) for m in STEP_RANGE.finditer(f.message)]
    for a, b in named:
        assert b < low or low <= a <= b <= high, (f.check, f.steps, f.message)


def only(findings: list[Finding], check: str) -> Finding:
    found = [f for f in findings if f.check == check]
    assert len(found) == 1, [(f.check, f.message) for f in findings]
    for f in findings:
        assert_text_agrees_with_steps(f)
    return found[0]


@pytest.fixture(scope="module")
def module_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("doctor")


@pytest.fixture(scope="module")
def control(module_root: Path) -> Path:
    return make_run(module_root, "control")


def test_control_run_has_no_finding(control: Path) -> None:
    assert diagnose(control) == []


def test_every_declared_check_is_registered() -> None:
    assert set(REGISTRY) == set(DOCTOR_CHECKS)


# -- reward hacking ---------------------------------------------------------------------


def test_reward_hacking(root: Path) -> None:
    hack = "ANSWER ANSWER ANSWER"

    def text(rng: random.Random, step: int, prompt: int, gen: int) -> str:
        share = min(1.0, max(0.0, (step - 14) / 6))
        return hack if rng.random() < share else _text(rng, step, prompt, gen)

    def rewards(rng: random.Random, step: int, p: int, correct: bool, t: str) -> dict[str, float]:
        out = _rewards(rng, step, p, correct, t)
        out["keyword_reward_func"] = 3.0 if hack in t else 0.0
        return out

    plan = Plan(accuracy=lambda step: 0.25, text=text, rewards=rewards)
    f = only(diagnose(make_run(root, "hack", plan)), "reward_hacking")
    assert 15 <= f.steps[0] <= 20 and f.steps[-1] == STEPS
    assert f.values["reward_rise_sd"] >= 0.5 and f.values["accuracy_change"] <= 0.05
    assert f.values["reward"][STEPS] > f.values["reward"][1] + 2
    assert f.examples and all(e["text"] == hack for e in f.examples)
    assert all(not e.get("correct") for e in f.examples)


def test_format_saturated(root: Path) -> None:
    def rewards(rng: random.Random, step: int, p: int, correct: bool, t: str) -> dict[str, float]:
        out = _rewards(rng, step, p, correct, t)
        out["soft_format_reward_func"] = 0.5 if step >= 12 or rng.random() < 0.3 else 0.0
        return out

    plan = Plan(accuracy=lambda step: 0.02, rewards=rewards)
    f = only(diagnose(make_run(root, "format", plan)), "format_saturated")
    assert list(f.values["reward_fns"]) == ["soft_format_reward_func"]
    assert 12 <= f.steps[0] <= 14 and f.steps[-1] == STEPS
    assert f.values["saturation"]["soft_format_reward_func"][STEPS] == 1.0
    assert f.examples and all(e["rewards"]["soft_format_reward_func"] == 0.5 for e in f.examples)


def test_format_saturated_from_inside_the_last_window(root: Path) -> None:
    """The demo's case: saturation starts inside the last window, whose mean the message
    states; the steps flagged include that whole window (they were 18–20 for 16–20)."""

    def rewards(rng: random.Random, step: int, p: int, correct: bool, t: str) -> dict[str, float]:
        out = _rewards(rng, step, p, correct, t)
        paid = step >= 25 or rng.random() < 0.75
        out["soft_format_reward_func"] = 0.5 if paid else 0.0
        return out

    plan = Plan(accuracy=lambda step: 0.0, rewards=rewards)
    f = only(diagnose(make_run(root, "format-late", plan)), "format_saturated")
    assert "to the completions of steps 23–30 " in f.message
    assert f.steps == list(range(23, STEPS + 1))


def test_reward_dominance(root: Path) -> None:
    def rewards(rng: random.Random, step: int, p: int, correct: bool, t: str) -> dict[str, float]:
        return {**_rewards(rng, step, p, correct, t), "length_bonus_func": 10.0 + rng.random()}

    f = only(diagnose(make_run(root, "dominance", Plan(rewards=rewards))), "reward_dominance")
    assert f.values["reward_fn"] == "length_bonus_func"
    assert f.values["shares"]["length_bonus_func"] > 0.8
    assert f.steps[-1] == STEPS


def test_reward_none_and_missing(root: Path) -> None:
    def rewards(rng: random.Random, step: int, p: int, correct: bool, t: str) -> dict[str, float]:
        out = _rewards(rng, step, p, correct, t)
        if 20 <= step <= 22 and p == 0:
            out["topic_reward_func"] = math.nan  # what TRL makes of a None
        if step == 25 and p == 1:
            del out["soft_format_reward_func"]
        return out

    found = [
        f
        for f in diagnose(make_run(root, "none", Plan(rewards=rewards)))
        if f.check == "reward_none"
    ]
    by_fn = {f.values["reward_fn"]: f for f in found}
    assert by_fn["topic_reward_func"].steps == [20, 21, 22]
    assert by_fn["topic_reward_func"].values["none"] == 3 * GENERATIONS
    assert by_fn["soft_format_reward_func"].steps == [25]
    assert by_fn["soft_format_reward_func"].values["missing"] == GENERATIONS
    assert len(by_fn["topic_reward_func"].examples) == 3


# -- collapse ---------------------------------------------------------------------------


def test_entropy_collapse(root: Path) -> None:
    def metrics(step: int, m: dict[str, float]) -> None:
        if step >= 18:
            m["entropy"] = 0.02

    f = only(diagnose(make_run(root, "entropy", Plan(metrics=metrics))), "entropy_collapse")
    assert f.steps == list(range(18, STEPS + 1))
    assert f.values["last"] < 0.05 and f.values["first"] > 1


def test_diversity_collapse(root: Path) -> None:
    def text(rng: random.Random, step: int, prompt: int, gen: int) -> str:
        if step < 15:
            return _text(rng, step, prompt, gen)
        return (
            "<reasoning>\n" + "add the numbers " * 8 + f"\n</reasoning>\n<answer>\n{gen}\n</answer>"
        )

    f = only(diagnose(make_run(root, "diversity", Plan(text=text))), "diversity_collapse")
    assert 15 <= f.steps[0] <= 17 and f.steps[-1] == STEPS
    assert f.values["distinct_2"][STEPS] < 0.2 < f.values["distinct_2"][1]
    assert f.examples and "add the numbers" in f.examples[0]["text"]


def test_identical_completions(root: Path) -> None:
    def text(rng: random.Random, step: int, prompt: int, gen: int) -> str:
        if step >= 16:
            return f"<reasoning>\nsame for prompt {prompt} at {step}\n</reasoning>\n<answer>\n4\n</answer>"
        return _text(rng, step, prompt, gen)

    findings = diagnose(make_run(root, "identical", Plan(text=text)))
    f = only(findings, "identical_completions")
    assert f.steps == list(range(16, STEPS + 1))
    assert f.values["duplicate_share"][STEPS] == 1.0
    assert f.examples[0]["count"] == GENERATIONS


# -- length -----------------------------------------------------------------------------


def test_length_clipping(root: Path) -> None:
    def tokens(rng: random.Random, step: int, text: str) -> int:
        return MAX_TOKENS if step >= 15 and rng.random() < 0.9 else 40

    f = only(diagnose(make_run(root, "clipped", Plan(tokens=tokens))), "length_clipping")
    assert 15 <= f.steps[0] <= 16 and f.steps[-1] == STEPS
    assert f.values["completions/clipped_ratio"][STEPS] > 0.6
    assert f.examples and f.examples[0]["step"] >= 15


def test_length_collapse(root: Path) -> None:
    def text(rng: random.Random, step: int, prompt: int, gen: int) -> str:
        return "<answer>4</answer>" if step >= 15 else _text(rng, step, prompt, gen)

    f = only(diagnose(make_run(root, "short", Plan(text=text))), "length_collapse")
    assert f.steps == list(range(15, STEPS + 1))
    assert f.examples and f.examples[0]["text"] == "<answer>4</answer>"


# -- no learning signal -----------------------------------------------------------------


def test_zero_signal(root: Path) -> None:
    def rewards(rng: random.Random, step: int, p: int, correct: bool, t: str) -> dict[str, float]:
        if 10 <= step <= 20:
            return {
                "correctness_reward_func": 0.0,
                "soft_format_reward_func": 0.5,
                "topic_reward_func": 0.1,
            }
        return _rewards(rng, step, p, correct, t)

    f = only(diagnose(make_run(root, "flat", Plan(rewards=rewards))), "zero_signal")
    assert f.steps == list(range(10, 21))
    assert f.values["frac_reward_zero_std"][15] == 1.0
    assert len(f.examples) == 3 and len({e["total_reward"] for e in f.examples}) == 1


def test_zero_signal_without_trl_metric(root: Path) -> None:
    """Without frac_reward_zero_std the share is computed from the completions."""

    def rewards(rng: random.Random, step: int, p: int, correct: bool, t: str) -> dict[str, float]:
        return {"r": 1.0} if step >= 20 else _rewards(rng, step, p, correct, t)

    def metrics(step: int, m: dict[str, float]) -> None:
        del m["frac_reward_zero_std"]

    f = only(
        diagnose(make_run(root, "flat2", Plan(rewards=rewards, metrics=metrics))), "zero_signal"
    )
    assert f.steps == list(range(20, STEPS + 1)) and "completions" in f.values


# -- instability ------------------------------------------------------------------------


def test_metric_outliers(root: Path) -> None:
    def metrics(step: int, m: dict[str, float]) -> None:
        if step == 22:
            m["grad_norm"] = 40.0
        if step == 25:
            m["loss"] = 3.0

    findings = [
        f
        for f in diagnose(make_run(root, "spikes", Plan(metrics=metrics)))
        if f.check == "metric_outliers"
    ]
    by_metric = {f.values["metric"]: f for f in findings}
    assert set(by_metric) == {"grad_norm", "loss"}
    assert by_metric["grad_norm"].steps == [22] and by_metric["loss"].steps == [25]
    assert by_metric["grad_norm"].values["spikes"][22]["value"] == 40.0


def test_non_finite(root: Path) -> None:
    def metrics(step: int, m: dict[str, float]) -> None:
        if step == 17:
            m["loss"] = math.nan
        if step == 18:
            m["grad_norm"] = math.inf

    def rewards(rng: random.Random, step: int, p: int, correct: bool, t: str) -> dict[str, float]:
        out = _rewards(rng, step, p, correct, t)
        if step == 19 and p == 0:
            out["topic_reward_func"] = -math.inf
        return out

    findings = diagnose(make_run(root, "nan", Plan(metrics=metrics, rewards=rewards)))
    f = only(findings, "non_finite")
    assert f.severity == "error" and f.steps == [17, 18, 19]
    assert f.values["train/loss"]["nan"] == 1 and f.values["train/grad_norm"]["steps"] == [18]
    assert f.values["train/topic_reward_func"]["count"] == GENERATIONS


# -- resources and logging ---------------------------------------------------------------


def test_memory_growth(root: Path) -> None:
    plan = Plan(memory=lambda step: 2000.0 + 40.0 * step)
    f = only(diagnose(make_run(root, "leak", plan)), "memory_growth")
    assert f.values["slope_mib_per_step"] == pytest.approx(40.0, rel=0.05)
    assert f.values["memory"] == "resident (CPU)" and f.steps[-1] == STEPS


def test_step_time_drift(root: Path) -> None:
    def metrics(step: int, m: dict[str, float]) -> None:
        if step >= 15:
            m["step_time"] = 2.5

    f = only(diagnose(make_run(root, "slow", Plan(metrics=metrics))), "step_time_drift")
    assert f.severity == "info" and f.steps[0] == 15


def test_dropped_events(root: Path) -> None:
    run = gemmalog.initialize(root=root, run_name="drops", backpressure="drop", queue_size=1)
    for i in range(20_000):
        gemmalog.log_training_progress(i % 10, {"loss": 0.1})
    gemmalog.shutdown()
    drops = orjson.loads((run.dir / "run.json").read_bytes())["drops"]
    assert drops > 0
    f = only(diagnose(run.dir, checks=["dropped_events"]), "dropped_events")
    assert f.values["drops"] == drops


def test_sink_errors_unreadable_lines_and_failure(root: Path) -> None:
    blocker = root / "not-a-directory"
    blocker.write_text("")
    config = root / "broken-sink.yaml"
    config.write_text(
        "version: 1\nhandlers:\n  broken:\n    class: logging.FileHandler\n"
        f"    filename: {blocker}/logs/training.log\n"
        "root:\n  level: INFO\n  handlers: [broken]\n"
    )
    with (
        pytest.raises(ValueError),
        gemmalog.initialize(config, root=root, run_name="broken") as run,
    ):
        gemmalog.log_training_progress(1, {"loss": 0.1})
        raise ValueError("correctness_reward_func needs the dataset's 'answer' column")
    shard = next(run.dir.glob("events.*.jsonl"))
    with open(shard, "ab") as f:
        f.write(b'{"v": 1, "kind": "metr')  # what a kill mid-write leaves
    findings = diagnose(run.dir)
    failed = only(findings, "run_failed")
    assert failed.severity == "error" and "answer' column" in failed.message
    sink = only(findings, "sink_errors")
    assert "broken: NotADirectoryError" in sink.message and set(sink.values["sink_errors"]) == {
        "broken"
    }
    assert only(findings, "unreadable_lines").values["files"] == {str(shard): 1}


# -- configuration, CLI, JSON -----------------------------------------------------------


def test_thresholds_and_severity_come_from_the_run_configuration(root: Path) -> None:
    def metrics(step: int, m: dict[str, float]) -> None:
        m["step_time"] = 1.0 if step < 15 else 1.3

    plan = Plan(metrics=metrics)
    run_dir = make_run(root, "tuned", plan)
    assert diagnose(run_dir) == []  # 1.3x is below the default 1.5x
    config = DoctorConfig(step_time_drift=1.2, checks={"step_time_drift": "error"})
    f = only(diagnose(run_dir, config=config), "step_time_drift")
    assert f.severity == "error"
    yaml_file = root / "doctor.yaml"
    yaml_file.write_text("doctor:\n  step_time_drift: 1.2\n  checks:\n    step_time_drift: off\n")
    assert diagnose(run_dir, config=yaml_file) == []
    # a run logged with a doctor: section is judged by it
    logged_with = root / "logged.yaml"
    logged_with.write_text(
        "doctor:\n  step_time_drift: 1.2\n  checks:\n    step_time_drift: warning\n"
    )
    own = only(diagnose(make_run(root, "own", plan, config=logged_with)), "step_time_drift")
    assert own.severity == "warning" and own.steps[0] == 15


def test_cli_table_json_and_fail_on(root: Path, control: Path) -> None:
    def metrics(step: int, m: dict[str, float]) -> None:
        if step >= 18:
            m["entropy"] = 0.01

    run_dir = make_run(root, "cli", Plan(metrics=metrics))
    runner = CliRunner()
    table = runner.invoke(cli, ["doctor", str(run_dir)])
    assert table.exit_code == 0 and "entropy_collapse" in table.output and "18–30" in table.output
    as_json = runner.invoke(cli, ["doctor", str(run_dir), "--json"])
    data = orjson.loads(as_json.output)
    assert [d["check"] for d in data] == ["entropy_collapse"] and data[0]["steps"][0] == 18
    assert runner.invoke(cli, ["doctor", str(run_dir), "--fail-on", "error"]).exit_code == 3
    assert runner.invoke(cli, ["doctor", str(control), "--fail-on", "warning"]).exit_code == 0
    both = runner.invoke(cli, ["doctor", str(run_dir), str(control), "--json"])
    assert [d["run"] for d in orjson.loads(both.output)] == [run_dir.name]
    bad = runner.invoke(cli, ["doctor", str(run_dir), "--check", "nope"])
    assert bad.exit_code == 1 and "unknown check" in bad.output


def test_report_health_section(root: Path, control: Path) -> None:
    pytest.importorskip("matplotlib")
    from gemmalog.report import build_report

    def metrics(step: int, m: dict[str, float]) -> None:
        if step >= 18:
            m["entropy"] = 0.01

    run_dir = make_run(root, "report", Plan(metrics=metrics))
    html = build_report([run_dir], root / "report.html").read_text(encoding="utf-8")
    health = html[html.index('<section id="health">') : html.index('<section id="runs">')]
    assert "entropy_collapse" in health and "18–30" in health and "sev-error" in health
    assert html.index('<section id="health">') < html.index('<section id="loss">')
    clean = build_report([control], root / "clean.html").read_text(encoding="utf-8")
    assert "every health check passed" in clean


# -- a real GRPOTrainer run ---------------------------------------------------------------


@pytest.mark.slow
def test_grpo_trainer_reward_hack_is_flagged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reward function that pays 3.0 for a fixed string ("<answer>\\n1", an answer starting
    with 1) beside the example functions: in 30 steps GRPO teaches the tiny Gemma to write
    it (about a third of the completions at first, nine in ten at the end) while accuracy
    stays where it was, and the doctor says so."""
    pytest.importorskip("trl")
    from tests import test_integration_trl as trl_run

    reward_functions = trl_run.reward_functions
    hack = "<answer>\n1"

    def leading_one_reward_func(prompts: Any, completions: Any, **kwargs: Any) -> list[float]:
        texts = [reward_functions.completion_text(c) for c in completions]
        return [3.0 if hack in text else 0.0 for text in texts]

    monkeypatch.setattr(
        reward_functions,
        "REWARD_FUNCTIONS",
        [*reward_functions.REWARD_FUNCTIONS, leading_one_reward_func],
    )
    _, run, _ = trl_run._train(
        tmp_path, monkeypatch, "hack", steps=30, learning_rate=1e-3, batch_size=16, dataset_size=64
    )
    con = gemmalog.connect(run.dir)
    share = dict(
        con.execute(
            "SELECT step, avg(contains(model_output, $h)::INTEGER) FROM completions "
            "WHERE phase = 'train' GROUP BY step",
            {"h": hack},
        ).fetchall()
    )
    early = sum(share[s] for s in range(1, 9)) / 8
    late = sum(share[s] for s in range(23, 31)) / 8
    assert late > early + 0.3, (early, late)  # the plant took: the policy learned the string

    f = only(diagnose(run.dir), "reward_hacking")
    assert f.steps[0] <= 15 and f.steps[-1] == 30
    assert f.values["accuracy_change"] <= 0.05 and f.values["reward_rise_sd"] >= 0.5
    assert f.examples and all(hack in e["text"] and not e["correct"] for e in f.examples)


# -- live mode --------------------------------------------------------------------------


def _live_run(
    root: Path,
    name: str,
    metrics: Callable[[int, dict[str, float]], None],
    yaml: str = "",
    run_id: str | None = None,
) -> Path:
    config = root / f"{name}.yaml"
    config.write_text("doctor:\n  live: true\n" + yaml)
    run = gemmalog.initialize(config, root=root, run_name=name, run_id=run_id)
    rng = random.Random(3)
    for step in range(1, STEPS + 1):
        values = {
            "loss": rng.gauss(0.0, 0.02),
            "grad_norm": 0.5 + abs(rng.gauss(0.0, 0.05)),
            "entropy": 1.5 + rng.gauss(0.0, 0.02),
            "frac_reward_zero_std": 0.25 * rng.randint(0, 2),
            "completions/clipped_ratio": 0.1 * rng.random(),
        }
        metrics(step, values)
        gemmalog.log_training_progress(step, values)
    gemmalog.shutdown()
    return run.dir


def test_live_mode_reports_while_the_run_writes(
    root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def metrics(step: int, m: dict[str, float]) -> None:
        if step == 6:
            m["loss"] = math.nan
        if 10 <= step <= 16:
            m["frac_reward_zero_std"] = 1.0
        if step == 14:
            m["grad_norm"] = 30.0
        if step >= 20:
            m["entropy"] = 0.01

    run_dir = _live_run(root, "live", metrics)
    lines = (run_dir / "doctor.live.jsonl").read_bytes().splitlines()
    found = {f["check"]: f for f in map(orjson.loads, lines)}
    assert set(found) == {"non_finite", "zero_signal", "metric_outliers", "entropy_collapse"}
    assert found["non_finite"]["steps"] == [6] and found["non_finite"]["severity"] == "error"
    assert found["zero_signal"]["steps"] == [10, 11, 12, 13, 14]  # reported at the 5th step
    assert found["metric_outliers"]["steps"] == [14]
    assert found["entropy_collapse"]["steps"][-1] >= 20 and all(f["live"] for f in found.values())
    err = capsys.readouterr().err
    assert "gemmalog doctor (live): error zero_signal" in err
    # the batch checks agree on the same run
    batch = {f.check for f in diagnose(run_dir)}
    assert {"non_finite", "zero_signal", "metric_outliers", "entropy_collapse"} <= batch


def test_live_mode_is_quiet_on_a_healthy_run(
    root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = _live_run(root, "live-ok", lambda step, m: None)
    assert not (run_dir / "doctor.live.jsonl").exists()
    assert "gemmalog doctor (live)" not in capsys.readouterr().err


def _spiky(step: int, m: dict[str, float]) -> None:
    if step == 6:
        m["loss"] = math.nan
    if step == 14:
        m["grad_norm"] = 30.0


def test_live_mode_sees_the_metrics_whatever_the_loggers_routes(root: Path) -> None:
    """The live doctor takes every event, as the JSONL does: a training logger routed to
    no handler at all still has its metrics checked."""
    yaml = (
        "loggers:\n  gemmalog.training:\n    level: info\n    handlers: []\n    propagate: false\n"
    )
    run_dir = _live_run(root, "unrouted", _spiky, yaml)
    lines = (run_dir / "doctor.live.jsonl").read_bytes().splitlines()
    found = {f["check"]: f["steps"] for f in map(orjson.loads, lines)}
    assert found == {"non_finite": [6], "metric_outliers": [14]}


def test_a_live_doctor_that_cannot_write_stops_with_one_line_and_the_run_goes_on(
    root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Its own failure, not the run's: one line on stderr, no sink error in run.json, every
    event written."""
    (root / "blocked" / "doctor.live.jsonl").mkdir(parents=True)  # where the file would go
    run_dir = _live_run(root, "blocked", _spiky, run_id="blocked")
    err = capsys.readouterr().err
    assert err.count("gemmalog doctor (live): stopped after an internal error: IsADirectory") == 1
    assert "disabled" not in err
    manifest = orjson.loads((run_dir / "run.json").read_bytes())
    assert manifest["status"] == "completed" and manifest["sink_errors"] == {}
    events = [orjson.loads(line) for line in (run_dir / "events.0.jsonl").read_bytes().splitlines()]
    assert [e["step"] for e in events if e["kind"] == "metrics"] == list(range(1, STEPS + 1))


def test_a_live_doctor_that_cannot_start_is_reported_like_any_sink(
    root: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import gemmalog.sinks.live_doctor

    def cannot_start(*args: Any, **kwargs: Any) -> None:
        raise OSError("no room for the checks")

    monkeypatch.setattr(gemmalog.sinks.live_doctor.LiveDoctorSink, "__init__", cannot_start)
    run_dir = _live_run(root, "unstarted", _spiky)
    assert "sink 'doctor.live' could not start" in capsys.readouterr().err
    manifest = orjson.loads((run_dir / "run.json").read_bytes())
    assert manifest["status"] == "completed"
    assert manifest["sink_errors"]["doctor.live"]["error"] == "OSError: no room for the checks"
    events = [orjson.loads(line) for line in (run_dir / "events.0.jsonl").read_bytes().splitlines()]
    assert [e["step"] for e in events if e["kind"] == "metrics"] == list(range(1, STEPS + 1))
    assert not (run_dir / "doctor.live.jsonl").exists()
