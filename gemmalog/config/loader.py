"""Read and validate a YAML configuration before anything starts.

Every problem is reported at once, one line each, naming the file, the line, the key path,
what is wrong and what is allowed (:mod:`gemmalog.config.problems`)::

    configs/bad.yaml:12: handlers.csv.buffer_size: must be a positive integer, got -5

Each section is checked by :mod:`gemmalog.config.sections`. The checks that need a value's
meaning (regular expressions, finite seconds, handler paths, the text limit) live in
:mod:`gemmalog.config.validate`; :func:`parse` and
:func:`gemmalog.config.overrides.apply_overrides` both run them, so ``gemmalog config check``
rejects what ``initialize`` would, and ``initialize`` rejects it before creating anything on
disk.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gemmalog.config.model import Config, DoctorConfig, default_config
from gemmalog.config.problems import ConfigError, Problems
from gemmalog.config.schema import TOP, boolean
from gemmalog.config.sections import (
    mapping,
    read_doctor,
    read_formatters,
    read_handlers,
    read_logger,
    read_metrics,
    read_settings,
    read_sync,
)
from gemmalog.config.validate import check_config

if TYPE_CHECKING:
    import yaml

__all__ = ["ConfigError", "load", "parse", "parse_doctor"]


def parse(
    data: Any,
    source: str = "<config>",
    lines: Mapping[str, int] | None = None,
    *,
    import_user_code: bool = False,
) -> Config:
    """Validate a configuration mapping (as loaded from YAML) and return a :class:`Config`.

    ``lines`` maps dotted key paths to their line in the file, for the messages. Sink classes
    and processors named by dotted path outside gemmalog are only located, not imported,
    unless ``import_user_code`` (then a class must be a sink taking its options, a processor
    callable): checking a file runs none of its code.
    """
    problems = Problems(source, lines)
    if not isinstance(data, Mapping):
        problems.add("(top level)", f"must be a mapping of sections, got {type(data).__name__}")
        problems.raise_if_any()
    config = default_config() if not data.get("handlers") and not data.get("loggers") else Config()
    _check_top(data, problems)
    formatters = mapping(
        data, "formatters", problems, "must be a mapping of name: {format, datefmt}"
    )
    config.formatters.update(read_formatters(formatters, problems))
    handlers = mapping(data, "handlers", problems, "must be a mapping of name: {class, ...}")
    defined = [str(name) for name in formatters]
    config.handlers.update(
        read_handlers(handlers, defined, problems, import_user_code=import_user_code)
    )
    defined = [str(name) for name in handlers]
    if "root" in data:
        config.root = read_logger(data["root"], "root", defined, problems)
    loggers = mapping(
        data, "loggers", problems, "must be a mapping of logger name: {level, handlers, propagate}"
    )
    for name, spec in loggers.items():
        config.loggers[str(name)] = read_logger(spec, f"loggers.{name}", defined, problems)
    config.metrics = read_metrics(mapping(data, "metrics", problems, "must be a mapping"), problems)
    settings = mapping(data, "gemmalog", problems, "must be a mapping of pipeline settings")
    config.settings = read_settings(settings, problems, import_user_code=import_user_code)
    config.doctor = read_doctor(data.get("doctor"), problems)
    config.sync = read_sync(data.get("sync"), problems)
    check_config(config, problems.add, lambda key: f"gemmalog.{key}")
    problems.raise_if_any()
    return config


def _check_top(data: Mapping[Any, Any], problems: Problems) -> None:
    """The sections' names, and the dictConfig keys gemmalog accepts and does not use."""
    for key in data:
        if key not in TOP:
            problems.add(str(key), f"unknown section; allowed: {', '.join(sorted(TOP))}")
    if "version" in data and (type(data["version"]) is not int or data["version"] != 1):
        problems.add("version", f"must be 1, got {data['version']!r}")
    for key in ("disable_existing_loggers", "incremental"):
        if key in data and not boolean(data[key]):
            problems.add(key, f"must be true or false, got {data[key]!r}")


def parse_doctor(section: Any, source: str = "<config>") -> DoctorConfig:
    """Validate a ``doctor:`` mapping alone (from a file or a run's configuration snapshot)."""
    problems = Problems(source)
    doctor = read_doctor(section, problems)
    problems.raise_if_any()
    return doctor


def load(path: str | os.PathLike[str], *, import_user_code: bool = False) -> Config:
    """Load and validate a YAML file; raises :class:`ConfigError` naming the file and key.

    ``import_user_code``: import the sink classes and processors the file names outside
    gemmalog to check them (:func:`parse`); ``initialize()`` does, ``config check`` only
    with ``--import-user-code``.
    """
    import yaml  # here, not at import: ``import gemmalog`` and the defaults do without it

    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{file}: configuration file not found") from None
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read configuration: {exc.strerror or exc}") from None
    try:
        data, lines = _read_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{file}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(file)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{where}: malformed YAML: {problem}") from None
    except RecursionError:  # PyYAML composes nested collections recursively
        raise ConfigError(
            f"{file}: malformed YAML: collections nested too deeply to read "
            "(a configuration needs a few levels)"
        ) from None
    config = parse(
        {} if data is None else data, str(file), lines, import_user_code=import_user_code
    )
    config.source = file.resolve()
    return config


def _read_yaml(text: str) -> tuple[Any, dict[str, int]]:
    """The YAML document, and the line (1-based) of every mapping key as a dotted path."""
    import yaml

    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        data = None if node is None else loader.construct_document(node)
    finally:
        loader.dispose()
    lines: dict[str, int] = {}
    stack: list[tuple[str, yaml.Node]] = [("", node)] if node is not None else []
    while stack:  # iterative: the nesting depth is the file's, not Python's
        prefix, current = stack.pop()
        if not isinstance(current, yaml.MappingNode):
            continue
        for key_node, value_node in current.value:
            if not isinstance(key_node, yaml.ScalarNode):
                continue
            path = f"{prefix}.{key_node.value}" if prefix else str(key_node.value)
            lines.setdefault(path, key_node.start_mark.line + 1)
            stack.append((path, value_node))
    return data, lines
