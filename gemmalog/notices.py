"""How gemmalog tells the user something: one ``gemmalog: ...`` line on stderr, never through
logging (which may be gemmalog itself). The one way every module reports its own problems."""

from __future__ import annotations

import contextlib
import sys

_said: set[str] = set()


def warn_once(message: str, key: str | None = None) -> None:
    """Print ``gemmalog: <message>`` to stderr the first time this message (or ``key``)
    comes up. Never raises (stderr may be closed)."""
    key = message if key is None else key
    if key not in _said:
        _said.add(key)
        with contextlib.suppress(Exception):
            print(f"gemmalog: {message}", file=sys.stderr)


def say(message: str) -> None:
    """Print ``gemmalog: <message>`` to stderr (each time; see :func:`warn_once`). Never raises."""
    with contextlib.suppress(Exception):
        print(f"gemmalog: {message}", file=sys.stderr)
