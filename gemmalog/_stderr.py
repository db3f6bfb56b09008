"""gemmalog's own problems, said once on stderr (never through logging, which may be us)."""

from __future__ import annotations

import sys

_said: set[str] = set()


def warn_once(message: str) -> None:
    """Print ``gemmalog: <message>`` to stderr the first time this message comes up."""
    if message not in _said:
        _said.add(message)
        print(f"gemmalog: {message}", file=sys.stderr)
