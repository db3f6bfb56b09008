"""Every CLI command is documented in docs/cli.md and its --help shows an example."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from gemmalog.cli import cli

DOC = Path(__file__).resolve().parent.parent / "docs" / "cli.md"


def commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out: list[tuple[str, ...]] = []
    for name, command in sorted(group.commands.items()):
        out.append((*prefix, name))
        if isinstance(command, click.Group):
            out += commands(command, (*prefix, name))
    return out


ALL = commands(cli)


def test_the_command_list_is_complete() -> None:
    names = {" ".join(c) for c in ALL}
    assert {
        "runs",
        "sql",
        "summary",
        "compare",
        "to-csv",
        "to-parquet",
        "tail",
        "tensorboard",
        "config check",
    } <= names


@pytest.mark.parametrize("command", ALL, ids=[" ".join(c) for c in ALL])
def test_documented_with_example(command: tuple[str, ...]) -> None:
    name = " ".join(command)
    assert f"## `gemmalog {name}`" in DOC.read_text(encoding="utf-8")
    result = CliRunner().invoke(cli, [*command, "--help"])
    assert (
        result.exit_code == 0
        and "Example:" in result.output
        and f"gemmalog {name}" in result.output
    )
