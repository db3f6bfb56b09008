"""The checks of each section of a configuration mapping, as a YAML file writes it.

Each ``read_*`` function checks one section, reports what is wrong to a :class:`Problems`
and returns what can be used of it: :func:`gemmalog.config.loader.parse` calls them in the
file's order and raises once, with every problem. What a section may hold (keys, types,
allowed values) is declared in :mod:`gemmalog.config.schema`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from gemmalog.config.model import (
    DOCTOR_CHECKS,
    SEVERITIES,
    DoctorConfig,
    FormatterConfig,
    HandlerConfig,
    LoggerConfig,
    MetricsConfig,
    Settings,
    SyncConfig,
)
from gemmalog.config.problems import Problems
from gemmalog.config.resolve import check_named
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
    TUPLE_SETTINGS,
    Checker,
    boolean,
    mismatch,
    plain,
    string_list,
)
from gemmalog.formats import COLUMN_FIELDS
from gemmalog.levels import ALIASES, LEVELS, NUMBER_LEVELS


def read_level(value: Any, path: str, problems: Problems) -> str:
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


def check_options(
    section: Mapping[str, Any],
    table: dict[str, tuple[Checker, str]],
    path: str,
    problems: Problems,
    skip: frozenset[str] = frozenset(),
) -> dict[str, Any]:
    """The keys of ``section`` that ``table`` knows, with values its checkers accept."""
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


def mapping(data: Mapping[str, Any], key: str, problems: Problems, what: str) -> Mapping[Any, Any]:
    """The section ``key`` of ``data`` (empty when absent); ``what`` says what it must be."""
    section = data.get(key) or {}
    if not isinstance(section, Mapping):
        problems.add(key, what)
        return {}
    return section


# -- formatters ------------------------------------------------------------------------------


def read_formatters(section: Mapping[Any, Any], problems: Problems) -> dict[str, FormatterConfig]:
    out: dict[str, FormatterConfig] = {}
    for name, spec in section.items():
        formatter = _formatter(f"formatters.{name}", spec, problems)
        if formatter is not None:
            out[str(name)] = formatter
    return out


def _formatter(path: str, spec: Any, problems: Problems) -> FormatterConfig | None:
    if not isinstance(spec, Mapping):
        problems.add(path, "must be a mapping with 'format' (and optionally 'datefmt')")
        return None
    unknown = set(spec) - {"format", "datefmt", "fields", "style", "class"}
    for key in sorted(unknown, key=str):
        problems.add(f"{path}.{key}", "unknown key; allowed: datefmt, fields, format")
    if spec.get("style", "%") != "%":
        problems.add(f"{path}.style", f"only '%' style is supported, got {spec['style']!r}")
    fmt = spec.get("format", FormatterConfig.format)
    if not isinstance(fmt, str):
        problems.add(f"{path}.format", f"must be a format string or 'json', got {fmt!r}")
        return None
    datefmt = spec.get("datefmt")
    if datefmt is not None and not isinstance(datefmt, str):
        problems.add(
            f"{path}.datefmt",
            f"must be a strftime format such as '%Y-%m-%d %H:%M:%S', got {datefmt!r}",
        )
        return None
    if fmt.strip().lower() != "json":
        error = _format_error(fmt, datefmt)
        if error:
            problems.add(f"{path}.format", error)
            return None
    fields = spec.get("fields", list(FormatterConfig.fields))
    if not string_list(fields):
        problems.add(f"{path}.fields", f"must be a list of field names, got {fields!r}")
        fields = list(FormatterConfig.fields)
    return FormatterConfig(
        format=fmt, datefmt=datefmt, json=fmt.strip().lower() == "json", fields=tuple(fields)
    )


def _format_error(fmt: str, datefmt: str | None) -> str | None:
    """Why a ``%``-style format cannot format a record, or ``None`` when it can."""
    record = logging.LogRecord("logging.training", logging.INFO, __file__, 1, "message", None, None)
    try:
        logging.Formatter(fmt, datefmt, validate=True).format(record)
    except (ValueError, KeyError, TypeError) as exc:
        detail = f"unknown record attribute {exc}" if isinstance(exc, KeyError) else str(exc)
        return f"cannot format a record with {fmt!r}: {detail}; use %(asctime)s, %(name)s, %(levelname)s, %(message)s, ..."
    return None


# -- handlers --------------------------------------------------------------------------------


def read_handlers(
    section: Mapping[Any, Any],
    formatters: list[str],
    problems: Problems,
    *,
    import_user_code: bool,
) -> dict[str, HandlerConfig]:
    """The handlers; ``formatters`` are the names the file defines (usable or not)."""
    out: dict[str, HandlerConfig] = {}
    for name, spec in section.items():
        path = f"handlers.{name}"
        if not isinstance(spec, Mapping):
            problems.add(path, "must be a mapping with a 'class'")
            continue
        cls = spec.get("class")
        kind = HANDLER_CLASSES.get(cls) if isinstance(cls, str) else None
        if kind is None and isinstance(cls, str) and "." in cls and not cls.startswith("logging."):
            handler = _user_handler(
                str(name), cls, spec, formatters, problems, import_user_code=import_user_code
            )
        else:
            handler = _handler(str(name), cls, kind, spec, formatters, problems)
        if handler is not None:
            out[str(name)] = handler
    return out


def _handler(
    name: str,
    cls: Any,
    kind: str | None,
    spec: Mapping[str, Any],
    formatters: list[str],
    problems: Problems,
) -> HandlerConfig | None:
    """A handler of one of gemmalog's own types (console, file, csv, ...)."""
    path = f"handlers.{name}"
    if kind is None:
        allowed = ", ".join(k for k in HANDLER_CLASSES if "." in k)
        short = ", ".join(k for k in HANDLER_CLASSES if "." not in k)
        problems.add(
            f"{path}.class",
            f"unknown handler class {cls!r}; allowed: {allowed} (or the short names {short})",
        )
        return None
    options = check_options(spec, OPTIONS[kind], path, problems, skip=COMMON)
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
    formatter = _formatter_name(spec, path, formatters, problems)
    level = read_level(spec.get("level", "NOTSET"), f"{path}.level", problems)
    if missing or any(key not in options for key in REQUIRED.get(kind, ())):
        return None  # reported: the later checks would only repeat it
    return HandlerConfig(name, kind, level, formatter, options, class_name=str(cls))


