"""Checks across a whole configuration, run by ``config check`` and by ``initialize`` alike.

The loader checks each value on its own (a type, a choice). These checks need the value's
meaning: a regular expression compiles, a number of seconds is finite and not absurd, a
handler's file stays inside the run directory and is not one of gemmalog's own files, a
text limit leaves room for a message. They run on the finished :class:`Config` (from a file,
a ``Config`` object, keywords or the environment), before anything is created on disk.
"""

from __future__ import annotations

import fnmatch
import math
import os
import re
from collections.abc import Callable
from pathlib import PurePath
from typing import Any, Final

from gemmalog.config.model import Config, DoctorConfig, MetricsConfig, Settings
from gemmalog.config.schema import (
    DOCTOR,
    METRICS,
    OPTIONS,
    REQUIRED,
    SETTINGS,
    Checker,
    mismatch,
    plain,
)
from gemmalog.levels import LEVELS

#: The shortest ``max_string_length``: a one-line message must fit. Envelope fields (kind,
#: logger, level, run, phase) are never cut, whatever the limit (processors/sanitize.py).
MIN_STRING_LENGTH: Final = 64
#: Longest interval, in seconds, of a flush or sampling setting (one day).
MAX_SECONDS: Final = 86_400.0
#: gemmalog's own files in a run directory (shards, run.json and its temporary copy, the live
#: doctor's findings, the writer lock of each rank): no handler may write to them.
OWN_FILES: Final = (
    "events.*.jsonl",
    "run.json",
    ".run.json.*",
    "doctor.live.jsonl",
    ".writer.*.lock",
)
#: The query cache's folder, in a run directory or beside shards (queries/_cache_store.py).
CACHE_NAME: Final = ".gemmalog-cache"
#: Handler options naming a file or directory a handler writes.
PATH_OPTIONS: Final = ("filename", "log_dir")


def sink_file_form(name: str, written: str) -> bool:
    """``name`` is ``written`` or a form of it a sink makes: per rank (``x.rank1.log``),
    rotated (``x.log.3``), set aside (``x.1.csv``) or being replaced (``x.csv.tmp``)."""
    stem, dot, suffix = written.partition(".")
    tail = re.escape(dot + suffix) if dot else ""
    form = rf"{re.escape(stem)}(?:\.rank\d+)?(?:\.\d+)?{tail}(?:\.\d+|\.tmp)?"
    return re.fullmatch(form, name) is not None


#: (where, message) for each problem found.
Report = Callable[[str, str], None]


def _seconds(value: Any, where: str, report: Report) -> None:
    if type(value) not in (int, float):  # wrong types are the loader's to report
        return
    if not math.isfinite(value):
        report(where, f"must be a finite number of seconds, got {value!r}")
    elif value > MAX_SECONDS:
        report(where, f"must be at most {MAX_SECONDS:g} seconds (one day), got {value!r}")


def _own_path(value: Any, where: str, report: Report) -> None:
    """A handler path must not be one of gemmalog's own files (in the run directory, in
    another run's directory given as an absolute path, in a query cache); a relative one must
    stay in the run directory."""
    if not isinstance(value, str) or not value or "\0" in value:
        return  # the type checks report it
    path = os.path.expanduser(value)
    parts = PurePath(os.path.normpath(path)).parts
    absolute = os.path.isabs(path)
    if not absolute and parts and parts[0] == "..":
        report(
            where,
            f"{value!r} leaves the run directory; relative paths resolve inside it "
            "(use an absolute path to write elsewhere)",
        )
        return
    if CACHE_NAME in parts:
        report(where, f"{value!r} is inside a query cache ({CACHE_NAME}); choose another place")
        return
    name = parts[-1] if parts and (absolute or len(parts) == 1) else ""
    own = any(fnmatch.fnmatchcase(name, pattern) for pattern in OWN_FILES)
    if own or (absolute and os.path.isfile(os.path.join(os.path.dirname(path), "run.json"))):
        report(
            where,
            f"{value!r} is one of gemmalog's own files ({', '.join(OWN_FILES)}) or in a run "
            "directory; choose another name",
        )


def _shared_paths(config: Config, report: Report) -> None:
    """Two handlers writing one file (or one the other's per-rank or rotated form), or one
    writing inside the other's directory."""
    seen: list[tuple[PurePath, str]] = []
    for handler in config.handlers.values():
        for key in PATH_OPTIONS if handler.type != "user" else ():
            value = handler.options.get(key)
            if not isinstance(value, str) or not value or "\0" in value:
                continue
            path = PurePath(os.path.normpath(os.path.expanduser(value)))
            where = f"handlers.{handler.name}.{key}"
            for other, other_where in seen:
                if (
                    other in path.parents
                    or path in other.parents
                    or (
                        path.parent == other.parent
                        and (
                            sink_file_form(path.name, other.name)
                            or sink_file_form(other.name, path.name)
                        )
                    )
                ):
                    report(
                        where,
                        f"{value!r} is also written by {other_where}; give each handler its "
                        "own file",
                    )
                    break
            seen.append((path, where))


