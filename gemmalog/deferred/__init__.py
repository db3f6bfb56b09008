"""Deferred events: what an integration hands the pipeline to be logged on the listener thread.

An integration that would build many events on the training thread (a reward batch's), or
read something slow for one (``/proc`` for memory), hands the running pipeline a *payload*
instead, with the one call made for it::

    pipeline = gemmalog.running(start=True)
    pipeline.defer(payload, logger_name)

The call costs what one log call costs: the carrier event gets its envelope, the context
bound on the calling thread and the resources there, and is queued in order with every other
event. On the listener thread ``payload.events(...)`` builds the events written in its place,
which then go through the listener's processors (derived statistics, the user's, redaction)
like any other. A payload is plain data, and the code that expands it lives here, beside the
logging helpers' event builders: the listener reads what was handed over and never calls
back into the integration that handed it (its locks, its state), so the path goes one way:
caller -> queue -> listener -> sinks.

The payloads:

- :class:`RewardBatch`: a generation batch's completions, prompts, columns and every reward
  function's values, with the collector's options (:class:`Scoring`) and the :class:`Tally`
  its answers are counted in; it becomes one ``model_output`` per sample, the ``reward``
  events, a ``reward_summary`` and ``generation_metrics``;
- :class:`Progress`: a step's ``progress`` metrics, the answers of a :class:`Tally` counted
  when it is written;
- :class:`MemorySample`: a ``system`` memory event, ``/proc`` read on the listener;
- :class:`TokenStatsBatch`: the per-token statistics of a reward batch's loss pass (the TRL
  callback's ``log_token_stats``), matched to its completions by token ids; one
  ``token_stats`` event per completion.

A new payload is a class with a ``kind`` (the carrier's) and ``events(context)`` (see
:class:`Deferred`), added here; ``docs/architecture.md`` ("Adding an integration") says when
one is worth it.
"""

from gemmalog.deferred.answers import answers_match
from gemmalog.deferred.grpo import AdvantageSettings, computed_advantages
from gemmalog.deferred.reward_batch import RewardBatch, Scoring
from gemmalog.deferred.steps import MemorySample, Progress
from gemmalog.deferred.tally import Tally
from gemmalog.deferred.token_stats import TokenStatsBatch
from gemmalog.processors.expand import Deferred, ExpandContext

__all__ = [
    "AdvantageSettings",
    "Deferred",
    "ExpandContext",
    "MemorySample",
    "Progress",
    "RewardBatch",
    "Scoring",
    "Tally",
    "TokenStatsBatch",
    "answers_match",
    "computed_advantages",
]
