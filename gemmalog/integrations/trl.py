"""The transformers/TRL integration: a TrainerCallback plus the reward-function wrappers.

    from gemmalog.integrations.trl import GemmalogCallback, wrap_reward_functions

    gemmalog.initialize("configs/gemma_logging.yaml")
    callback = GemmalogCallback()
    trainer = GRPOTrainer(
        model=model,
        args=config,
        train_dataset=dataset,
        reward_funcs=callback.wrap(REWARD_FUNCTIONS),
        callbacks=[callback],
    )

``reward_funcs=wrap_reward_functions(REWARD_FUNCTIONS), callbacks=[GemmalogCallback()]``
works the same: made without a collector, both use the process's default collector.

What it records, without monkeypatching:
- every key of every ``on_log`` dict as a metric at ``state.global_step`` (phase ``eval``
  for TRL's ``eval_`` keys, stored without the prefix; the final training summary too), so
  the ``metrics`` view equals ``trainer.state.log_history``;
- a ``run_start`` event with the TrainingArguments/GRPOConfig snapshot, model name and
  parameter count and dataset size, and the final statistics in ``run_end``;
- progress (progress_percent, correct_answers, total_answers, accuracy) each step, from
  exact per-sample correctness, not from a batch mean; after a resume from a checkpoint the
  counts continue from the run's own logs up to the checkpoint's step;
- resource metrics every ``metrics.logging_frequency`` steps, gradient norms per parameter
  group every ``metrics.gradient_frequency`` steps (taken in ``on_pre_optimizer_step``, so
  after transformers' gradient clipping);
- through the wrapped reward functions: every completion with every function's score, the
  advantage TRL used for it (read from the trainer after each generation: see
  ``gemmalog/integrations/advantages.py``), what reward functions logged through TRL's
  ``log_extra``, and the whole conversation of conversational data (``messages``);
- with ``log_token_stats`` (off by default): each completion's mean and minimum token
  log-probability and mean entropy in TRL's loss pass (``token_stats`` events, see
  ``gemmalog/integrations/token_stats.py``).

Every rank writes its own shard; TensorBoard and CSV are written by rank 0 only (the
pipeline does not build those sinks elsewhere). No collective call is made.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from transformers import TrainerCallback

import gemmalog
from gemmalog import api, bind, log_event, running, set_final_stats
from gemmalog.deferred import MemorySample, Progress
from gemmalog.integrations.rewards import (
    RewardCollector,
    default_collector,
    wrap_reward_functions,
)
from gemmalog.integrations.token_stats import TokenStats
from gemmalog.integrations.trainer_values import gradient_norms, snapshot, split_logs
from gemmalog.notices import warn_once

_MISSING = object()


class GemmalogCallback(TrainerCallback):  # type: ignore[misc]
    """Log everything a Trainer (GRPOTrainer first) reports, into the running gemmalog run."""

    def __init__(
        self,
        collector: RewardCollector | None = None,
        *,
        logging_frequency: int | None = None,
        gradient_frequency: int | None = None,
        log_token_stats: bool | None = None,
        **collector_options: Any,
    ) -> None:
        # No collector given: share the default one, which wrap_reward_functions() without a
        # collector also reports to, so the two meet whichever was made first.
        self.collector = (collector if collector is not None else default_collector()).configure(
            **collector_options
        )
        self.collector.logging_frequency = logging_frequency
        self._logging_frequency = logging_frequency
        self._gradient_frequency = gradient_frequency
        self._log_token_stats = log_token_stats  # None: the configuration's metrics section
        self.token_stats: TokenStats | None = None  # set while training, when asked for
        self._model: Any = None
        self._tokens_seen: tuple[float, float] | None = None  # (num_tokens, monotonic time)
        self.tokens_per_second: float | None = None
        self._train_started = 0.0
        self._progress: int | None = None  # the last step whose progress was logged
        self._logged: tuple[int, dict[str, dict[str, float]]] | None = None  # on_log's, by step

    # -- the reward side ----------------------------------------------------------------
    def wrap(self, funcs: Sequence[Callable[..., Any]]) -> list[Callable[..., Any]]:
        """Wrap reward functions so they report to this callback's collector."""
        return wrap_reward_functions(funcs, self.collector)

    def _flush(self, final: bool = False) -> None:
        """Log the batches the last generation scored (and their token statistics)."""
        self.collector.flush()
        if self.token_stats is not None:
            self.token_stats.hand_over(final)

    def _phase(self) -> str:
        model = self._model
        return "train" if model is None or getattr(model, "training", True) else "eval"

    # -- frequencies from the configuration's metrics section --------------------------
    def _frequency(self, explicit: int | None, key: str) -> int:
        if explicit is not None:
            return max(1, explicit)
        pipeline = running()
        return max(1, getattr(pipeline.metrics, key)) if pipeline is not None else 5

    def _enabled(self, category: str) -> bool:
        pipeline = running()
        return pipeline is None or pipeline.metrics.enabled(category)

    # -- hooks ------------------------------------------------------------------------
    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        self._model = kwargs.get("model")
        self._train_started = time.time()
        self._progress = None
        self._logged = None
        if state.global_step > 0:  # resumed from a checkpoint: count what it had seen
            self.collector.resume(state.global_step)
        self.collector.phase_of = self._phase
        self.collector.max_completion_length = getattr(args, "max_completion_length", None)
        # Advantages: the trainer's own, read after each generation (flush() below, on every
        # hook that follows one); the config's settings for the formula when it is out of reach.
        self.collector.grpo_config = args
        self.collector.hooked = True
        weights = getattr(args, "reward_weights", None)
        collector = self.collector
        if weights and collector.positions and len(weights) == collector.total_functions:
            # TRL weights reward_funcs by position, reward models included.
            collector.reward_weights = {
                n: float(weights[i]) for n, i in collector.positions.items()
            }
        pipeline = running()
        run = pipeline.run if pipeline is not None else gemmalog.initialize()
        self._hook_token_stats()
        model = self._model
        name = (
            getattr(getattr(model, "config", None), "_name_or_path", None) or type(model).__name__
        )
        try:
            parameters = sum(p.numel() for p in model.parameters()) if model is not None else None
        except Exception:
            parameters = None
        dataset = kwargs.get("train_dataloader")
        try:
            dataset_size = len(dataset.dataset) if dataset is not None else None
        except Exception:
            dataset_size = None
        bind(step=state.global_step)
        log_event(
            "run_start",
            event="training started",
            name=run.name,
            run_dir=str(run.dir),
            model_name=str(name),
            num_parameters=parameters,
            dataset_size=dataset_size,
            training_args=snapshot(args),
            world_size=getattr(args, "world_size", 1),
        )
        # The start sample of a fresh training only: a resumed one would log it at the
        # checkpoint's step, which the earlier segment may have sampled already.
        if self._enabled("resource_metrics") and state.global_step == 0:
            api.log_memory_usage(step=0)
        return control

    def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        bind(step=state.global_step + 1, epoch=state.epoch)
        return control

    def on_pre_optimizer_step(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        step = state.global_step + 1
        if step % self._frequency(self._gradient_frequency, "gradient_frequency") == 0:
            self._log_gradients(step, kwargs.get("model") or self._model)
        return control

    def on_substep_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        self._flush()  # a micro-batch's generation (gradient accumulation)
        return control

    def on_prediction_step(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        self._flush()  # an eval batch's generation
        return control

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        self._flush()
        step = state.global_step
        bind(step=step, epoch=state.epoch)
        max_steps = state.max_steps or args.max_steps or 0
        self._log_progress(step, 100.0 * step / max_steps if max_steps > 0 else 0.0)
        self._progress = step
        if (
            self._enabled("resource_metrics")
            and step % self._frequency(self._logging_frequency, "logging_frequency") == 0
        ):
            extra = (
                {}
                if self.tokens_per_second is None
                else {"tokens_per_second": self.tokens_per_second}
            )
            self._log_resources(step, extra)
        return control

    def on_log(
        self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any
    ) -> Any:
        if not logs:
            return control
        self._flush()
        step = state.global_step
        split = split_logs(logs)
        if self._logged is not None and self._logged[0] == step:
            # A second on_log at one step (the final summary repeats the last step's epoch):
            # a value already logged at this step is not logged again (one row per step).
            for phase, values in split.items():
                before = self._logged[1].setdefault(phase, {})
                for key in [k for k, v in values.items() if before.get(k, _MISSING) == v]:
                    del values[key]
                before.update(values)
        else:
            self._logged = (step, {phase: dict(values) for phase, values in split.items()})
        for phase, values in split.items():
            if values:
                api.log_training_progress(step, values, phase=phase)
        tokens = logs.get("num_tokens")  # TRL's cumulative token count
        if isinstance(tokens, int | float) and not isinstance(tokens, bool):
            now = time.monotonic()
            if self._tokens_seen is not None and now > self._tokens_seen[1]:
                self.tokens_per_second = (tokens - self._tokens_seen[0]) / (
                    now - self._tokens_seen[1]
                )
            self._tokens_seen = (float(tokens), now)
        return control

    def on_evaluate(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        self._flush()
        return control

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        self._flush(final=True)
        if self.token_stats is not None:
            self.token_stats.detach()
            self.token_stats = None
        self.collector.hooked = False
        correct, total, accuracy = self.collector.accuracy("train")
        eval_correct, eval_total, eval_accuracy = self.collector.accuracy("eval")
        max_steps = state.max_steps or args.max_steps or 0
        stats = {
            "global_step": state.global_step,
            "progress_percent": 100.0 * state.global_step / max_steps if max_steps > 0 else 0.0,
            "correct_answers": correct,
            "total_answers": total,
            "accuracy": 100.0 * accuracy,
            "eval_correct_answers": eval_correct,
            "eval_total_answers": eval_total,
            "eval_accuracy": 100.0 * eval_accuracy,
            "training_complete": state.global_step >= max_steps if max_steps > 0 else True,
            "train_seconds": time.time() - self._train_started,
        }
        set_final_stats(**stats)
        final: dict[str, float] = {"final_accuracy": 100.0 * accuracy}
        # on_step_end already logged the counts at this step (it flushed the last train batch
        # first): logging them again would give the metrics view two rows for one (step, name).
        if self._progress != state.global_step:
            final.update(correct_answers=correct, total_answers=total)
        final["training_complete"] = 1.0 if stats["training_complete"] else 0.0
        api.log_training_progress(state.global_step, final, phase="progress")
        world = getattr(args, "world_size", 1)
        # The counts are this process's: under torchrun each rank judges its own completions
        # (the views add every rank's up). Say so rather than print one rank's as the total.
        message = (
            "Training completed"
            if not isinstance(world, int) or world <= 1
            else f"Training completed (answer counts of rank {getattr(args, 'process_index', 0)} "
            f"of {world}; gemmalog summary counts every rank's)"
        )
        gemmalog.get_training_logger().info(
            message, **{k: v for k, v in stats.items() if k != "global_step"}
        )
        return control

    def _hook_token_stats(self) -> None:
        """Hook the model for per-completion token statistics when asked (the argument, else
        ``metrics.log_token_stats``); nothing is hooked otherwise."""
        if self.token_stats is not None:
            self.token_stats.detach()
            self.token_stats = None
        wanted = self._log_token_stats
        if wanted is None:
            pipeline = running()
            wanted = pipeline is not None and pipeline.metrics.log_token_stats
        if not wanted or self._model is None:
            return
        try:
            self.token_stats = TokenStats(self.collector)
            self.token_stats.attach(self._model)
        except Exception as exc:
            self.token_stats = None
            warn_once(f"token statistics not recorded: {exc}", key="trl:tokens:attach")

    # -- progress and resources, finished on the listener thread --------------------------
    def _log_progress(self, step: int, percent: float) -> None:
        """The step's progress ``metrics`` event, its answer counts filled in on the listener
        thread: the reward batches are counted there, and every batch handed over before
        this event is counted before it (no wait on the training thread)."""
        try:
            pipeline = running(start=True)
            name = pipeline.role_names["metrics"]
            if name is None:  # the metrics logger is above INFO
                return
            pipeline.defer(Progress(name, step, percent, self.collector.tally_of(pipeline)), name)
        except Exception as exc:
            warn_once(f"progress not logged: {exc}", key="trl:progress")

    def _log_resources(self, step: int, extra: dict[str, Any]) -> None:
        """What ``api.log_memory_usage(step=step, **extra)`` logs, its /proc reads (RSS, CPU
        percent) made on the listener thread. The device and CUDA counters are read here:
        torch's current device is the training thread's."""
        try:
            pipeline = running(start=True)
            name = pipeline.role_names["system"]
            if name is None:
                return
            pipeline.defer(MemorySample.now(name, step, extra), name)
        except Exception as exc:
            warn_once(f"resource metrics not logged: {exc}", key="trl:resources")

    # -- gradients ------------------------------------------------------------------------
    def _log_gradients(self, step: int, model: Any) -> None:
        if model is None:
            return
        try:
            norms = gradient_norms(model)
            if norms:
                api.log_training_progress(
                    step, {f"grad_norm/{n}": v for n, v in norms.items()}, phase="gradients"
                )
        except Exception as exc:
            warn_once(f"gradient norms not logged: {exc}", key="trl:gradients")


__all__ = [
    "GemmalogCallback",
    "RewardCollector",
    "default_collector",
    "split_logs",
    "wrap_reward_functions",
]
