"""Reward-function wrappers: every completion of every step, with each function's score.

No TrainerCallback hook sees prompts, completions or per-sample rewards; TRL's supported
way to reach them is the reward function itself. A wrapped function calls the original,
returns exactly what it returned, and hands the values to a :class:`RewardCollector`. When
every wrapped function has scored a batch, the collector writes one ``model_output`` event
per sample with all the functions' scores on it, plus the per-function ``reward`` events,
a ``reward_summary`` and (every ``logging_frequency`` steps) ``generation_metrics``.

The training thread only hands the batch over: one event carrying the raw completions,
prompts, dataset columns and scores (see ``gemmalog/processors/expand.py``). Answer
extraction, correctness, the per-sample events and the accuracy counts are done on
gemmalog's listener thread, in the order the batches were handed over, so the counts a
progress event reports are exact: they include every batch handed over before it.

Steps: TRL calls reward functions at ``trainer_state.global_step == N - 1`` while it
prepares optimizer step N, and during evaluation at ``global_step == N`` after step N was
logged. The collector records train rewards at ``global_step + 1`` and eval rewards at
``global_step``, so they line up with ``trainer.state.log_history``.

Sharing: wrappers made without a collector and a ``GemmalogCallback`` made without one use
the same process-wide :func:`default_collector`, so the callback's progress and final
accuracy count the completions the wrappers saw, whichever of the two was created first.

Two functions with one TRL name (two partials of one function) are told apart by their
position: the first keeps the name, later ones are recorded as ``<name>_2``, ``<name>_3``.

Nothing here imports torch, transformers or trl: the wrappers work with any trainer that
calls reward functions the way TRL does.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import math
import threading
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from gemmalog import event_builders, running
from gemmalog.integrations.advantages import (
    AdvantageSettings,
    Capture,
    computed_advantages,
    pending_extra,
    read_logged,
    trainer_of,
)
from gemmalog.notices import say, warn_once
from gemmalog.processors.derive import GENERATIONS, TOKEN_LENGTHS
from gemmalog.processors.expand import emit_expanding, with_envelope
from gemmalog.processors.messages import conversation
from gemmalog.processors.sanitize import Sanitize, flat_finite_numbers
from gemmalog.processors.textstats import completion_text, extract_reasoning_and_answer

if TYPE_CHECKING:
    from gemmalog._pipeline import Pipeline

Extractor = Callable[[str], tuple[str | None, str | None]]
Predicate = Callable[[dict[str, Any]], bool | None]


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number


def answers_match(answer: str | None, true_answer: Any) -> bool | None:
    """Default correctness: the extracted answer equals the reference, as numbers when both
    parse as numbers (``"07"`` == ``"7"``), else as stripped strings. None without a reference."""
    if true_answer is None:
        return None
    if answer is None:
        return False
    a, b = answer.strip(), str(true_answer).strip()
    x, y = _number(a.replace(",", "")), _number(b.replace(",", ""))
    if x is not None and y is not None and math.isfinite(x) and math.isfinite(y):
        return x == y
    return a == b


def _prompt_text(prompt: Any) -> str:
    """The last user message of a conversational prompt, or the prompt string itself."""
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, Sequence):
        users = [m for m in prompt if isinstance(m, Mapping) and m.get("role") == "user"]
        if users:
            return completion_text(users[-1])
    return completion_text(prompt)


class _Batch:
    __slots__ = (
        "advantages",
        "completions",
        "extra",
        "first",
        "kwargs",
        "metrics",
        "names",
        "phase",
        "prompts",
        "settings",
        "source",
        "step",
        "trainer",
        "values",
    )

    def __init__(
        self, completions: Any, prompts: Any, kwargs: dict[str, Any], step: int | None, phase: str
    ) -> None:
        self.completions = completions  # held so its id() cannot be reused while pending
        self.prompts = prompts
        self.kwargs = kwargs
        self.step = step
        self.phase = phase
        self.values: dict[str, list[Any]] = {}
        self.names: list[str] = []
        self.first = 0  # the sample number of its first completion in (phase, step)
        self.trainer: Any = None  # the GRPOTrainer that called the functions, when known
        self.extra: dict[str, list[Any]] = {}  # log_extra columns, this batch's values
        self.metrics: dict[str, list[Any]] = {}  # log_metric values the wrappers saw
        self.advantages: list[float] | None = None
        self.source: str | None = None  # "trl" or "computed"
        self.settings: AdvantageSettings | None = None


class RewardCollector:
    """Gathers one batch's rewards from every wrapped function, then logs its samples.

    Options:
    - ``question_column`` / ``answer_column``: dataset columns holding the question and the
      reference answer (TRL passes every dataset column to reward functions);
    - ``extractor``: text -> (reasoning, answer); default the ``<reasoning>``/``<answer>`` format;
    - ``correct_reward``: name of a reward function whose value > ``correct_threshold`` marks
      a sample correct; otherwise ``correct_fn(sample)`` when given; otherwise the extracted
      answer is compared with the reference (:func:`answers_match`);
    - ``reward_weights``: name -> weight for ``total_reward`` (TRL's ``reward_weights``; the
      callback fills this from GRPOConfig); unweighted sum by default.

    Names here are the functions' labels: TRL's name, with ``_2``, ``_3`` ... added to a name
    an earlier function already has. Counts and sample numbers belong to the running run.
    """

    def __init__(
        self,
        *,
        question_column: str = "question",
        answer_column: str = "answer",
        extractor: Extractor = extract_reasoning_and_answer,
        correct_reward: str | None = None,
        correct_threshold: float = 0.0,
        correct_fn: Predicate | None = None,
        reward_weights: Mapping[str, float] | None = None,
    ) -> None:
        self.question_column = question_column
        self.answer_column = answer_column
        self.extractor = extractor
        self.correct_reward = correct_reward
        self.correct_threshold = correct_threshold
        self.correct_fn = correct_fn
        self.reward_weights = dict(reward_weights or {})
        self.expected: list[str] = []  # one label per wrapped function, unique
        self.positions: dict[str, int] = {}  # label -> index in GRPOTrainer(reward_funcs=...)
        self.total_functions = 0
        self.phase_of: Callable[[], str] | None = None
        self.max_completion_length: int | None = None
        self.logging_frequency: int | None = None  # None: the configuration's metrics section
        #: The GRPOConfig the callback saw: what TRL's advantage formula needs when no trainer
        #: is reachable through a reward call's ``log_extra``.
        self.grpo_config: Any = None
        #: Set by a GemmalogCallback while training: it calls :meth:`flush` after every
        #: generation, so a scored batch may wait for the advantages TRL computes after it.
        self.hooked = False
        self._awaiting: list[_Batch] = []  # scored, waiting for the trainer's advantages
        #: phase -> [correct, total]; updated on the listener thread under ``_count_lock``.
        self.counts: dict[str, list[int]] = {}
        self._samples: dict[tuple[str, int | None], int] = {}
        self._pending: _Batch | None = None
        self._run: weakref.ref[Any] | None = None  # the pipeline the counts belong to
        self._lock = threading.Lock()  # the batches (training thread, reward threads)
        # The counts: taken by the listener, which never takes _lock, so a training thread
        # that waits on a full queue while holding _lock cannot stop the listener.
        self._count_lock = threading.Lock()
        self.errors = 0

    def configure(self, **options: Any) -> RewardCollector:
        """Set options as the constructor takes them (the shared default collector's way)."""
        allowed = inspect.signature(RewardCollector.__init__).parameters
        unknown = sorted(set(options) - set(allowed) - {"self"})
        if unknown:
            raise TypeError(
                f"unknown RewardCollector option(s) {', '.join(unknown)}; "
                f"expected some of {', '.join(p for p in allowed if p != 'self')}"
            )
        for key, value in options.items():
            setattr(self, key, dict(value or {}) if key == "reward_weights" else value)
        return self

    def _follow_run(self) -> None:
        """Counts and sample numbers belong to one run: start them afresh when the running
        pipeline is another one than last time (a collector outlives runs in one process).
        Called with the lock held."""
        pipeline = running()
        if pipeline is None:
            return
        if self._run is None or self._run() is not pipeline:
            self._run = weakref.ref(pipeline)
            with self._count_lock:
                self.counts = {}
            self._samples = {}
            self._pending = None
            self._awaiting = []

    def resume(self, step: int) -> None:
        """Continue the counts of a run resumed from a checkpoint at optimizer step ``step``.

        The counts a checkpoint's training had seen are the run's own logs for steps up to
        ``step``: read from the ``completions`` view of the run directory (which keeps the
        latest segment of a step logged twice), this rank only. A run without readable logs
        keeps zero counts, and the reason is printed on stderr.
        """
        pipeline = running()
        if pipeline is None or step <= 0:
            return
        try:
            from gemmalog.queries import connect

            con = connect(pipeline.run.dir)
            try:
                rows = con.execute(
                    "SELECT phase, count(*) FILTER (WHERE correct), count(correct) "
                    "FROM completions WHERE rank = ? AND step <= ? AND phase IS NOT NULL "
                    "GROUP BY phase",
                    [pipeline.run.rank, step],
                ).fetchall()
            finally:
                con.close()
        except Exception as exc:
            say(f"accuracy counts not restored for the resumed run: {exc}")
            return
        with self._lock:
            self._follow_run()
            with self._count_lock:
                self.counts = {str(phase): [int(c), int(t)] for phase, c, t in rows}

    # -- called by the wrappers ---------------------------------------------------------
    def record(
        self,
        name: str,
        values: Sequence[Any],
        prompts: Any,
        completions: Any,
        kwargs: dict[str, Any],
        capture: Capture | None = None,
    ) -> None:
        done: list[_Batch] = []
        with self._lock:
            self._follow_run()
            batch = self._pending
            if batch is None or batch.completions is not completions:
                # A new batch: TRL computed the advantages of the ones before it meanwhile.
                done.extend(self._released())
                if batch is not None:
                    done.append(self._with_trainer_values(batch))
                state = kwargs.get("trainer_state")
                phase = self.phase_of() if self.phase_of is not None else "train"
                global_step = getattr(state, "global_step", None)
                step = (
                    None
                    if global_step is None
                    else (global_step + 1 if phase == "train" else global_step)
                )
                batch = self._pending = _Batch(completions, prompts, kwargs, step, phase)
                batch.trainer = trainer_of(kwargs)
                source = batch.trainer if batch.trainer is not None else self.grpo_config
                batch.settings = None if source is None else AdvantageSettings.of(source, phase)
            batch.values[name] = list(values)
            batch.names.append(name)
            if batch.trainer is not None:  # every function's log_extra so far, wrapped or not
                batch.extra.update(pending_extra(batch.trainer))
            if capture is not None:
                for column, logged in capture.extra.items():
                    batch.extra.setdefault(column, logged)
                for metric, logged in capture.metrics.items():
                    batch.metrics.setdefault(metric, []).extend(logged)
            expected = self.expected
            # The count first: only the batch's last function needs the names compared.
            if (
                expected
                and len(batch.values) >= len(expected)
                and all(n in batch.values for n in expected)
            ):
                self._pending = None
                if batch.trainer is not None and self.hooked:
                    self._awaiting.append(batch)  # TRL computes its advantages next
                else:
                    done.append(batch)
            handover = [(b, p) for b in done if (p := self._claim(b)) is not None]
        # Outside the lock: with the block policy a full queue makes this thread wait.
        for b, pipeline in handover:
            self._hand_over(b, pipeline)

    def flush(self) -> None:
        """Log the batches waiting for TRL's advantages, and one still waiting for functions
        that were not wrapped (the callback calls it after every generation)."""
        with self._lock:
            self._follow_run()
            batches = self._released()
            batch, self._pending = self._pending, None
            if batch is not None:
                batches.append(self._with_trainer_values(batch))
            handover = [(b, p) for b in batches if (p := self._claim(b)) is not None]
        for b, pipeline in handover:
            self._hand_over(b, pipeline)

    def _released(self) -> list[_Batch]:
        """The batches waiting for advantages, with them. Called with the lock held."""
        batches, self._awaiting = self._awaiting, []
        return [self._with_trainer_values(b) for b in batches]

    @staticmethod
    def _with_trainer_values(batch: _Batch) -> _Batch:
        """``batch`` with the advantages TRL logged for it, when its trainer still has them
        (read on the training thread: the next generation replaces them)."""
        if batch.trainer is not None and batch.advantages is None:
            try:
                logged = read_logged(batch.trainer, batch.completions)
            except Exception:  # a trainer of another shape: the formula's value instead
                logged = None
            if logged is not None:
                batch.advantages, batch.source = logged[0], "trl"
                batch.extra.update(logged[1])  # TRL's table: every function's columns
            batch.trainer = None  # not kept alive by a batch on the queue
        return batch

    def accuracy(self, phase: str = "train") -> tuple[int, int, float]:
        """``(correct, total, fraction)`` of the samples of ``phase`` in the running run.

        The listener thread counts the batches; this waits until it has counted every batch
        handed over before the call (a ``gemmalog.flush()``), so the figures are exact.
        """
        pipeline = running()
        if pipeline is not None:
            pipeline.flush()
        with self._lock:
            self._follow_run()
        with self._count_lock:
            correct, total = self.counts.get(phase, [0, 0])
        return correct, total, (correct / total if total else 0.0)

    def counted(self, pipeline: Pipeline, phase: str = "train") -> tuple[int, int]:
        """``(correct, total)`` counted so far for ``pipeline``'s run, without waiting: on the
        listener thread (a progress event's expansion) that is every batch before it."""
        with self._count_lock:
            run = self._run
            if run is None or run() is not pipeline:
                return 0, 0
            correct, total = self.counts.get(phase, [0, 0])
        return correct, total

    # -- handing a batch over (training thread) -------------------------------------------
    def _claim(self, batch: _Batch) -> Pipeline | None:
        """The pipeline that logs ``batch`` (None: not logged), numbering its samples.
        Called with the lock held."""
        pipeline = running()
        if pipeline is None:
            return None
        if batch.phase == "eval" and not pipeline.metrics.enabled("validation_metrics"):
            return None
        key = (batch.phase, batch.step)
        batch.first = self._samples.get(key, 0)
        try:
            self._samples[key] = batch.first + len(batch.completions)
        except TypeError:  # completions without a length: read as a list on the listener
            batch.completions = list(batch.completions)
            self._samples[key] = batch.first + len(batch.completions)
        return pipeline

    def _hand_over(self, batch: _Batch, pipeline: Pipeline) -> None:
        emit_expanding(
            pipeline,
            {"kind": "reward_batch", "logger": pipeline.roles["model"]},
            functools.partial(self._expand, batch, pipeline),
        )

    # -- logging (listener thread) ------------------------------------------------------
    def _correct(
        self, rewards: dict[str, float], answer: str | None, true_answer: Any
    ) -> bool | None:
        """Correctness by ``correct_reward``, else by :func:`answers_match` (the caller asks
        ``correct_fn`` itself, when it is given and ``correct_reward`` is not)."""
        if self.correct_reward is not None:
            value = rewards.get(self.correct_reward)
            if value is None or (isinstance(value, float) and math.isnan(value)):
                return None
            return bool(value > self.correct_threshold)
        return answers_match(answer, true_answer)

    def _expand(
        self, batch: _Batch, pipeline: Pipeline, carrier: dict[str, Any]
    ) -> list[dict[str, Any]]:
        """The batch's events, with the carrier's envelope; the counts updated."""
        events: list[dict[str, Any]] = []
        tally = [0, 0]
        try:
            self._batch_events(batch, pipeline, events, tally)
        except Exception as exc:  # logging must never break training: keep what was built
            self.errors += 1
            if self.errors == 1:
                say(f"could not log a reward batch: {type(exc).__name__}: {exc}")
        with self._count_lock:
            run = self._run
            if run is not None and run() is pipeline:  # not a batch of a run that ended
                counts = self.counts.setdefault(batch.phase, [0, 0])
                counts[0] += tally[0]
                counts[1] += tally[1]
        return with_envelope(carrier, events, _BatchSanitize(pipeline.chain[0]))

    def _advantages(
        self, batch: _Batch, scores: dict[str, list[float]], n: int
    ) -> tuple[list[float] | None, str | None]:
        """The batch's advantages: TRL's own when they were read, else TRL's formula over
        every reward function's scores (None when a function's scores are unknown, e.g. a
        reward model, or the batch is not whole groups)."""
        if batch.advantages is not None and len(batch.advantages) == n:
            return batch.advantages, batch.source
        settings = batch.settings
        if settings is None or n == 0:
            return None, None
        positions = self.positions
        if len(scores) != self.total_functions or not all(name in positions for name in scores):
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

    def _batch_events(
        self, batch: _Batch, pipeline: Pipeline, events: list[dict[str, Any]], tally: list[int]
    ) -> None:
        """Append the batch's events (as the logging helpers build them) to ``events`` and
        its correct and total answers to ``tally``."""
        metrics_config = pipeline.metrics
        model_logger = pipeline.role_names["model"]
        reward_logger = pipeline.role_names["reward"]
        metrics_logger = pipeline.role_names["metrics"]
        completions = list(batch.completions)
        n = len(completions)
        kwargs = batch.kwargs
        questions = kwargs.get(self.question_column)
        answers = kwargs.get(self.answer_column)
        ids = kwargs.get("completion_ids")
        prompts = batch.prompts if batch.prompts is not None else [None] * n
        first = batch.first
        # log_model_output extracts again what the extractor left None, with the default
        # extractor: when that is the collector's own, it would find nothing more.
        again = _nothing if self.extractor is extract_reasoning_and_answer else None
        texts: list[str] = []
        token_lengths: list[int] = []
        # Each function's values as TRL used them (None -> NaN), converted once: the samples'
        # rewards and the reward events are read from these lists.
        scores = {name: [_reward_value(v) for v in values] for name, values in batch.values.items()}
        weights = self.reward_weights
        advantages, source = self._advantages(batch, scores, n)
        extra = {c: v for c, v in batch.extra.items() if len(v) == n}
        extractor = self.extractor
        # correct_reward comes first; correct_fn, when asked, is given the sample as a dict.
        correct_fn = self.correct_fn if self.correct_reward is None else None
        for i in range(n):
            text = completion_text(completions[i])
            texts.append(text)
            rewards = {name: values[i] for name, values in scores.items() if i < len(values)}
            reasoning, answer = extractor(text)
            question = (
                questions[i]
                if questions is not None and i < len(questions)
                else _prompt_text(prompts[i])
            )
            true_answer = answers[i] if answers is not None and i < len(answers) else None
            length_tokens = len(ids[i]) if ids is not None and i < len(ids) else None
            if length_tokens is not None:
                token_lengths.append(length_tokens)
            # Every value is a float (_reward_value): NaN is the one that is not equal to
            # itself. sum() over a list, not a generator: the same additions in the same order.
            weighted = [weights.get(name, 1.0) * v for name, v in rewards.items() if v == v]
            total = sum(weighted) if weighted else None
            if correct_fn is not None:
                sample = {
                    "rewards": rewards,
                    "answer": answer,
                    "true_answer": true_answer,
                    "text": text,
                    "index": i,
                }
                correct = correct_fn(sample)
            else:
                correct = self._correct(rewards, answer, true_answer)
            if correct is not None:
                tally[1] += 1
                tally[0] += int(correct)
            if model_logger is not None:
                more: dict[str, Any] = {}
                if advantages is not None:
                    more["advantage"] = advantages[i]
                    more["advantage_source"] = source
                if extra:
                    more["extra"] = {column: values[i] for column, values in extra.items()}
                talk = conversation(prompts[i], completions[i])
                if talk is not None:
                    more["messages"], more["prompt_turns"] = talk
                events.append(
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
                        sample=first + i,
                        total_reward=total,
                        length_tokens=length_tokens,
                        extractor=again or extract_reasoning_and_answer,
                        **more,
                    )
                )
        if metrics_config.enabled("reward_metrics") and reward_logger is not None:
            samples = [f"{batch.phase}:{batch.step}:{first + i}" for i in range(n)]
            for name, values in scores.items():
                events.append(
                    event_builders.reward_event(
                        reward_logger, name, values, samples, step=batch.step, phase=batch.phase
                    )
                )
            if batch.step is not None:
                events.append(
                    event_builders.reward_summary_event(
                        reward_logger, batch.step, batch.values, phase=batch.phase
                    )
                )
        if batch.metrics and not self.hooked and metrics_logger is not None:
            # No callback relays TRL's on_log (where log_metric values arrive averaged):
            # the batch's own values, averaged as TRL averages them per batch.
            means = {}
            for metric, logged in batch.metrics.items():
                numbers = [v for v in map(_number, logged) if v is not None]
                if numbers:
                    means[metric] = sum(numbers) / len(numbers)
            if means and batch.step is not None:
                events.append(
                    {
                        "kind": "metrics",
                        "logger": metrics_logger,
                        "step": batch.step,
                        "phase": batch.phase,
                        "metrics": means,
                    }
                )
        frequency = max(1, self.logging_frequency or metrics_config.logging_frequency)
        if (
            metrics_config.enabled("generation_metrics")
            and metrics_logger is not None
            and batch.step is not None
            and batch.step % frequency == 0
        ):
            events.append(
                event_builders.generation_metrics_event(
                    metrics_logger,
                    batch.step,
                    texts,
                    phase=batch.phase,
                    token_lengths=token_lengths or None,
                    max_tokens=self.max_completion_length,
                )
            )


