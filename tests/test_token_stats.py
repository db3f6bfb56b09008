"""Per-completion token statistics (``log_token_stats``), read back from real GRPOTrainer runs.

The matching of a loss pass's rows to completions is tested on its own first (no torch).
Then four runs of the tiny offline Gemma:

- ``on`` / ``off``: the same training (two steps of two micro-batches, an evaluation) with
  the option set in the YAML and without it. ``on`` has one ``token_stats`` event per
  completion, train and eval, equal to the model recomputed in the test with the weights of
  the completion's step; ``off`` has none and no hook; the two trainings are bit-identical
  (weights, every ``log_history`` value but timings, TensorBoard tags, every completion);
- ``iterations``: ``num_iterations=2`` and a generation covering two optimizer steps: a
  completion's statistics are its first loss pass's (half under step 1's weights, half
  under step 2's), none of the second iteration's;
- ``collisions``: a rollout function giving one completion to several prompts: told apart
  through the other completions of each prompt's group, or not logged at all.
"""

from __future__ import annotations

import functools
import random
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gemmalog.deferred.token_stats import match, prompt_groups

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SEED_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "gemma_logging.yaml"

# -- matching, without torch --------------------------------------------------------------


def test_match_finds_each_completion_in_a_shuffled_pass() -> None:
    completions = [(1, 2), (3,), (4, 5, 6), (7,)]
    groups = [0, 0, 1, 1]
    prompts = [(9,), (9,), (8,), (8,)]
    order = [2, 0, 3, 1]
    rows = [(prompts[i], completions[i]) for i in order]
    assert match(completions, groups, rows, whole=True) == [1, 3, 0, 2]


def test_match_tells_a_shared_completion_apart_by_its_group() -> None:
    shared = (5, 5, 1)
    completions = [shared, (2,), shared, (3,)]
    groups = [0, 0, 1, 1]
    prompts = [(10,), (10,), (20,), (20,)]
    rows = [(prompts[i], completions[i]) for i in (2, 3, 0, 1)]
    got = match(completions, groups, rows, whole=True)
    assert got == [2, 3, 0, 1]
    assert [rows[r][0] for r in got if r is not None] == prompts


def test_match_leaves_a_collapsed_batch_unknown() -> None:
    """Every prompt got the same completion: which row is whose cannot be known."""
    completions = [(7, 1)] * 4
    groups = [0, 0, 1, 1]
    rows = [((10,), (7, 1)), ((20,), (7, 1)), ((20,), (7, 1)), ((10,), (7, 1))]
    assert match(completions, groups, rows, whole=True) == [None] * 4


def test_match_of_a_partial_pass_trusts_only_unique_completions() -> None:
    """Rows missing (a pass cut short): only a completion no other one shares proves its
    group's prompt. Here sample 1's row is missing; the one row with its tokens is sample
    3's (prompt 20): in a whole pass that would make 20 group 0's prompt, here it proves
    nothing, and group 1 has no completion of its own among the rows."""
    completions = [(1,), (5,), (2,), (5,)]
    groups = [0, 0, 1, 1]
    rows = [((20,), (5,)), ((10,), (1,))]
    assert match(completions, groups, rows, whole=False) == [1, None, None, None]


def test_match_conflicting_prompts_in_a_group_trust_none() -> None:
    """Equal prompts that were tokenized two ways (a rollout function's doing): no anchor."""
    completions = [(1,), (2,), (3,)]
    groups = [0, 0, 0]
    rows = [((10,), (1,)), ((11,), (2,)), ((10,), (3,))]
    assert match(completions, groups, rows, whole=True) == [None, None, None]


def test_prompt_groups() -> None:
    p = [{"role": "user", "content": "a"}]
    q = [{"role": "user", "content": "b"}]
    assert prompt_groups([p, list(p), q, q, p], 5) == [0, 0, 1, 1, 0]
    assert prompt_groups(None, 3) == [0, 1, 2]
    assert prompt_groups(["x"], 2) == [0, 1]  # not one prompt a completion: no groups


