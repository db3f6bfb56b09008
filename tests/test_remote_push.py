"""`gemmalog push`: runs copied to another folder and to a real S3-compatible server and back,
incrementally, resumably, never into something else, with clear errors and no secrets."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

import gemmalog
from gemmalog.cli import cli
from gemmalog.remote import PushStats, RemoteError, push, watch
from tests import s3server

REPO = Path(__file__).resolve().parents[1]


def make_run(root: Path, name: str, steps: int = 3, text: int = 40) -> Path:
    """A finished run with model outputs, rewards and metrics."""
    run = gemmalog.initialize(root=str(root), run_id=name, capture_stdlib=False)
    for step in range(1, steps + 1):
        gemmalog.log_model_output(
            f"question {step}",
            "4",
            "<answer>4</answer> " + "x" * text,
            step=step,
            rewards={"format": 1.0, "correct": step % 2},
        )
        gemmalog.log_training_progress(step, {"loss": 1.0 / step})
    gemmalog.shutdown()
    return run.dir


def grow(shard: Path, lines: int) -> bytes:
    """Append copies of the shard's own lines, as a run still writing would; the bytes added."""
    body = shard.read_bytes().splitlines(keepends=True)
    added = b"".join(body[i % len(body)] for i in range(lines))
    with open(shard, "ab") as fh:
        fh.write(added)
    return added


def files_of(directory: Path) -> dict[str, bytes]:
    """A run's files as push sends them: hidden ones (the query cache, the writer lock)
    are the local process's own and stay behind."""
    return {
        str(p.relative_to(directory)): p.read_bytes()
        for p in sorted(directory.rglob("*"))
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(directory).parts)
    }


def digest(directory: Path) -> str:
    h = hashlib.sha256()
    for name, data in files_of(directory).items():
        h.update(name.encode() + b"\0" + data)
    return h.hexdigest()


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.output


# -- local to local -------------------------------------------------------------------------


def test_push_lands_like_cp_r_and_sends_nothing_twice(root: Path, tmp_path: Path) -> None:
    run = make_run(root, "run-a")
    gemmalog.connect(str(run)).sql("SELECT count(*) FROM events").fetchall()  # makes a cache
    assert (run / ".gemmalog-cache").is_dir()
    dest = tmp_path / "dest"
    first = push(run, dest)
    local = {k: v for k, v in files_of(run).items() if not k.startswith(".gemmalog-cache")}
    assert files_of(dest / "run-a") == local  # the query cache stays where it was
    assert first.bytes_sent == sum(map(len, local.values()))
    again = push(run, dest)
    assert (again.bytes_sent, again.files_unchanged) == (0, len(local))


def test_an_appended_shard_sends_only_the_new_bytes(root: Path, tmp_path: Path) -> None:
    run = make_run(root, "run-a")
    push(run, tmp_path)
    added = grow(run / "events.0.jsonl", 7)
    stats = push(run, tmp_path)
    assert (stats.files_appended, stats.bytes_sent) == (1, len(added))
    assert files_of(tmp_path / "run-a") == files_of(run)


def test_a_root_pushes_every_run_and_pulls_back(root: Path, tmp_path: Path) -> None:
    for name in ("run-a", "run-b"):
        make_run(root, name)
    stats = push(root, tmp_path / "remote")
    assert sorted(stats.runs) == ["run-a", "run-b"]
    push(f"file://{tmp_path / 'remote'}", tmp_path / "back")
    for name in ("run-a", "run-b"):
        assert files_of(tmp_path / "back" / name) == files_of(root / name)


def test_a_file_that_is_not_a_prefix_is_sent_whole(root: Path, tmp_path: Path) -> None:
    run = make_run(root, "run-a")
    push(run, tmp_path)
    target = tmp_path / "run-a" / "events.0.jsonl"
    data = target.read_bytes()
    target.write_bytes(data[:-5] + b"XXXXX")  # same size, other last bytes
    stats = push(run, tmp_path)
    assert (stats.files_sent, stats.bytes_sent) == (1, len(data))
    assert files_of(tmp_path / "run-a") == files_of(run)
    target.write_bytes(data + b"more than the source\n")  # longer than the source
    stats = push(run, tmp_path)
    assert (stats.files_sent, stats.bytes_sent) == (1, len(data))
    assert files_of(tmp_path / "run-a") == files_of(run)


