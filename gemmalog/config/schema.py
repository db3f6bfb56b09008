"""What a configuration may contain: handler classes, options per handler type, settings.

Each option maps to ``(checker, what is allowed)``; the loader reports the second part when
the first says no. ``docs/configuration.md`` documents the same tables for people.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

from gemmalog._queue import POLICIES

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


def positive_int(v: Any) -> bool:
    return type(v) is int and v > 0


def non_negative_int(v: Any) -> bool:
    return type(v) is int and v >= 0


def positive_number(v: Any) -> bool:
    return type(v) in (int, float) and v > 0


def string(v: Any) -> bool:
    return isinstance(v, str) and v != ""


def boolean(v: Any) -> bool:
    return type(v) is bool


def string_list(v: Any) -> bool:
    return isinstance(v, list) and all(isinstance(x, str) and x for x in v)


OPTIONS: dict[str, dict[str, tuple[Checker, str]]] = {
    "console": {
        "stream": (
            lambda v: v in ("ext://sys.stdout", "ext://sys.stderr"),
            "ext://sys.stdout or ext://sys.stderr",
        )
    },
    "file": {
        "filename": (string, "a file path"),
        "mode": (lambda v: v in ("a", "w"), "'a' or 'w'"),
        "encoding": (string, "an encoding name"),
    },
    "rotating_file": {
        "filename": (string, "a file path"),
        "mode": (lambda v: v in ("a", "w"), "'a' or 'w'"),
        "maxBytes": (non_negative_int, "a non-negative integer (0 never rotates)"),
        "backupCount": (non_negative_int, "a non-negative integer"),
        "encoding": (string, "an encoding name"),
    },
    "csv": {
        "filename": (string, "a file path"),
        "columns": (string_list, "a list of column names"),
        "buffer_size": (positive_int, "a positive integer"),
        "flush_interval": (positive_number, "a positive number of seconds"),
        "raw": (boolean, "true or false (true disables spreadsheet-formula neutralizing)"),
        "phases": (string_list, "a list of phases such as [train, eval]"),
    },
    "tensorboard": {
        "log_dir": (string, "a directory path"),
        "flush_secs": (positive_number, "a positive number of seconds"),
        "max_queue": (positive_int, "a positive integer"),
        "sampling_ratio": (
            lambda v: type(v) in (int, float) and 0 <= v <= 1,
            "a number between 0 and 1",
        ),
        "histograms": (boolean, "true or false"),
        "text_samples": (boolean, "true or false"),
    },
    "null": {},
}
REQUIRED = {"file": ("filename",), "rotating_file": ("filename",), "csv": ("filename",)}

SETTINGS: dict[str, tuple[Checker, str]] = {
    "root": (string, "a directory path"),
    "run_name": (string, "a name"),
    "run_id": (string, "an id"),
    "flush_interval": (positive_number, "a positive number of seconds"),
    "queue_size": (positive_int, "a positive integer"),
    "backpressure": (lambda v: v in POLICIES, " or ".join(POLICIES)),
    "fsync": (boolean, "true or false"),
    "redact": (boolean, "true or false"),
    "redact_patterns": (string_list, "a list of regular expressions"),
    "memory_interval": (positive_number, "a positive number of seconds"),
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
    "sampling_ratio": (
        lambda v: type(v) in (int, float) and 0 <= v <= 1,
        "a number between 0 and 1",
    ),
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


def fraction(v: Any) -> bool:
    return type(v) in (int, float) and 0 <= v <= 1


def non_negative_number(v: Any) -> bool:
    return type(v) in (int, float) and v >= 0


def _regex(v: Any) -> bool:
    import re

    try:
        re.compile(v)
    except (re.error, TypeError):
        return False
    return isinstance(v, str)


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
    "window": (lambda v: type(v) in (int, float) and 0 < v <= 0.5, "a number above 0, at most 0.5"),
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
    "outlier_window": (lambda v: type(v) is int and v >= 3, "an integer of at least 3 (steps)"),
    "memory_growth": (positive_number, "a positive number (fraction of the starting memory)"),
    "memory_min_mb": (non_negative_number, "a non-negative number of MiB"),
    "memory_r2": (fraction, "a number between 0 and 1"),
    "step_time_drift": (lambda v: type(v) in (int, float) and v > 1, "a number above 1 (ratio)"),
}
