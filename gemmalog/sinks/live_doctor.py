"""The live doctor (``doctor.live: true``): the cheap checks while training runs, as a sink.

:class:`LiveDoctorSink` reads the training ``metrics`` events the listener hands it and,
the first time one of the live rules (:mod:`gemmalog.doctor._live`) fires, prints the
finding to stderr and appends it to ``doctor.live.jsonl`` in the run directory (one JSON
object a line, as ``gemmalog doctor --json`` prints it, with ``"live": true``). Rank 0's
main process builds it, and only when asked: the rules import the doctor, and duckdb.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

import orjson

from gemmalog.doctor._live import LiveChecks
from gemmalog.sinks.base import BaseSink, Record

if TYPE_CHECKING:
    from gemmalog.config.model import DoctorConfig
    from gemmalog.doctor._core import Finding

#: The file findings are appended to, in the run directory.
LIVE_FILE = "doctor.live.jsonl"


class LiveDoctorSink(BaseSink):
    """Every event (its level ``debug``, whatever the loggers' routes); the ``metrics``
    events go through the live rules.

    An error inside a rule, or in writing a finding, stops the live checks with one line
    on stderr: the doctor's own failure, never the run's (no sink error in run.json).
    """

    def __init__(
        self,
        config: DoctorConfig,
        run: str,
        run_dir: Path,
        *,
        name: str = "doctor.live",
        stream: TextIO | None = None,
    ) -> None:
        super().__init__(name)
        self.path = run_dir / LIVE_FILE
        self.stream = stream
        self.failed = False
        self.checks = LiveChecks(config, run, self._found)

    def write(self, batch: Sequence[Record]) -> None:
        if self.failed:
            return
        observe = self.checks.observe
        for event, _ in batch:
            if event.get("kind") != "metrics" or not isinstance(event.get("metrics"), dict):
                continue
            try:
                observe(event)
            except Exception as exc:  # a rule's bug: say so and stop, the run goes on
                self.failed = True
                print(
                    "gemmalog doctor (live): stopped after an internal error: "
                    f"{type(exc).__name__}: {exc}",
                    file=self.stream or sys.stderr,
                )
                return

    def _found(self, finding: Finding) -> None:
        with open(self.path, "ab") as f:
            f.write(orjson.dumps({**finding.to_dict(), "live": True}) + b"\n")
        print(
            f"gemmalog doctor (live): {finding.severity} {finding.check}: {finding.message}",
            file=self.stream or sys.stderr,
            flush=True,
        )