def test_a_partial_file_left_by_a_kill_is_continued(root: Path, tmp_path: Path) -> None:
    run = make_run(root, "run-a", steps=40)
    push(run, tmp_path)
    target = tmp_path / "run-a" / "events.0.jsonl"
    whole = target.read_bytes()
    target.write_bytes(whole[: len(whole) // 3])  # what a push killed mid-append leaves
    stats = push(run, tmp_path)
    assert stats.bytes_sent == len(whole) - len(whole) // 3
    assert target.read_bytes() == whole


def test_a_killed_push_is_continued_by_the_next(root: Path, tmp_path: Path) -> None:
    run = make_run(root, "run-a", steps=20)
    (run / "tensorboard").mkdir()
    (run / "tensorboard" / "events.out").write_bytes(os.urandom(1 << 16))
    dest = tmp_path / "dest"
    code = (
        "import os, signal, sys\n"
        "from gemmalog.remote import push\n"
        "push(sys.argv[1], sys.argv[2], on_file=lambda n: os.kill(os.getpid(), signal.SIGKILL))\n"
    )
    env = dict(os.environ, PYTHONPATH=str(REPO))
    done = subprocess.run([sys.executable, "-c", code, str(run), str(dest)], env=env, check=False)
    assert done.returncode == -signal.SIGKILL
    assert len(files_of(dest / "run-a")) == 1  # one file landed, then the kill
    before = digest(run)
    stats = push(run, dest)
    assert stats.files_unchanged == 1
    assert files_of(dest / "run-a") == files_of(run) and digest(run) == before


def test_dest_holding_another_run_or_something_else_is_refused(root: Path, tmp_path: Path) -> None:
    run = make_run(root, "run-a")
    other = make_run(tmp_path / "elsewhere", "run-a-other")
    dest = tmp_path / "dest"
    (dest / "run-a").mkdir(parents=True)
    for name, data in files_of(other).items():
        (dest / "run-a" / name).write_bytes(data)
    code, out = invoke("push", str(run), str(dest))
    assert code == 1 and "holds run 'run-a-other', not 'run-a'" in out
    assert "Traceback" not in out
    assert files_of(dest / "run-a") == files_of(other)  # untouched
    (dest / "photos" / "run-a").mkdir(parents=True)
    (dest / "photos" / "run-a" / "cat.jpg").write_bytes(b"\xff\xd8")
    code, out = invoke("push", str(run), str(dest / "photos"))
    assert code == 1 and "not a gemmalog run; refusing" in out
    assert (dest / "photos" / "run-a" / "cat.jpg").read_bytes() == b"\xff\xd8"


def test_a_source_that_is_not_a_run_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    code, out = invoke("push", str(tmp_path / "empty"), str(tmp_path / "d"))
    assert code == 1 and "holds no gemmalog run" in out
    code, out = invoke("push", str(tmp_path / "missing"), str(tmp_path / "d"))
    assert code == 1 and "no such run or root of runs" in out


def test_watch_follows_a_live_run_to_its_end(root: Path, tmp_path: Path) -> None:
    run = gemmalog.initialize(root=str(root), run_id="live", capture_stdlib=False)
    gemmalog.log_training_progress(1, {"loss": 1.0})
    gemmalog.flush()
    seen: list[PushStats | RemoteError] = []
    steps = iter(range(2, 5))

    def between_rounds(_wait: float) -> None:
        step = next(steps, None)
        if step is None:
            gemmalog.shutdown()
            return
        gemmalog.log_training_progress(step, {"loss": 1.0 / step})
        gemmalog.flush()

    watch(run.dir, tmp_path, interval=0.1, report=seen.append, sleep=between_rounds)
    assert all(isinstance(s, PushStats) for s in seen) and len(seen) == 5
    assert files_of(tmp_path / "live") == files_of(run.dir)
    manifest = orjson.loads((tmp_path / "live" / "run.json").read_bytes())
    assert manifest["status"] == "completed"
    assert sum(s.files_appended for s in seen if isinstance(s, PushStats)) >= 3


def test_watch_on_a_finished_run_pushes_once_and_exits(root: Path, tmp_path: Path) -> None:
    run = make_run(root, "run-a")
    code, out = invoke("push", str(run), str(tmp_path), "--watch", "--interval", "0.1")
    assert code == 0 and "every run has ended" in out
    assert files_of(tmp_path / "run-a") == files_of(run)


# -- a real S3-compatible server ----------------------------------------------------------


def objects(s3: s3server.S3Server, url: str) -> dict[str, bytes]:
    """What the server holds under ``url``, read with boto (not through gemmalog or s3fs)."""
    client = s3.client()
    prefix = url.split("/", 3)[3] + "/"
    listing = client.list_objects_v2(Bucket=s3server.BUCKET, Prefix=prefix)  # type: ignore[attr-defined]
    return {
        o["Key"][len(prefix) :]: client.get_object(Bucket=s3server.BUCKET, Key=o["Key"])[  # type: ignore[attr-defined]
            "Body"
        ].read()
        for o in listing.get("Contents", [])
    }


def test_s3_round_trip(s3: s3server.S3Server, bucket: str, root: Path, tmp_path: Path) -> None:
    run = make_run(root, "run-a")
    code, out = invoke("push", str(run), bucket)
    assert code == 0, out
    assert objects(s3, f"{bucket}/run-a") == files_of(run)
    again = push(run, bucket)
    assert again.bytes_sent == 0
    code, out = invoke("push", f"{bucket}/run-a", str(tmp_path / "back"))
    assert code == 0, out
    assert files_of(tmp_path / "back" / "run-a") == files_of(run)


def test_s3_append_composes_on_the_server(s3: s3server.S3Server, bucket: str, root: Path) -> None:
    run = make_run(root, "run-a", steps=10)
    shard = run / "events.0.jsonl"
    while shard.stat().st_size <= 6 << 20:
        grow(shard, 2000)
    assert shard.stat().st_size > 5 << 20  # S3 appends to objects of 5 MiB and more
    push(run, bucket)
    added = grow(shard, 50)
    stats = push(run, bucket)
    assert (stats.files_appended, stats.bytes_sent) == (1, len(added))
    assert objects(s3, f"{bucket}/run-a") == files_of(run)
    # a small file (under S3's 5 MiB part) is sent whole, and still ends up right
    (run / "training.log").write_bytes(b"one\n")
    push(run, bucket)
    with open(run / "training.log", "ab") as fh:
        fh.write(b"two\n")
    push(run, bucket)
    assert objects(s3, f"{bucket}/run-a")["training.log"] == b"one\ntwo\n"


def test_s3_two_pushers_leave_every_object_whole(
    s3: s3server.S3Server, bucket: str, root: Path
) -> None:
    run = make_run(root, "run-a", steps=30)
    push(run, bucket)
    grow(run / "events.0.jsonl", 200)
    errors: list[BaseException] = []

    def one() -> None:
        try:
            push(run, bucket)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=one) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert objects(s3, f"{bucket}/run-a") == files_of(run)


def test_s3_dest_holding_another_run_is_refused(bucket: str, root: Path, tmp_path: Path) -> None:
    push(make_run(tmp_path / "other", "run-a-2"), bucket)
    code, out = invoke("push", str(make_run(root, "run-a-2x")), f"{bucket}")
    assert code == 0, out  # a different name lands beside it
    (root / "run-a-2x").rename(root / "run-a-2")
    code, out = invoke("push", str(root / "run-a-2"), bucket)
    assert code == 1 and "refusing to mix two runs" in out


def test_wrong_endpoint_is_one_line_without_secrets(
    bucket: str, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = make_run(root, "run-a")
    before = digest(run)
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{s3server.free_port()}")
    result = subprocess.run(
        [sys.executable, "-m", "gemmalog", "push", str(run), bucket],
        env=dict(os.environ, PYTHONPATH=str(REPO)),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1
    assert "cannot reach the store at http://127.0.0.1:" in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert os.environ["AWS_SECRET_ACCESS_KEY"] not in result.stderr + result.stdout
    assert digest(run) == before


def test_refused_credentials_are_one_line_without_secrets(
    bucket: str, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = make_run(root, "run-a")
    secret = "wrong-secret-" + uuid.uuid4().hex
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    code, out = invoke("push", str(run), bucket)
    assert code == 1 and "refused the credentials" in out, out
    assert secret not in out and os.environ["AWS_ACCESS_KEY_ID"] not in out
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIA" + uuid.uuid4().hex[:16].upper())
    code, out = invoke("push", str(run), bucket)
    assert code == 1 and "refused the credentials" in out
    assert os.environ["AWS_ACCESS_KEY_ID"] not in out and secret not in out


def test_a_server_dying_mid_push(
    root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if s3server.server_binary() is None:
        pytest.skip("moto_server is not installed")
    server = s3server.start(tmp_path / "dying.log")
    try:
        for name, value in server.env().items():
            monkeypatch.setenv(name, value)
        run = make_run(root, "run-a", steps=20)
        (run / "training.log").write_bytes(b"a line\n" * 100)
        before = digest(run)
        with pytest.raises(RemoteError) as caught:
            push(run, f"s3://{s3server.BUCKET}/x", on_file=lambda _name: server.stop())
        message = str(caught.value)
        assert "cannot reach the store" in message and "continues where this one stopped" in message
        assert server.secret not in message and server.key_id not in message
        assert digest(run) == before
    finally:
        server.stop()


def test_multi_node_pushes_make_one_run_with_every_rank(
    bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each node writes its ranks' shards locally and pushes them under one run prefix; the
    views over that prefix see one run with all ranks (docs/remote.md, multi-node)."""
    monkeypatch.setenv("WORLD_SIZE", "2")
    for rank in (0, 1):
        monkeypatch.setenv("RANK", str(rank))
        gemmalog.initialize(
            root=str(tmp_path / f"node{rank}"), run_id="job-42", capture_stdlib=False
        )
        for step in (1, 2):
            gemmalog.log_training_progress(step, {"loss": 1.0 / step + rank})
        gemmalog.shutdown()
    assert not (tmp_path / "node1" / "job-42" / "run.json").exists()  # rank 0 owns it
    for rank in (1, 0):
        code, out = invoke("push", str(tmp_path / f"node{rank}" / "job-42"), bucket)
        assert code == 0, out
    code, out = invoke("summary", f"{bucket}/job-42", "--json")
    assert code == 0, out
    s = orjson.loads(out)
    assert (s["run"]["run"], s["run"]["ranks"], s["run"]["status"]) == ("job-42", 2, "completed")
    local = [
        e
        for rank in (0, 1)
        for e in orjson.loads(
            b"["
            + b",".join(
                (tmp_path / f"node{rank}" / "job-42" / f"events.{rank}.jsonl")
                .read_bytes()
                .splitlines()
            )
            + b"]"
        )
    ]
    assert s["run"]["events"] == len(local)
