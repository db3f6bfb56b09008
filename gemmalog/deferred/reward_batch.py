"""A reward batch, handed over whole and turned into its events on the listener thread.

When every wrapped reward function has scored a generation batch, the collector
(``gemmalog/integrations/collector.py``) hands the pipeline one :class:`RewardBatch`: the
completions, prompts and dataset columns as TRL passed them, each function's raw values,
what the functions logged through ``log_extra`` / ``log_metric``, the advantages TRL used
(when the trainer had them), the collector's options (:class:`Scoring`) and the
:class:`~gemmalog.deferred.tally.Tally` its answers are counted in. On the listener thread,
:meth:`RewardBatch.events` extracts the answers, judges them and builds one ``model_output``
per sample with all the functions' scores on it, the per-function ``reward`` events, a
``reward_summary`` and (every ``logging_frequency`` steps) ``generation_metrics``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from gemmalog import _event_builders as event_builders
from gemmalog.deferred.answers import answers_match, number, prompt_text
from gemmalog.deferred.grpo import AdvantageSettings, computed_advantages
from gemmalog.deferred.tally import Tally
from gemmalog.notices import say
from gemmalog.processors.expand import ExpandContext
from gemmalog.processors.messages import conversation
from gemmalog.processors.textstats import completion_text, extract_reasoning_and_answer

Extractor = Callable[[str], tuple[str | None, str | None]]
Predicate = Callable[[dict[str, Any]], bool | None]


def _nothing(text: str) -> tuple[str | None, str | None]:
    return None, None


def _reward_value(value: Any) -> float:
    """TRL turns a ``None`` reward into NaN; do the same so the logged value is what TRL used."""
    if value is None:
        return math.nan
    found = number(value)
    return math.nan if found is None else found


@dataclass(frozen=True, slots=True, kw_only=True)
class Scoring:
    """How a collector judges and weighs its batches: its options (see ``RewardCollector``).

    Names are the reward functions' labels; ``positions`` maps each to its index in
    ``GRPOTrainer(reward_funcs=...)``, of ``total_functions`` (reward models included).
    """

    extractor: Extractor
    correct_reward: str | None
    correct_threshold: float
    correct_fn: Predicate | None
    reward_weights: Mapping[str, float]
    positions: Mapping[str, int]
    total_functions: int
    max_completion_length: int | None
    logging_frequency: int | None  # None: the configuration's metrics section
    #: A callback relays TRL's on_log, where the functions' log_metric values arrive.
    hooked: bool


class RewardBatch:
    """One generation batch as the reward functions were given it and scored it.

    Built by the collector on the training thread and handed to ``Pipeline.defer`` once
    every function has scored it; :meth:`events` runs on the listener thread.
    """

    kind = "reward_batch"

    __slots__ = (
        "advantages",
        "answers",
        "completion_ids",
        "completions",
        "extra",
        "first",
        "metrics",
        "phase",
        "prompts",
        "questions",
        "scoring",
        "settings",
        "source",
        "step",
        "tally",
        "values",
    )

    def __init__(
        self,
        completions: Any,
        prompts: Any,
        step: int | None,
        phase: str,
        *,
        questions: Any = None,
        answers: Any = None,
        completion_ids: Any = None,
    ) -> None:
        self.completions = completions  # held so its id() cannot be reused while pending
        self.prompts = prompts
        self.step = step
        self.phase = phase
        #: The dataset's question and reference-answer columns, TRL's completion token ids.
        self.questions = questions
        self.answers = answers
        self.completion_ids = completion_ids
        self.values: dict[str, list[Any]] = {}  # label -> the values its function returned
        self.first = 0  # the sample number of its first completion in (phase, step)
        self.extra: dict[str, list[Any]] = {}  # log_extra columns, this batch's values
        self.metrics: dict[str, list[Any]] = {}  # log_metric values the wrappers saw
        self.advantages: list[float] | None = None  # TRL's own, when they were read
        self.source: str | None = None  # "trl" or "computed"
        self.settings: AdvantageSettings | None = None  # for the formula otherwise
        self.scoring: Scoring | None = None  # set when handed over
        self.tally: Tally | None = None  # set when handed over

    def events(self, context: ExpandContext) -> list[dict[str, Any]]:
        """The batch's events (as the logging helpers build them); its answers counted in
        its tally. A failure keeps what was built and is said once a tally."""
        events: list[dict[str, Any]] = []
        tally = [0, 0]
        try:
            if self.scoring is None:
                raise ValueError("the batch was handed over without its scoring options")
            _Expansion(self, self.scoring, context, events).build(tally)
        except Exception as exc:  # logging must never break training: keep what was built
            if self.tally is not None:
                self.tally.failures += 1
                if self.tally.failures == 1:
                    say(f"could not log a reward batch: {type(exc).__name__}: {exc}")
        if self.tally is not None:
            self.tally.add(self.phase, tally[0], tally[1])
        return events


class _Expansion:
    """The events of one batch, built in the order they are written."""

    __slots__ = ("again", "batch", "context", "events", "scores", "scoring")

    def __init__(
        self,
        batch: RewardBatch,
        scoring: Scoring,
        context: ExpandContext,
        events: list[dict[str, Any]],
    ) -> None:
        self.batch = batch
        self.scoring = scoring
        self.context = context
        self.events = events
        self.scores: dict[str, list[float]] = {}
        # log_model_output extracts again what the extractor left None, with the default
        # extractor: when that is the collector's own, it would find nothing more.
        self.again: Extractor = (
            _nothing
            if scoring.extractor is extract_reasoning_and_answer
            else extract_reasoning_and_answer
        )

    def build(self, tally: list[int]) -> None:
        """Append the batch's events to ``events`` and its correct and total answers to
        ``tally``."""
        batch, context = self.batch, self.context
        metrics_config = context.metrics
        reward_logger = context.role_names["reward"]
        metrics_logger = context.role_names["metrics"]
        completions = list(batch.completions)
        # Each function's values as TRL used them (None -> NaN), converted once: the samples'
        # rewards and the reward events are read from these lists.
        self.scores = {
            name: [_reward_value(v) for v in values] for name, values in batch.values.items()
        }
        texts, token_lengths = self.samples(completions, tally)
        if metrics_config.enabled("reward_metrics") and reward_logger is not None:
            self.reward_events(reward_logger, len(completions))
        if batch.metrics and not self.scoring.hooked and metrics_logger is not None:
            self.metrics_event(metrics_logger)
        frequency = max(1, self.scoring.logging_frequency or metrics_config.logging_frequency)
        if (
            metrics_config.enabled("generation_metrics")
            and metrics_logger is not None
            and batch.step is not None
            and batch.step % frequency == 0
        ):
            self.events.append(
                event_builders.generation_metrics_event(
                    metrics_logger,
                    batch.step,
                    texts,
                    phase=batch.phase,
                    token_lengths=token_lengths or None,
                    max_tokens=self.scoring.max_completion_length,
                )
            )

    def samples(self, completions: list[Any], tally: list[int]) -> tuple[list[str], list[int]]:
        """One ``model_output`` a sample (when the model logger takes INFO), the answers
        counted in ``tally``; the completions' texts and token counts returned."""
        batch, scores = self.batch, self.scores
        model_logger = self.context.role_names["model"]
        n = len(completions)
        questions, answers, ids = batch.questions, batch.answers, batch.completion_ids
        prompts = batch.prompts if batch.prompts is not None else [None] * n
        texts: list[str] = []
        token_lengths: list[int] = []
        weights = self.scoring.reward_weights
        more = self.more_fields(n)
        extractor = self.scoring.extractor
        for i in range(n):
            text = completion_text(completions[i])
            texts.append(text)
            rewards = {name: values[i] for name, values in scores.items() if i < len(values)}
            reasoning, answer = extractor(text)
            question = (
                questions[i]
                if questions is not None and i < len(questions)
                else prompt_text(prompts[i])
            )
            true_answer = answers[i] if answers is not None and i < len(answers) else None
            length_tokens = len(ids[i]) if ids is not None and i < len(ids) else None
            if length_tokens is not None:
                token_lengths.append(length_tokens)
            # Every value is a float (_reward_value): NaN is the one that is not equal to
            # itself. sum() over a list, not a generator: the same additions in the same order.
            weighted = [weights.get(name, 1.0) * v for name, v in rewards.items() if v == v]
            total = sum(weighted) if weighted else None
            correct = self.judged(rewards, answer, true_answer, text, i)
            if correct is not None:
                tally[1] += 1
                tally[0] += int(correct)
            if model_logger is None:
                continue
            fields = more(i, prompts[i], completions[i])
            self.events.append(
                event_builders.model_output_event(
                    model_logger,
                    question,
                    true_answer,
                    text,
                    reasoning,
                    answer=answer,
                    rewards=rewards,
                    correct=correct,
                    step=batch.step,
                    phase=batch.phase,
                    sample=batch.first + i,
                    total_reward=total,
                    length_tokens=length_tokens,
                    extractor=self.again,
                    **fields,
                )
            )
        return texts, token_lengths

    def more_fields(self, n: int) -> Callable[[int, Any, Any], dict[str, Any]]:
        """Sample ``i``'s other fields, as keywords: its advantage (and the advantage's
        source), its ``log_extra`` columns, its conversation."""
        advantages, source = self.advantages(n)
        extra = {c: v for c, v in self.batch.extra.items() if len(v) == n}

        def more(i: int, prompt: Any, completion: Any) -> dict[str, Any]:
            fields: dict[str, Any] = {}
            if advantages is not None:
                fields["advantage"] = advantages[i]
                fields["advantage_source"] = source
            if extra:
                fields["extra"] = {column: values[i] for column, values in extra.items()}
            talk = conversation(prompt, completion)
            if talk is not None:
                fields["messages"], fields["prompt_turns"] = talk
            return fields

        return more

    def judged(
        self, rewards: dict[str, float], answer: str | None, true_answer: Any, text: str, i: int
    ) -> bool | None:
        """Whether the sample is correct: by ``correct_reward``, else ``correct_fn`` (given
        the sample as a dict), else :func:`answers_match`; None when it cannot tell."""
        scoring = self.scoring
        if scoring.correct_reward is not None:
            value = rewards.get(scoring.correct_reward)
            if value is None or (isinstance(value, float) and math.isnan(value)):
                return None
            return bool(value > scoring.correct_threshold)
        if scoring.correct_fn is not None:
            sample = {
                "rewards": rewards,
                "answer": answer,
                "true_answer": true_answer,
                "text": text,
                "index": i,
            }
            return scoring.correct_fn(sample)
        return answers_match(answer, true_answer)

    def advantages(self, n: int) -> tuple[list[float] | None, str | None]:
        """The batch's advantages: TRL's own when they were read, else TRL's formula over
        every reward function's scores (None when a function's scores are unknown, e.g. a
        reward model, or the batch is not whole groups)."""
        batch, scores = self.batch, self.scores
        if batch.advantages is not None and len(batch.advantages) == n:
            return batch.advantages, batch.source
        settings = batch.settings
        if settings is None or n == 0:
            return None, None
        positions = self.scoring.positions
        if len(scores) != self.scoring.total_functions or not all(
            name in positions for name in scores
        ):
            return None, None
        ordered = sorted(scores, key=positions.__getitem__)
        weights = settings.weights or (1.0,) * len(ordered)
        if len(weights) != len(ordered):
            return None, None
        computed = computed_advantages(
            [scores[name] for name in ordered],
            weights,
            settings.num_generations,
            settings.scale_rewards,
            settings.aggregation,
        )
        return (computed, "computed") if computed is not None else (None, None)

    def reward_events(self, logger: str, n: int) -> None:
        """One ``reward`` event a function, then the ``reward_summary`` of a known step."""
        batch = self.batch
        samples = [f"{batch.phase}:{batch.step}:{batch.first + i}" for i in range(n)]
        for name, values in self.scores.items():
            self.events.append(
                event_builders.reward_event(
                    logger, name, values, samples, step=batch.step, phase=batch.phase
                )
            )
        if batch.step is not None:
            self.events.append(
                event_builders.reward_summary_event(
                    logger, batch.step, batch.values, phase=batch.phase
                )
            )

    def metrics_event(self, logger: str) -> None:
        """No callback relays TRL's on_log (where log_metric values arrive averaged): the
        batch's own values, averaged as TRL averages them per batch."""
        batch = self.batch
        means = {}
        for metric, logged in batch.metrics.items():
            numbers = [v for v in map(number, logged) if v is not None]
            if numbers:
                means[metric] = sum(numbers) / len(numbers)
        if means and batch.step is not None:
            self.events.append(
                {
                    "kind": "metrics",
                    "logger": logger,
                    "step": batch.step,
                    "phase": batch.phase,
                    "metrics": means,
                }
            )
