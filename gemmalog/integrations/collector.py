"""The reward collector: one generation batch's scores, gathered from every wrapped function.

No TrainerCallback hook sees prompts, completions or per-sample rewards; TRL's supported
way to reach them is the reward function itself. Each wrapped function (``rewards.py``)
reports its values here; when every wrapped function has scored a batch, the collector hands
the running pipeline one :class:`~gemmalog.deferred.RewardBatch` (``Pipeline.defer``): the
raw completions, prompts, dataset columns and scores, and the collector's options as they
are then. That is all the training thread does. Answer extraction, correctness, the
per-sample events and the accuracy counts are done on gemmalog's listener thread, by
``gemmalog.deferred``, in the order the batches were handed over, so the counts a progress
event reports are exact: they include every batch handed over before it. The listener never
calls back into the collector.

Steps: TRL calls reward functions at ``trainer_state.global_step == N - 1`` while it
prepares optimizer step N, and during evaluation at ``global_step == N`` after step N was
logged. The collector records train rewards at ``global_step + 1`` and eval rewards at
``global_step``, so they line up with ``trainer.state.log_history``.

Nothing here imports torch, transformers or trl.
"""

from __future__ import annotations

import inspect
import threading
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

from gemmalog import extract_reasoning_and_answer, running
from gemmalog.deferred import AdvantageSettings, RewardBatch, Scoring, Tally
from gemmalog.integrations.advantages import Capture, pending_extra, read_logged, trainer_of
from gemmalog.notices import say

if TYPE_CHECKING:
    from gemmalog.engine._pipeline import Pipeline

Extractor = Callable[[str], tuple[str | None, str | None]]
Predicate = Callable[[dict[str, Any]], bool | None]

T = TypeVar("T")


class _Option(Generic[T]):
    """An option the listener's expansion reads: setting one makes the next batch carry a new
    :class:`Scoring` (a batch already handed over keeps the one it carries). Between two
    changes the batches share one, so a hand-over costs no copy of the options."""

    __slots__ = ("name",)

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, collector: None, owner: type) -> _Option[T]: ...

    @overload
    def __get__(self, collector: RewardCollector, owner: type) -> T: ...

    def __get__(self, collector: RewardCollector | None, owner: type) -> T | _Option[T]:
        if collector is None:
            return self
        return collector._options[self.name]  # type: ignore[no-any-return]

    def __set__(self, collector: RewardCollector, value: T) -> None:
        collector._options[self.name] = value
        collector._scoring = None


class _Batch:
    """A batch being scored: its data, and the trainer whose advantages it may wait for."""

    __slots__ = ("data", "trainer")

    def __init__(self, data: RewardBatch, trainer: Any) -> None:
        self.data = data
        self.trainer = trainer  # the GRPOTrainer that called the functions, when known


