"""Read and validate a YAML configuration before anything starts.

Every problem is reported at once, one line each, naming the file, the line, the key path,
what is wrong and what is allowed::

    configs/bad.yaml:12: handlers.csv.buffer_size: must be a positive integer, got -5

The checks that need a value's meaning (regular expressions, finite seconds, handler paths,
the text limit) live in :mod:`gemmalog.config.validate`; :func:`parse` and
:func:`apply_overrides` both run them, so ``gemmalog config check`` rejects what
``initialize`` would, and ``initialize`` rejects it before creating anything on disk.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gemmalog.config.model import (
    DOCTOR_CHECKS,
    SEVERITIES,
    Config,
    DoctorConfig,
    FormatterConfig,
    HandlerConfig,
    LoggerConfig,
    MetricsConfig,
    Settings,
    SyncConfig,
    default_config,
)
from gemmalog.config.resolve import check_named, check_processor, sink_class, trusted
from gemmalog.config.schema import (
    COMMON,
    DOCTOR,
    ENABLE_KEYS,
    HANDLER_CLASSES,
    METRICS,
    OPTIONS,
    REQUIRED,
    SETTINGS,
    SYNC,
    TOP,
    TUPLE_SETTINGS,
    Checker,
    boolean,
    mismatch,
    plain,
    string_list,
)
from gemmalog.config.validate import check_config, check_loggers, check_settings
from gemmalog.formats import COLUMN_FIELDS
from gemmalog.levels import ALIASES, LEVELS, NUMBER_LEVELS

if TYPE_CHECKING:
    import yaml


class ConfigError(ValueError):
    """A configuration that cannot be used; the message names the file, key and fix."""


class _Problems:
    def __init__(self, source: str, lines: Mapping[str, int] | None = None) -> None:
        self.source = source
        self.lines = lines or {}
        self.items: list[str] = []

    def add(self, path: str, message: str) -> None:
        self.items.append(f"{self.source}{self._line(path)}: {path}: {message}")

    def _line(self, path: str) -> str:
        """``:<line>`` of the key (or of its nearest enclosing key) in the YAML file."""
        key = path.split("[", 1)[0]
        while key:
            if key in self.lines:
                return f":{self.lines[key]}"
            key = key.rpartition(".")[0]
        return ""

    def raise_if_any(self) -> None:
        if self.items:
            count = len(self.items)
            head = f"invalid gemmalog configuration ({count} problem{'s' if count > 1 else ''}):"
            raise ConfigError("\n".join([head, *self.items]))


def _level(value: Any, path: str, problems: _Problems) -> str:
    """A level name (any case, as the standard library spells it) or its number (10 ... 50)."""
    if isinstance(value, str):
        name = value.strip().lower()
        if name in LEVELS:
            return name
        if name in ALIASES:
            return ALIASES[name]
    elif type(value) is int and value in NUMBER_LEVELS:
        return NUMBER_LEVELS[value]
    problems.add(path, f"unknown level {value!r}; allowed: {', '.join(x.upper() for x in LEVELS)}")
    return "info"


def _check_options(
    section: Mapping[str, Any],
    table: dict[str, tuple[Checker, str]],
    path: str,
    problems: _Problems,
    skip: frozenset[str] = frozenset(),
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in section.items():
        if key in skip:
            continue
        spec = table.get(key)
        if spec is None:
            allowed = ", ".join(sorted(table)) or "none"
            problems.add(f"{path}.{key}", f"unknown key; allowed: {allowed}")
            continue
        checker, allowed_text = spec
        if not checker(value):
            problems.add(f"{path}.{key}", mismatch(value, allowed_text))
            continue
        out[key] = value
    return out


def _format_error(fmt: str, datefmt: str | None) -> str | None:
    """Why a ``%``-style format cannot format a record, or ``None`` when it can."""
    record = logging.LogRecord("logging.training", logging.INFO, __file__, 1, "message", None, None)
    try:
        logging.Formatter(fmt, datefmt, validate=True).format(record)
    except (ValueError, KeyError, TypeError) as exc:
        detail = f"unknown record attribute {exc}" if isinstance(exc, KeyError) else str(exc)
        return f"cannot format a record with {fmt!r}: {detail}; use %(asctime)s, %(name)s, %(levelname)s, %(message)s, ..."
    return None


def _formatter_name(
    spec: Mapping[str, Any], path: str, defined: list[str], problems: _Problems
) -> str | None:
    """A handler's ``formatter``: the name of a defined formatter, or None."""
    formatter = spec.get("formatter")
    if formatter is None:
        return None
    if formatter not in defined:  # a list compares unequal, never hashed
        problems.add(
            f"{path}.formatter",
            f"names unknown formatter {formatter!r}; defined: {', '.join(defined) or 'none'}",
        )
        return None
    return str(formatter)


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
    problems = _Problems(source, lines)
    if not isinstance(data, Mapping):
        problems.add("(top level)", f"must be a mapping of sections, got {type(data).__name__}")
        problems.raise_if_any()
    config = default_config() if not data.get("handlers") and not data.get("loggers") else Config()
    for key in data:
        if key not in TOP:
            problems.add(str(key), f"unknown section; allowed: {', '.join(sorted(TOP))}")
    if "version" in data and (type(data["version"]) is not int or data["version"] != 1):
        problems.add("version", f"must be 1, got {data['version']!r}")
    for key in ("disable_existing_loggers", "incremental"):
        if key in data and not boolean(data[key]):
            problems.add(key, f"must be true or false, got {data[key]!r}")

    formatters = data.get("formatters") or {}
    if not isinstance(formatters, Mapping):
        problems.add("formatters", "must be a mapping of name: {format, datefmt}")
        formatters = {}
    for name, spec in formatters.items():
        path = f"formatters.{name}"
        if not isinstance(spec, Mapping):
            problems.add(path, "must be a mapping with 'format' (and optionally 'datefmt')")
            continue
        unknown = set(spec) - {"format", "datefmt", "fields", "style", "class"}
        for key in sorted(unknown):
            problems.add(f"{path}.{key}", "unknown key; allowed: datefmt, fields, format")
        if spec.get("style", "%") != "%":
            problems.add(f"{path}.style", f"only '%' style is supported, got {spec['style']!r}")
        fmt = spec.get("format", FormatterConfig.format)
        if not isinstance(fmt, str):
            problems.add(f"{path}.format", f"must be a format string or 'json', got {fmt!r}")
            continue
        datefmt = spec.get("datefmt")
        if datefmt is not None and not isinstance(datefmt, str):
            problems.add(
                f"{path}.datefmt",
                f"must be a strftime format such as '%Y-%m-%d %H:%M:%S', got {datefmt!r}",
            )
            continue
        if fmt.strip().lower() != "json":
            error = _format_error(fmt, datefmt)
            if error:
                problems.add(f"{path}.format", error)
                continue
        fields = spec.get("fields", list(FormatterConfig.fields))
        if not string_list(fields):
            problems.add(f"{path}.fields", f"must be a list of field names, got {fields!r}")
            fields = list(FormatterConfig.fields)
        config.formatters[str(name)] = FormatterConfig(
            format=fmt, datefmt=datefmt, json=fmt.strip().lower() == "json", fields=tuple(fields)
        )

    defined_formatters = [str(name) for name in formatters]
    handlers = data.get("handlers") or {}
    if not isinstance(handlers, Mapping):
        problems.add("handlers", "must be a mapping of name: {class, ...}")
        handlers = {}
    for name, spec in handlers.items():
        path = f"handlers.{name}"
        if not isinstance(spec, Mapping):
            problems.add(path, "must be a mapping with a 'class'")
            continue
        cls = spec.get("class")
        kind = HANDLER_CLASSES.get(cls) if isinstance(cls, str) else None
        if kind is None and isinstance(cls, str) and "." in cls and not cls.startswith("logging."):
            # A user's sink class: located (or, opted in, imported and checked) now, so a bad
            # path fails `config check` too; its options must be plain values for run.json.
            options = {str(k): v for k, v in spec.items() if k not in COMMON}
            level = _level(spec.get("level", "NOTSET"), f"{path}.level", problems)
            bad = [f"{path}.{k}" for k, v in options.items() if not plain(v)]
            for where in bad:
                problems.add(
                    where,
                    "must be a plain value (text, a finite number, true/false, null, or a list "
                    "or mapping of those)",
                )
            if bad:
                continue
            try:
                check_named(cls, import_user_code=import_user_code, options=options)
            except ValueError as exc:
                problems.add(f"{path}.class", str(exc))
                continue
            formatter = _formatter_name(spec, path, defined_formatters, problems)
            config.handlers[str(name)] = HandlerConfig(
                str(name), "user", level, formatter, options, class_name=cls
            )
            continue
        if kind is None:
            allowed = ", ".join(k for k in HANDLER_CLASSES if "." in k)
            short = ", ".join(k for k in HANDLER_CLASSES if "." not in k)
            problems.add(
                f"{path}.class",
                f"unknown handler class {cls!r}; allowed: {allowed} (or the short names {short})",
            )
            continue
        options = _check_options(spec, OPTIONS[kind], path, problems, skip=COMMON)
        for column in options.get("columns", []) if kind == "csv" else []:
            if column not in COLUMN_FIELDS:
                allowed = ", ".join(COLUMN_FIELDS)
                problems.add(
                    f"{path}.columns",
                    f"unknown column {column!r}; allowed: {allowed} (reward_<fn> columns are added by themselves)",
                )
        missing = [key for key in REQUIRED.get(kind, ()) if key not in spec]
        for required in missing:
            problems.add(f"{path}.{required}", f"missing; a {cls} handler needs '{required}'")
        formatter = _formatter_name(spec, path, defined_formatters, problems)
        level = _level(spec.get("level", "NOTSET"), f"{path}.level", problems)
        if missing or any(key not in options for key in REQUIRED.get(kind, ())):
            continue  # reported: the later checks would only repeat it
        config.handlers[str(name)] = HandlerConfig(
            str(name), kind, level, formatter, options, class_name=str(cls)
        )

    defined_handlers = [str(name) for name in handlers]

    def logger_config(spec: Any, path: str) -> LoggerConfig:
        if not isinstance(spec, Mapping):
            problems.add(path, "must be a mapping with level, handlers, propagate")
            return LoggerConfig()
        for key in sorted(set(spec) - {"level", "handlers", "propagate", "filters"}):
            problems.add(f"{path}.{key}", "unknown key; allowed: handlers, level, propagate")
        names = spec.get("handlers", [])
        if not string_list(names) and names != []:
            problems.add(f"{path}.handlers", f"must be a list of handler names, got {names!r}")
            names = []
        for handler in names:
            if handler not in defined_handlers:
                problems.add(
                    f"{path}.handlers",
                    f"names unknown handler {handler!r}; defined: {', '.join(defined_handlers) or 'none'}",
                )
        propagate = spec.get("propagate", True)
        if not boolean(propagate):
            problems.add(f"{path}.propagate", f"must be true or false, got {propagate!r}")
            propagate = True
        return LoggerConfig(
            _level(spec.get("level", "INFO"), f"{path}.level", problems), tuple(names), propagate
        )

    if "root" in data:
        config.root = logger_config(data["root"], "root")
    loggers = data.get("loggers") or {}
    if not isinstance(loggers, Mapping):
        problems.add("loggers", "must be a mapping of logger name: {level, handlers, propagate}")
        loggers = {}
    for name, spec in loggers.items():
        config.loggers[str(name)] = logger_config(spec, f"loggers.{name}")

    metrics = data.get("metrics") or {}
    if not isinstance(metrics, Mapping):
        problems.add("metrics", "must be a mapping")
        metrics = {}
    checked = _check_options(metrics, METRICS, "metrics", problems)
    enable = dict(MetricsConfig().enable)
    for key, value in (checked.pop("enable", None) or {}).items():
        if key not in ENABLE_KEYS:
            problems.add(
                f"metrics.enable.{key}", f"unknown category; allowed: {', '.join(ENABLE_KEYS)}"
            )
        elif not boolean(value):
            problems.add(f"metrics.enable.{key}", f"must be true or false, got {value!r}")
        else:
            enable[key] = value
    config.metrics = MetricsConfig(**checked, enable=enable)

    settings = data.get("gemmalog") or {}
    if not isinstance(settings, Mapping):
        problems.add("gemmalog", "must be a mapping of pipeline settings")
        settings = {}
    checked_settings = _check_options(settings, SETTINGS, "gemmalog", problems)
    for key in TUPLE_SETTINGS:
        if key in checked_settings:
            checked_settings[key] = tuple(checked_settings[key])
    for key in ("processors", "listener_processors"):
        for i, dotted in enumerate(checked_settings.get(key, ())):
            try:
                check_named(dotted, import_user_code=import_user_code)
            except ValueError as exc:
                problems.add(f"gemmalog.{key}[{i}]", str(exc))
    config.settings = Settings(**checked_settings)
    config.doctor = _doctor(data.get("doctor"), problems)
    config.sync = _sync(data.get("sync"), problems)
    check_config(config, problems.add, lambda key: f"gemmalog.{key}")
    problems.raise_if_any()
    return config


