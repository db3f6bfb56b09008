"""`gemmalog serve`'s JSON API, in process (starlette's TestClient) on runs written with
gemmalog's own API: what each endpoint answers, a run that grows during the test, the token
and Host rules, and every error a user can meet (each a JSON sentence, never a crash)."""

from __future__ import annotations

import math
import shutil
import statistics
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

pytest.importorskip("starlette")
from starlette.testclient import TestClient

import gemmalog
from gemmalog.serve import create_app
from tests.serve_support import log_step, make_run, running_server

LOCAL = "http://127.0.0.1"


@pytest.fixture
def client(root: Path) -> Iterator[TestClient]:
    with TestClient(create_app([root]), base_url=LOCAL) as c:
        yield c


def test_runs_run_and_summary(root: Path, client: TestClient) -> None:
    a = make_run(root, "alpha", steps=3)
    b = make_run(root, "beta", steps=4)
    body = client.get("/api/runs").json()
    by_id = {r["run"]: r for r in body["runs"]}
    assert set(by_id) == {a.id, b.id} and body["problems"] == []
    assert by_id[b.id]["steps"] == 4 and by_id[b.id]["status"] == "completed"
    assert by_id[a.id]["name"] == "alpha"
    con = gemmalog.connect(a.dir)
    accuracy = con.execute("SELECT avg(correct::DOUBLE) FROM completions").fetchone()[0]
    assert by_id[a.id]["accuracy"] == pytest.approx(accuracy)
    detail = client.get(f"/api/runs/{a.id}").json()
    assert detail["manifest"]["id"] == a.id and detail["summary"]["run"]["steps"] == 3


def test_metrics_hold_every_curve(root: Path, client: TestClient) -> None:
    run = make_run(root, "curves", steps=6)
    body = client.get(f"/api/runs/{run.id}/metrics").json()
    series = {(s["phase"], s["name"]): s for s in body["series"]}
    assert body["last_step"] == 6
    loss = series[("train", "loss")]
    assert loss["steps"] == [1, 2, 3, 4, 5, 6]
    assert loss["values"] == pytest.approx([1.0 / s for s in range(1, 7)])
    con = gemmalog.connect(run.dir)
    expected = dict(
        con.execute(
            "SELECT step, avg(value) FROM rewards WHERE reward_fn = 'format' GROUP BY step"
        ).fetchall()
    )
    fmt = series[("train", "reward/format")]
    assert dict(zip(fmt["steps"], fmt["values"], strict=True)) == pytest.approx(expected)
    for name in ("reward/total", "accuracy", "completions/length_tokens", "kl", "entropy"):
        assert ("train", name) in series, name
    some = client.get(f"/api/runs/{run.id}/metrics?names=loss,kl&since_step=4").json()
    assert {s["name"] for s in some["series"]} == {"loss", "kl"}
    assert all(s["steps"] == [5, 6] for s in some["series"])


def test_long_series_are_downsampled_keeping_extremes(root: Path, client: TestClient) -> None:
    run = gemmalog.initialize(root=root, run_name="long", capture_stdlib=False)
    for step in range(1, 5001):
        value = 100.0 if step == 3217 else -50.0 if step == 4001 else math.sin(step / 100)
        if step == 2500:
            value = math.nan
        gemmalog.log_training_progress(step, {"loss": value})
    gemmalog.shutdown()
    body = client.get(f"/api/runs/{run.id}/metrics?names=loss&max_points=200").json()
    (loss,) = body["series"]
    assert loss["points"] == 5000 and len(loss["steps"]) <= 202
    pairs = dict(zip(loss["steps"], loss["values"], strict=True))
    assert pairs[3217] == 100.0 and pairs[4001] == -50.0  # the spikes survive
    assert pairs[1] == pytest.approx(math.sin(0.01)) and 5000 in pairs  # and both ends
    assert 2500 in pairs and pairs[2500] is None and loss["non_finite"] == 1  # NaN: a gap


