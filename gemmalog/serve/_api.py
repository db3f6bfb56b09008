"""The JSON API the pages use (and scripts may): one small function an endpoint.

Every answer is JSON; every error is ``{"error": "<one sentence>", "status": N}`` with the
same HTTP status. The work is done on a worker thread (DuckDB blocks), never on the loop.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import Any, TypeVar

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from gemmalog.queries import summary
from gemmalog.serve import _live, _rollouts, _series, _sqlbox
from gemmalog.serve._errors import ServeError
from gemmalog.serve._findings import Findings
from gemmalog.serve._store import RunStore, run_state

T = TypeVar("T")

_MAX_SQL = 100_000
#: The newest runs whose doctor counts the runs page gets by itself; older runs are checked
#: when their page (or ``/doctor``) is opened.
DOCTOR_LISTED = 50


class JSON(Response):
    """orjson: NaN and infinities are written as null, times as ISO text."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, default=str, option=orjson.OPT_NON_STR_KEYS)


def error(status: int, message: str) -> JSON:
    return JSON({"error": message, "status": status}, status_code=status)


def _store(request: Request) -> RunStore:
    return request.app.state.store  # type: ignore[no-any-return]


def _findings(request: Request) -> Findings:
    return request.app.state.findings  # type: ignore[no-any-return]


