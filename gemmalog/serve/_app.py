"""The application: its routes as data, the error answers, and how it is started."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import sys
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from gemmalog.serve import _api
from gemmalog.serve._errors import ServeError
from gemmalog.serve._findings import Findings
from gemmalog.serve._remote import REMOTE_POLL_S, Followed, in_place, is_remote
from gemmalog.serve._security import Guard
from gemmalog.serve._store import RunStore

STATIC = Path(__file__).resolve().parent / "static"
Endpoint = Callable[[Request], Awaitable[Response]]


def _answers_errors(endpoint: Endpoint) -> Endpoint:
    """An endpoint whose failures are JSON errors: a :class:`ServeError` as it says, anything
    else as a 500 with its one-line reason (and the traceback on the server's stderr)."""

    @functools.wraps(endpoint)
    async def inner(request: Request) -> Response:
        try:
            return await endpoint(request)
        except ServeError as exc:
            return _api.error(exc.status, exc.message)
        except Exception as exc:
            traceback.print_exc(file=sys.stderr)
            text = str(exc).strip().splitlines()
            reason = text[0] if text else type(exc).__name__
            return _api.error(500, f"the server could not answer {request.url.path}: {reason}")

    return inner


def _page(name: str) -> Endpoint:
    async def page(request: Request) -> Response:
        return FileResponse(STATIC / name, headers={"cache-control": "no-cache"})

    return page


API: list[tuple[str, Endpoint, list[str]]] = [
    ("/api/runs", _api.runs, ["GET"]),
    ("/api/runs/{run_id}", _api.run, ["GET"]),
    ("/api/runs/{run_id}/metrics", _api.metrics, ["GET"]),
    ("/api/runs/{run_id}/completions", _api.completions, ["GET"]),
    ("/api/runs/{run_id}/steps", _api.steps, ["GET"]),
    ("/api/runs/{run_id}/prompt", _api.prompt, ["GET"]),
    ("/api/runs/{run_id}/doctor", _api.doctor, ["GET"]),
    ("/api/sql", _api.sql, ["POST"]),
    ("/api/stream", _api.stream, ["GET"]),
]
PAGES: list[tuple[str, str]] = [
    ("/", "index.html"),
    ("/runs/{run_id}", "run.html"),
    ("/runs/{run_id}/rollouts", "rollouts.html"),
]


def routes() -> list[BaseRoute]:
    out: list[BaseRoute] = [
        Route(path, _answers_errors(fn), methods=methods) for path, fn, methods in API
    ]
    out += [Route(path, _page(name), methods=["GET"]) for path, name in PAGES]
    out.append(Mount("/static", StaticFiles(directory=STATIC), name="static"))
    return out


async def _http_error(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    detail = exc.detail if isinstance(exc, HTTPException) else "internal error"
    if status == 404:
        detail = f"no such page or endpoint: {request.url.path}"
    elif status == 405:
        detail = f"{request.method} is not allowed on {request.url.path} (the server only reads)"
    return _api.error(status, str(detail))


def create_app(
    roots: Sequence[str | os.PathLike[str]],
    *,
    token: str | None = None,
    doctor_interval: float | None = None,
    remote_interval: float = REMOTE_POLL_S,
    cache_dir: str | os.PathLike[str] | None = None,
) -> Starlette:
    """The ASGI app serving the runs under ``roots``.

    ``token``: when given, every request must show it (header, ``?token=`` or the cookie the
    first visit sets); without one, only requests addressed to localhost are answered.
    A root given as a URL (``s3://...``, any fsspec URL) is served from a local copy under
    ``cache_dir`` (see :func:`gemmalog.remote.cache_home`) brought up to date every
    ``remote_interval`` seconds by a thread of its own; ``file://`` URLs are read in place.
    """
    remotes = [
        Followed(os.fspath(r), interval=remote_interval, cache_dir=cache_dir)
        for r in roots
        if is_remote(r)
    ]
    store = RunStore([in_place(r) for r in roots if not is_remote(r)], remotes)
    findings = Findings(store) if doctor_interval is None else Findings(store, doctor_interval)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            app.state.stopping.set()
            for remote in remotes:
                remote.close()
            findings.close()
            store.close()

    app = Starlette(
        routes=routes(),
        middleware=[Middleware(Guard, token=token)],
        exception_handlers={HTTPException: _http_error},
        lifespan=lifespan,
    )
    app.state.store = store
    app.state.findings = findings
    app.state.stopping = asyncio.Event()
    return app
