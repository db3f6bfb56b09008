"""Objects named in a configuration by their dotted path (``mypkg.sinks.MySink``).

Checking a configuration runs none of its code: a dotted path outside gemmalog is only
*located* (its module file is found through the import system's finders, which read no
module), unless the caller opts in to importing it (``gemmalog config check
--import-user-code``, and ``initialize()``, which runs the user's code anyway). An imported
class must be a sink (``write``, ``flush``, ``close``: :class:`gemmalog.sinks.BaseSink` or
the same protocol) or a :class:`logging.Handler`, and take the handler's options.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import inspect
import logging
import sys
from collections.abc import Mapping
from typing import Any

#: Modules whose code is gemmalog's own: imported to check a path, with or without opting in.
TRUSTED = ("gemmalog",)
SINK_METHODS = ("write", "flush", "close")


def trusted(dotted: str) -> bool:
    """Whether ``dotted`` names gemmalog's own code (imported to check it, never the user's)."""
    return dotted.split(".", 1)[0] in TRUSTED


def _split(dotted: str) -> tuple[str, str]:
    module_name, _, attribute = dotted.rpartition(".")
    if not module_name or not all(part.isidentifier() for part in dotted.split(".")):
        raise ValueError(f"{dotted!r} is not a dotted path (package.module.Name)")
    return module_name, attribute


def resolve(dotted: str) -> Any:
    """The object ``dotted`` names: ``package.module.Name`` (imported) or a module itself.

    Raises ValueError with one sentence saying what could not be imported and why.
    """
    module_name, attribute = _split(dotted)
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise ValueError(
            f"cannot import {module_name!r} for {dotted!r} ({type(exc).__name__}: {exc})"
        ) from None
    try:
        return getattr(module, attribute)
    except AttributeError:
        pass
    try:  # the module's own code has run: finding a submodule runs no new code
        submodule = importlib.util.find_spec(dotted)
    except (ImportError, ValueError):  # the module is not a package: no submodule either
        submodule = None
    if submodule is None:
        raise ValueError(f"module {module_name!r} has no {attribute!r}")
    try:
        return importlib.import_module(dotted)  # a submodule not imported by its package
    except Exception as exc:
        raise ValueError(f"cannot import {dotted!r} ({type(exc).__name__}: {exc})") from None


def locate(dotted: str) -> None:
    """Check that the module of ``dotted`` exists without running any code of it.

    The finders of the import system are asked for each package level (as ``import`` would),
    but no module is executed: a missing module is reported, the attribute is not looked at.
    Raises ValueError naming what is missing.
    """
    module_name, _ = _split(dotted)
    parts = module_name.split(".")
    locations: Any = None
    for i in range(len(parts)):
        name = ".".join(parts[: i + 1])
        loaded = sys.modules.get(name)
        if loaded is not None:
            spec = getattr(loaded, "__spec__", None)
            locations = getattr(loaded, "__path__", None)
            continue
        if i == 0:
            try:
                spec = importlib.util.find_spec(name)
            except (ImportError, ValueError):
                spec = None
        elif locations is None:
            raise ValueError(
                f"cannot find {module_name!r} for {dotted!r}: {'.'.join(parts[:i])!r} is a "
                "module, not a package"
            )
        else:
            spec = importlib.machinery.PathFinder.find_spec(name, list(locations))
        if spec is None:
            raise ValueError(f"cannot find module {name!r} for {dotted!r} (is it installed?)")
        locations = spec.submodule_search_locations


def sink_class(dotted: str, options: Mapping[str, Any]) -> type:
    """Import ``dotted`` and check it is a sink class (or a ``logging.Handler``) taking
    ``options``; raises ValueError saying what it is instead. Creates nothing."""
    found = resolve(dotted)
    if not isinstance(found, type):
        raise ValueError(f"{dotted!r} is not a class (it is a {type(found).__name__})")
    if issubclass(found, logging.Handler):
        arguments = dict(options)  # built as Class(**options); its name is the handler's
    elif all(callable(getattr(found, m, None)) for m in SINK_METHODS):
        arguments = {"name": "handler", **options}  # built as Class(name=..., **options)
    else:
        missing = [m for m in SINK_METHODS if not callable(getattr(found, m, None))]
        raise ValueError(
            f"{dotted!r} is not a sink: it has no {', '.join(m + '()' for m in missing)}; a sink "
            "class has write(batch), flush() and close() (see gemmalog.sinks.BaseSink) or is a "
            "logging.Handler"
        )
    _takes(found, arguments, dotted)
    return found


def _takes(cls: type, arguments: Mapping[str, Any], dotted: str) -> None:
    """Raise ValueError when ``cls(**arguments)`` cannot bind (checked without calling it)."""
    try:
        signature = inspect.signature(cls)
    except (TypeError, ValueError):  # no signature to read (a class written in C)
        return
    try:
        signature.bind(**arguments)
    except TypeError as exc:
        given = ", ".join(arguments) or "no arguments"
        raise ValueError(f"{dotted!r} cannot be created with {given} ({exc})") from None


def check_processor(dotted: str) -> None:
    """Import ``dotted`` and check it is a processor: a callable, or a class whose instances
    are callable and that takes no arguments. Raises ValueError; creates nothing."""
    found = resolve(dotted)
    if isinstance(found, type):
        if not any("__call__" in vars(k) for k in found.__mro__ if k is not object):
            raise ValueError(
                f"{dotted!r} is a class whose instances are not callable "
                "(a processor takes logger, method, event)"
            )
        _takes(found, {}, dotted)
    elif not callable(found):
        raise ValueError(f"{dotted!r} is not callable (a processor takes logger, method, event)")


def processor(dotted: str) -> Any:
    """A processor named in the YAML: a callable, or a class instantiated without arguments."""
    found = resolve(dotted)
    if isinstance(found, type):
        try:
            found = found()
        except Exception as exc:
            raise ValueError(
                f"{dotted!r} could not be created without arguments ({type(exc).__name__}: {exc})"
            ) from None
    if not callable(found):
        raise ValueError(f"{dotted!r} is not callable (a processor takes logger, method, event)")
    return found


def check_named(
    dotted: str, *, import_user_code: bool, options: Mapping[str, Any] | None = None
) -> None:
    """Check a sink class (``options`` given) or a processor named in a configuration:
    imported when it is gemmalog's own or ``import_user_code`` is set, else only located."""
    if not (import_user_code or trusted(dotted)):
        locate(dotted)
    elif options is not None:
        sink_class(dotted, options)
    else:
        check_processor(dotted)
