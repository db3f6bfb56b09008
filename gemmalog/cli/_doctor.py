"""``gemmalog doctor``: the health checks of gemmalog.doctor, as a table, JSON, or an exit code."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from gemmalog.cli._group import cli, console, root_option
from gemmalog.cli._remote_cmd import here_all

if TYPE_CHECKING:
    from gemmalog.doctor import Finding

#: Exit status when a finding reaches ``--fail-on`` (1 is an error, 2 a usage error).
FINDINGS_EXIT = 3


@cli.command()
@click.argument("runs", nargs=-1, required=True)
@root_option
@click.option("--json", "as_json", is_flag=True, help="Print the findings as JSON.")
@click.option(
    "--fail-on",
    type=click.Choice(["warning", "error"]),
    default=None,
    help=f"Exit with status {FINDINGS_EXIT} when a finding is at least this severe (for CI).",
)
@click.option(
    "--config",
    "config",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="YAML file whose doctor: section sets the thresholds (default: each run's own).",
)
@click.option("--check", "checks", multiple=True, help="Run only this check (repeatable).")
def doctor(
    runs: tuple[str, ...],
    root: str | None,
    as_json: bool,
    fail_on: str | None,
    config: str | None,
    checks: tuple[str, ...],
) -> None:
    """Check RUNS for the failures GRPO runs show in their logs: reward hacking, collapse,
    length pathologies, no learning signal, instability, memory growth, lost events.

    Each finding names its check, severity, steps and evidence (docs/doctor.md explains
    every check and its threshold in the doctor: section of the configuration).

    \b
    Example:
        gemmalog doctor gemmalog_runs/my-run
        gemmalog doctor my-run other-run --root gemmalog_runs --json
        gemmalog doctor gemmalog_runs/my-run --fail-on error
    """
    import orjson

    from gemmalog.doctor import RANK, diagnose

    read, root = here_all(runs, root)
    findings = diagnose(list(read), root=root, config=config, checks=checks or None)
    if as_json:
        click.echo(
            orjson.dumps([f.to_dict() for f in findings], option=orjson.OPT_INDENT_2).decode()
        )
    elif not findings:
        click.echo(f"no findings in {', '.join(runs)}")
    else:
        _print_findings(findings)
    if fail_on is not None and any(RANK[f.severity] >= RANK[fail_on] for f in findings):
        click.get_current_context().exit(FINDINGS_EXIT)


def _print_findings(findings: list[Finding]) -> None:
    """The findings as a table, then the example completions some of them carry."""
    from rich.table import Table
    from rich.text import Text

    from gemmalog._terminal import visible
    from gemmalog.doctor import steps_text

    several = len({f.run for f in findings}) > 1
    table = Table(title="gemmalog doctor", show_lines=True)
    for name in ["#", "severity", *(["run"] if several else []), "check", "steps", "finding"]:
        table.add_column(name, overflow="fold")
    styles = {"error": "bold red", "warning": "yellow", "info": "cyan"}
    for i, f in enumerate(findings, 1):
        # Run ids and messages hold data (reward and metric names): shown literally.
        table.add_row(
            str(i),
            Text(f.severity, style=styles[f.severity]),
            *([Text(visible(f.run))] if several else []),
            f.check,
            steps_text(f.steps) or "—",
            Text(visible(f.message)),
        )
    out = console()
    out.print(table)
    for i, f in enumerate(findings, 1):
        if f.examples:
            out.print(f"#{i} {f.check}, example completions:", markup=False, highlight=False)
        for ex in f.examples:
            where = f"step {ex['step']}" if "step" in ex else "example"
            count = f", {ex['count']}×" if "count" in ex else ""
            text = " ".join(str(ex["text"]).split())[:160]
            out.print(f"  {where}{count}: {visible(text)}", markup=False, highlight=False)
