"""The ``gemmalog`` command: query, summarize, compare and convert runs.

Shell completion (click's own): add to ``~/.bashrc``
``eval "$(_GEMMALOG_COMPLETE=bash_source gemmalog)"`` (``zsh_source`` / ``fish_source``
for zsh and fish).
"""

from __future__ import annotations

import sys
from typing import Any

import click

# Importing a command module registers its commands on the group.
from gemmalog.cli import _app, _cache_cmd, _convert, _doctor, _remote_cmd, _serve  # noqa: F401
from gemmalog.cli._group import cli


def main(argv: list[str] | None = None) -> Any:
    """Console-script entry point: exit 0 on success, 1 on failure, 2 on a usage error."""
    return cli.main(args=argv if argv is not None else sys.argv[1:], prog_name="gemmalog")


__all__ = ["cli", "click", "main"]
