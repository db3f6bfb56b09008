"""What one run's pipeline is made of, built from its configuration.

The run (its id, directory and writer lock), the caller's processor chain, the listener's,
the sinks (the configured handlers', the user's and, with ``doctor.live``, the live
doctor's), the router between them, and the GPU counters read on the listener's tick.
:class:`~gemmalog.engine._pipeline.Pipeline` runs them.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gemmalog.config.loader import ConfigError
from gemmalog.config.model import Config, Settings
from gemmalog.engine._listener import EventListener, StampSegment
from gemmalog.engine._router import Route, Router
from gemmalog.processors import AddEnvelope, AddResources, Redact, Sanitize, Sanitizer
from gemmalog.processors.conform import ConformToSchema
from gemmalog.processors.derive import DeriveGenerationStats
from gemmalog.processors.expand import Expand
from gemmalog.processors.gpu import GpuCounters
from gemmalog.processors.isolated import Isolated, Processor
from gemmalog.run._directory import WriterLock, make_run_dir, resumed_segment
from gemmalog.run._identity import distributed_env, new_run_id, run_dir_for, shared_run_id
from gemmalog.run._manifest import Run, read_manifest
from gemmalog.sinks.base import Sink
from gemmalog.sinks.factory import LIVE_DOCTOR, build_live_doctor, build_sink


def open_run(config: Config) -> tuple[Run, WriterLock | None]:
    """A new run (or a new segment of the run its id names), its directory made and this
    rank's writer lock held.

    Raises :class:`ConfigError` when the run directory belongs to another run id, or when
    another process is writing this rank of the run.
    """
    s = config.settings
    rank, world = distributed_env()
    run_id = s.run_id or shared_run_id(s.run_name) or new_run_id(s.run_name)
    run_dir = run_dir_for(Path(s.root).expanduser(), run_id)
    owner = read_manifest(run_dir / "run.json")
    if owner is not None and owner.get("id") not in (None, run_id):
        raise ConfigError(
            f"run directory {run_dir} belongs to run {owner.get('id')!r}, not "
            f"{run_id!r}: choose another run_id (or root)"
        )
    run = Run(
        run_id,
        s.run_name or run_id,
        run_dir,
        rank,
        world,
        config=config.snapshot(),
        private=s.private,
    )
    make_run_dir(run_dir, s.private)
    # Held from before the segment is chosen until run.json is final (D4).
    lock = WriterLock.acquire(run_dir, run_id, rank, s.private)
    try:
        run.segment, run.history = resumed_segment(run_dir, rank)
    except BaseException:
        if lock is not None:
            lock.release()
        raise
    return run, lock


def child_run(parent: Run) -> tuple[Run, Path]:
    """The run a child process (or the late writer) writes into: ``parent``'s, and the
    shard of its own it writes."""
    run = Run(
        parent.id,
        parent.name,
        parent.dir,
        parent.rank,
        parent.world_size,
        config=parent.config,
        segment=parent.segment,
        private=parent.private,
    )
    return run, parent.dir / f"events.{parent.rank}.{os.getpid()}.jsonl"


def caller_chain(settings: Settings, run: Run, user: Sequence[Processor]) -> tuple[Processor, ...]:
    """The processors on the caller's thread: sanitized, the envelope, the resources, the
    user's."""
    # Sanitize first: it then walks only the fields of the call (the envelope's own
    # values are plain, and bound context values were sanitized by bind()).
    return (
        Sanitize(Sanitizer(max_string_length=settings.max_string_length)),
        AddEnvelope(run.id, run.rank),
        AddResources(settings.memory_interval),
        *(Isolated(p, "caller") for p in user),
    )


def listener_chain(
    run: Run, expand: Expand, redact: Redact | None, user: Sequence[Processor]
) -> tuple[Processor, ...]:
    """Listener-side processors: deferred payloads expanded, derived statistics, the user's,
    fields made castable, redaction (after those, so it sees what they added), the segment
    stamp."""
    # Expand first: the events a deferred payload becomes go through all the others.
    chain: list[Processor] = [
        expand,
        DeriveGenerationStats(),
        *(Isolated(p, "listener") for p in user),
        # After everything that adds fields, before redaction and rendering.
        ConformToSchema(),
    ]
    if redact is not None:
        chain.append(redact)
    if run.segment:
        chain.append(StampSegment(run.segment))
    return tuple(chain)


def build_sinks(
    config: Config, run: Run, extra: Sequence[Sink]
) -> tuple[dict[str, Sink], tuple[Sink, ...], dict[str, Exception]]:
    """The sinks by name, those that take every event their own level lets through
    (the user's ``extra`` and the live doctor), and the sinks that could not start with
    their errors, to be reported.

    CSV, TensorBoard and the live doctor are rank 0's only.
    """
    sinks: dict[str, Sink] = {}
    failed: dict[str, Exception] = {}
    for name, spec in config.handlers.items():
        if run.rank != 0 and spec.type in ("csv", "tensorboard"):
            continue
        try:
            sink = build_sink(config, spec, run.dir)
        except Exception as exc:  # e.g. permission denied: report, carry on without it
            failed[name] = exc
            continue
        if sink is not None:
            sinks[name] = sink
    if config.doctor.live and run.rank == 0:
        try:
            extra = (*extra, build_live_doctor(config, run.id, run.dir))
        except Exception as exc:
            failed[LIVE_DOCTOR] = exc
    for sink in extra:
        if sink.name in sinks:
            failed[sink.name] = ValueError(f"a handler is already named {sink.name!r}")
            continue
        sinks[sink.name] = sink
    return sinks, tuple(sink for sink in extra if sink.name in sinks), failed


def build_router(config: Config, sinks: dict[str, Sink], always: tuple[Sink, ...]) -> Router:
    """The loggers' routes to ``sinks``; ``always`` take every event their level lets through,
    whatever the routes (as the JSONL does)."""
    routes = {
        name: Route(lc.level, lc.handlers, lc.propagate) for name, lc in config.loggers.items()
    }
    root = config.root
    return Router(sinks, routes, Route(root.level, root.handlers, root.propagate), always=always)


def sample_gpus(
    listener: EventListener, chain: tuple[Processor, ...], logger: str, interval: float
) -> None:
    """GPU counters on the listener's tick, as ``logger``'s ``system`` events, when NVML
    sees a device (``processors/gpu.py``); with several devices visible, local rank 0
    samples them for its node. Nothing at all without NVML."""
    several = "," in os.environ.get("CUDA_VISIBLE_DEVICES", ",")  # unset: every device
    if several and os.environ.get("LOCAL_RANK", "0") not in ("", "0"):
        return
    counters = GpuCounters.open(interval)
    if counters is None:
        return

    def prepare(event: dict[str, Any]) -> dict[str, Any]:
        event["logger"] = logger
        for proc in chain:
            event = proc(None, "info", event)
        return event

    listener.prepare_sampled = prepare
    listener.samplers.append(counters)
