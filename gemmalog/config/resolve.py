"""Objects named in a configuration by their dotted path (``mypkg.sinks.MySink``)."""

from __future__ import annotations

import importlib
from typing import Any


def resolve(dotted: str) -> Any:
    """The object ``dotted`` names: ``package.module.Name`` (imported) or a module itself.

    Raises ValueError with one sentence saying what could not be imported and why.
    """
    module_name, _, attribute = dotted.rpartition(".")
    if not module_name or not attribute:
        raise ValueError(f"{dotted!r} is not a dotted path (package.module.Name)")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise ValueError(
            f"cannot import {module_name!r} for {dotted!r} ({type(exc).__name__}: {exc})"
        ) from None
    try:
        return getattr(module, attribute)
    except AttributeError:
        raise ValueError(f"module {module_name!r} has no {attribute!r}") from None


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
