"""Starting and ending runs: initialize, flush, shutdown.

``initialize()`` installs the process hooks of :mod:`gemmalog.lifecycle._hooks` (atexit,
``sys.excepthook``, ``sys.exit``, SIGTERM), which end the run with :func:`shutdown`. Children
(fork, spawn, subprocesses) and late events find their pipeline through :func:`current`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from types import TracebackType
from typing import Any, Literal, overload

from gemmalog.config.loader import ConfigError, load
from gemmalog.config.model import Config, default_config
from gemmalog.config.overrides import apply_overrides, env_overrides
from gemmalog.config.resolve import processor
from gemmalog.engine._pipeline import Pipeline
from gemmalog.lifecycle import _hooks
from gemmalog.lifecycle import _stdlib as _bridge
from gemmalog.lifecycle._children import (
    PARENT_ENV,
    flush_at_child_exit,
    forget_parent_env,
    parent_description,
    spawned_from,
)
from gemmalog.lifecycle._state import State as _State
from gemmalog.lifecycle._state import running as _running
from gemmalog.notices import warn_once
from gemmalog.processors.isolated import Processor
from gemmalog.run._directory import write_manifest
from gemmalog.run._manifest import Run
from gemmalog.sinks.base import Sink


def current() -> Pipeline:
    """The running pipeline; starts one with the defaults if nothing was initialized.

    In a forked child the parent's pipeline is unusable (its listener thread did not survive
    the fork): the child's first event starts a child pipeline writing its own shard.
    """
    pipeline = _State.pipeline
    if pipeline is not None:
        return pipeline
    with _State.lock:
        if _State.pipeline is None:
            parent = _State.forked_from
            spawned = None if parent is not None else spawned_from()
            if parent is not None:
                _State.pipeline = Pipeline.child(parent.config, parent.run)
                flush_at_child_exit(shutdown)
            elif spawned is not None:
                config, run = spawned
                _State.pipeline = Pipeline.child(config, run)
                _hooks.install(shutdown, sigterm=False)
                flush_at_child_exit(shutdown)
            elif _State.last is not None:
                # Late events (a library's teardown, a thread still logging after a SIGTERM
                # shutdown) join the run that just ended instead of starting a stray one.
                last = _State.last
                if last.late is None:  # a child process's run, or one forked after its end
                    last.late = last.late_writer()
                _State.pipeline = last.late
            else:
                warn_once(
                    "logging before initialize(): starting a run with the default configuration"
                )
                initialize()
        assert _State.pipeline is not None
        return _State.pipeline


@overload
def running(start: Literal[True]) -> Pipeline: ...


@overload
def running(start: bool = False) -> Pipeline | None: ...


def running(start: bool = False) -> Pipeline | None:
    """The pipeline logging in this process, or None when no run is on.

    With ``start=True`` a pipeline is started as any log call would start one (the
    default configuration before ``initialize()``, a child's writer in a forked or spawned
    process, the late writer after ``shutdown()``), so the result is never None. Its public
    attributes are ``run`` (:class:`gemmalog.Run`), ``config``, ``metrics`` (the
    configuration's ``metrics`` section) and ``role_names`` (role -> logger name, None for a
    role whose logger is above INFO); its ``flush()`` waits for what was logged before, and
    ``defer(payload, logger)`` hands over an event built on the listener thread
    (``gemmalog.deferred``, docs/architecture.md "Adding an integration").
    """
    return current() if start else _State.pipeline


def initialize(
    config_path: str | os.PathLike[str] | Config | None = None,
    *,
    processors: Sequence[Processor] = (),
    listener_processors: Sequence[Processor] = (),
    sinks: Sequence[Sink] = (),
    **overrides: Any,
) -> Run:
    """Start logging: validate the configuration, create the run directory, start the listener.

    ``config_path`` is a YAML file in the seed plan's format (or a :class:`Config`); without
    one, every event goes to ``events.<rank>.jsonl`` and training/system messages to the
    console. Keyword overrides (``root``, ``run_name``, ``run_id``, ``level``,
    ``flush_interval``, ``queue_size``, ``backpressure``, ``fsync``, ``redact``,
    ``memory_interval``, ``max_string_length``, ``capture_stdlib``, ``capture_warnings``,
    ``private``) win over ``GEMMALOG_*`` environment variables, which win over the file.
    Calling it again ends the current run first. Raises :class:`ConfigError` on a bad file.

    Extension points (docs/architecture.md): ``processors`` are structlog processors run on
    the caller's thread after gemmalog's own, ``listener_processors`` run on the listener
    thread before redaction (both after those the configuration names), and ``sinks`` are
    objects with ``name``, ``write(batch)``, ``flush()`` and ``close()`` that receive every
    event (at or above their ``level``, for a :class:`gemmalog.sinks.BaseSink`). A processor
    or sink that fails is isolated: reported once, the events and the other sinks go on.
    """
    config = _configuration(config_path, overrides)
    named, named_listener = _named_processors(config)
    with _State.lock:
        shutdown()  # the run on (or the late events of the last one) is recorded first
        pipeline = Pipeline.new_run(
            config,
            processors=(*named, *processors),
            listener_processors=(*named_listener, *listener_processors),
            sinks=sinks,
        )
        _make_current(pipeline, config)
    run = pipeline.run
    write_manifest(run, redact=pipeline.redact)
    _announce(pipeline)
    _start_sync(config, run)
    return run


def _configuration(
    config_path: str | os.PathLike[str] | Config | None, overrides: dict[str, Any]
) -> Config:
    """The configuration ``initialize()`` was given, with the environment's and its keyword
    overrides applied (in that order: keywords win)."""
    if isinstance(config_path, Config):
        config = config_path
    elif config_path is None:
        config = default_config()
    else:
        config = load(config_path, import_user_code=True)  # the user runs their own code
    apply_overrides(config, env_overrides(), "environment")
    apply_overrides(config, {k: v for k, v in overrides.items() if v is not None})
    return config


def _named_processors(config: Config) -> tuple[list[Processor], list[Processor]]:
    """The caller-side and listener processors the configuration names."""
    try:
        named = [processor(p) for p in config.settings.processors]
        named_listener = [processor(p) for p in config.settings.listener_processors]
    except ValueError as exc:
        raise ConfigError(f"gemmalog.processors: {exc}") from None
    return named, named_listener


def _make_current(pipeline: Pipeline, config: Config) -> None:
    """``pipeline`` becomes this process's: its children's, the hooks' and the stdlib's."""
    pipeline.run.on_exit = end_run
    _State.pipeline = pipeline
    os.environ[PARENT_ENV] = parent_description(pipeline)
    _State.final_stats = {}
    _State.exit_status = None
    _hooks.install(shutdown)
    _bridge.install(config, current)


def _announce(pipeline: Pipeline) -> None:
    """The ``run_start`` event: what runs, where, with which configuration."""
    run = pipeline.run
    pipeline.emit(
        "info",
        {
            "kind": "run_start",
            "logger": pipeline.roles["system"],
            "event": f"run {run.id} started",
            "name": run.name,
            "run_dir": str(run.dir),
            "config": run.config,
            "versions": run.manifest()["versions"],
            "host": run.manifest()["host"],
            "pid": os.getpid(),
            "world_size": run.world_size,
        },
        force=True,
    )


def _start_sync(config: Config, run: Run) -> None:
    """The ``sync:`` section's pusher, when the configuration has one: a background thread
    that reads the run's files (docs/remote.md)."""
    dest = config.sync.dest
    if dest is None:
        return
    # The only import of remote/ below it.
    from gemmalog.remote._sync import start

    _State.sync = start(
        run.dir,
        dest,
        rank=run.rank,
        interval=config.sync.interval,
        final_timeout=config.sync.final_timeout,
    )


