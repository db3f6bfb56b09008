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

from gemmalog.config.model import Config

#: The shortest ``max_string_length``: a one-line message must fit. Envelope fields (kind,
#: logger, level, run, phase) are never cut, whatever the limit (processors/sanitize.py).
MIN_STRING_LENGTH: Final = 64
#: Longest interval, in seconds, of a flush or sampling setting (one day).
MAX_SECONDS: Final = 86_400.0
#: gemmalog's own files in a run directory: no handler may write to them.
OWN_FILES: Final = ("events.*.jsonl", "run.json")

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
    """A relative handler path must stay in the run directory and not be gemmalog's file."""
    if not isinstance(value, str) or not value:
        return
    path = os.path.expanduser(value)
    if os.path.isabs(path):  # used as written (documented); the run directory is unknown here
        return
    parts = PurePath(os.path.normpath(path)).parts
    if parts and parts[0] == "..":
        report(
            where,
            f"{value!r} leaves the run directory; relative paths resolve inside it "
            "(use an absolute path to write elsewhere)",
        )
        return
    if len(parts) == 1 and any(fnmatch.fnmatchcase(parts[0], own) for own in OWN_FILES):
        report(
            where,
            f"{value!r} is one of gemmalog's own files ({', '.join(OWN_FILES)}); choose another name",
        )


def check_settings(values: dict[str, Any], report: Report, name: Callable[[str], str]) -> None:
    """The pipeline settings in ``values``; ``name(key)`` is how a problem names the key."""
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
                    f"not a valid regular expression ({exc.msg} at position {exc.pos}): {pattern!r}",
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
    """Handler options whose meaning, not type, makes them unusable."""
    for handler in config.handlers.values():
        where = f"handlers.{handler.name}"
        opts = handler.options
        for key in ("flush_secs", "flush_interval"):
            if key in opts:
                _seconds(opts[key], f"{where}.{key}", report)
        for key in ("filename", "log_dir"):
            if key in opts:
                _own_path(opts[key], f"{where}.{key}", report)


def check_config(config: Config, report: Report, name: Callable[[str], str]) -> None:
    """Every check above on a finished configuration."""
    check_settings(vars(config.settings), report, name)
    check_handlers(config, report)
