"""How the configuration checks report: every problem at once, one line each.

A line names the file, the line of the key in it, the key path, what is wrong and what is
allowed::

    configs/bad.yaml:12: handlers.csv.buffer_size: must be a positive integer, got -5
"""

from __future__ import annotations

from collections.abc import Mapping


class ConfigError(ValueError):
    """A configuration that cannot be used; the message names the file, key and fix."""


class Problems:
    """The problems found in one configuration (a file, keywords, the environment)."""

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