class _BatchSanitize:
    """The pipeline's ``Sanitize`` for a batch's events, without its walk over the lists and
    tables that :meth:`RewardCollector._batch_events` built when they are already what the
    walk returns: a ``reward`` event's ``values`` (finite floats) and ``samples`` (strings
    within the length limit), a ``reward_summary``'s ``stats`` (flat tables of finite
    numbers), the texts and token counts of a ``generation_metrics``. The walk visits every item of those (about 80 visits a batch of 4 samples and
    7 functions, 40 % of the batch's listener time) to return copies of them; this makes the
    same copies after the same checks. Anything else, or with another sanitizer than
    gemmalog's own, goes through ``sanitize`` whole.
    """

    __slots__ = ("limit", "max_items", "proven", "sanitize")

    def __init__(self, sanitize: Any) -> None:
        self.sanitize = sanitize
        # id -> whether the list passed: the reward events of a batch share one samples list
        # (alive while the batch's events are, so its id is not reused meanwhile).
        self.proven: dict[int, bool] = {}
        sanitizer = getattr(sanitize, "_sanitizer", None) if type(sanitize) is Sanitize else None
        # 0: nothing passes the checks below, every event is sanitized whole.
        self.max_items: int = getattr(sanitizer, "max_items", 0)
        self.limit: int = getattr(sanitizer, "max_string_length", 0)

    def __call__(self, logger: Any, method_name: str, event: dict[str, Any]) -> Any:
        kind = event.get("kind")
        if kind == "reward":
            fields: tuple[str, ...] = ("values", "samples")
        elif kind == "reward_summary":
            fields = ("stats",)
        elif kind == "generation_metrics":
            fields = (GENERATIONS, TOKEN_LENGTHS)
        else:
            return self.sanitize(logger, method_name, event)
        done = {}
        for field in fields:
            clean = self._clean(event.get(field))
            if clean is not None:
                done[field] = clean
                event[field] = None  # the key keeps its place; Sanitize passes None as it is
        event = self.sanitize(logger, method_name, event)
        event.update(done)
        return event

    def _clean(self, value: Any) -> Any:
        """What ``Sanitizer.clean(value)`` returns, when that is a plain copy; else None."""
        if type(value) is list:
            passed = self.proven.get(id(value))
            if passed is None:
                passed = self.proven[id(value)] = self._plain(value)
            return list(value) if passed else None
        if type(value) is dict and len(value) <= self.max_items:
            out = {}
            for key, table in value.items():
                if (
                    type(key) is not str
                    or type(table) is not dict
                    or len(table) > self.max_items
                    or not flat_finite_numbers(table)
                ):
                    return None
                out[key] = dict(table)
            return out
        return None

    def _plain(self, values: list[Any]) -> bool:
        """Whether the walk would copy the list as it is: finite floats, ints, or strings
        it does not cut, and no more items than it keeps."""
        if len(values) > self.max_items:
            return False
        types = set(map(type, values))
        if not types:
            return True
        if types == {float}:
            total: float = sum(values)
            # A NaN or an infinity makes the sum one (so does an overflow: a false no).
            return total - total == 0.0
        if types == {int}:
            return True
        return types == {str} and max(map(len, values)) <= self.limit