def test_completions_with_group_advantages(root: Path, client: TestClient) -> None:
    run = make_run(root, "groups", steps=2)
    body = client.get(f"/api/runs/{run.id}/completions?step=2").json()
    assert body["scale_rewards"] == "group" and set(body["reward_functions"]) == {
        "correctness",
        "format",
    }
    assert len(body["groups"]) == 2 and all(len(g["completions"]) == 4 for g in body["groups"])
    for group in body["groups"]:
        totals = [c["total_reward"] for c in group["completions"]]
        mean, std = statistics.fmean(totals), statistics.stdev(totals)
        for c in group["completions"]:
            assert c["total_reward"] == pytest.approx(sum(c["rewards"].values()))
            assert c["advantage"] == pytest.approx((c["total_reward"] - mean) / (std + 1e-4))
            assert c["advantage_computed"] is True
            assert c["length_tokens"] == 10 + c["sample"] % 4
            assert c["correct"] == ((2 + c["sample"]) % 3 == 0)
            assert c["step"] == 2 and c["phase"] == "train"
    assert client.get(f"/api/runs/{run.id}/completions?step=2&phase=eval").json()["groups"] == []
    steps = client.get(f"/api/runs/{run.id}/steps").json()
    assert steps["steps"] == [1, 2] and steps["completions"]["1"] == 8
    prompt = body["groups"][0]["question"]
    history = client.get(f"/api/runs/{run.id}/prompt", params={"text": prompt}).json()
    assert [r["step"] for r in history["steps"]] == [2]  # the question names its step


def test_batch_scaled_and_truncated_from_training_args(root: Path, client: TestClient) -> None:
    run = gemmalog.initialize(root=root, run_name="trl-args", capture_stdlib=False)
    gemmalog.log_event(  # the GRPOConfig snapshot, as the TRL callback logs it
        "run_start",
        name="trl-args",
        training_args={"scale_rewards": "batch", "max_completion_length": 12, "num_generations": 4},
    )
    log_step(1)
    gemmalog.shutdown()
    body = client.get(f"/api/runs/{run.id}/completions?step=1").json()
    assert body["scale_rewards"] == "batch" and body["max_completion_length"] == 12
    everything = [c for g in body["groups"] for c in g["completions"]]
    batch_std = statistics.stdev(c["total_reward"] for c in everything)
    for group in body["groups"]:
        mean = statistics.fmean(c["total_reward"] for c in group["completions"])
        for c in group["completions"]:
            assert c["advantage"] == pytest.approx((c["total_reward"] - mean) / (batch_std + 1e-4))
            assert c["truncated"] == (c["length_tokens"] >= 12)


def test_a_run_appended_during_the_test(root: Path, client: TestClient) -> None:
    run = gemmalog.initialize(root=root, run_name="live", capture_stdlib=False)
    for step in (1, 2):
        log_step(step)
    gemmalog.flush()
    first = client.get(f"/api/runs/{run.id}/metrics?names=loss").json()
    assert first["series"][0]["steps"] == [1, 2]
    listed = {r["run"]: r for r in client.get("/api/runs").json()["runs"]}
    assert listed[run.id]["status"] == "running" and listed[run.id]["live"] is True
    log_step(3)
    gemmalog.flush()
    newer = client.get(f"/api/runs/{run.id}/metrics?names=loss&since_step=2").json()
    assert newer["series"][0]["steps"] == [3] and newer["last_step"] == 3
    assert len(client.get(f"/api/runs/{run.id}/completions?step=3").json()["groups"]) == 2
    gemmalog.shutdown()
    listed = {r["run"]: r for r in client.get("/api/runs").json()["runs"]}
    assert listed[run.id]["status"] == "completed"


def test_doctor_findings_carry_steps_and_examples(root: Path, client: TestClient) -> None:
    from tests.test_doctor import Plan, _rewards, _text
    from tests.test_doctor import make_run as doctor_run

    hack = "ANSWER ANSWER ANSWER"

    def text(rng, step, prompt, gen):  # type: ignore[no-untyped-def]
        share = min(1.0, max(0.0, (step - 14) / 6))
        return hack if rng.random() < share else _text(rng, step, prompt, gen)

    def rewards(rng, step, p, correct, t):  # type: ignore[no-untyped-def]
        return {**_rewards(rng, step, p, correct, t), "kw": 3.0 if hack in t else 0.0}

    run_dir = doctor_run(root, "hack", Plan(accuracy=lambda step: 0.25, text=text, rewards=rewards))
    run_id = run_dir.name
    body = client.get(f"/api/runs/{run_id}/doctor").json()
    (hacking,) = [f for f in body["findings"] if f["check"] == "reward_hacking"]
    assert hacking["steps"] and hacking["examples"] and body["stale"] is False
    example = hacking["examples"][0]
    step_rows = client.get(f"/api/runs/{run_id}/completions?step={example['step']}").json()
    samples = {c["sample"]: c for g in step_rows["groups"] for c in g["completions"]}
    assert samples[example["sample"]]["model_output"] == hack  # the link finds the completion
    deadline = time.monotonic() + 60  # the runs page's counts come from a worker thread
    while time.monotonic() < deadline:
        counts = {r["run"]: r["doctor"] for r in client.get("/api/runs").json()["runs"]}
        if counts[run_id] is not None:
            break
        time.sleep(0.2)
    assert counts[run_id]["error"] + counts[run_id]["warning"] >= 1