@st.composite
def _batches(draw: Any) -> tuple[list[tuple[int, ...]], list[int], list[tuple[int, ...]]]:
    """Completions of a few prompts, drawn from a small pool so that they collide."""
    prompts = draw(st.integers(1, 4))
    per = draw(st.integers(1, 4))
    pool = draw(st.lists(st.tuples(st.integers(1, 3)), min_size=1, max_size=4))
    completions = [draw(st.sampled_from(pool)) for _ in range(prompts * per)]
    groups = [i // per for i in range(prompts * per)]
    ids = [(100 + g,) for g in groups]
    return completions, groups, ids


@settings(max_examples=300, deadline=None)
@given(_batches(), st.randoms(use_true_random=False), st.floats(0.0, 1.0))
def test_match_never_gives_a_completion_another_sequence(
    batch: tuple[list[tuple[int, ...]], list[int], list[tuple[int, ...]]],
    rng: random.Random,
    keep: float,
) -> None:
    """Whatever the collisions and whichever rows are missing, a row given to a completion
    is the same sequence (prompt and completion) as the completion's own; in a whole pass
    where no two prompts share a completion, every completion is found."""
    completions, groups, prompt_ids = batch
    order = list(range(len(completions)))
    rng.shuffle(order)
    whole = keep >= 0.5
    if not whole:
        order = order[: int(len(order) * keep)]
    rows = [(prompt_ids[i], completions[i]) for i in order]
    got = match(completions, groups, rows, whole)
    used = [r for r in got if r is not None]
    assert len(used) == len(set(used))  # a row serves one completion
    for i, r in enumerate(got):
        if r is not None:
            assert rows[r] == (prompt_ids[i], completions[i])
    if whole and len({(p, c) for p, c in zip(prompt_ids, completions, strict=True)}) == len(
        set(completions)
    ):
        # no completion is shared by two prompts: every one is found
        assert None not in got


# -- real GRPOTrainer runs ------------------------------------------------------------------

TEMPERATURE = 0.7  # the statistics are TRL's, at its sampling temperature
TIMINGS = ("runtime", "per_second", "step_time")


class Seen:
    """What TRL gave the reward functions, per call: phase, step, prompts, completion ids."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int, list[Any], list[list[int]]]] = []
        self.trainer: Any = None

    def wrap(self, func: Any) -> Any:
        @functools.wraps(func)
        def inner(*args: Any, **kwargs: Any) -> Any:
            training = self.trainer.model.training
            step = kwargs["trainer_state"].global_step + (1 if training else 0)
            ids = [list(c) for c in kwargs["completion_ids"]]
            self.calls.append(("train" if training else "eval", step, kwargs["prompts"], ids))
            return func(*args, **kwargs)

        return inner

    def samples(self) -> dict[tuple[str, int, int], tuple[Any, list[int]]]:
        """(phase, step, sample) -> (prompt, completion ids), numbered as gemmalog numbers."""
        out: dict[tuple[str, int, int], tuple[Any, list[int]]] = {}
        for phase, step, prompts, ids in self.calls:
            first = sum(1 for key in out if key[:2] == (phase, step))
            for i, (prompt, completion) in enumerate(zip(prompts, ids, strict=True)):
                out[(phase, step, first + i)] = (prompt, completion)
        return out


class Watch:
    """A TrainerCallback of the test: the weights each step starts from, the model's hooks."""

    def __init__(self) -> None:
        from transformers import TrainerCallback

        watch = self

        class _Callback(TrainerCallback):  # type: ignore[misc]
            def on_step_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> Any:
                model = kw["model"]
                watch.weights[state.global_step + 1] = {
                    k: v.detach().clone() for k, v in model.state_dict().items()
                }
                watch.hooks.append(len(model._forward_hooks))
                return control

        self.callback = _Callback()
        self.weights: dict[int, dict[str, Any]] = {}
        self.hooks: list[int] = []


def _train(
    tmp: Path,
    name: str,
    *,
    token_stats: bool | None,
    config: dict[str, Any],
    yaml_option: bool = False,
    rollout: Any = None,
    eval_prompts: int = 0,
) -> dict[str, Any]:
    """One GRPO run of the tiny Gemma; what the tests read back."""
    sys.path.insert(0, str(EXAMPLES))
    import gsm_data
    import reward_functions
    import tiny_gemma
    import train_grpo_gemma
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer  # type: ignore[attr-defined]

    import gemmalog
    from gemmalog.integrations.trl import GemmalogCallback, RewardCollector

    yaml = SEED_CONFIG.read_text(encoding="utf-8")
    if yaml_option:
        yaml = yaml.replace(
            "  logging_frequency: 5\n", "  logging_frequency: 5\n  log_token_stats: true\n"
        )
        assert "log_token_stats: true" in yaml
    (tmp / "gemmalog.yaml").write_text(yaml, encoding="utf-8")
    run = gemmalog.initialize(tmp / "gemmalog.yaml", root=tmp / "runs", run_name=name)
    path = tiny_gemma.build_tiny_gemma(train_grpo_gemma.DEFAULT_TINY)
    model = AutoModelForCausalLM.from_pretrained(path)
    tokenizer = AutoTokenizer.from_pretrained(path)
    seen, watch = Seen(), Watch()
    options = {} if token_stats is None else {"log_token_stats": token_stats}
    callback = GemmalogCallback(RewardCollector(), **options)
    funcs = [
        seen.wrap(reward_functions.REWARD_FUNCTIONS[0]),
        *reward_functions.REWARD_FUNCTIONS[1:],
    ]
    settings = {
        "output_dir": str(tmp / "trainer"),
        "per_device_train_batch_size": 4,
        "per_device_eval_batch_size": 4,
        "num_generations": 4,
        "max_completion_length": 24,
        "temperature": TEMPERATURE,
        "bf16": False,
        "use_cpu": True,
        "activation_checkpointing": False,
        "logging_steps": 1,
        "report_to": "none",
        "save_strategy": "no",
        "eval_strategy": "steps" if eval_prompts else "no",
        "eval_steps": config.get("max_steps") if eval_prompts else None,
        "seed": 0,
    }
    args = GRPOConfig(**{**settings, **config})
    extra = {"rollout_func": rollout} if rollout is not None else {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TRL_EXPERIMENTAL_SILENCE", "1")
        trainer = GRPOTrainer(
            model=model,
            reward_funcs=callback.wrap(funcs),
            args=args,
            train_dataset=gsm_data.make_dataset(16, seed=3),
            eval_dataset=gsm_data.make_dataset(eval_prompts, seed=4) if eval_prompts else None,
            processing_class=tokenizer,
            callbacks=[callback, watch.callback],
            **extra,
        )
        seen.trainer = trainer
        with run:
            trainer.train()
    gemmalog.shutdown()
    return {
        "trainer": trainer,
        "run": run,
        "seen": seen,
        "watch": watch,
        "callback": callback,
        "tokenizer": tokenizer,
        "path": path,
    }


def _token_events(run: Any) -> dict[tuple[str, int, int], dict[str, Any]]:
    from tests.helpers import events_of

    out: dict[tuple[str, int, int], dict[str, Any]] = {}
    for e in events_of(run.dir, "token_stats"):
        key = (e["phase"], e["step"], e["sample"])
        assert key not in out, f"two token_stats events for {key}"
        out[key] = e
    return out


class Recompute:
    """A completion's statistics from the model itself: one forward of prompt + completion."""

    def __init__(self, path: Path, tokenizer: Any) -> None:
        from transformers import AutoModelForCausalLM

        self.model = AutoModelForCausalLM.from_pretrained(path)
        self.tokenizer = tokenizer

    def prompt_ids(self, prompt: Any) -> list[int]:
        """The prompt's tokens as TRL makes them (grpo_trainer.py ``_tokenize_prompts``)."""
        out = self.tokenizer.apply_chat_template(
            [prompt], add_generation_prompt=True, tokenize=True, return_dict=True
        )
        return list(out["input_ids"][0])

    def __call__(
        self, weights: dict[str, Any], prompt_ids: list[int], completion: list[int]
    ) -> tuple[float, float, float]:
        import torch

        self.model.load_state_dict(weights)
        ids = torch.tensor([prompt_ids + completion])
        with torch.no_grad():
            logits = self.model(input_ids=ids).logits[0, :-1].float() / TEMPERATURE
        logps = logits.log_softmax(-1)[len(prompt_ids) - 1 :]
        token = logps.gather(-1, torch.tensor(completion)[:, None])[:, 0]
        entropy = -(logps.exp() * logps).sum(-1)
        return float(token.mean()), float(token.min()), float(entropy.mean())


TWO_STEPS = {"max_steps": 2, "gradient_accumulation_steps": 2, "learning_rate": 1e-6}


@pytest.fixture(scope="module")
def on_off(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, dict[str, Any]]]:
    pytest.importorskip("trl")
    on = _train(
        tmp_path_factory.mktemp("on"),
        "on",
        token_stats=None,  # from the YAML: metrics.log_token_stats: true
        yaml_option=True,
        config=TWO_STEPS,
        eval_prompts=2,
    )
    off = _train(
        tmp_path_factory.mktemp("off"), "off", token_stats=None, config=TWO_STEPS, eval_prompts=2
    )
    yield {"on": on, "off": off}


@pytest.mark.slow
def test_every_completion_has_its_statistics(on_off: dict[str, dict[str, Any]]) -> None:
    from tests.helpers import events_of

    run = on_off["on"]["run"]
    stats = _token_events(run)
    outputs = {(e["phase"], e["step"], e["sample"]): e for e in events_of(run.dir, "model_output")}
    assert set(stats) == set(outputs)
    assert Counter(k[0] for k in stats) == {"train": 16, "eval": 8}
    for key, e in stats.items():
        assert e["tokens"] == outputs[key]["length_tokens"]
        assert e["logp_min"] <= e["logp_mean"] < 0 < e["entropy_mean"]
        assert e["logger"] == "logging.metrics"
    # ... the token_stats view has them, and joins the completions view one to one
    import gemmalog

    con = gemmalog.connect(run.dir)
    rows = con.sql(
        "SELECT phase, step, sample, tokens, logp_mean, logp_min, entropy_mean, length_tokens "
        "FROM completions JOIN token_stats USING (run, rank, phase, step, sample)"
    ).fetchall()
    assert {(p, s, n): v for p, s, n, *v in rows} == {
        k: [e["tokens"], e["logp_mean"], e["logp_min"], e["entropy_mean"], e["tokens"]]
        for k, e in stats.items()
    }


@pytest.mark.slow
def test_statistics_equal_the_model_recomputed(on_off: dict[str, dict[str, Any]]) -> None:
    """Each completion, scored again by the model with the weights its step started from
    (train: both micro-batches of a step run before its optimizer step; eval: the final
    weights), at TRL's temperature."""
    on = on_off["on"]
    stats = _token_events(on["run"])
    recompute = Recompute(on["path"], on["tokenizer"])
    final = {k: v.detach().clone() for k, v in on["trainer"].model.state_dict().items()}
    weights = {**on["watch"].weights}
    checked = Counter()
    for key, (prompt, completion) in on["seen"].samples().items():
        phase, step, _ = key
        w = weights[step] if phase == "train" else final
        mean, low, entropy = recompute(w, recompute.prompt_ids(prompt), completion)
        e = stats[key]
        assert e["logp_mean"] == pytest.approx(mean, abs=2e-4), key
        assert e["logp_min"] == pytest.approx(low, abs=2e-4), key
        assert e["entropy_mean"] == pytest.approx(entropy, abs=2e-4), key
        checked[phase] += 1
    assert checked == {"train": 16, "eval": 8}


@pytest.mark.slow
def test_eval_entropy_is_trls_entropy_metric(on_off: dict[str, dict[str, Any]]) -> None:
    """TRL's ``entropy`` metric is, per loss pass, the token-weighted mean of the entropies;
    evaluation's ``eval_entropy`` their mean over its batches (one batch a reward call)."""
    on = on_off["on"]
    stats = _token_events(on["run"])
    history = [e for e in on["trainer"].state.log_history if "eval_entropy" in e]
    assert len(history) == 1
    batch = 4
    evals = sorted((k for k in stats if k[0] == "eval"), key=lambda k: k[2])
    means = []
    for start in range(0, len(evals), batch):
        part = [stats[k] for k in evals[start : start + batch]]
        tokens = sum(e["tokens"] for e in part)
        means.append(sum(e["entropy_mean"] * e["tokens"] for e in part) / tokens)
    assert sum(means) / len(means) == pytest.approx(history[0]["eval_entropy"], rel=1e-5)


@pytest.mark.slow
def test_off_changes_nothing(on_off: dict[str, dict[str, Any]]) -> None:
    """Without the option: no hook, no event, NULL columns; with it: the same training, bit
    for bit (weights, log_history, completions), and the same TensorBoard tags."""
    import torch
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    import gemmalog
    from tests.helpers import events_of, read_events

    on, off = on_off["on"], on_off["off"]
    assert off["watch"].hooks == [0, 0] and on["watch"].hooks == [1, 1]
    assert len(on["trainer"].model._forward_hooks) == 0  # removed at the end of training
    assert off["callback"].token_stats is None and on["callback"].token_stats is None
    assert events_of(off["run"].dir, "token_stats") == []
    con = gemmalog.connect(off["run"].dir)
    assert con.sql(
        "SELECT (SELECT count(*) FROM completions), (SELECT count(*) FROM token_stats)"
    ).fetchall() == [(24, 0)]
    # the same training
    a, b = on["trainer"].model.state_dict(), off["trainer"].model.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)

    def values(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{k: v for k, v in e.items() if not any(t in k for t in TIMINGS)} for e in history]

    assert values(on["trainer"].state.log_history) == values(off["trainer"].state.log_history)
    texts = [
        [
            (e["phase"], e["step"], e["sample"], e["model_output"], e["rewards"], e["advantage"])
            for e in events_of(r["run"].dir, "model_output")
        ]
        for r in (on, off)
    ]
    assert texts[0] == texts[1]
    kinds = [Counter(e["kind"] for e in read_events(r["run"].dir)) for r in (on, off)]
    assert kinds[0] - kinds[1] == Counter({"token_stats": 24})
    assert {k: v for k, v in (kinds[1] - kinds[0]).items() if k != "log"} == {}

    def tags(run: Any) -> set[str]:
        acc = EventAccumulator(str(run.dir / "logs" / "tensorboard"), size_guidance={"scalars": 0})
        acc.Reload()
        return {
            kind + ":" + t
            for kind, names in acc.Tags().items()
            if isinstance(names, list)
            for t in names
        }

    assert tags(on["run"]) == tags(off["run"]) and tags(on["run"])