def _nothing(text: str) -> tuple[str | None, str | None]:
    return None, None


def _reward_value(value: Any) -> float:
    """TRL turns a ``None`` reward into NaN; do the same so the logged value is what TRL used."""
    if value is None:
        return math.nan
    number = _number(value)
    return math.nan if number is None else number


def _is_reward_model(func: Any) -> bool:
    """A model id or an ``nn.Module``: TRL scores those itself, so they are not wrapped."""
    return isinstance(func, str) or (hasattr(func, "forward") and hasattr(func, "parameters"))


def _unwrap_partial(func: Any) -> Any:
    while isinstance(func, functools.partial):
        func = func.func
    return func


def reward_name(func: Any) -> str:
    """The name TRL gives a reward function (``trl.trainer.utils.get_callable_name``): a
    partial's wrapped function, a function's ``__name__``, else the instance's class name."""
    inner = _unwrap_partial(func)
    return str(getattr(inner, "__name__", type(inner).__name__))


def _is_async(func: Any) -> bool:
    """TRL's test (``is_async_callable``): an async function, partial or ``__call__``."""
    inner = _unwrap_partial(func)
    call = inner.__call__ if callable(inner) else None
    return inspect.iscoroutinefunction(inner) or inspect.iscoroutinefunction(call)


def unique_label(name: str, taken: Sequence[str]) -> str:
    """``name``, or ``name_2``, ``name_3``, ... for the first one not in ``taken``."""
    label, n = name, 2
    while label in taken:
        label, n = f"{name}_{n}", n + 1
    return label


