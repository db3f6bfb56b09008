"""``gemmalog serve``: the live web app of gemmalog.serve, on 127.0.0.1 unless told otherwise."""

from __future__ import annotations

import click

from gemmalog.cli._group import cli


@cli.command()
@click.argument("roots", nargs=-1)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    default=8765,
    show_default=True,
    type=click.IntRange(1, 65535),
    help="Port to listen on.",
)
@click.option(
    "--token",
    default=None,
    envvar="GEMMALOG_SERVE_TOKEN",
    help="Token every request must show (made up and printed when --host is not loopback).",
)
@click.option("--open", "open_browser", is_flag=True, help="Open the page in a browser.")
@click.option(
    "--remote-interval",
    type=click.FloatRange(min=0.1),
    default=2.0,
    show_default=True,
    help="Seconds between two refreshes of the local copy of a remote ROOT.",
)
def serve(
    roots: tuple[str, ...],
    host: str,
    port: int,
    token: str | None,
    open_browser: bool,
    remote_interval: float,
) -> None:
    """Watch the runs under ROOT (default: $GEMMALOG_ROOT or gemmalog_runs) in a browser, live.

    Runs, curves, every rollout group, the doctor's findings and a read-only SQL box. Binds
    127.0.0.1 by default; any other --host needs a token (one is made up and printed when
    --token is not given). Only reads the runs (and keeps their query cache up to date).
    A ROOT may be a URL (s3://..., any fsspec URL): it is served from a local copy brought
    up to date every --remote-interval seconds, so a run still being pushed is followed
    live (docs/remote.md). Needs the serve extra: pip install 'gemmalog[serve]'.

    \b
    Example:
        gemmalog serve gemmalog_runs
        gemmalog serve runs/ other-runs/ --port 9000 --open
        gemmalog serve s3://team-bucket/runs
        gemmalog serve gemmalog_runs --host 0.0.0.0 --token "$(openssl rand -hex 16)"
    """
    import os

    try:
        from gemmalog import serve as web
    except ImportError as exc:
        raise click.ClickException(str(exc)) from None

    paths = list(roots) or [os.environ.get("GEMMALOG_ROOT") or "gemmalog_runs"]
    missing = [p for p in paths if "://" not in p and not os.path.isdir(p)]
    if missing:
        raise click.UsageError(
            f"{', '.join(missing)}: no such directory (give the folder holding the runs)"
        )
    if token is None and not web.is_loopback(host):
        token = web.new_token()
    cache_dir = click.get_current_context().find_root().params.get("cache_dir")
    server = web.server(
        paths,
        host=host,
        port=port,
        token=token,
        remote_interval=remote_interval,
        cache_dir=cache_dir,
    )
    url = _address(host, port, token)
    if any("://" in p for p in paths):
        from gemmalog.remote import public

        paths = [public(p) for p in paths]  # a URL's user and password are not echoed
    click.echo(f"gemmalog serve: {url}  (serving {', '.join(paths)}; Ctrl-C stops it)")
    if open_browser:
        import webbrowser

        webbrowser.open(url)
    server.run()


def _address(host: str, port: int, token: str | None) -> str:
    """The page's address to print: a wildcard host as 127.0.0.1, the token in the query."""
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    url = f"http://{'[' + shown + ']' if ':' in shown else shown}:{port}/"
    return url if token is None else f"{url}?token={token}"