def _table(
    values: dict[str, Any],
    table: dict[str, tuple[Checker, str]],
    defaults: object,
    report: Report,
    name: Callable[[str], str],
) -> None:
    """Each value of a finished configuration section against the loader's table (a
    :class:`Config` built in Python skips the loader); ``None`` where the default is."""
    for key, value in values.items():
        spec = table.get(key)
        if spec is None or (value is None and getattr(defaults, key, 0) is None):
            continue
        checker, allowed = spec
        if not checker(value):
            report(name(key), mismatch(value, allowed))


def check_settings(values: dict[str, Any], report: Report, name: Callable[[str], str]) -> None:
    """The pipeline settings in ``values``; ``name(key)`` is how a problem names the key.

    Types and ranges are the loader's (``SETTINGS``); these need the value's meaning.
    """
    for key in ("flush_interval", "memory_interval", "gpu_interval"):
        if key in values:
            _seconds(values[key], name(key), report)
    patterns = values.get("redact_patterns")
    if isinstance(patterns, list | tuple):
        for i, pattern in enumerate(patterns):
            if not isinstance(pattern, str):
                continue
            try:
                re.compile(pattern)
            except re.error as exc:
                report(
                    f"{name('redact_patterns')}[{i}]",
                    # never the pattern itself: it may quote the secret it redacts
                    f"not a valid regular expression ({exc.msg} at position {exc.pos})",
                )
            except RecursionError:
                report(f"{name('redact_patterns')}[{i}]", "regular expression nested too deeply")
    limit = values.get("max_string_length")
    if type(limit) is int and 0 < limit < MIN_STRING_LENGTH:
        report(
            name("max_string_length"),
            f"must be at least {MIN_STRING_LENGTH} (characters kept of a long text), got {limit}",
        )


def check_handlers(config: Config, report: Report) -> None:
    """Handler options: their types (a ``Config`` built in Python), and the meaning that
    makes them unusable (absurd intervals, gemmalog's own files, one file for two handlers)."""
    for handler in config.handlers.values():
        where = f"handlers.{handler.name}"
        opts = handler.options
        if handler.level not in LEVELS:
            report(
                f"{where}.level", f"unknown level {handler.level!r}; allowed: {', '.join(LEVELS)}"
            )
        table = OPTIONS.get(handler.type)
        if table is None and handler.type != "user":
            allowed = ", ".join([*OPTIONS, "user"])
            report(f"{where}.class", f"unknown handler type {handler.type!r}; allowed: {allowed}")
        elif table is not None:
            unknown = sorted(set(opts) - set(table), key=str)
            for key in unknown:
                report(f"{where}.{key}", f"unknown key; allowed: {', '.join(sorted(table))}")
            _table(
                {k: v for k, v in opts.items() if k in table},
                table,
                None,
                report,
                lambda k, w=where: f"{w}.{k}",  # type: ignore[misc]
            )
            for key in REQUIRED.get(handler.type, ()):
                if key not in opts:
                    report(f"{where}.{key}", f"missing; a {handler.type} handler needs {key!r}")
        else:
            for key, value in opts.items():
                if not plain(value):
                    report(f"{where}.{key}", f"must be a plain value, got {type(value).__name__}")
        for key in ("flush_secs", "flush_interval"):
            if key in opts:
                _seconds(opts[key], f"{where}.{key}", report)
        for key in PATH_OPTIONS if handler.type != "user" else ():  # a user sink's are its own
            if key in opts:
                _own_path(opts[key], f"{where}.{key}", report)
    _shared_paths(config, report)


def check_config(config: Config, report: Report, name: Callable[[str], str]) -> None:
    """Every check above on a finished configuration: values of the wrong type or range that
    a ``Config`` built in Python carries (a YAML file's were dropped by the loader), and the
    checks of meaning."""
    settings = vars(config.settings)
    _table(settings, SETTINGS, Settings, report, name)
    check_settings(settings, report, name)
    check_handlers(config, report)
    metrics = vars(config.metrics)
    _table(metrics, METRICS, MetricsConfig, report, lambda k: f"metrics.{k}")
    doctor = {k: v for k, v in vars(config.doctor).items() if k != "checks"}
    _table(doctor, DOCTOR, DoctorConfig, report, lambda k: f"doctor.{k}")


def check_loggers(config: Config, report: Report) -> None:
    """Loggers' levels and the handlers they name, for a ``Config`` built in Python (the
    loader reports these for a file, and leaves out handlers it refused)."""
    for logger_name, logger in [("root", config.root), *config.loggers.items()]:
        where = logger_name if logger_name == "root" else f"loggers.{logger_name}"
        if logger.level not in LEVELS:
            report(
                f"{where}.level", f"unknown level {logger.level!r}; allowed: {', '.join(LEVELS)}"
            )
        for handler in logger.handlers:
            if handler not in config.handlers:
                defined = ", ".join(config.handlers) or "none"
                report(
                    f"{where}.handlers", f"names unknown handler {handler!r}; defined: {defined}"
                )