def wrap_reward_function(
    func: Callable[..., Any],
    collector: RewardCollector,
    name: str | None = None,
    *,
    label: str | None = None,
) -> Callable[..., Any]:
    """Wrap one reward function; its TRL name and signature are kept (TRL names metrics by it).

    ``name`` is the wrapper's ``__name__`` (default: the name TRL gives ``func``); ``label``
    is the key of its values in the collector and in ``model_output.rewards`` (default:
    ``name``). Partials and callable instances keep the name TRL would give them; async
    functions (and instances with an async ``__call__``) get an async wrapper, which TRL
    awaits. The wrapper returns the original's result object, except that a one-shot
    iterator (a generator) is turned into a list first, so logging it does not leave TRL
    an empty one.
    """
    fn_name = name or reward_name(func)
    key = label or fn_name

    def report(result: Any, args: tuple[Any, ...], kwargs: dict[str, Any], capture: Capture) -> Any:
        # A list (what reward functions return) is no iterator: the ABC check is skipped.
        if type(result) is not list and isinstance(result, Iterator):
            result = list(result)
        try:
            prompts = kwargs.get("prompts", args[0] if args else None)
            completions = kwargs.get("completions", args[1] if len(args) > 1 else None)
            if completions is not None and result is not None:
                collector.record(key, result, prompts, completions, kwargs, capture)
        except Exception as exc:  # never let logging change what training sees
            collector.errors += 1
            if collector.errors == 1:
                warn_once(f"reward logging failed in {key}: {exc}", key=f"rewards:{key}")
        return result

    if _is_async(func):

        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            capture = Capture()  # log_extra / log_metric pass through it to TRL's
            return report(await func(*args, **capture.wrap(kwargs)), args, kwargs, capture)

        wrapped: Callable[..., Any] = async_wrapper
    else:

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            capture = Capture()  # log_extra / log_metric pass through it to TRL's
            return report(func(*args, **capture.wrap(kwargs)), args, kwargs, capture)

        wrapped = wrapper
    with contextlib.suppress(AttributeError, TypeError):  # docstring, module, attributes
        functools.update_wrapper(wrapped, _unwrap_partial(func))
    wrapped.__name__ = wrapped.__qualname__ = fn_name
    if isinstance(func, functools.partial) or not inspect.isfunction(func):
        wrapped.__signature__ = inspect.signature(func)  # type: ignore[attr-defined]
    wrapped.__wrapped__ = func  # type: ignore[attr-defined]
    wrapped.__gemmalog_collector__ = collector  # type: ignore[attr-defined]
    wrapped.__gemmalog_label__ = key  # type: ignore[attr-defined]
    return wrapped


