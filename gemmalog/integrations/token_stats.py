"""Per-completion log-probability and entropy statistics (opt-in: ``log_token_stats``).

TRL scores the completion tokens of its loss pass through the fused LM head it adds to the
policy model (trl 1.16, ``trainer/utils.py`` ``add_fused_lm_head``): the model called with
``labels=`` and ``fused_lm_head=True`` returns a ``FusedCausalLMOutput`` with each completion
token's log-probability under TRL's ``temperature``, the entropy of the distribution it was
drawn from, and ``label_mask`` (which positions are completion tokens). ``_compute_loss``
keeps only their batch mean (the ``entropy`` metric). A forward hook on the model
(``register_forward_hook(with_kwargs=True)``, torch's public API) sees those outputs without
changing anything: on the training thread it reduces each row to four numbers on the device,
without gradient (token count, sum and minimum of the log-probabilities, sum of the
entropies), and keeps them with the row's ``input_ids``, ``attention_mask`` and ``labels``.
After each callback hook that follows a generation (``collector.flush()`` numbers the
batch's samples), the rows of a batch whose pass is over are handed to the listener as one
:class:`~gemmalog.deferred.TokenStatsBatch`, which matches them to the completions.

Which forward pass counts: a completion's first loss pass. In training that is the first
forward with gradients after its batch's rewards; in evaluation, the first forward after the
eval batch's rewards. TRL's other passes over the policy model (the old log-probabilities
when generation and optimization are misaligned, the reference through a disabled PEFT
adapter) run without gradients before the reward functions, so they are never taken; with
``num_iterations`` > 1 the later passes over a batch are not either.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from gemmalog import running
from gemmalog.deferred import TokenStatsBatch
from gemmalog.notices import warn_once

if TYPE_CHECKING:
    from gemmalog.deferred import RewardBatch
    from gemmalog.deferred.token_stats import Chunk
    from gemmalog.integrations.collector import RewardCollector


class _Pass:
    """The rows of one batch's first loss pass, as they come (training thread)."""

    __slots__ = ("batch", "chunks", "handed", "seen", "size")

    def __init__(self, batch: RewardBatch, size: int) -> None:
        self.batch = batch
        self.size = size
        self.seen = 0
        self.chunks: list[Chunk] = []
        self.handed = False


class TokenStats:
    """Per-completion statistics of TRL's loss pass, for the batches of ``collector``.

    :meth:`attach` hooks the policy model; :meth:`hand_over` (after each
    ``collector.flush()``) hands the rows of every pass that is complete, or will get no
    more, to the pipeline; :meth:`detach` removes the hook.
    """

    def __init__(self, collector: RewardCollector) -> None:
        self.collector = collector
        self._handle: Any = None
        self._torch: Any = None
        self._current: _Pass | None = None
        self._replaced: list[_Pass] = []  # passes of earlier batches not handed over yet

    def attach(self, model: Any) -> None:
        """Hook ``model``'s forward (the one TRL trains: the callback's ``model``)."""
        import torch

        self.detach()
        self._torch = torch
        self._handle = model.register_forward_hook(self._observe, with_kwargs=True)

    def detach(self) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None

    # -- the training thread ----------------------------------------------------------------
    def _observe(self, module: Any, args: Any, kwargs: dict[str, Any], output: Any) -> None:
        if not kwargs.get("fused_lm_head"):  # generation, or any forward that is not TRL's
            return
        try:
            current = self._pass_of(module)
            if current is not None:
                self._take(current, kwargs, output)
        except Exception as exc:  # never in the way of training
            warn_once(
                f"token statistics not recorded: {type(exc).__name__}: {exc}", key="trl:tokens"
            )

    def _pass_of(self, module: Any) -> _Pass | None:
        """The pass a loss forward belongs to; None for a forward that is not a first loss
        pass (no gradients in training, the batch's rows all taken already)."""
        batch = self.collector.latest
        if batch is None:
            return None
        if self._torch.is_grad_enabled():  # training's loss pass
            if not module.training or batch.phase != "train":
                return None
        elif module.training or batch.phase != "eval":  # evaluation's, after its rewards
            return None
        current = self._current
        if current is None or current.batch is not batch:
            if current is not None and not current.handed:
                self._replaced.append(current)
            current = self._current = _Pass(batch, len(batch.completions))
        # full: a later pass over the same completions (num_iterations > 1)
        return current if current.seen < current.size else None

    def _take(self, current: _Pass, kwargs: dict[str, Any], output: Any) -> None:
        log_probs = getattr(output, "log_probs", None)
        scored = getattr(output, "label_mask", None)
        labels = kwargs.get("labels")
        ids = kwargs.get("input_ids")
        if log_probs is None or scored is None or labels is None or ids is None:
            warn_once(
                "log_token_stats: the model's output has no per-token log-probabilities "
                "(TRL's fused LM head, trl >= 1.16); no token statistics are logged",
                key="trl:tokens:output",
            )
            return
        torch = self._torch
        rows = min(current.size - current.seen, log_probs.size(0))
        with torch.no_grad():
            logps = log_probs[:rows].detach().float()
            scored = scored[:rows]
            columns = [
                scored.sum(-1).float(),
                logps.sum(-1),
                logps.masked_fill(~scored, math.inf).amin(-1),
            ]
            entropy = getattr(output, "entropy", None)
            if entropy is not None:
                columns.append(entropy[:rows].detach().float().sum(-1))
            stats = torch.stack(columns, dim=1)
        done = None
        if stats.is_cuda:  # the listener copies them once the device has computed them
            done = torch.cuda.Event()
            done.record()
        attention = kwargs.get("attention_mask")
        attention = attention[:rows] if attention is not None else None
        current.chunks.append((stats, ids[:rows], attention, labels[:rows], done))
        current.seen += rows

    def hand_over(self, final: bool = False) -> None:
        """Hand the passes that are complete, replaced by a newer batch's or (``final``) all
        of them to the pipeline; those of batches that are not logged are dropped."""
        ready, self._replaced = self._replaced, []
        current = self._current
        if current is not None and not current.handed:
            # complete, or a newer batch's rewards ran: no more rows will come for it
            over = current.seen >= current.size or current.batch is not self.collector.latest
            if final or over:
                ready.append(current)
        pipeline = running()
        name = pipeline.role_names["metrics"] if pipeline is not None else None
        for one in ready:
            chunks, one.chunks = one.chunks, []
            one.handed = True  # kept as the current pass: later passes over it are skipped
            batch = one.batch
            # scoring is set when the collector hands a batch over, its samples numbered
            if pipeline is None or name is None or batch.scoring is None or not chunks:
                continue
            if batch.completion_ids is None:  # not called by TRL: nothing to match rows to
                continue
            payload = TokenStatsBatch(
                name,
                chunks,
                one.seen >= one.size,
                phase=batch.phase,
                step=batch.step,
                first=batch.first,
                completion_ids=batch.completion_ids,
                prompts=batch.prompts,
            )
            pipeline.defer(payload, name)
        if final:
            self._current = None