def test_sql_is_read_only_and_answers_errors(root: Path, client: TestClient) -> None:
    run = make_run(root, "sql", steps=2)
    ok = client.post(
        "/api/sql",
        json={
            "run": run.id,
            "sql": "SELECT step, count(*) AS n FROM completions GROUP BY step ORDER BY step",
        },
    )
    assert ok.status_code == 200 and ok.json()["rows"] == [[1, 8], [2, 8]]
    assert ok.json()["columns"] == ["step", "n"]
    csv = client.post(
        "/api/sql",
        json={"run": run.id, "sql": "SELECT step FROM completions ORDER BY step", "format": "csv"},
    )
    assert csv.headers["content-type"].startswith("text/csv")
    assert csv.text.splitlines() == ["step", *(["1"] * 8), *(["2"] * 8)]
    target = root / "stolen.csv"
    for statement in (
        f"COPY (SELECT 1) TO '{target}'",
        "ATTACH 'x.db'",
        "INSTALL httpfs",
        "SET enable_external_access = true",
    ):
        refused = client.post("/api/sql", json={"run": run.id, "sql": statement})
        assert refused.status_code == 400 and "read-only" in refused.json()["error"]
    outside = client.post(
        "/api/sql", json={"run": run.id, "sql": "SELECT * FROM read_text('/etc/passwd')"}
    )
    assert outside.status_code == 400 and "SQL error" in outside.json()["error"]
    bad = client.post("/api/sql", json={"run": run.id, "sql": "SELEC nonsense"})
    assert bad.status_code == 400 and "syntax" in bad.json()["error"].lower()
    missing = client.post("/api/sql", json={"run": run.id, "sql": "SELECT nope FROM completions"})
    assert missing.status_code == 400 and "nope" in missing.json()["error"]
    assert not target.exists()
    unknown = client.post("/api/sql", json={"run": "no-such-run", "sql": "SELECT 1"})
    assert unknown.status_code == 404 and "no-such-run" in unknown.json()["error"]
    not_json = client.post("/api/sql", content=b"{", headers={"content-type": "application/json"})
    assert not_json.status_code == 400 and "JSON" in not_json.json()["error"]
    form = client.post("/api/sql", data={"run": run.id, "sql": "SELECT 1"})
    assert form.status_code == 403  # a form another site could submit


def test_errors_are_json_sentences(root: Path, client: TestClient) -> None:
    run = make_run(root, "errors", steps=1)
    cases = [
        ("/api/runs/nope", 404, "unknown run 'nope'"),
        ("/api/runs/nope/metrics", 404, "unknown run"),
        ("/api/runs/..%2F..%2Fetc/metrics", 404, "no such page"),
        ("/api/runs/%2E%2E/metrics", 404, "unknown run"),
        (f"/api/runs/{run.id}/completions", 400, "give the step"),
        (f"/api/runs/{run.id}/completions?step=x", 400, "not an integer"),
        (f"/api/runs/{run.id}/metrics?max_points=1", 400, "out of range"),
        ("/api/nothing-here", 404, "no such page"),
    ]
    for path, status, words in cases:
        answer = client.get(path)
        assert answer.status_code == status and words in answer.json()["error"], path
    put = client.put("/api/runs")
    assert put.status_code == 405 and "only reads" in put.json()["error"]


def test_a_run_deleted_while_viewed(root: Path, client: TestClient) -> None:
    run = make_run(root, "doomed", steps=2)
    assert client.get(f"/api/runs/{run.id}/metrics").status_code == 200
    shutil.rmtree(run.dir)
    for path in ("metrics", "completions?step=1", "doctor", ""):
        answer = client.get(f"/api/runs/{run.id}/{path}".rstrip("/"))
        assert answer.status_code == 410 and "deleted" in answer.json()["error"], path
    assert client.get("/api/runs").json()["runs"] == []