def _user_handler(
    name: str,
    cls: str,
    spec: Mapping[str, Any],
    formatters: list[str],
    problems: Problems,
    *,
    import_user_code: bool,
) -> HandlerConfig | None:
    """A user's sink class: located (or, opted in, imported and checked) now, so a bad path
    fails ``config check`` too; its options must be plain values for run.json."""
    path = f"handlers.{name}"
    options = {str(k): v for k, v in spec.items() if k not in COMMON}
    level = read_level(spec.get("level", "NOTSET"), f"{path}.level", problems)
    bad = [f"{path}.{k}" for k, v in options.items() if not plain(v)]
    for where in bad:
        problems.add(
            where,
            "must be a plain value (text, a finite number, true/false, null, or a list "
            "or mapping of those)",
        )
    if bad:
        return None
    try:
        check_named(cls, import_user_code=import_user_code, options=options)
    except ValueError as exc:
        problems.add(f"{path}.class", str(exc))
        return None
    formatter = _formatter_name(spec, path, formatters, problems)
    return HandlerConfig(name, "user", level, formatter, options, class_name=cls)


def _formatter_name(
    spec: Mapping[str, Any], path: str, defined: list[str], problems: Problems
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


# -- loggers, metrics, settings, doctor, sync --------------------------------------------------


def read_logger(spec: Any, path: str, handlers: list[str], problems: Problems) -> LoggerConfig:
    """``root`` or one of ``loggers``; ``handlers`` are the names the file defines."""
    if not isinstance(spec, Mapping):
        problems.add(path, "must be a mapping with level, handlers, propagate")
        return LoggerConfig()
    for key in sorted(set(spec) - {"level", "handlers", "propagate", "filters"}, key=str):
        problems.add(f"{path}.{key}", "unknown key; allowed: handlers, level, propagate")
    names = spec.get("handlers", [])
    if not string_list(names) and names != []:
        problems.add(f"{path}.handlers", f"must be a list of handler names, got {names!r}")
        names = []
    for handler in names:
        if handler not in handlers:
            problems.add(
                f"{path}.handlers",
                f"names unknown handler {handler!r}; defined: {', '.join(handlers) or 'none'}",
            )
    propagate = spec.get("propagate", True)
    if not boolean(propagate):
        problems.add(f"{path}.propagate", f"must be true or false, got {propagate!r}")
        propagate = True
    return LoggerConfig(
        read_level(spec.get("level", "INFO"), f"{path}.level", problems), tuple(names), propagate
    )


def read_metrics(section: Mapping[Any, Any], problems: Problems) -> MetricsConfig:
    checked = check_options(section, METRICS, "metrics", problems)
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
    return MetricsConfig(**checked, enable=enable)


def read_settings(
    section: Mapping[Any, Any], problems: Problems, *, import_user_code: bool
) -> Settings:
    """The ``gemmalog:`` section; its processors are located (or imported, opted in)."""
    checked = check_options(section, SETTINGS, "gemmalog", problems)
    for key in TUPLE_SETTINGS:
        if key in checked:
            checked[key] = tuple(checked[key])
    for key in ("processors", "listener_processors"):
        for i, dotted in enumerate(checked.get(key, ())):
            try:
                check_named(dotted, import_user_code=import_user_code)
            except ValueError as exc:
                problems.add(f"gemmalog.{key}[{i}]", str(exc))
    return Settings(**checked)


def read_doctor(section: Any, problems: Problems) -> DoctorConfig:
    """The ``doctor:`` section: known keys of the right type, check names and severities."""
    if section is None:
        return DoctorConfig()
    if not isinstance(section, Mapping):
        problems.add("doctor", "must be a mapping of check thresholds")
        return DoctorConfig()
    checked = check_options(section, DOCTOR, "doctor", problems)
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


def read_sync(section: Any, problems: Problems) -> SyncConfig:
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
    checked = check_options(section, SYNC, "sync", problems)
    if "dest" not in section and dest is None:
        problems.add("sync.dest", "missing: give the path or URL to push the run to")
    return SyncConfig(**checked)
