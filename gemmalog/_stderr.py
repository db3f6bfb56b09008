"""gemmalog's own problems, said once on stderr (never through logging, which may be us)."""

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