def test_a_torn_last_line_and_a_corrupt_cache(root: Path, client: TestClient) -> None:
    run = make_run(root, "torn", steps=2)
    shard = run.dir / "events.0.jsonl"
    lines = [orjson.loads(line) for line in shard.read_bytes().splitlines()]
    metrics = next(e for e in lines if e["kind"] == "metrics")
    line = orjson.dumps({**metrics, "step": 3, "metrics": {"loss": 0.25}}) + b"\n"
    with shard.open("ab") as fh:
        fh.write(line[:40])
    body = client.get(f"/api/runs/{run.id}/metrics?names=loss").json()
    assert body["series"][0]["steps"] == [1, 2]
    cache = run.dir / gemmalog.queries.CACHE_NAME
    assert cache.is_dir()
    for path in cache.rglob("*"):
        if path.is_file():
            path.write_bytes(b"\x00garbage")
    with shard.open("ab") as fh:
        fh.write(line[40:])  # the torn line completed: the run grew
    body = client.get(f"/api/runs/{run.id}/metrics?names=loss").json()
    assert body["series"][0]["steps"] == [1, 2, 3]
    assert client.get(f"/api/runs/{run.id}/completions?step=2").status_code == 200


@pytest.mark.slow  # the first listing of a cold root reads every run once: a minute here
def test_a_thousand_runs(root: Path, client: TestClient) -> None:
    template = make_run(root, "template", steps=1)
    files = {p.name: p.read_bytes() for p in template.dir.iterdir() if p.is_file()}
    old = template.id.encode()
    for i in range(999):
        new = root / f"copy-{i:04d}"
        new.mkdir()
        for name, data in files.items():
            (new / name).write_bytes(data.replace(old, new.name.encode()))
    body = client.get("/api/runs").json()
    assert len(body["runs"]) == 1000 and body["problems"] == []
    assert client.get("/api/runs/copy-0500/completions?step=1").json()["groups"]


def test_token_rule(root: Path) -> None:
    run = make_run(root, "guarded", steps=1)
    with TestClient(create_app([root], token="s3cret"), base_url=LOCAL) as c:
        for path in (
            "/api/runs",
            "/",
            f"/api/runs/{run.id}/metrics",
            "/api/stream",
            "/static/app.js",
        ):
            refused = c.get(path)
            assert refused.status_code == 401 and "token" in refused.json()["error"], path
        assert c.get("/api/runs", headers={"authorization": "Bearer wrong"}).status_code == 401
        assert c.get("/api/runs", headers={"authorization": "Bearer s3cret"}).status_code == 200
        assert c.get("/api/runs", headers={"x-gemmalog-token": "s3cret"}).status_code == 200
        first = c.get("/?token=s3cret")
        assert first.status_code == 200 and "gemmalog_token=s3cret" in first.headers["set-cookie"]
        assert "HttpOnly" in first.headers["set-cookie"]
        assert c.get("/api/runs").status_code == 200  # the cookie the first visit set
        c.cookies.clear()
        assert c.get("/api/runs").status_code == 401
    # Without a token only loopback names are answered (no DNS rebinding onto 127.0.0.1).
    with TestClient(create_app([root]), base_url="http://evil.example:8765") as c:
        answer = c.get("/api/runs")
        assert answer.status_code == 403 and "localhost" in answer.json()["error"]
    with TestClient(create_app([root]), base_url="http://localhost:8765") as c:
        assert c.get("/api/runs").status_code == 200


def test_off_loopback_needs_a_token(root: Path) -> None:
    from gemmalog.serve import server

    with pytest.raises(ValueError, match="--token"):
        server([root], host="0.0.0.0")
    assert server([root], host="0.0.0.0", token="t").config.host == "0.0.0.0"


def test_pages_and_headers(root: Path, client: TestClient) -> None:
    run = make_run(root, "pages", steps=1)
    for path in ("/", f"/runs/{run.id}", f"/runs/{run.id}/rollouts?step=1"):
        page = client.get(path)
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        csp = page.headers["content-security-policy"]
        assert "default-src 'self'" in csp and "script-src 'self'" in csp
        assert "unsafe-inline" not in csp
        assert page.headers["x-content-type-options"] == "nosniff"
        assert "<script>" not in page.text  # every script is a file of the package
        assert "http://" not in page.text and "https://" not in page.text  # no CDN
    for asset in ("/static/app.js", "/static/vendor/uPlot.iife.min.js", "/static/style.css"):
        assert client.get(asset).status_code == 200, asset


def test_no_endpoint_writes_but_the_query_cache(root: Path, client: TestClient) -> None:
    run = make_run(root, "readonly", steps=2)
    before = {p: p.read_bytes() for p in run.dir.rglob("*") if p.is_file()}
    cache = run.dir / gemmalog.queries.CACHE_NAME
    for path in (
        "/api/runs",
        f"/api/runs/{run.id}",
        f"/api/runs/{run.id}/metrics",
        f"/api/runs/{run.id}/completions?step=1",
        f"/api/runs/{run.id}/doctor",
    ):
        assert client.get(path).status_code == 200
    client.post("/api/sql", json={"run": run.id, "sql": "SELECT count(*) FROM events"})
    after = {p: p.read_bytes() for p in run.dir.rglob("*") if p.is_file()}
    changed = {p for p in after if before.get(p) != after[p]}
    assert changed and all(cache in p.parents for p in changed)
    assert {p for p in before if p not in after} <= {p for p in before if cache in p.parents}


