"""`gemmalog serve s3://...`: a remote root served from its local copy, against a real
S3-compatible server. Every endpoint answers as it does for the local runs; a run still being
pushed is followed live; a store that cannot be reached, or refuses the credentials, is one
sentence on the page and in the API (no traceback, no secret), and the last copy stays served."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

pytest.importorskip("starlette")
from starlette.testclient import TestClient

import gemmalog
from gemmalog.remote import push
from gemmalog.serve import create_app
from tests import s3server
from tests.serve_support import log_step, make_run, running_server

LOCAL = "http://127.0.0.1"
SQL = (
    "SELECT run, step, phase, name, value FROM metrics ORDER BY ALL",
    "SELECT * EXCLUDE (ts) FROM completions ORDER BY ALL",
    "SELECT run, status, steps, events, ranks, last_reward, accuracy FROM runs",
)


def served(roots: list[str], cache: Path, interval: float = 0.2) -> TestClient:
    return TestClient(
        create_app(roots, remote_interval=interval, cache_dir=cache, doctor_interval=0.0),
        base_url=LOCAL,
    )


def until(check: Callable[[], Any], seconds: float = 30.0) -> Any:
    """``check()``'s first true answer, asked every 0.1 s."""
    deadline = time.monotonic() + seconds
    while True:
        answer = check()
        if answer or time.monotonic() > deadline:
            return answer
        time.sleep(0.1)


def answers(client: TestClient, run_id: str) -> dict[str, Any]:
    """Everything the pages ask about one run."""
    steps = client.get(f"/api/runs/{run_id}/steps").json()
    out: dict[str, Any] = {
        "run": client.get(f"/api/runs/{run_id}").json(),
        "metrics": client.get(f"/api/runs/{run_id}/metrics").json(),
        "steps": steps,
        "completions": [
            client.get(f"/api/runs/{run_id}/completions", params={"step": s}).json()
            for s in steps["steps"]
        ],
        "prompt": client.get(
            f"/api/runs/{run_id}/prompt", params={"text": "question 0: what is 0 + 1?"}
        ).json(),
        "doctor": client.get(f"/api/runs/{run_id}/doctor").json()["findings"],
        "sql": [client.post("/api/sql", json={"run": run_id, "sql": q}).json() for q in SQL],
    }
    return out


@pytest.fixture
def pushed(bucket: str, root: Path) -> Iterator[tuple[str, dict[str, Path]]]:
    """Two finished runs under ``root``, pushed to the bucket."""
    runs = {r.id: r.dir for r in (make_run(root, "alpha", steps=4), make_run(root, "beta"))}
    push(root, bucket)
    yield bucket, runs


def test_a_remote_root_answers_as_the_local_one(
    pushed: tuple[str, dict[str, Path]], root: Path, tmp_path: Path
) -> None:
    bucket, runs = pushed
    with (
        served([str(root)], tmp_path / "unused") as local,
        served([bucket], tmp_path / "cache") as remote,
    ):
        here, there = local.get("/api/runs").json(), remote.get("/api/runs").json()
        assert there["roots"] == [bucket] and there["problems"] == []
        assert len(there["runs"]) == 2
        for mine, theirs in zip(here["runs"], there["runs"], strict=True):
            assert theirs.pop("dir") == f"{bucket}/{runs[mine['run']].name}"
            mine.pop("dir"), mine.pop("doctor"), theirs.pop("doctor")  # the doctor's: below
            assert theirs == mine
        for run_id, run_dir in runs.items():
            mine, theirs = answers(local, run_id), answers(remote, run_id)
            assert mine["sql"][0]["rows"] and mine["completions"][0]["groups"]
            url = f"{bucket}/{run_dir.name}"
            assert theirs["run"].pop("remote") == {
                "url": bucket,
                "error": None,
                "refreshed_at": pytest.approx(time.time(), abs=60),
            }
            assert mine["run"].pop("remote") is None
            assert theirs["run"].pop("dir") == url and mine["run"].pop("dir") == str(run_dir)
            assert theirs["run"]["summary"]["run"].pop("dir") == url
            mine["run"]["summary"]["run"].pop("dir")
            assert theirs == mine


def test_a_remote_run_by_its_url(pushed: tuple[str, dict[str, Path]], tmp_path: Path) -> None:
    bucket, runs = pushed
    run_id, run_dir = next(iter(runs.items()))
    with served([f"{bucket}/{run_dir.name}"], tmp_path / "cache") as client:
        body = client.get("/api/runs").json()
        assert [r["run"] for r in body["runs"]] == [run_id] and body["problems"] == []
        assert body["runs"][0]["dir"] == f"{bucket}/{run_dir.name}"
        assert client.get(f"/api/runs/{run_id}").json()["summary"]["run"]["steps"] == 4