async def _off_loop(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    return await asyncio.to_thread(fn, *args, **kwargs)


def _int(request: Request, name: str, *, default: int | None = None) -> int | None:
    text = request.query_params.get(name)
    if text is None or text == "":
        return default
    try:
        return int(text)
    except ValueError:
        raise ServeError(400, f"{name}={text!r} is not an integer") from None


# -- endpoints ----------------------------------------------------------------------------------


async def runs(request: Request) -> JSON:
    """``GET /api/runs``: every run with its row of the runs view and its doctor counts."""
    store = _store(request)
    rows, problems = await _off_loop(store.listing)
    findings = _findings(request)
    newest = rows[:DOCTOR_LISTED]
    findings.want([r["run"] for r in newest], {r["run"]: run_state(str(r["dir"])) for r in newest})
    for row in rows:
        row["doctor"] = findings.counts(row["run"])
        row["live"] = row["status"] == "running"
        row["dir"] = store.shown(str(row["dir"]))
    return JSON({"roots": store.shown_roots, "runs": rows, "problems": problems})


async def run(request: Request) -> JSON:
    """``GET /api/runs/{run_id}``: the manifest (run.json) and the summary; for a run of a
    remote root, ``remote``: its URL, the last refresh's error and time."""
    run_id = request.path_params["run_id"]
    store = _store(request)

    def work() -> dict[str, Any]:
        store.state(run_id)
        run_dir = store.locate(run_id)
        manifest: Any = None
        try:
            with open(os.path.join(run_dir, "run.json"), "rb") as fh:
                manifest = orjson.loads(fh.read())
        except FileNotFoundError:
            manifest = None
        except (OSError, orjson.JSONDecodeError) as exc:
            manifest = {"error": f"{run_dir}/run.json could not be read: {exc}"}
        try:
            data = summary(run_dir)
        except Exception as exc:  # QueryError, or the files changed under it
            if run_state(run_dir) is None:
                raise ServeError(410, f"run {run_id} was deleted while it was read") from None
            raise ServeError(500, f"run {run_id}: no summary ({exc})") from None
        shown = store.shown(run_dir)
        if shown != run_dir:  # a remote run's copy: named by where the run lies
            data["run"]["dir"] = shown
        return {"run": run_id, "dir": shown, "manifest": manifest, "summary": data}

    # an unchanged run is not summarized twice (a page asks again on every change of a live run)
    answer = await _off_loop(store.remembered, run_id, "summary", work)
    remote = store.remote(store.locate(run_id))
    return JSON({**answer, "remote": None if remote is None else remote.status()})


async def metrics(request: Request) -> JSON:
    """``GET /api/runs/{run_id}/metrics?names=a,b&since_step=N&max_points=M``."""
    names = [n for n in request.query_params.get("names", "").split(",") if n]
    max_points = _int(request, "max_points", default=_series.MAX_POINTS) or _series.MAX_POINTS
    if not 2 <= max_points <= 100_000:
        raise ServeError(400, f"max_points={max_points} is out of range (2 to 100000)")
    return JSON(
        await _off_loop(
            _series.series,
            _store(request),
            request.path_params["run_id"],
            names=names,
            since_step=_int(request, "since_step"),
            max_points=max_points,
        )
    )


async def completions(request: Request) -> JSON:
    """``GET /api/runs/{run_id}/completions?step=N[&phase=train]``."""
    step = _int(request, "step")
    if step is None:
        raise ServeError(400, "give the step: /api/runs/<run>/completions?step=N")
    phase = request.query_params.get("phase") or None
    store, run_id = _store(request), request.path_params["run_id"]
    return JSON(
        await _off_loop(
            store.remembered,
            run_id,
            ("completions", step, phase),
            lambda: _rollouts.completions(store, run_id, step, phase),
        )
    )


async def steps(request: Request) -> JSON:
    """``GET /api/runs/{run_id}/steps``: the steps that have completions."""
    store, run_id = _store(request), request.path_params["run_id"]
    return JSON(
        await _off_loop(store.remembered, run_id, "steps", lambda: _rollouts.steps(store, run_id))
    )


async def prompt(request: Request) -> JSON:
    """``GET /api/runs/{run_id}/prompt?text=...``: one prompt's groups across the steps."""
    text = request.query_params.get("text")
    if text is None:
        raise ServeError(400, "give the prompt: /api/runs/<run>/prompt?text=...")
    return JSON(
        await _off_loop(
            _rollouts.prompt_history, _store(request), request.path_params["run_id"], text
        )
    )


async def doctor(request: Request) -> JSON:
    """``GET /api/runs/{run_id}/doctor``: the findings, each with its steps and examples."""
    return JSON(await _off_loop(_findings(request).of, request.path_params["run_id"]))


async def sql(request: Request) -> Response:
    """``POST /api/sql`` with ``{"run": id, "sql": text[, "limit": N, "format": "csv"]}``."""
    body = await request.body()
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise ServeError(
            400, 'the body must be JSON: {"run": "<run id>", "sql": "SELECT ..."}'
        ) from None
    if not isinstance(data, dict) or not isinstance(data.get("run"), str):
        raise ServeError(400, 'the body must name the run: {"run": "<run id>", "sql": "..."}')
    text = data.get("sql")
    if not isinstance(text, str) or not text.strip():
        raise ServeError(400, 'the body must hold the query: {"run": "...", "sql": "SELECT ..."}')
    if len(text) > _MAX_SQL:
        raise ServeError(400, f"the query is longer than {_MAX_SQL} characters")
    as_csv = data.get("format") == "csv"
    limit = data.get("limit", 0 if as_csv else _sqlbox.ROW_LIMIT)
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
        raise ServeError(400, f"limit={limit!r} must be a whole number (0: every row)")
    names, rows, more = await _off_loop(
        _sqlbox.run_sql, _store(request), data["run"], text, limit=limit
    )
    if as_csv:
        return Response(
            _sqlbox.to_csv(names, rows),
            media_type="text/csv; charset=utf-8",
            headers={"content-disposition": 'attachment; filename="gemmalog-query.csv"'},
        )
    return JSON({"run": data["run"], "columns": names, "rows": rows, "truncated": more})


async def stream(request: Request) -> StreamingResponse:
    """``GET /api/stream[?run=ID]``: server-sent events (``change``, ``gone``, ``runs``)."""
    stopping = request.app.state.stopping
    run_id = request.query_params.get("run")
    events = (
        _live.watch_run(_store(request), run_id, stopping, request.is_disconnected)
        if run_id
        else _live.watch_list(_store(request), stopping, request.is_disconnected)
    )
    return StreamingResponse(
        events,
        media_type="text/event-stream",
        headers={"cache-control": "no-store", "x-accel-buffering": "no"},
    )