def _doctor(section: Any, problems: _Problems) -> DoctorConfig:
    """The ``doctor:`` section: known keys of the right type, check names and severities."""
    if section is None:
        return DoctorConfig()
    if not isinstance(section, Mapping):
        problems.add("doctor", "must be a mapping of check thresholds")
        return DoctorConfig()
    checked = _check_options(section, DOCTOR, "doctor", problems)
    checks: dict[str, str] = {}
    allowed = ("off", *SEVERITIES)
    for name, value in (checked.pop("checks", None) or {}).items():
        value = "off" if value is False else value  # YAML 1.1 reads a bare `off` as false
        if name not in DOCTOR_CHECKS:
            problems.add(
                f"doctor.checks.{name}", f"unknown check; allowed: {', '.join(DOCTOR_CHECKS)}"
            )
        elif not isinstance(value, str) or value.lower() not in allowed:
            problems.add(f"doctor.checks.{name}", f"must be {', '.join(allowed)}, got {value!r}")
        else:
            checks[name] = value.lower()
    if "outlier_metrics" in checked:
        checked["outlier_metrics"] = tuple(checked["outlier_metrics"])
    return DoctorConfig(checks=checks, **checked)


def _sync(section: Any, problems: _Problems) -> SyncConfig:
    """The ``sync:`` section: where to push the run while it trains, and how often."""
    if section is None:
        return SyncConfig()
    if not isinstance(section, Mapping):
        problems.add("sync", "must be a mapping with dest (and interval, final_timeout)")
        return SyncConfig()
    dest = section.get("dest")
    if isinstance(dest, str) and dest and not SYNC["dest"][0](dest):
        # said without the value: it holds a password
        problems.add("sync.dest", "must not carry a user or password; give them in the environment")
        section = {k: v for k, v in section.items() if k != "dest"}
    checked = _check_options(section, SYNC, "sync", problems)
    if "dest" not in section and dest is None:
        problems.add("sync.dest", "missing: give the path or URL to push the run to")
    return SyncConfig(**checked)


def parse_doctor(section: Any, source: str = "<config>") -> DoctorConfig:
    """Validate a ``doctor:`` mapping alone (from a file or a run's configuration snapshot)."""
    problems = _Problems(source)
    doctor = _doctor(section, problems)
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
    problems = _Problems(source)
    values = {k: os.fspath(v) if isinstance(v, os.PathLike) else v for k, v in overrides.items()}
    level = values.pop("level", None)
    env = source == "environment"
    if level is not None:
        lvl = _level(level, "GEMMALOG_LEVEL" if env else "level", problems)
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
        checked = _check_options(values, SETTINGS, "settings", problems)
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


def _check_user_code(config: Config, problems: _Problems) -> None:
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
