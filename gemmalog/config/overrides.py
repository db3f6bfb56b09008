"""Keyword arguments of ``initialize()`` and ``GEMMALOG_*`` variables over a configuration.

Both go through the same checks as the file (:mod:`gemmalog.config.sections`,
:mod:`gemmalog.config.validate`); a problem names the keyword (``settings.queue_size``) or
the variable (``GEMMALOG_LEVEL``). The finished configuration, however it was built (a file,
keywords, a ``Config`` made in Python), has its sink classes and processors imported and
checked here, before any file is created.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from gemmalog.config.model import Config
from gemmalog.config.problems import ConfigError, Problems
from gemmalog.config.resolve import check_processor, sink_class, trusted
from gemmalog.config.schema import SETTINGS, TUPLE_SETTINGS, mismatch
from gemmalog.config.sections import check_options, read_level
from gemmalog.config.validate import check_config, check_loggers, check_settings

ENV_OVERRIDES = {
    "GEMMALOG_ROOT": "root",
    "GEMMALOG_RUN_NAME": "run_name",
    "GEMMALOG_LEVEL": "level",
    "GEMMALOG_BACKPRESSURE": "backpressure",
    "GEMMALOG_FLUSH_INTERVAL": "flush_interval",
}


def apply_overrides(
    config: Config, overrides: Mapping[str, Any], source: str = "initialize()"
) -> Config:
    """Apply keyword overrides (and ``level``, which sets the root and every configured logger).

    With ``source="environment"`` a problem names the variable (``GEMMALOG_LEVEL``) rather
    than the keyword.
    """
    problems = Problems(source)
    values = {k: os.fspath(v) if isinstance(v, os.PathLike) else v for k, v in overrides.items()}
    level = values.pop("level", None)
    env = source == "environment"
    if level is not None:
        lvl = read_level(level, "GEMMALOG_LEVEL" if env else "level", problems)
        config.root.level = lvl
        for logger in config.loggers.values():
            logger.level = lvl
    names = {key: var for var, key in ENV_OVERRIDES.items()}
    if env:  # name the variable, not the setting
        checked = {}
        for key, value in values.items():
            spec = SETTINGS.get(key)
            if spec is None:
                problems.add(key, f"unknown setting; allowed: {', '.join(sorted(SETTINGS))}")
                continue
            checker, allowed = spec
            if checker(value):
                checked[key] = value
            else:
                problems.add(names.get(key, key), mismatch(value, allowed))
    else:
        checked = check_options(values, SETTINGS, "settings", problems)
    check_settings(
        checked, problems.add, (lambda k: names.get(k, k)) if env else (lambda k: f"settings.{k}")
    )
    problems.raise_if_any()
    for key, value in checked.items():
        setattr(config.settings, key, tuple(value) if key in TUPLE_SETTINGS else value)
    if not env:  # the finished configuration, however it was built (a Config object too)
        check_config(config, problems.add, lambda k: f"settings.{k}")
        check_loggers(config, problems.add)
        _check_user_code(config, problems)
        problems.raise_if_any()
    return config


def user_code(config: Config) -> list[tuple[str, str]]:
    """(key, dotted path) of each sink class and processor outside gemmalog that ``config``
    names: the code a check without ``import_user_code`` located but did not import."""
    out = [
        (f"handlers.{h.name}.class", h.class_name)
        for h in config.handlers.values()
        if h.type == "user" and not trusted(h.class_name)
    ]
    for key in ("processors", "listener_processors"):
        out += [
            (f"gemmalog.{key}[{i}]", dotted)
            for i, dotted in enumerate(getattr(config.settings, key))
            if not trusted(dotted)
        ]
    return out


def _check_user_code(config: Config, problems: Problems) -> None:
    """Import and check the sink classes and processors a finished configuration names
    (a ``Config`` built in Python skips the loader): at ``initialize()``, before any file."""
    for handler in config.handlers.values():
        if handler.type == "user":
            try:
                sink_class(handler.class_name, handler.options)
            except ValueError as exc:
                problems.add(f"handlers.{handler.name}.class", str(exc))
    for key in ("processors", "listener_processors"):
        for i, dotted in enumerate(getattr(config.settings, key)):
            if isinstance(dotted, str):
                try:
                    check_processor(dotted)
                except ValueError as exc:
                    problems.add(f"settings.{key}[{i}]", str(exc))


def env_overrides(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """GEMMALOG_ROOT, GEMMALOG_RUN_NAME, GEMMALOG_LEVEL, ... as keyword overrides."""
    env = os.environ if environ is None else environ
    out: dict[str, Any] = {}
    for var, key in ENV_OVERRIDES.items():
        raw = env.get(var)
        if not raw:
            continue
        if key == "flush_interval":
            try:
                out[key] = float(raw)
            except ValueError:
                raise ConfigError(f"{var}: must be a number of seconds, got {raw!r}") from None
        else:
            out[key] = raw
    return out
