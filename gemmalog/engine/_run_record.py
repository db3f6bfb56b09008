"""What the end of a run leaves in its run.json: the counts of what was written and lost,
then, when the process ends, the events logged after the run ended (:mod:`gemmalog.engine._late`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gemmalog.engine._late import record_late
from gemmalog.run._directory import write_manifest

if TYPE_CHECKING:
    from gemmalog.engine._listener import EventListener
    from gemmalog.processors import Redact
    from gemmalog.run._manifest import Run
    from gemmalog.sinks.jsonl import JsonlSink


class RunRecord:
    """run.json's end of one run, written through the run's redaction."""

    __slots__ = ("_late_counts", "manifest", "redact", "run")

    def __init__(self, run: Run, redact: Redact | None) -> None:
        self.run = run
        self.redact = redact
        #: What the end wrote (empty until then: nothing for the late count to update).
        self.manifest: dict[str, Any] = {}
        self._late_counts = (0, 0)

    def write_end(self, listener: EventListener, drops: int, error: str | None) -> None:
        """run.json with what the JSONL shard wrote and lost, the drops and the sink errors."""
        primary = listener.primary
        self.manifest = {
            "events_written": primary.lines_written,
            "events_lost": primary.lines_lost,
            "drops": drops,
            "sink_errors": listener.health.sink_errors(),
            "error": error,
        }
        write_manifest(self.run, redact=self.redact, **self.manifest)

    def record_late(self, late_shard: JsonlSink) -> None:
        """Count the events ``late_shard`` took after the run ended in run.json, and say so
        (once for the same counts)."""
        record_late(self.run, late_shard, self.manifest, self.redact, self._counted)

    def _counted(self, counts: tuple[int, int]) -> bool:
        if counts == self._late_counts:
            return True
        self._late_counts = counts
        return False