_default: RewardCollector | None = None
_default_lock = threading.Lock()


def default_collector() -> RewardCollector:
    """The collector shared by the wrappers and callbacks made without one, in this process.

    Its counts and sample numbers follow the running run (they start afresh in each run);
    the options given to :func:`wrap_reward_functions` or ``GemmalogCallback`` apply to it.
    """
    global _default
    with _default_lock:
        if _default is None:
            _default = RewardCollector()
        return _default


def wrap_reward_functions(
    funcs: Sequence[Callable[..., Any]], collector: RewardCollector | None = None, **options: Any
) -> list[Callable[..., Any]]:
    """Wrap TRL reward functions so every sample's scores are logged on one ``model_output``.

    Pass the result as ``GRPOTrainer(reward_funcs=...)``, all functions in one call: the call
    sets the collector's functions. Without ``collector`` the wrappers report to
    :func:`default_collector`, which a ``GemmalogCallback`` made without one shares; or use
    ``callback.wrap(funcs)``. ``options`` are :class:`RewardCollector` options, applied to the
    collector used. A name TRL gives two functions (two partials of one function) is kept
    for the first; the later ones are recorded as ``<name>_2``, ``<name>_3`` ...
    """
    if collector is None:
        collector = default_collector()
    collector.configure(**options)
    labels: list[str] = []
    positions: dict[str, int] = {}
    wrapped: list[Callable[..., Any]] = []
    for i, func in enumerate(funcs):
        if _is_reward_model(func):
            wrapped.append(func)
            continue
        label = unique_label(reward_name(func), labels)
        labels.append(label)
        positions[label] = i  # TRL's reward_weights follow positions in reward_funcs
        wrapped.append(wrap_reward_function(func, collector, label=label))
    collector.expected = labels
    collector.positions = positions
    collector.total_functions = len(funcs)
    return wrapped


def logged_reward(
    collector: RewardCollector | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator form for one function: ``@logged_reward(collector)`` (or ``@logged_reward()``
    for :func:`default_collector`); the function joins the collector's functions."""
    target = collector if collector is not None else default_collector()

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        label = unique_label(reward_name(func), target.expected)
        wrapped = wrap_reward_function(func, target, label=label)
        target.expected.append(label)
        return wrapped

    return decorate
