"""The sink factory: one sink for each handler of a validated configuration, for one run.

The configuration (:mod:`gemmalog.config`) is data and knows no sink; the pipeline calls
:func:`build_sink` for each configured handler. Relative paths (``filename:
logs/training.log``, ``log_dir: logs/tensorboard``) resolve inside the run directory, so two
runs with the same configuration never share a file. Absolute paths are used as written. Text
files of ranks other than 0 get ``.rank<N>`` before their suffix; CSV and TensorBoard are
written by rank 0 only.
"""

from __future__ import annotations

import logging
import logging.handlers
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gemmalog.config.model import Config, FormatterConfig, HandlerConfig
from gemmalog.config.resolve import resolve as resolve_object
from gemmalog.levels import LEVEL_NUMBERS
from gemmalog.run._identity import distributed_env
from gemmalog.sinks.base import Sink
from gemmalog.sinks.text import HandlerSink
from gemmalog.sinks.textformat import ConsoleHandler, JsonFormatter, TextFormatter


def resolve(run_dir: Path, value: str) -> Path:
    """``value`` inside ``run_dir`` when relative; as written when absolute (``~`` expanded)."""
    path = Path(value).expanduser()
    return path if path.is_absolute() else run_dir / path


def per_rank(path: Path, rank: int) -> Path:
    """``training.log`` on rank 0, ``training.rank1.log`` on rank 1: one text file per process,
    since a rotating file shared by several processes loses lines when it rotates."""
    return path if rank == 0 else path.with_name(f"{path.stem}.rank{rank}{path.suffix}")


def build_sink(config: Config, spec: HandlerConfig, run_dir: Path) -> Sink | None:
    """One sink for one handler configuration; ``None`` for a null handler."""
    if spec.type == "null":
        return None
    builder = _BUILDERS.get(spec.type)
    if builder is None:
        raise ValueError(f"handler {spec.name!r}: no sink for type {spec.type!r}")
    return builder(config, spec, run_dir)


def _formatter(config: Config, spec: HandlerConfig, stream: Any = None) -> logging.Formatter:
    fmt = config.formatters.get(spec.formatter or "", FormatterConfig())
    if fmt.json:
        return JsonFormatter(fmt.fields)
    color = stream is not None and bool(getattr(stream, "isatty", lambda: False)())
    return TextFormatter(fmt.format, fmt.datefmt, color=color)


def _console(config: Config, spec: HandlerConfig, run_dir: Path) -> Sink:
    stdout = spec.options.get("stream") == "ext://sys.stdout"
    console = ConsoleHandler("stdout" if stdout else "stderr")
    console.setFormatter(_formatter(config, spec, console.stream))
    return HandlerSink(spec.name, console, spec.level)


def _file(config: Config, spec: HandlerConfig, run_dir: Path) -> Sink:
    """``file`` and ``rotating_file``: one file per rank."""
    opts = spec.options
    path = per_rank(resolve(run_dir, opts["filename"]), distributed_env()[0])
    path.parent.mkdir(parents=True, exist_ok=True)
    handler: logging.Handler
    if spec.type == "file":
        handler = logging.FileHandler(
            path, mode=opts.get("mode", "a"), encoding=opts.get("encoding", "utf-8")
        )
    else:
        handler = logging.handlers.RotatingFileHandler(
            path,
            mode=opts.get("mode", "a"),
            maxBytes=opts.get("maxBytes", 0),
            backupCount=opts.get("backupCount", 0),
            encoding=opts.get("encoding", "utf-8"),
        )
    handler.setFormatter(_formatter(config, spec))
    return HandlerSink(spec.name, handler, spec.level)


def _csv(config: Config, spec: HandlerConfig, run_dir: Path) -> Sink:
    from gemmalog.sinks.csv import CsvSink

    opts = spec.options
    return CsvSink(
        resolve(run_dir, opts["filename"]),
        name=spec.name,
        level=spec.level,
        columns=opts.get("columns"),
        buffer_size=opts.get("buffer_size", 100),
        flush_interval=opts.get("flush_interval", 5.0),
        raw=opts.get("raw", False),
        phases=opts.get("phases"),
    )


def _tensorboard(config: Config, spec: HandlerConfig, run_dir: Path) -> Sink:
    from gemmalog.sinks.tensorboard import TensorBoardSink

    opts = spec.options
    return TensorBoardSink(
        resolve(run_dir, opts.get("log_dir", "tensorboard")),
        name=spec.name,
        level=spec.level,
        flush_secs=opts.get("flush_secs", 30.0),
        max_queue=opts.get("max_queue", 100),
        sampling_ratio=opts.get("sampling_ratio", config.metrics.sampling_ratio),
        histograms=opts.get("histograms", True),
        text_samples=opts.get("text_samples", True),
    )


def _user_sink(config: Config, spec: HandlerConfig, run_dir: Path) -> Sink:
    """A sink class named in the YAML, built as ``cls(name=<handler>, **options)``; a
    ``logging.Handler`` class as ``cls(**options)``, fed through a :class:`HandlerSink` with
    the handler's formatter (the standard one by default). The loader checked the class
    (``gemmalog.config.resolve.sink_class``)."""
    cls = resolve_object(spec.class_name)
    if isinstance(cls, type) and issubclass(cls, logging.Handler):
        handler = cls(**spec.options)
        handler.set_name(spec.name)
        handler.setFormatter(_formatter(config, spec))
        return HandlerSink(spec.name, handler, spec.level)
    sink = cls(name=spec.name, **spec.options)
    missing = [m for m in ("write", "flush", "close") if not callable(getattr(sink, m, None))]
    if missing:
        raise TypeError(f"{spec.class_name} is not a sink: it has no {', '.join(missing)}()")
    if not hasattr(sink, "flush_now"):
        sink.flush_now = sink.flush
    sink.levelno = LEVEL_NUMBERS.get(spec.level, 0)  # the router applies the handler's level
    return sink  # type: ignore[no-any-return]


#: Handler type (``HandlerConfig.type``, as the loader canonicalised it) -> its builder.
_BUILDERS: dict[str, Callable[[Config, HandlerConfig, Path], Sink]] = {
    "console": _console,
    "file": _file,
    "rotating_file": _file,
    "csv": _csv,
    "tensorboard": _tensorboard,
    "user": _user_sink,
}


#: The live doctor's sink name (it is turned on by ``doctor.live``).
LIVE_DOCTOR = "doctor.live"


def build_live_doctor(config: Config, run: str, run_dir: Path) -> Sink:
    """The live doctor's sink (``doctor.live: true``): the cheap checks while the run writes."""
    from gemmalog.sinks.live_doctor import LiveDoctorSink  # duckdb and the checks: only if asked

    return LiveDoctorSink(config.doctor, run, run_dir, name=LIVE_DOCTOR)
