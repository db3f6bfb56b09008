"""The TensorBoard sink: scalars, per-step histograms and sampled text of the events routed to it.

No torch, TensorFlow or tensorboardX: the ``tensorboard.compat.proto`` messages and the
modules beside this one (the record format, with the ``crc32c`` package's C checksum) are
enough, and they are imported only when the sink is built. Tags (``<p>`` is the
event's phase; train-phase tags carry no phase):

=====================  ==========================================  ==========  ==================
event kind             tag                                         type        value
=====================  ==========================================  ==========  ==================
metrics                ``train/<key>`` (phase train)               scalar      every numeric value
metrics                ``<p>/<key>`` (``eval/<key>``, ``test/...``) scalar      every numeric value
metrics, phase train   key ``eval_x`` / ``test_x`` -> ``eval/x``   scalar      transformers' rewrite_logs
generation_metrics     ``generation/<field>``, ``<p>_generation/``  scalar      numeric fields
reward_summary         ``reward/<fn>/{mean,std,min,max,count}``     scalar      ``<p>_reward/...``
system                 ``system/<field>``                          scalar      numeric fields
system (a GPU's)       ``system/gpu<gpu_index>/<field>``           scalar      numeric fields
reward                 ``reward_values/<fn>``                      histogram   values of the step
model_output           ``completion/length_chars``                 histogram   per step
model_output           ``completion/length_tokens``                histogram   per step, when known
model_output           ``completion/total_reward``                 histogram   per step, when known
model_output           ``samples/<phase>``                         text        sampled outputs
=====================  ==========================================  ==========  ==================

Values: booleans are 1/0 (as transformers writes them); the JSONL's ``"NaN"``, ``"Infinity"``
and ``"-Infinity"`` become the float they stand for in scalars and are left out of histograms;
any other non-numeric value (text, lists, null) is skipped and stays in the JSONL. An event
without a step uses the last step this sink saw (0 before any). A step outside int64 (what
``Event.step`` holds) cannot be written: that event's values are dropped with one notice on
stderr, and the sink carries on. Histograms gather every value
logged for a tag at one step and are written when a later step arrives, or at close.
Text samples: model output number ``i`` (counted from 0 per sink) is shown when
``floor(i * sampling_ratio) > floor((i - 1) * sampling_ratio)``: the first one, then one in
every ``1 / sampling_ratio``, deterministically.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from gemmalog.events import ENVELOPE
from gemmalog.notices import warn_once
from gemmalog.sinks.base import BaseSink, Record
from gemmalog.sinks.tensorboard.event_file import EventFile
from gemmalog.sinks.tensorboard.histogram import histogram_bytes, histogram_value
from gemmalog.sinks.tensorboard.protos import (
    FLOAT32,
    ScalarEncoder,
    ScalarPlan,
    float32,
    tag_field,
    text_value,
    valid_step,
)
from gemmalog.sinks.tensorboard.tags import metric_tag, number, phase_prefix, sample_markdown

_ENVELOPE = frozenset(f.name for f in ENVELOPE) | {"phase", "exc"}
_STATS = ("mean", "std", "min", "max", "count")
_MAX_PLANS = 1024  # distinct metrics key sets remembered per phase
#: Kinds this sink turns into TensorBoard data (the first of them starts a resumed segment).
#: Histograms take the values a float32 holds (TensorBoard's scalars are float32): beyond
#: it, TensorBoard's own distribution view overflows interpolating between bucket limits
#: (a reward of 1e308 gave RuntimeWarnings in its reader). NaN and infinities are left out too.
FLOAT32_MAX = 3.4028234663852886e38
_DATA_KINDS = frozenset(
    ("metrics", "generation_metrics", "system", "reward_summary", "reward", "model_output")
)


class TensorBoardSink(BaseSink):
    """Scalars, per-step histograms and sampled text of the events routed to it.

    Records are written to the file when ``max_queue`` of them wait and on the listener's
    flush ticks at most every ``flush_secs``, by the listener thread (no thread of its own).
    A write error disables the sink (the listener reports it); an event that cannot be
    represented (a step beyond int64) is dropped with one notice.
    """

    def __init__(
        self,
        log_dir: str | os.PathLike[str],
        *,
        name: str = "tensorboard",
        level: str = "debug",
        flush_secs: float = 30.0,
        max_queue: int = 100,
        sampling_ratio: float = 0.1,
        histograms: bool = True,
        text_samples: bool = True,
    ) -> None:
        super().__init__(name, level)
        from tensorboard.compat.proto import event_pb2
        from tensorboard.plugins.text import metadata as text_metadata

        self._event_pb2 = event_pb2
        # The text plugin's SummaryMetadata, serialized once: every text sample carries it.
        self._text_metadata: bytes = text_metadata.create_summary_metadata(
            display_name=None, description=None
        ).SerializeToString()
        self.log_dir = Path(log_dir)
        self.flush_secs = float(flush_secs)
        self.sampling_ratio = float(sampling_ratio)
        self.histograms = histograms
        self.text_samples = text_samples
        self.writer = EventFile(self.log_dir, max_pending=int(max_queue))
        self._scalar = ScalarEncoder()
        # phase -> metrics key -> encoded tag: transformers' tag rules applied once per key
        self._metric_prefixes: dict[str, dict[Any, bytes]] = {}
        # phase -> the keys of a metrics dict -> their Summary packed in one call
        self._plans: dict[str, dict[tuple[Any, ...], ScalarPlan]] = {}
        self.step = 0
        self.outputs_seen = 0
        self.dropped = 0  # events with a step TensorBoard cannot hold
        self._restarted = False  # a resumed segment's START was written (see _restart)
        self._hist: dict[
            str, tuple[int, float, list[float]]
        ] = {}  # tag -> (step, wall time, values)
        self._tag_fields: dict[str, bytes] = {}  # histogram tag -> its encoded tag field
        # phase -> the tags of completion/length_chars, length_tokens, total_reward
        self._completion_tags: dict[str, tuple[str, str, str]] = {}
        self._last_flush = time.monotonic()

    # -- events -> summaries --------------------------------------------------------------
    def write(self, batch: Sequence[Record]) -> None:
        for event, _line in batch:
            kind = event.get("kind")
            if kind == "log" or kind is None:
                continue
            step = self._step_of(event, kind)
            if step is None:
                continue
            ts = event.get("ts")
            wall = float(ts) if type(ts) is float or type(ts) is int else time.time()
            phase = event.get("phase") or "train"
            if type(phase) is not str:
                phase = str(phase)
            if kind == "metrics":
                metrics = event.get("metrics")
                if isinstance(metrics, Mapping):
                    self._metrics(metrics, phase, step, wall)
            elif kind == "generation_metrics":
                self._generation(event, phase, step, wall)
            elif kind == "system":
                self._system(event, step, wall)
            elif kind == "reward_summary":
                self._reward_summary(event, phase, step, wall)
            elif kind == "reward" and self.histograms:
                self._reward(event, phase, step, wall)
            elif kind == "model_output":
                self._model_output(event, phase, step, wall)

    def _step_of(self, event: Mapping[str, Any], kind: Any) -> int | None:
        """The event's step (the last one seen when it has none), or None when TensorBoard
        cannot hold it (the event is dropped with a notice). Starts a resumed segment."""
        step = event.get("step")
        if type(step) is int:
            if not valid_step(step):
                self._drop(event, step)
                return None
            self.step = step
            # (no segment, or segment 0: not a resumed segment, nothing to restart)
            if not self._restarted and step > 0 and event.get("segment") and kind in _DATA_KINDS:
                self._restart(event, step)
            return step
        if step is not None:  # beyond 64 bits, the JSONL (and this event) has its text
            self._drop(event, step)
            return None
        return self.step

    def _restart(self, event: Mapping[str, Any], step: int) -> None:
        """A resumed segment (n > 0) logs again the steps after its checkpoint: a SessionLog
        START at the first step it logs makes TensorBoard drop the earlier segments' points
        from that step on (its convention for a restarted job), so every curve stays one line.
        """
        segment = event.get("segment")
        if type(segment) is not int or segment <= 0:
            return
        self._restarted = True
        start = self._event_pb2.Event(
            wall_time=time.time(),
            step=step,
            session_log=self._event_pb2.SessionLog(status=self._event_pb2.SessionLog.START),
        )
        self.writer.add(start.SerializeToString())

    def _drop(self, event: Mapping[str, Any], step: int) -> None:
        self.dropped += 1
        if self.dropped == 1:  # one notice per sink, however many such steps follow
            warn_once(
                f"TensorBoard sink {self.name!r}: step {step} is outside the int64 range "
                f"TensorBoard stores; the values of that {event.get('kind')} event, and of any "
                "later event with such a step, are left out of TensorBoard (the JSONL has them)"
            )

    def _metrics(self, metrics: Mapping[Any, Any], phase: str, step: int, wall: float) -> None:
        """A metrics dict as one Event: packed in one call when its keys were seen before and
        its values are all numbers; else value by value, each key's tag encoded once."""
        keys = tuple(metrics)
        if not keys:
            return
        plans = self._plans.get(phase)
        if plans is None or len(plans) >= _MAX_PLANS:
            plans = self._plans[phase] = {}
        plan = plans.get(keys)
        if plan is None and all(type(k) is str for k in keys):  # 1 == True: str keys only
            encode = self._scalar.prefix
            plan = plans[keys] = ScalarPlan([encode(metric_tag(k, phase)) for k in keys])
        if plan is not None:
            data = plan.event(wall, step, metrics.values())
            if data is not None:
                self.writer.add(data)
                return
        prefixes = self._metric_prefixes.get(phase)
        if prefixes is None or len(prefixes) >= ScalarEncoder.MAX_TAGS:
            prefixes = self._metric_prefixes[phase] = {}
        pack = FLOAT32.pack
        values = []
        for key, raw in metrics.items():
            prefix = prefixes.get(key) if type(key) is str else None  # 1 == True: str keys only
            if prefix is None:
                prefix = self._scalar.prefix(metric_tag(str(key), phase))
                if type(key) is str:
                    prefixes[key] = prefix
            if type(raw) is float:
                try:
                    values.append(prefix + pack(raw))
                    continue
                except OverflowError:
                    pass
            value = number(raw)
            if value is not None:
                values.append(prefix + float32(value))
        if values:
            self.writer.add(self._scalar.event(wall, step, values))

    def _generation(self, event: Mapping[str, Any], phase: str, step: int, wall: float) -> None:
        prefix = phase_prefix("generation", phase)
        self._scalars(
            [(f"{prefix}/{k}", v) for k, v in event.items() if k not in _ENVELOPE], step, wall
        )

    def _system(self, event: Mapping[str, Any], step: int, wall: float) -> None:
        index = event.get("gpu_index")  # one event a device: its tags apart
        prefix = f"system/gpu{index}" if type(index) is int else "system"
        self._scalars(
            [
                (f"{prefix}/{k}", v)
                for k, v in event.items()
                if k not in _ENVELOPE and k != "gpu_index"
            ],
            step,
            wall,
        )

    def _reward_summary(self, event: Mapping[str, Any], phase: str, step: int, wall: float) -> None:
        stats = event.get("stats")
        if not isinstance(stats, Mapping):
            return
        prefix = phase_prefix("reward", phase)
        pairs: list[tuple[str, Any]] = []
        for fn, values in stats.items():
            if isinstance(values, Mapping):
                pairs.extend((f"{prefix}/{fn}/{stat}", values.get(stat)) for stat in _STATS)
        self._scalars(pairs, step, wall)

    def _reward(self, event: Mapping[str, Any], phase: str, step: int, wall: float) -> None:
        values = event.get("values")
        if isinstance(values, list):
            tag = f"{phase_prefix('reward_values', phase)}/{event.get('reward_fn')}"
            self._collect(tag, values, step, wall)

    def _model_output(self, event: Mapping[str, Any], phase: str, step: int, wall: float) -> None:
        if self.histograms:
            tags = self._completion_tags.get(phase)
            if tags is None:
                if len(self._completion_tags) >= _MAX_PLANS:
                    self._completion_tags.clear()
                prefix = phase_prefix("completion", phase)
                tags = self._completion_tags[phase] = (
                    f"{prefix}/length_chars",
                    f"{prefix}/length_tokens",
                    f"{prefix}/total_reward",
                )
            get = event.get
            for tag, value in zip(
                tags, (get("length_chars"), get("length_tokens"), get("total_reward")), strict=True
            ):
                if value is not None:
                    self._collect_one(tag, value, step, wall)
        if self.text_samples:
            i = self.outputs_seen
            self.outputs_seen += 1
            r = self.sampling_ratio
            if math.floor(i * r) > math.floor((i - 1) * r):
                self._text(f"samples/{phase}", sample_markdown(event), step, wall)

    # -- summaries ------------------------------------------------------------------------
    def _scalars(self, pairs: list[tuple[str, Any]], step: int, wall: float) -> None:
        """One Event with every numeric value of ``pairs``, encoded without a proto per value."""
        prefix = self._scalar.prefix
        values = []
        for tag, raw in pairs:
            value = number(raw)
            if value is not None:
                values.append(prefix(tag) + float32(value))
        if values:
            self.writer.add(self._scalar.event(wall, step, values))

    def _text(self, tag: str, text: str, step: int, wall: float) -> None:
        """One Event with a text summary (a markdown sample), encoded without protos."""
        entry = text_value(
            self._tag_field(tag), text.encode("utf-8", "backslashreplace"), self._text_metadata
        )
        self.writer.add(self._scalar.event(wall, step, [entry]))

    def _tag_field(self, tag: str) -> bytes:
        field = self._tag_fields.get(tag)
        if field is None:
            if len(self._tag_fields) >= ScalarEncoder.MAX_TAGS:
                self._tag_fields.clear()
            field = self._tag_fields[tag] = tag_field(tag)
        return field

    def _collect(self, tag: str, raw: list[Any], step: int, wall: float) -> None:
        values = [
            v
            for v in (r if type(r) is float else number(r) for r in raw)
            if v is not None and -FLOAT32_MAX <= v <= FLOAT32_MAX  # not NaN either
        ]
        held = self._hist.get(tag)
        if held is not None and held[0] != step:
            self._write_histogram(tag, *held)
            held = None
        if held is None:
            self._hist[tag] = (step, wall, values)
        else:
            held[2].extend(values)

    def _collect_one(self, tag: str, raw: Any, step: int, wall: float) -> None:
        """``_collect(tag, [raw], step, wall)`` without the lists."""
        value = raw if type(raw) is float else number(raw)
        values = [value] if value is not None and -FLOAT32_MAX <= value <= FLOAT32_MAX else []
        held = self._hist.get(tag)
        if held is not None:
            if held[0] == step:
                held[2].extend(values)
                return
            self._write_histogram(tag, *held)
        self._hist[tag] = (step, wall, values)

    def _write_histogram(self, tag: str, step: int, wall: float, values: list[float]) -> None:
        """One Event with the histogram of ``values``, encoded without protos (as scalars)."""
        if not values:
            return
        entry = histogram_value(self._tag_field(tag), histogram_bytes(values))
        self.writer.add(self._scalar.event(wall, step, [entry]))

    # -- lifecycle ------------------------------------------------------------------------
    def flush(self) -> None:
        now = time.monotonic()
        if now - self._last_flush >= self.flush_secs:
            self._last_flush = now
            self.writer.flush()

    def flush_now(self) -> None:
        self._last_flush = time.monotonic()
        self.writer.flush()

    def _close(self) -> None:
        try:
            held, self._hist = self._hist, {}
            for tag, (step, wall, values) in held.items():
                self._write_histogram(tag, step, wall, values)
        finally:
            self.writer.close()
