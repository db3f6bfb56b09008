"""`gemmalog push`: copy runs to an object store, the Hub or another folder, and back."""

from __future__ import annotations

import os

import click

from gemmalog.cli._group import cli, root_option


@cli.command()
@click.argument("src")
@click.argument("dest")
@click.option("--watch", is_flag=True, help="Keep pushing until every run has ended.")
@click.option(
    "--interval",
    type=click.FloatRange(min=0.1),
    default=10.0,
    show_default=True,
    help="Seconds between pushes with --watch.",
)
def push(src: str, dest: str, watch: bool, interval: float) -> None:
    """Copy the run SRC (or every run under the root SRC) to DEST, sending only what is new.

    SRC and DEST are paths or fsspec URLs (s3://, gs://, az://, hf://datasets/...,
    file://); run R lands at DEST/R, like cp -r. The same command the other way brings a
    remote run back. Shards continue from the size already at DEST; run.json is replaced at
    once; a push stopped anywhere is continued by the next one. S3 reads AWS_ENDPOINT_URL
    and the usual AWS credentials (never a command-line argument). A DEST/R that holds
    another run, or something that is not a run, is refused.

    \b
    Example:
        gemmalog push gemmalog_runs/my-run s3://team-bucket/runs
        gemmalog push gemmalog_runs s3://team-bucket/runs --watch
        gemmalog push s3://team-bucket/runs/my-run ./from-s3
    """
    from gemmalog.remote import PushStats
    from gemmalog.remote import push as push_runs
    from gemmalog.remote import watch as watch_runs

    if not watch:
        click.echo(push_runs(src, dest).line())
        return

    def report(outcome: PushStats | Exception) -> None:
        if isinstance(outcome, PushStats):
            click.echo(outcome.line())
        else:
            click.echo(f"gemmalog: warning: {outcome}; retrying", err=True)

    try:
        watch_runs(src, dest, interval=interval, report=report)
    except KeyboardInterrupt:
        click.echo("gemmalog: push --watch stopped", err=True)
        return
    click.echo("every run has ended; DEST is up to date")


@cli.command()
@click.argument("run")
@click.option(
    "--to", "to", type=click.Choice(["trackio", "wandb"]), required=True, help="Where to replay."
)
@root_option
@click.option("--project", default="gemmalog", show_default=True, help="The project to log to.")
@click.option(
    "--dir",
    "directory",
    default=None,
    help="trackio: its data folder (default $TRACKIO_DIR, else ~/.cache/huggingface/trackio); "
    "wandb: the folder the offline run goes under (default: here).",
)
def export(run: str, to: str, root: str | None, project: str, directory: str | None) -> None:
    """Replay RUN into trackio (local) or W&B (offline files for `wandb sync`), as TRL's
    report_to would have logged it: train/... and eval/... metrics at each logged step, with
    train/global_step, and one completions table per logged step. Nothing goes to the
    network.

    \b
    Example:
        gemmalog export --to trackio my-run --root gemmalog_runs --project grpo
        gemmalog export --to wandb gemmalog_runs/my-run --dir wandb-offline
    """
    from gemmalog.remote import export as replay

    where, root = here(run, root)
    click.echo(replay(where, to, root=root, project=project, directory=directory))


def here(run: str, root: str | None) -> tuple[str | os.PathLike[str], str | None]:
    """``(run, root)`` the query commands read: a URL (or a run id under a URL ``--root``)
    becomes its local copy, brought up to date, or with ``--no-cache`` a source DuckDB reads
    in place through fsspec (docs/remote.md, "Read where it lies")."""
    url = run if "://" in run else root if root is not None and "://" in root else None
    if url is None:
        return run, root
    from gemmalog.queries import cache_enabled

    if not cache_enabled() and url.split("://", 1)[0].lower() not in ("file", "local"):
        from gemmalog.remote import remote_source

        return remote_source(run, root), None
    from gemmalog.remote import local_run

    cache_dir = click.get_current_context().find_root().params.get("cache_dir")
    return local_run(run, root, cache_dir=cache_dir)


def here_all(
    runs: tuple[str, ...], root: str | None
) -> tuple[tuple[str | os.PathLike[str], ...], str | None]:
    """:func:`here` for each of ``runs``."""
    pairs = [here(run, root) for run in runs]
    roots = {r for _, r in pairs}
    return tuple(run for run, _ in pairs), roots.pop() if len(roots) == 1 else None


__all__ = ["export", "here", "here_all", "push"]
