"""Conversion and live commands: to-csv, to-parquet, tail, tensorboard, config check."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import orjson
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

from gemmalog._terminal import visible
from gemmalog.cli._group import cli, console, root_option
from gemmalog.cli._render import cell

#: Show a progress bar above this many bytes of JSONL ($GEMMALOG_PROGRESS_BYTES overrides).
PROGRESS_BYTES = 50 * 1024 * 1024


def _progress_bytes() -> int:
    try:
        return int(os.environ.get("GEMMALOG_PROGRESS_BYTES", PROGRESS_BYTES))
    except ValueError:
        return PROGRESS_BYTES


def _progress(files: list[str], label: str) -> tuple[Progress | None, Any]:
    size = sum(Path(f).stat().st_size for f in files)
    if size < _progress_bytes():
        return None, None
    bar = Progress(
        TextColumn(label), BarColumn(), TaskProgressColumn(), TimeElapsedColumn(), console=console()
    )
    task = bar.add_task(label, total=1.0)
    return bar, lambda done: bar.update(task, completed=done)


@cli.command("to-csv")
@click.argument("run")
@root_option
@click.option(
    "--kind",
    type=click.Choice(["model_output", "metrics", "rewards"]),
    default="model_output",
    show_default=True,
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False),
    default=None,
    help="Output file (default: <kind>.csv).",
)
def to_csv(run: str, root: str | None, kind: str, output: str | None) -> None:
    """Rebuild a CSV file of RUN from its JSONL (model outputs: the live CSV sink's rows).

    \b
    Example:
        gemmalog to-csv gemmalog_runs/my-run -o model_outputs.csv
        gemmalog to-csv my-run --kind metrics -o metrics.csv
    """
    from gemmalog.queries import resolve
    from gemmalog.queries import to_csv as convert

    out = output or f"{kind}.csv"
    files = resolve(run, root=root).files()
    rows = _with_progress(files, f"to-csv {kind}", convert, run, out, kind=kind, root=root)
    click.echo(f"wrote {rows} rows to {out}")


@cli.command("to-parquet")
@click.argument("path")
@click.argument("out")
@root_option
@click.option("--overwrite", is_flag=True, help="Replace what OUT already holds.")
def to_parquet(path: str, out: str, root: str | None, overwrite: bool) -> None:
    """Copy the events of PATH to Parquet under OUT, hive-partitioned by run and kind.

    \b
    Example:
        gemmalog to-parquet gemmalog_runs parquet/
        duckdb -c "SELECT kind, count(*) FROM read_parquet('parquet/**/*.parquet') GROUP BY kind"
    """
    from gemmalog.queries import resolve
    from gemmalog.queries import to_parquet as convert

    files = resolve(path, root=root).files()
    rows = _with_progress(files, "to-parquet", convert, path, out, root=root, overwrite=overwrite)
    click.echo(f"wrote {rows} events to {out}")


def _with_progress(files: list[str], label: str, convert: Any, *args: Any, **kwargs: Any) -> int:
    """Run a conversion, with a progress bar when the input is large enough to want one."""
    bar, update = _progress(files, label)
    if bar is None:
        return int(convert(*args, **kwargs))
    with bar:
        return int(convert(*args, progress=update, **kwargs))


def _follow(files: list[str], follow: bool, interval: float = 0.5) -> Iterator[dict[str, Any]]:
    """Complete lines of every shard, oldest shard data first; with ``follow``, new ones as they come."""
    offsets: dict[str, int] = {}
    while True:
        for name in files:
            start = offsets.get(name, 0)
            with open(name, "rb") as fh:
                fh.seek(start)
                data = fh.read()
            end = data.rfind(b"\n") + 1  # a line without its newline yet is not complete
            offsets[name] = start + end
            for line in data[:end].splitlines():
                try:
                    event = orjson.loads(line)
                except orjson.JSONDecodeError:
                    continue
                if isinstance(event, dict):
                    yield event
        if not follow:
            return
        time.sleep(interval)


def format_event(event: dict[str, Any]) -> str:
    """One readable line: time, level, rank, logger, kind, step, message and the main fields.

    Any field may be of any type (a line written by an older version kept wrong-typed
    declared fields, e.g. a list as ``metrics``): such a field is shown as its text.
    """
    ts = event.get("ts")
    try:
        stamp = time.strftime("%H:%M:%S", time.localtime(ts))  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError, OSError):  # no time, or one out of range
        stamp = "--:--:--"
    get = event.get
    head = f"{stamp} {cell(get('level', '')):<7} r{cell(get('rank', '?'))} {cell(get('logger', ''))} [{cell(get('kind', ''))}]"
    if get("step") is not None:
        head += f" step={cell(get('step'))}"
    kind = get("kind")
    metrics = get("metrics")
    if kind == "metrics" and isinstance(metrics, dict):
        body = " ".join(f"{k}={cell(v)}" for k, v in metrics.items())
    elif kind == "metrics":  # no metrics (a wrong-typed value was replaced): the message says why
        body = " ".join(cell(v) for v in (get("event"), metrics) if v is not None)
    elif kind == "model_output":
        body = f"sample={cell(get('sample'))} correct={cell(get('correct'))} answer={get('answer')!r} rewards={cell(get('rewards'))}"
    elif kind == "reward":
        body = f"{cell(get('reward_fn'))}={cell(get('values'))}"
    else:
        body = cell(get("event", ""))
    return f"{head} {body}"


@cli.command()
@click.argument("run")
@root_option
@click.option(
    "-f", "--follow", is_flag=True, help="Keep printing new events as the run writes them."
)
@click.option("--kind", "kinds", multiple=True, help="Only events of this kind (repeatable).")
@click.option("--logger", "loggers", multiple=True, help="Only events of this logger (repeatable).")
@click.option(
    "--level",
    type=click.Choice(["debug", "info", "warning", "error", "critical"]),
    default=None,
    help="Minimum level.",
)
@click.option(
    "-n",
    "--lines",
    type=int,
    default=None,
    help="Only the last N matching events (without --follow).",
)
def tail(
    run: str,
    root: str | None,
    follow: bool,
    kinds: tuple[str, ...],
    loggers: tuple[str, ...],
    level: str | None,
    lines: int | None,
) -> None:
    """Print the events of RUN as readable lines; with -f, follow the run live.

    \b
    Example:
        gemmalog tail gemmalog_runs/my-run -f --kind metrics
        gemmalog tail my-run --level warning -n 20
    """
    from gemmalog.levels import LEVEL_NUMBERS
    from gemmalog.queries import QueryError, resolve

    files = resolve(run, root=root).files()
    if not files:
        raise QueryError(f"{run}: no events.*.jsonl files found")
    minimum = LEVEL_NUMBERS.get(level or "debug", 0)
    matching: Iterator[dict[str, Any]] = (
        e
        for e in _follow(files, follow)
        if (not kinds or e.get("kind") in kinds)
        and (not loggers or e.get("logger") in loggers)
        and LEVEL_NUMBERS.get(str(e.get("level")), 20) >= minimum
    )
    if lines is not None and not follow:
        matching = iter(list(matching)[-lines:] if lines > 0 else [])
    try:
        for event in matching:
            # Logged text is data: control characters are escaped so the terminal never acts
            # on them, newlines too, so that one event is one line (no forged lines).
            click.echo(visible(format_event(event), one_line=True))
    except KeyboardInterrupt:
        pass


@cli.command()
@click.argument("path", default=".")
@root_option
@click.option("--port", type=int, default=6006, show_default=True)
@click.option("--print-command", is_flag=True, help="Only print the TensorBoard command.")
def tensorboard(path: str, root: str | None, port: int, print_command: bool) -> None:
    """Start TensorBoard on the event files of the runs in PATH.

    Prints the exact command instead when TensorBoard is not installed.

    \b
    Example:
        gemmalog tensorboard gemmalog_runs --port 6007
    """
    import importlib.util
    import shlex

    from gemmalog.queries import resolve

    source = resolve(path, root=root)
    if source.directory is not None:
        logdir = source.directory
    else:  # a glob of run directories: TensorBoard's logdir is the folder above them
        logdir = str(Path(source.manifests[0]).parent.parent)
    argv = ["tensorboard", "--logdir", logdir, "--port", str(port)]
    if print_command or importlib.util.find_spec("tensorboard") is None:
        if not print_command:
            click.echo(
                "TensorBoard is not installed (pip install tensorboard); then run:", err=True
            )
        click.echo(shlex.join(argv))
        return
    from tensorboard import main as tb_main

    sys.argv = argv
    tb_main.run_main()


@cli.group()
def config() -> None:
    """Work with gemmalog YAML configuration files.

    \b
    Example:
        gemmalog config check configs/gemma_logging.yaml
    """


@config.command("check")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option(
    "--import-user-code",
    is_flag=True,
    help="Import the sink classes and processors the file names outside gemmalog, to check "
    "they are sinks and processors (this runs their modules' code).",
)
def config_check(file: str, import_user_code: bool) -> None:
    """Validate a configuration FILE: prints OK, or the error and exits 1.

    Runs no code of the file: sink classes and processors named by a dotted path outside
    gemmalog are only located (their module exists) unless --import-user-code.

    \b
    Example:
        gemmalog config check configs/gemma_logging.yaml
        gemmalog config check --import-user-code configs/with_my_sink.yaml
    """
    from gemmalog.config import ConfigError, load, user_code

    try:
        checked = load(file, import_user_code=import_user_code)
    except ConfigError as exc:
        click.echo(f"gemmalog: error: {exc}", err=True)
        sys.exit(1)
    click.echo(f"OK {file}")
    unchecked = [] if import_user_code else user_code(checked)
    if unchecked:
        click.echo(
            "gemmalog: located but not imported (add --import-user-code to check them): "
            + ", ".join(f"{where} {dotted}" for where, dotted in unchecked),
            err=True,
        )