@pytest.fixture(scope="module")
def iterations(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One generation (4 prompts x 4) covering optimizer steps 1-2 (steps_per_generation 4,
    2 micro-batches a step), trained on twice (num_iterations 2: steps 3-4 again), with a
    learning rate that moves the weights visibly between steps."""
    pytest.importorskip("trl")
    return _train(
        tmp_path_factory.mktemp("iterations"),
        "iterations",
        token_stats=True,
        config={
            "max_steps": 4,
            "gradient_accumulation_steps": 2,
            "steps_per_generation": 4,
            "num_iterations": 2,
            "learning_rate": 2e-2,
        },
    )


@pytest.mark.slow
def test_a_completions_first_loss_pass_counts(iterations: dict[str, Any]) -> None:
    stats = _token_events(iterations["run"])
    samples = iterations["seen"].samples()
    assert set(stats) == set(samples) and len(stats) == 16  # one generation, one event each
    recompute = Recompute(iterations["path"], iterations["tokenizer"])
    weights = iterations["watch"].weights
    under: Counter[int] = Counter()
    for key, (prompt, completion) in samples.items():
        ids = recompute.prompt_ids(prompt)
        distance = {
            step: abs(stats[key]["logp_mean"] - recompute(weights[step], ids, completion)[0])
            for step in (1, 2, 3, 4)
        }
        best = min(distance, key=distance.__getitem__)
        assert distance[best] < 2e-4, (key, distance)
        assert sorted(distance.values())[1] > 1e-2, (key, distance)  # the steps differ
        under[best] += 1
    # micro-batches 1-2 of the shuffled batch in step 1, 3-4 in step 2; never a second pass
    assert under == {1: 8, 2: 8}


@pytest.fixture(scope="module")
def collisions(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A rollout function instead of generation (4 prompts x 4 a step). Step 1: each prompt's
    group has two copies of one completion every prompt gets, and two of its own. Step 2:
    every completion of every prompt is the same."""
    pytest.importorskip("trl")
    state: dict[str, Any] = {}

    def rollout(prompts: list[Any], trainer: Any) -> dict[str, Any]:
        tokenizer = trainer.processing_class
        prompt_ids = [
            tokenizer.apply_chat_template(
                p, add_generation_prompt=True, tokenize=True, return_dict=False
            )
            for p in prompts
        ]
        shared = tokenizer("<answer>\n4\n</answer>", add_special_tokens=False)["input_ids"]
        groups = [prompts.index(p) for p in prompts]
        completions = []
        for i, g in enumerate(groups):
            j = sum(1 for h in groups[:i] if h == g)
            if trainer.state.global_step == 0 and j >= 2:
                own = tokenizer(f"<answer>\n{10 * g + j}\n</answer>", add_special_tokens=False)
                completions.append(list(own["input_ids"]))
            else:
                completions.append(list(shared))
        state["shared"] = list(shared)
        return {"prompt_ids": prompt_ids, "completion_ids": completions, "logprobs": None}

    out = _train(
        tmp_path_factory.mktemp("collisions"),
        "collisions",
        token_stats=True,
        config={"max_steps": 2, "per_device_train_batch_size": 16, "learning_rate": 1e-6},
        rollout=rollout,
    )
    out["shared"] = state["shared"]
    return out


@pytest.mark.slow
def test_a_completion_many_prompts_got_is_told_apart_by_its_group(
    collisions: dict[str, Any],
) -> None:
    stats = _token_events(collisions["run"])
    samples = collisions["seen"].samples()
    step1 = {k: v for k, v in samples.items() if k[1] == 1}
    assert len(step1) == 16 and set(stats) == set(step1)  # step 2: none (below)
    recompute = Recompute(collisions["path"], collisions["tokenizer"])
    weights = collisions["watch"].weights[1]
    shared_means = set()
    for key, (prompt, completion) in step1.items():
        mean, low, entropy = recompute(weights, recompute.prompt_ids(prompt), completion)
        assert stats[key]["logp_mean"] == pytest.approx(mean, abs=2e-4), key
        assert stats[key]["logp_min"] == pytest.approx(low, abs=2e-4), key
        assert stats[key]["entropy_mean"] == pytest.approx(entropy, abs=2e-4), key
        if completion == collisions["shared"]:
            shared_means.add(round(stats[key]["logp_mean"], 4))
    assert len(shared_means) == 4  # one shared completion, four prompts: four values


@pytest.mark.slow
def test_a_collapsed_batch_gets_no_statistics(collisions: dict[str, Any]) -> None:
    """Every prompt got the same completion: which row is whose cannot be known, so none is
    logged (rather than one under another prompt)."""
    import gemmalog

    stats = _token_events(collisions["run"])
    assert not [k for k in stats if k[1] == 2]
    con = gemmalog.connect(collisions["run"].dir)
    assert con.sql(
        "SELECT step, count(*), count(logp_mean) FROM completions "
        "LEFT JOIN token_stats USING (run, rank, phase, step, sample) GROUP BY step ORDER BY step"
    ).fetchall() == [(1, 16, 16), (2, 16, 0)]