def flush(timeout: float = 30.0) -> bool:
    """Block until every event logged so far is written and flushed; True when it was."""
    pipeline = running()
    return True if pipeline is None else pipeline.flush(timeout)


def shutdown(status: str | None = None, error: str | None = None) -> None:
    """Write ``run_end``, flush and close every sink, finish ``run.json``. Safe to call twice.

    Events logged afterwards, on any thread and by the standard library too, are appended
    at once to this run's ``events.<rank>.<pid>.jsonl`` (with one notice on stderr) until
    ``initialize()`` starts another run; called again with no run on, it counts those late
    events in run.json (the exit hook does). See docs/reliability.md, "Late events".
    """
    with _State.lock, _hooks.interrupts_deferred():
        pipeline = _running()
        if pipeline is not None and pipeline.is_late:
            _State.pipeline = pipeline = None  # the late writer stays open: nothing to stop
        if pipeline is None:
            if _State.last is not None:
                _State.last.record_late()
            return
        if status is None:
            status, error = _State.exit_status or ("completed", None)
        if not pipeline.is_child:
            forget_parent_env()
        pipeline.stop(status, error, _State.final_stats)
        _State.pipeline = None
        sync, _State.sync = _State.sync, None
        if sync is not None and not pipeline.is_child:
            sync.finish()  # the last push, after run.json got its end; bounded in time
        _State.last = pipeline


def end_run(
    run: Run,
    exc_type: type[BaseException] | None,
    exc: BaseException | None,
    tb: TracebackType | None,
) -> None:
    """End ``run`` as a ``with`` block ends: completed, or failed/interrupted with the exception."""
    pipeline = running()
    if pipeline is None or pipeline.run is not run:
        return  # already shut down, or another run has started since
    if exc_type is None:
        shutdown()
    elif issubclass(exc_type, SystemExit):
        code = getattr(exc, "code", None)
        if code is None or code == 0:
            shutdown("completed")
        else:
            shutdown("failed", f"SystemExit: {code}")
    else:
        shutdown(*_hooks.record_exception(pipeline, exc_type, exc, tb, "run failed"))


def set_final_stats(**stats: Any) -> None:
    """Statistics for ``run_end`` (the TRL integration's accuracy, correct/total answers, ...)."""
    _State.final_stats.update(stats)


__all__ = ["current", "end_run", "flush", "initialize", "running", "set_final_stats", "shutdown"]