def test_a_run_still_being_pushed_is_followed_live(bucket: str, root: Path, tmp_path: Path) -> None:
    run = gemmalog.initialize(root=root, run_name="live", capture_stdlib=False)
    log_step(1)
    gemmalog.flush()
    push(run.dir, bucket)
    cache = tmp_path / "cache"
    with (
        running_server([bucket], remote_interval=0.2, cache_dir=cache) as url,
        httpx.Client(timeout=30) as http,
    ):
        listed = http.get(f"{url}/api/runs").json()["runs"]
        assert [(r["run"], r["status"], r["steps"]) for r in listed] == [(run.id, "running", 1)]
        with http.stream("GET", f"{url}/api/stream", params={"run": run.id}) as events:
            lines = events.iter_lines()
            for line in lines:
                if line.startswith("event: hello"):
                    break
            log_step(2)
            gemmalog.flush()
            push(run.dir, bucket)
            started = time.monotonic()
            for line in lines:
                if line.startswith("event: change"):
                    break
            assert time.monotonic() - started < 15  # refreshed every 0.2 s, polled every 0.2 s
            data = orjson.loads(next(lines).removeprefix("data: "))
            assert data["run"] == run.id
        loss = http.get(
            f"{url}/api/runs/{run.id}/metrics", params={"names": "loss", "since_step": 1}
        ).json()
        assert loss["last_step"] == 2 and loss["series"][0]["values"] == [0.5]
        gemmalog.shutdown()
        push(run.dir, bucket)

        def ended() -> bool:
            rows = http.get(f"{url}/api/runs").json()["runs"]
            return bool(rows) and rows[0]["status"] == "completed"

        assert until(ended)


def _no_secret(text: str, server: s3server.S3Server) -> None:
    assert server.secret not in text and server.key_id not in text
    assert "Traceback" not in text


def test_a_store_that_dies_is_one_sentence_and_the_last_copy_stays(
    root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    if s3server.server_binary() is None:
        pytest.skip("moto_server is not installed (pip install 'gemmalog[dev]')")
    server = s3server.start(tmp_path / "dies.log")  # its own: this test kills it
    try:
        for name, value in server.env().items():
            monkeypatch.setenv(name, value)
        url = f"s3://{s3server.BUCKET}/runs"
        run = make_run(root, "alpha", steps=3)
        push(root, url)
        with served([url], tmp_path / "cache") as client:
            assert [r["run"] for r in client.get("/api/runs").json()["runs"]] == [run.id]
            server.stop()

            def failing() -> dict[str, Any] | None:
                body: dict[str, Any] = client.get("/api/runs").json()
                return body if body["problems"] else None

            body = until(failing, 60)
            assert body, "the dead store was never reported"
            (problem,) = body["problems"]
            assert problem.startswith(f"{url}: cannot reach the store at {server.endpoint}")
            assert problem.endswith("(the runs shown are as the copy was last brought up to date)")
            assert [r["run"] for r in body["runs"]] == [run.id]  # still served
            detail = client.get(f"/api/runs/{run.id}")
            assert detail.status_code == 200 and detail.json()["summary"]["run"]["steps"] == 3
            assert detail.json()["remote"]["error"].startswith(f"{url}: cannot reach the store")
            for text in (str(body), detail.text):
                _no_secret(text, server)
    finally:
        server.stop()
    _no_secret(capfd.readouterr().err, server)


def test_refused_credentials_are_one_sentence(
    s3: s3server.S3Server,
    bucket: str,
    root: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    make_run(root, "alpha", steps=2)
    push(root, bucket)
    wrong = "not-the-secret-" + "x" * 24
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", wrong)
    with served([bucket], tmp_path / "cache") as client:
        body = client.get("/api/runs").json()
        assert body["runs"] == []
        (problem,) = body["problems"]
        assert problem.startswith(f"{bucket}: the store at {s3.endpoint} refused the credentials")
        assert wrong not in str(body)
        page = client.get("/")
        assert page.status_code == 200
    err = capfd.readouterr().err
    assert wrong not in err and "Traceback" not in err


def test_the_serve_command_takes_a_url(
    pushed: tuple[str, dict[str, Path]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    import gemmalog.serve
    from gemmalog.cli import cli

    started: list[dict[str, Any]] = []

    class Recorded:
        def __init__(self, roots: list[str], **options: Any) -> None:
            started.append({"roots": roots, **options})

        def run(self) -> None:
            pass

    monkeypatch.setattr(gemmalog.serve, "server", Recorded)
    bucket, _ = pushed
    cache = tmp_path / "cache"
    result = CliRunner().invoke(
        cli, ["--cache-dir", str(cache), "serve", bucket, "--remote-interval", "5"]
    )
    assert result.exit_code == 0, result.output
    assert f"(serving {bucket};" in result.output
    assert started[-1]["roots"] == [bucket]
    assert started[-1]["remote_interval"] == 5.0 and started[-1]["cache_dir"] == str(cache)
