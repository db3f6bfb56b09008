"""``gemmalog serve``: a local, read-only web app over the runs under one or more roots.

    from gemmalog.serve import create_app
    app = create_app(["gemmalog_runs"])        # any ASGI server runs it
    # or: gemmalog serve gemmalog_runs          (uvicorn on 127.0.0.1:8765)

Pages: the runs (``/``), a run's curves, doctor and SQL box (``/runs/<id>``) and its
rollouts (``/runs/<id>/rollouts?step=N``). The JSON API they use is documented in
``docs/serve.md``. Needs the ``serve`` extra: ``pip install 'gemmalog[serve]'``.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

try:
    import starlette  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise ImportError(
        "gemmalog serve needs starlette and uvicorn: pip install 'gemmalog[serve]'"
    ) from exc

from gemmalog.serve._app import create_app

if TYPE_CHECKING:
    import uvicorn


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address) is this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def new_token() -> str:
    """A random token for a server reachable from other machines."""
    return secrets.token_urlsafe(24)


def _server_class() -> type[uvicorn.Server]:
    import uvicorn

    class Server(uvicorn.Server):
        """Ends the live streams first, so a stop does not wait for them (or cut them)."""

        async def shutdown(self, sockets: Any = None) -> None:
            stopping: Any = getattr(self.config.app, "state", None)
            if stopping is not None:
                stopping.stopping.set()
            await super().shutdown(sockets)

    return Server


def server(
    roots: Sequence[str | os.PathLike[str]],
    *,
    host: str = "127.0.0.1",
    port: int = 8765,
    token: str | None = None,
    **options: Any,
) -> uvicorn.Server:
    """A uvicorn server for :func:`create_app` (call ``.run()``; ``options`` are
    create_app's: ``remote_interval``, ``cache_dir``). Off loopback a token is required:
    ``ValueError`` without one."""
    import uvicorn

    if token is None and not is_loopback(host):
        raise ValueError(
            f"--host {host} makes the server reachable from other machines: give --token "
            "(or let gemmalog serve make one)"
        )
    config = uvicorn.Config(
        create_app(roots, token=token, **options),
        host=host,
        port=port,
        log_level="warning",
        timeout_graceful_shutdown=1,
        server_header=False,
    )
    return _server_class()(config)


__all__ = ["create_app", "is_loopback", "new_token", "server"]