class RewardCollector:
    """Gathers one batch's rewards from every wrapped function, then hands it over.

    Options:
    - ``question_column`` / ``answer_column``: dataset columns holding the question and the
      reference answer (TRL passes every dataset column to reward functions);
    - ``extractor``: text -> (reasoning, answer); default the ``<reasoning>``/``<answer>`` format;
    - ``correct_reward``: name of a reward function whose value > ``correct_threshold`` marks
      a sample correct; otherwise ``correct_fn(sample)`` when given; otherwise the extracted
      answer is compared with the reference (:func:`~gemmalog.deferred.answers_match`);
    - ``reward_weights``: name -> weight for ``total_reward`` (TRL's ``reward_weights``; the
      callback fills this from GRPOConfig); unweighted sum by default.

    Names here are the functions' labels: TRL's name, with ``_2``, ``_3`` ... added to a name
    an earlier function already has. Counts and sample numbers belong to the running run.
    """

    extractor = _Option[Extractor]()
    correct_reward = _Option[str | None]()
    correct_threshold = _Option[float]()
    correct_fn = _Option[Predicate | None]()
    reward_weights = _Option[dict[str, float]]()
    #: label -> index in GRPOTrainer(reward_funcs=...), of ``total_functions``.
    positions = _Option[dict[str, int]]()
    total_functions = _Option[int]()
    max_completion_length = _Option[int | None]()
    #: None: the configuration's metrics section.
    logging_frequency = _Option[int | None]()
    #: Set by a GemmalogCallback while training: it calls :meth:`flush` after every
    #: generation, so a scored batch may wait for the advantages TRL computes after it.
    hooked = _Option[bool]()

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
        self._options: dict[str, Any] = {}
        self._scoring: Scoring | None = None
        self.question_column = question_column
        self.answer_column = answer_column
        self.extractor = extractor
        self.correct_reward = correct_reward
        self.correct_threshold = correct_threshold
        self.correct_fn = correct_fn
        self.reward_weights = dict(reward_weights or {})
        self.expected: list[str] = []  # one label per wrapped function, unique
        self.positions = {}
        self.total_functions = 0
        self.phase_of: Callable[[], str] | None = None
        self.max_completion_length = None
        self.logging_frequency = None
        #: The GRPOConfig the callback saw: what TRL's advantage formula needs when no trainer
        #: is reachable through a reward call's ``log_extra``.
        self.grpo_config: Any = None
        self.hooked = False
        self._awaiting: list[_Batch] = []  # scored, waiting for the trainer's advantages
        #: The batch whose reward functions ran last: TRL's loss passes over its completions
        #: follow (read by ``token_stats.py``; its ``scoring`` is set once it is handed over).
        self.latest: RewardBatch | None = None
        #: The running run's answer counts, added to on the listener thread.
        self._tally = Tally()
        self._samples: dict[tuple[str, int | None], int] = {}
        self._pending: _Batch | None = None
        self._run: weakref.ref[Any] | None = None  # the pipeline the counts belong to
        # The batches (training thread, reward threads). Never held while waiting for room
        # in the queue; the listener never takes it.
        self._lock = threading.Lock()
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

    @property
    def counts(self) -> dict[str, list[int]]:
        """phase -> [correct, total] in the running run, as counted so far."""
        return self._tally.by_phase

    def _follow_run(self) -> None:
        """Counts and sample numbers belong to one run: start them afresh when the running
        pipeline is another one than last time (a collector outlives runs in one process).
        Called with the lock held."""
        pipeline = running()
        if pipeline is None:
            return
        if self._run is None or self._run() is not pipeline:
            self._run = weakref.ref(pipeline)
            self._tally = Tally()  # a batch of the run that ended counts in that run's
            self._samples = {}
            self._pending = None
            self._awaiting = []
            self.latest = None

    def _scoring_now(self) -> Scoring:
        scoring = self._scoring
        if scoring is None:
            scoring = self._scoring = Scoring(**self._options)
        return scoring

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
            self._tally.replace({str(phase): [int(c), int(t)] for phase, c, t in rows})

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
        """One function's values for the batch of ``completions``; the batch is handed over
        once every wrapped function has scored it."""
        done: list[_Batch] = []
        with self._lock:
            self._follow_run()
            batch = self._pending
            if batch is None or batch.data.completions is not completions:
                # A new batch: TRL computed the advantages of the ones before it meanwhile.
                done.extend(self._released())
                if batch is not None:
                    done.append(self._with_trainer_values(batch))
                batch = self._pending = self._new_batch(completions, prompts, kwargs)
                self.latest = batch.data
            data = batch.data
            data.values[name] = list(values)
            if batch.trainer is not None:  # every function's log_extra so far, wrapped or not
                data.extra.update(pending_extra(batch.trainer))
            if capture is not None:
                for column, logged in capture.extra.items():
                    data.extra.setdefault(column, logged)
                for metric, logged in capture.metrics.items():
                    data.metrics.setdefault(metric, []).extend(logged)
            expected = self.expected
            # The count first: only the batch's last function needs the names compared.
            if (
                expected
                and len(data.values) >= len(expected)
                and all(n in data.values for n in expected)
            ):
                self._pending = None
                if batch.trainer is not None and self.hooked:
                    self._awaiting.append(batch)  # TRL computes its advantages next
                else:
                    done.append(batch)
            handover = self._claimed(done)
        self._hand_over(handover)

    def flush(self) -> None:
        """Log the batches waiting for TRL's advantages, and one still waiting for functions
        that were not wrapped (the callback calls it after every generation)."""
        with self._lock:
            self._follow_run()
            batches = self._released()
            batch, self._pending = self._pending, None
            if batch is not None:
                batches.append(self._with_trainer_values(batch))
            handover = self._claimed(batches)
        self._hand_over(handover)

    def _new_batch(self, completions: Any, prompts: Any, kwargs: dict[str, Any]) -> _Batch:
        """The batch a function's call starts, at the step and phase of the trainer's state."""
        state = kwargs.get("trainer_state")
        phase = self.phase_of() if self.phase_of is not None else "train"
        global_step = getattr(state, "global_step", None)
        step = (
            None if global_step is None else (global_step + 1 if phase == "train" else global_step)
        )
        data = RewardBatch(
            completions,
            prompts,
            step,
            phase,
            questions=kwargs.get(self.question_column),
            answers=kwargs.get(self.answer_column),
            completion_ids=kwargs.get("completion_ids"),
        )
        trainer = trainer_of(kwargs)
        source = trainer if trainer is not None else self.grpo_config
        data.settings = None if source is None else AdvantageSettings.of(source, phase)
        return _Batch(data, trainer)

    def _released(self) -> list[_Batch]:
        """The batches waiting for advantages, with them. Called with the lock held."""
        batches, self._awaiting = self._awaiting, []
        return [self._with_trainer_values(b) for b in batches]

    @staticmethod
    def _with_trainer_values(batch: _Batch) -> _Batch:
        """``batch`` with the advantages TRL logged for it, when its trainer still has them
        (read on the training thread: the next generation replaces them)."""
        data = batch.data
        if batch.trainer is not None and data.advantages is None:
            try:
                logged = read_logged(batch.trainer, data.completions)
            except Exception:  # a trainer of another shape: the formula's value instead
                logged = None
            if logged is not None:
                data.advantages, data.source = logged[0], "trl"
                data.extra.update(logged[1])  # TRL's table: every function's columns
            batch.trainer = None
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
            tally = self._tally
        correct, total = tally.get(phase)
        return correct, total, (correct / total if total else 0.0)

    def tally_of(self, pipeline: Pipeline) -> Tally | None:
        """The answer counts of ``pipeline``'s run, to be read on the listener thread (by a
        progress event handed over now: every batch before it counted); None when this
        collector has seen no batch of that run."""
        with self._lock:
            run = self._run
            return self._tally if run is not None and run() is pipeline else None

    # -- handing a batch over (training thread) -------------------------------------------
    def _claimed(self, batches: list[_Batch]) -> list[tuple[RewardBatch, Pipeline]]:
        """The batches to log, each with the pipeline that logs it, their samples numbered
        and their options and tally attached. Called with the lock held."""
        pipeline = running()
        if pipeline is None or not batches:
            return []
        out = []
        for batch in batches:
            data = batch.data
            if data.phase == "eval" and not pipeline.metrics.enabled("validation_metrics"):
                continue
            key = (data.phase, data.step)
            data.first = self._samples.get(key, 0)
            try:
                self._samples[key] = data.first + len(data.completions)
            except TypeError:  # completions without a length: read as a list here
                data.completions = list(data.completions)
                self._samples[key] = data.first + len(data.completions)
            data.scoring = self._scoring_now()
            data.tally = self._tally
            out.append((data, pipeline))
        return out

    @staticmethod
    def _hand_over(batches: list[tuple[RewardBatch, Pipeline]]) -> None:
        # Outside the lock: with the block policy a full queue makes this thread wait.
        for data, pipeline in batches:
            pipeline.defer(data, pipeline.roles["model"])
