"""Fields computed from an event's raw inputs on the listener thread, not the caller's.

``log_generation_metrics`` hands over the completions' texts (``_generations``) instead of
statistics: distinct-n, repeated n-grams and format checks over a batch of long completions
cost milliseconds, which belong with serialization. This processor replaces the raw inputs
with the declared ``generation_metrics`` fields before the event is rendered, so no line
ever carries them.
"""

from __future__ import annotations

from typing import Any

from gemmalog.processors.textstats import generation_stats

GENERATIONS = "_generations"
TOKEN_LENGTHS = "_token_lengths"
MAX_TOKENS = "_max_tokens"


class DeriveGenerationStats:
    """structlog processor: turn ``_generations`` (and token lengths) into the statistics."""

    __slots__ = ()

    def __call__(self, logger: Any, method_name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
        if GENERATIONS not in event_dict:
            return event_dict
        texts = event_dict.pop(GENERATIONS)
        token_lengths = event_dict.pop(TOKEN_LENGTHS, None)
        max_tokens = event_dict.pop(MAX_TOKENS, None)
        if isinstance(texts, list):
            lengths = token_lengths if isinstance(token_lengths, list) else None
            limit = max_tokens if isinstance(max_tokens, int) else None
            event_dict.update(
                generation_stats([str(t) for t in texts], token_lengths=lengths, max_tokens=limit)
            )
        return event_dict
