"""One loss pass's per-token statistics, matched to its completions on the listener thread.

The TRL integration's forward hook (``gemmalog/integrations/token_stats.py``) reduces each
row of TRL's loss pass to four numbers on the device (token count, sum and minimum of the
log-probabilities, sum of the entropies) and keeps the row's ``input_ids``,
``attention_mask`` and ``labels``. Once the batch's rows are all in, it hands them over as
one :class:`TokenStatsBatch`: on the listener thread they are copied to the host (after the
CUDA event recorded behind them, so the training thread never waits for the device), each
row is matched to its completion by token ids (:func:`match`), and one ``token_stats`` event
is written per completion, keyed as its ``model_output`` (phase, step, sample).

TRL shuffles a generation batch before splitting it into micro-batches, so rows come in
another order than the completions. A row's completion tokens are its labels that are not
-100 (TRL's ``completion_ids`` as it passed them to the reward functions), its prompt the
attended tokens before the first completion column.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

from gemmalog.notices import say
from gemmalog.processors.expand import ExpandContext

#: labels' value at positions that are not scored (TRL's and transformers' ignore index).
IGNORE = -100

Tokens = tuple[int, ...]
#: What one forward leaves (device tensors): each row's statistics, its input_ids,
#: attention_mask and labels, and the CUDA event after which they may be read (or None).
Chunk = tuple[Any, Any, Any, Any, Any]


def match(
    completions: Sequence[Tokens],
    groups: Sequence[int],
    rows: Sequence[tuple[Tokens, Tokens]],
    whole: bool,
) -> list[int | None]:
    """The row of each completion, or None where it is not known.

    ``completions`` holds each completion's token ids, ``groups`` a number per distinct
    prompt (equal prompts, equal numbers), ``rows`` the ``(prompt ids, completion ids)`` of
    the rows a loss pass scored, ``whole`` whether they are the whole pass (one row each).

    A row is the completion's when it has its tokens and its prompt. The prompt of a group
    is known from a completion no other completion of the batch has (any row with its tokens
    is its own) or, in a whole pass, from a completion whose rows all share one prompt (its
    own row is among them). Groups whose completions give two prompts, or none, get no rows:
    a completion that shares its tokens with one of another prompt, in a group with no
    completion of its own, is not told apart. Two completions of one prompt with the same
    tokens are one sequence: either's row serves either.
    """
    found: dict[Tokens, list[int]] = defaultdict(list)
    for r, (_, tokens) in enumerate(rows):
        if tokens:
            found[tokens].append(r)
    sharing = Counter(completions)
    prompt_of: dict[int, Tokens | None] = {}
    for tokens, group in zip(completions, groups, strict=True):
        prompts = {rows[r][0] for r in found.get(tokens, ())}
        if len(prompts) == 1 and (whole or sharing[tokens] == 1):
            prompt = prompts.pop()
            if prompt_of.setdefault(group, prompt) != prompt:
                prompt_of[group] = None  # two prompts in one group: none is trusted
    out: list[int | None] = []
    for tokens, group in zip(completions, groups, strict=True):
        known = prompt_of.get(group)
        free = found.get(tokens)
        pick = None
        if known is not None and free:
            pick = next((r for r in free if rows[r][0] == known), None)
            if pick is not None:
                free.remove(pick)
        out.append(pick)
    return out


def prompt_groups(prompts: Sequence[Any] | None, n: int) -> list[int]:
    """A number per distinct prompt (``==``), in order; every completion its own without."""
    if prompts is None or len(prompts) != n:
        return list(range(n))
    seen: list[Any] = []
    out = []
    for prompt in prompts:
        for g in range(len(seen) - 1, -1, -1):  # TRL's groups are consecutive: last first
            if seen[g] is prompt or seen[g] == prompt:
                break
        else:
            g = len(seen)
            seen.append(prompt)
        out.append(g)
    return out


def host_rows(chunks: Sequence[Chunk]) -> tuple[list[tuple[Tokens, Tokens]], list[list[float]]]:
    """Each row's (prompt ids, completion ids) and statistics, copied to the host."""
    keys: list[tuple[Tokens, Tokens]] = []
    stats: list[list[float]] = []
    for values, ids, attention, labels, done in chunks:
        if done is not None:
            done.synchronize()
        labels = labels.cpu()
        ids = ids.cpu()
        scored = labels != IGNORE
        columns = scored.any(0).nonzero()
        start = int(columns[0]) if len(columns) else labels.size(1)
        prompt = ids[:, :start]
        attended = (
            attention[:, :start].cpu().bool()
            if attention is not None
            else prompt.new_ones(prompt.shape, dtype=scored.dtype)
        )
        for r in range(labels.size(0)):
            keys.append(
                (tuple(prompt[r][attended[r]].tolist()), tuple(labels[r][scored[r]].tolist()))
            )
        stats.extend(values.cpu().tolist())
    return keys, stats


class TokenStatsBatch:
    """The rows of one reward batch's first loss pass, with what keys its completions.

    ``whole``: every completion's row is among them (else the pass was cut short);
    ``completion_ids`` and ``prompts`` as TRL passed them to the reward functions;
    ``first``: the sample number of the batch's first completion in (phase, step).
    """

    kind = "token_stats"

    __slots__ = (
        "chunks",
        "completion_ids",
        "first",
        "logger",
        "phase",
        "prompts",
        "step",
        "whole",
    )

    def __init__(
        self,
        logger: str,
        chunks: list[Chunk],
        whole: bool,
        *,
        phase: str,
        step: int | None,
        first: int,
        completion_ids: Sequence[Sequence[int]],
        prompts: Sequence[Any] | None,
    ) -> None:
        self.logger = logger
        self.chunks = chunks
        self.whole = whole
        self.phase = phase
        self.step = step
        self.first = first
        self.completion_ids = completion_ids
        self.prompts = prompts

    def events(self, context: ExpandContext) -> list[dict[str, Any]]:
        """One ``token_stats`` event per completion whose row was found."""
        try:
            return self._events()
        except Exception as exc:  # logging must never break training: say so, log nothing
            say(f"could not log token statistics: {type(exc).__name__}: {exc}")
            return []

    def _events(self) -> list[dict[str, Any]]:
        completions = [tuple(int(t) for t in ids) for ids in self.completion_ids]
        keys, stats = host_rows(self.chunks)
        self.chunks = []  # the device tensors are not kept past this
        rows = match(completions, prompt_groups(self.prompts, len(completions)), keys, self.whole)
        events = []
        for i, r in enumerate(rows):
            if r is None:
                continue
            count, total, lowest, *entropy = stats[r]
            if count <= 0:
                continue
            event: dict[str, Any] = {
                "kind": "token_stats",
                "logger": self.logger,
                "step": self.step,
                "phase": self.phase,
                "sample": self.first + i,
                "tokens": int(count),
                "logp_mean": total / count,
                "logp_min": lowest,
            }
            if entropy:
                event["entropy_mean"] = entropy[0] / count
            events.append(event)
        return events
