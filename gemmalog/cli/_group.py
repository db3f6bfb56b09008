"""The command group every ``gemmalog`` command is registered on, its error handling and the
options and output helpers the commands share. Command modules import this one;
``gemmalog.cli`` imports the command modules, which registers them."""

from __future__ import annotations

import os
import sys
from typing import Any

import click
from rich.console import Console

from gemmalog._terminal import visible

ROOT_HELP = "Root holding the runs, for run ids (default: $GEMMALOG_ROOT or gemmalog_runs)."


class _Group(click.Group):
    """Turn the errors a user can cause into one line and exit 1 (a traceback with --debug)."""

    def invoke(self, ctx: click.Context) -> Any:
        saved = (list(ctx._protected_args), list(ctx.args))
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except BrokenPipeError:  # `gemmalog tail run | head`: the reader left, nothing is wrong
            sys.stderr.close()
            ctx.exit(0)
        except Exception as exc:
            tried = ctx.meta.get(_RETRIED) or ctx.params.get("no_cache")
            if not tried and _may_be_the_cache(exc):
                # The cache is disposable: a part damaged where connect() does not look
                # (inside, with its size and footer intact) must not fail the command.
                from gemmalog.queries import configured

                ctx.meta[_RETRIED] = True
                ctx._protected_args, ctx.args = saved
                with configured(enabled=False):
                    result = self.invoke(ctx)  # its own failure is reported as any other
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                click.echo(
                    f"gemmalog: warning: reading the query cache failed "
                    f"({visible(first, one_line=True)}); answered from the JSONL "
                    "(gemmalog cache verify PATH checks and rebuilds the cache)",
                    err=True,
                )
                return result
            if ctx.params.get("debug"):
                raise
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            # The message may quote run data (ids, names): escaped like every other output.
            click.echo(f"gemmalog: error: {visible(message, one_line=True)}", err=True)
            ctx.exit(1)


_RETRIED = "gemmalog.cache_retried"


def _may_be_the_cache(exc: BaseException) -> bool:
    """A DuckDB error that is not about the statement itself, while the cache is in use: it
    may come from a damaged part (the command is then run again on the JSONL only)."""
    duckdb = sys.modules.get("duckdb")
    if duckdb is None or not isinstance(exc, duckdb.Error):
        return False
    statement = (
        duckdb.ParserException,
        duckdb.BinderException,
        duckdb.CatalogException,
        duckdb.ConversionException,
        duckdb.PermissionException,
        duckdb.SyntaxException,
        duckdb.OutOfRangeException,
        duckdb.TypeMismatchException,
        duckdb.InterruptException,  # Ctrl-C: stop, do not start again
        duckdb.OutOfMemoryException,  # the JSONL would need more, not less
    )
    if isinstance(exc, statement):
        return False
    from gemmalog.queries._cache_config import enabled

    return enabled()


def console() -> Console:
    return Console(soft_wrap=False, width=None if sys.stdout.isatty() else 200)


root_option = click.option("--root", envvar="GEMMALOG_ROOT", default=None, help=ROOT_HELP)

#: Rows `gemmalog sql` prints as a table unless --limit says otherwise.
SQL_TABLE_LIMIT = 1000


def warn_skipped(con: Any) -> None:
    """One stderr line for each run.json the views skipped (its run reads as status unknown);
    ``con`` is a connection, or the (file, problem) pairs already found."""
    from gemmalog.queries._connect import manifest_problems

    problems = con if isinstance(con, list) else manifest_problems(con)
    for file, problem in problems:
        click.echo(
            f"gemmalog: warning: {file}: {problem}; skipped (the run shows status unknown)",
            err=True,
        )


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show the full traceback on errors.")
@click.option(
    "--no-cache", is_flag=True, help="Read the JSONL only; neither use nor update the query cache."
)
@click.option(
    "--cache-dir",
    default=None,
    help="Keep query caches here, not beside the shards (default: $GEMMALOG_CACHE_DIR).",
)
@click.version_option(package_name="gemmalog")
def cli(debug: bool, no_cache: bool, cache_dir: str | None) -> None:
    """Query, summarize, compare and convert gemmalog runs.

    \b
    Example:
        gemmalog runs gemmalog_runs
        gemmalog summary my-run --root gemmalog_runs
    """
    if no_cache or cache_dir:  # for this command only (undone when it ends)
        from gemmalog.queries._cache_config import configured

        ctx = click.get_current_context()
        ctx.with_resource(configured(enabled=False if no_cache else None, directory=cache_dir))
    if not no_cache and (cache_dir or os.environ.get("GEMMALOG_CACHE_DIR")):
        from gemmalog.queries import check_output
        from gemmalog.queries._cache_config import cache_root

        folder = cache_root()
        if folder is not None:  # the caches are written there: never onto a run's files
            check_output(folder, folder=True, cache=True)
