"""What a configuration may contain: handler classes, options per handler type, settings.

Each option maps to ``(checker, what is allowed)``; the loader reports the second part when
the first says no. ``docs/configuration.md`` documents the same tables for people.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any, Final, Literal

#: What a full queue does to the caller (``backpressure``): wait for room, or drop and count.
Policy = Literal["block", "drop"]
POLICIES: tuple[Policy, ...] = ("block", "drop")


#: The largest integer any setting takes: run.json, the JSONL and DuckDB hold 64-bit integers.
MAX_INT: Final = 2**63 - 1
#: Rotated text files kept at most (the standard library renames each one at every rollover).
MAX_BACKUPS: Final = 10_000

# Accepted class names -> canonical handler type. The seed plan's names come first.
HANDLER_CLASSES: dict[str, str] = {
    "logging.StreamHandler": "console",
    "logging.FileHandler": "file",
    "logging.handlers.RotatingFileHandler": "rotating_file",
    "logging.custom.CSVHandler": "csv",
    "logging.custom.TensorBoardHandler": "tensorboard",
    "logging.NullHandler": "null",
    "console": "console",
    "file": "file",
    "rotating_file": "rotating_file",
    "csv": "csv",
    "tensorboard": "tensorboard",
    "null": "null",
    "gemmalog.sinks.ConsoleSink": "console",
    "gemmalog.sinks.FileSink": "file",
    "gemmalog.sinks.RotatingFileSink": "rotating_file",
    "gemmalog.sinks.CsvSink": "csv",
    "gemmalog.sinks.TensorBoardSink": "tensorboard",
}

COMMON = frozenset({"class", "level", "formatter", "filters"})
# Handler type -> option -> (checker, description of what is allowed)
Checker = Callable[[Any], bool]


def mismatch(value: Any, allowed: str) -> str:
    """What a problem says of ``value``, which is not ``allowed``."""
    if type(value) is int and abs(value) > MAX_INT:
        return f"must be {allowed}, at most {MAX_INT} (64 bits), got {value}"
    if type(value) is float and not math.isfinite(value):
        finite = f"a finite {allowed[2:]}" if allowed.startswith("a ") else f"{allowed} (finite)"
        return f"must be {finite}, got {value!r}"
    return f"must be {allowed}, got {value!r}"


def positive_int(v: Any) -> bool:
    return type(v) is int and 0 < v <= MAX_INT


def non_negative_int(v: Any) -> bool:
    return type(v) is int and 0 <= v <= MAX_INT


def number(v: Any) -> bool:
    """A finite int or float (not a bool): what every numeric setting is first of all."""
    if type(v) is int:
        return -MAX_INT <= v <= MAX_INT
    return type(v) is float and math.isfinite(v)


def positive_number(v: Any) -> bool:
    return number(v) and v > 0


def encoding(v: Any) -> bool:
    """A text encoding Python knows (``rot13`` is a codec, not a text encoding)."""
    if not isinstance(v, str) or not v or "\0" in v:
        return False
    try:
        "".encode(v)
    except LookupError:
        return False
    return True


def path_text(v: Any) -> bool:
    """A non-empty path without NUL characters (the operating system refuses those)."""
    return isinstance(v, str) and v != "" and "\0" not in v


def fraction(v: Any) -> bool:
    return number(v) and 0 <= v <= 1


def non_negative_number(v: Any) -> bool:
    return number(v) and v >= 0


def string(v: Any) -> bool:
    return isinstance(v, str) and v != ""


def boolean(v: Any) -> bool:
    return type(v) is bool


def string_list(v: Any) -> bool:
    return isinstance(v, list | tuple) and all(isinstance(x, str) and x for x in v)


def plain(v: Any, depth: int = 0) -> bool:
    """A value run.json can hold as written: text, a finite number, a bool, null, or lists and
    mappings (text keys) of those, a few levels deep. YAML also makes dates, bytes and sets."""
    if v is None or type(v) in (str, bool) or number(v):
        return True
    if depth >= 16:
        return False
    if type(v) is list:
        return all(plain(x, depth + 1) for x in v)
    if type(v) is dict:
        return all(type(k) is str and plain(x, depth + 1) for k, x in v.items())
    return False


OPTIONS: dict[str, dict[str, tuple[Checker, str]]] = {
    "console": {
        "stream": (
            lambda v: v in ("ext://sys.stdout", "ext://sys.stderr"),
            "ext://sys.stdout or ext://sys.stderr",
        )
    },
    "file": {
        "filename": (path_text, "a file path"),
        "mode": (lambda v: v in ("a", "w"), "'a' or 'w'"),
        "encoding": (encoding, "a text encoding such as utf-8"),
    },
    "rotating_file": {
        "filename": (path_text, "a file path"),
        "mode": (lambda v: v in ("a", "w"), "'a' or 'w'"),
        "maxBytes": (non_negative_int, "a non-negative integer (0 never rotates)"),
        "backupCount": (
            lambda v: type(v) is int and 0 <= v <= MAX_BACKUPS,
            f"a non-negative integer, at most {MAX_BACKUPS:,} (files kept)",
        ),
        "encoding": (encoding, "a text encoding such as utf-8"),
    },
    "csv": {
        "filename": (path_text, "a file path"),
        "columns": (string_list, "a list of column names"),
        "buffer_size": (positive_int, "a positive integer"),
        "flush_interval": (positive_number, "a positive number of seconds"),
        "raw": (boolean, "true or false (true disables spreadsheet-formula neutralizing)"),
        "phases": (string_list, "a list of phases such as [train, eval]"),
    },
    "tensorboard": {
        "log_dir": (path_text, "a directory path"),
        "flush_secs": (positive_number, "a positive number of seconds"),
        "max_queue": (positive_int, "a positive integer"),
        "sampling_ratio": (fraction, "a number between 0 and 1"),
        "histograms": (boolean, "true or false"),
        "text_samples": (boolean, "true or false"),
    },
    "null": {},
}
REQUIRED = {"file": ("filename",), "rotating_file": ("filename",), "csv": ("filename",)}

SETTINGS: dict[str, tuple[Checker, str]] = {
    "root": (path_text, "a directory path"),
    "run_name": (string, "a name"),
    "run_id": (string, "an id"),
    "flush_interval": (positive_number, "a positive number of seconds"),
    "queue_size": (positive_int, "a positive integer"),
    "backpressure": (lambda v: v in POLICIES, " or ".join(POLICIES)),
    "fsync": (boolean, "true or false"),
    "redact": (boolean, "true or false"),
    "redact_patterns": (string_list, "a list of regular expressions"),
    "memory_interval": (positive_number, "a positive number of seconds"),
    "gpu_interval": (positive_number, "a positive number of seconds"),
    "max_string_length": (positive_int, "a positive integer"),
    "capture_stdlib": (boolean, "true or false"),
    "capture_warnings": (boolean, "true or false"),
    "private": (
        boolean,
        "true or false (true, the default: run files readable by their owner only)",
    ),
    "processors": (string_list, "a list of dotted paths to caller-side processors"),
    "listener_processors": (string_list, "a list of dotted paths to listener-side processors"),
}

#: Settings given as lists in YAML and kept as tuples.
TUPLE_SETTINGS = ("redact_patterns", "processors", "listener_processors")

METRICS: dict[str, tuple[Checker, str]] = {
    "logging_frequency": (positive_int, "a positive integer (steps)"),
    "validation_frequency": (positive_int, "a positive integer (steps)"),
    "gradient_frequency": (positive_int, "a positive integer (steps)"),
    "sampling_ratio": (fraction, "a number between 0 and 1"),
    "log_token_stats": (boolean, "true or false"),
    "enable": (lambda v: isinstance(v, dict), "a mapping of category: true/false"),
}
ENABLE_KEYS = ("reward_metrics", "generation_metrics", "validation_metrics", "resource_metrics")
TOP = {
    "version",
    "disable_existing_loggers",
    "incremental",
    "root",
    "loggers",
    "handlers",
    "formatters",
    "filters",
    "metrics",
    "gemmalog",
    "doctor",
    "sync",
}


def _regex(v: Any) -> bool:
    import re

    if not isinstance(v, str):
        return False
    try:
        re.compile(v)
    except (re.error, RecursionError, OverflowError):
        return False
    return True


def _no_credentials(v: Any) -> bool:
    """A path or URL that carries no user or password (those go in the environment)."""
    return string(v) and not re.search(r"://[^/@\s]*@", v)


def _non_negative_number(v: Any) -> bool:
    return type(v) in (int, float) and math.isfinite(v) and v >= 0


def _seconds(v: Any) -> bool:
    return _non_negative_number(v) and v > 0


SYNC: dict[str, tuple[Checker, str]] = {
    "dest": (_no_credentials, "a path or an fsspec URL without a user or password in it"),
    "interval": (_seconds, "a positive number of seconds"),
    "final_timeout": (_non_negative_number, "a number of seconds, 0 or more"),
}

DOCTOR: dict[str, tuple[Checker, str]] = {
    "checks": (
        lambda v: isinstance(v, dict),
        "a mapping of check name: off, info, warning or error",
    ),
    "live": (boolean, "true or false"),
    "min_steps": (positive_int, "a positive integer (steps)"),
    "window": (lambda v: number(v) and 0 < v <= 0.5, "a number above 0, at most 0.5"),
    "examples": (non_negative_int, "a non-negative integer"),
    "reward_rise": (positive_number, "a positive number (standard deviations)"),
    "accuracy_gain": (fraction, "a number between 0 and 1"),
    "format_pattern": (_regex, "a regular expression"),
    "format_saturation": (fraction, "a number between 0 and 1"),
    "correctness_floor": (fraction, "a number between 0 and 1"),
    "dominance_share": (fraction, "a number between 0 and 1"),
    "entropy_floor": (non_negative_number, "a non-negative number (nats)"),
    "entropy_drop": (fraction, "a number between 0 and 1"),
    "distinct_drop": (fraction, "a number between 0 and 1"),
    "repetition_rise": (fraction, "a number between 0 and 1"),
    "duplicate_share": (fraction, "a number between 0 and 1"),
    "clipped_ratio": (fraction, "a number between 0 and 1"),
    "length_drop": (fraction, "a number between 0 and 1"),
    "zero_std_share": (fraction, "a number between 0 and 1"),
    "zero_std_steps": (positive_int, "a positive integer (steps)"),
    "outlier_metrics": (string_list, "a list of metric names"),
    "outlier_z": (positive_number, "a positive number (robust z-score)"),
    "outlier_range": (positive_number, "a positive number (multiple of the window's range)"),
    "outlier_window": (lambda v: positive_int(v) and v >= 3, "an integer of at least 3 (steps)"),
    "memory_growth": (positive_number, "a positive number (fraction of the starting memory)"),
    "memory_min_mb": (non_negative_number, "a non-negative number of MiB"),
    "memory_r2": (fraction, "a number between 0 and 1"),
    "step_time_drift": (lambda v: number(v) and v > 1, "a number above 1 (ratio)"),
}