def test_the_stream_says_when_a_run_grows(root: Path) -> None:
    run = gemmalog.initialize(root=root, run_name="stream", capture_stdlib=False)
    log_step(1)
    gemmalog.flush()
    with running_server([root]) as url, httpx.Client(timeout=10) as http:
        with http.stream("GET", f"{url}/api/stream", params={"run": run.id}) as events:
            lines = events.iter_lines()
            seen = []
            for line in lines:
                seen.append(line)
                if line.startswith("data:") and "hello" in "".join(seen):
                    break
            log_step(2)
            gemmalog.flush()
            started = time.monotonic()
            for line in lines:
                if line.startswith("event: change"):
                    break
            assert time.monotonic() - started < 5  # polled every 0.2 s
            data = orjson.loads(next(lines).removeprefix("data: "))
            assert (
                data["run"] == run.id
                and data["size"] == (run.dir / "events.0.jsonl").stat().st_size
            )
        answer = http.get(f"{url}/api/stream", params={"run": "nope"})
        assert "unknown run" in answer.text
    gemmalog.shutdown()


def test_the_serve_command(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    import gemmalog.serve
    from gemmalog.cli import cli

    started: list[tuple[str, int, str | None]] = []

    class Recorded:
        def __init__(
            self, roots: list[str], *, host: str, port: int, token: str | None, **options: Any
        ) -> None:
            started.append((host, port, token))

        def run(self) -> None:
            pass

    monkeypatch.setattr(gemmalog.serve, "server", Recorded)
    local = CliRunner().invoke(cli, ["serve", str(root)])
    assert local.exit_code == 0 and "http://127.0.0.1:8765/ " in local.output
    assert started[-1] == ("127.0.0.1", 8765, None)
    wide = CliRunner().invoke(cli, ["serve", str(root), "--host", "0.0.0.0", "--port", "9000"])
    host, port, token = started[-1]
    assert wide.exit_code == 0 and host == "0.0.0.0" and port == 9000 and token
    assert f"?token={token}" in wide.output
    missing = CliRunner().invoke(cli, ["serve", str(root / "nope")])
    assert missing.exit_code == 2 and "no such directory" in missing.output


@pytest.mark.slow
def test_a_real_grpo_trainer_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The tiny offline Gemma trained by GRPOTrainer (tests/test_integration_trl.py): the
    curves hold TRL's metrics and each reward function, and each step's groups are TRL's
    (num_generations completions, its scale_rewards and length limit)."""
    pytest.importorskip("trl")
    from tests import test_integration_trl as trl_run

    trainer, run, _ = trl_run._train(tmp_path, monkeypatch, "serve")
    names = [f.__name__ for f in trl_run.reward_functions.REWARD_FUNCTIONS]
    with TestClient(create_app([run.dir.parent]), base_url=LOCAL) as c:
        series = {
            (s["phase"], s["name"]) for s in c.get(f"/api/runs/{run.id}/metrics").json()["series"]
        }
        assert {("train", "loss"), ("train", "reward/total"), ("train", "accuracy")} <= series
        assert {("train", f"reward/{n}") for n in names} <= series
        body = c.get(f"/api/runs/{run.id}/completions?step=1&phase=train").json()
        args = trainer.args
        assert body["num_generations"] == args.num_generations
        assert body["max_completion_length"] == args.max_completion_length
        assert body["scale_rewards"] == {True: "group", False: "none"}.get(
            args.scale_rewards, args.scale_rewards
        )
        assert set(body["reward_functions"]) == set(names)
        assert body["groups"] and all(
            len(g["completions"]) == args.num_generations for g in body["groups"]
        )
        for group in body["groups"]:
            totals = [c["total_reward"] for c in group["completions"]]
            mean = statistics.fmean(totals)
            spread = statistics.stdev(totals) + 1e-4 if body["scale_rewards"] == "group" else None
            for done in group["completions"]:
                assert done["total_reward"] == pytest.approx(sum(done["rewards"].values()))
                if spread is not None:
                    assert done["advantage"] == pytest.approx(
                        (done["total_reward"] - mean) / spread
                    )
                assert done["truncated"] == (done["length_tokens"] >= args.max_completion_length)
        assert c.get(f"/api/runs/{run.id}/doctor").status_code == 200
