"""Runs read where they lie: `runs`, `summary`, `sql`, `doctor`, `report` and `compare` given an
s3:// or file:// URL answer as they do for the local run, and the query cache stays local."""

from __future__ import annotations

import os
import re
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

import gemmalog
from gemmalog.cli import cli
from gemmalog.remote import RemoteError, local_copy, push
from tests import s3server

SQL = (
    "SELECT run, step, name, value FROM metrics ORDER BY ALL",
    "SELECT * EXCLUDE (ts) FROM completions ORDER BY ALL",
    "SELECT * EXCLUDE (ts) FROM rewards ORDER BY ALL",
    "SELECT run, status, steps, ranks, last_reward FROM runs ORDER BY run",
)


def make_runs(root: Path, names: tuple[str, ...] = ("ra", "rb"), steps: int = 12) -> None:
    for n, name in enumerate(names):
        gemmalog.initialize(root=str(root), run_id=name, capture_stdlib=False)
        for step in range(1, steps + 1):
            for i in range(4):
                gemmalog.log_model_output(
                    f"q{step}",
                    "4",
                    f"<answer>{(step + i + n) % 5}</answer> " + "text " * (i + 1),
                    step=step,
                    rewards={"format": 1.0, "correct": float((step + i + n) % 5 == 4)},
                )
            gemmalog.log_training_progress(step, {"loss": 1.0 / step, "kl": 0.01 * step * (n + 1)})
        gemmalog.shutdown()


def run_cli(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def summary(where: str, cache: Path) -> dict:
    out = orjson.loads(run_cli("--cache-dir", str(cache), "summary", where, "--json"))
    return out


@pytest.fixture
def remote_root(bucket: str, root: Path) -> str:
    make_runs(root)
    push(root, bucket)
    return bucket


def test_summary_of_a_remote_run_equals_the_local(
    remote_root: str, root: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    for name in ("ra", "rb"):
        local = summary(str(root / name), cache)
        for where in (f"{remote_root}/{name}", f"file://{root / name}"):
            remote = summary(where, cache)
            assert remote["run"].pop("dir") == where  # it names where the run lies
            assert remote == {**local, "run": {k: v for k, v in local["run"].items() if k != "dir"}}
        by_root = orjson.loads(
            run_cli("--cache-dir", str(cache), "summary", name, "--root", remote_root, "--json")
        )
        by_root["run"].pop("dir")
        local["run"].pop("dir")
        assert by_root == local


def test_sql_runs_doctor_compare_report_answer_the_same(
    remote_root: str, root: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    for query in SQL:
        local = run_cli("sql", str(root), query, "--format", "csv")
        assert local.count("\n") > 2
        assert (
            run_cli("--cache-dir", str(cache), "sql", remote_root, query, "--format", "csv")
            == local
        )
    assert run_cli("--cache-dir", str(cache), "runs", remote_root) == run_cli("runs", str(root))
    local_doctor = orjson.loads(run_cli("doctor", str(root / "ra"), "--json"))
    remote_doctor = orjson.loads(
        run_cli("--cache-dir", str(cache), "doctor", f"{remote_root}/ra", "--json")
    )
    assert remote_doctor == local_doctor
    assert run_cli(
        "--cache-dir", str(cache), "compare", f"{remote_root}/ra", f"{remote_root}/rb"
    ) == run_cli("compare", str(root / "ra"), str(root / "rb"))
    pytest.importorskip("matplotlib")
    run_cli("report", str(root / "ra"), "-o", str(tmp_path / "local.html"))
    run_cli(
        "--cache-dir",
        str(cache),
        "report",
        f"{remote_root}/ra",
        "-o",
        str(tmp_path / "remote.html"),
    )
    stamp = re.compile(rb"\d{4}-\d\d-\d\d[ T]\d\d:\d\d(:\d\d)?(\.\d+)?( UTC)?")
    local_html = stamp.sub(b"", (tmp_path / "local.html").read_bytes())
    remote_html = stamp.sub(b"", (tmp_path / "remote.html").read_bytes())
    # the one difference: the report names the directory it read, here the local copy
    copy = local_copy(f"{remote_root}/ra", cache_dir=cache)
    assert remote_html.count(copy.encode()) == 1
    remote_html = remote_html.replace(copy.encode(), str(root / "ra").encode())
    assert remote_html == local_html


def test_the_query_cache_stays_local_and_new_bytes_are_all_that_is_fetched(
    s3: s3server.S3Server, remote_root: str, root: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    summary(f"{remote_root}/ra", cache)
    client = s3.client()
    prefix = remote_root.split("/", 3)[3] + "/"
    keys = [
        o["Key"]
        for o in client.list_objects_v2(Bucket=s3server.BUCKET, Prefix=prefix)["Contents"]  # type: ignore[attr-defined]
    ]
    assert keys and not any("cache" in k for k in keys)  # nothing written to the store
    copy = Path(local_copy(f"{remote_root}/ra", cache_dir=cache))
    assert copy.is_relative_to(cache)
    assert any(cache.rglob("cache.json"))  # the query cache, local
    shard = copy / "events.0.jsonl"
    before = (shard.stat().st_ino, shard.stat().st_mtime_ns, shard.read_bytes())
    summary(f"{remote_root}/ra", cache)
    assert (shard.stat().st_ino, shard.stat().st_mtime_ns, shard.read_bytes()) == before
    # the run goes on (resumed) and is pushed again: the copy follows, appending only
    gemmalog.initialize(root=str(root), run_id="ra", capture_stdlib=False)
    gemmalog.log_training_progress(13, {"loss": 0.01})
    gemmalog.shutdown()
    push(root / "ra", remote_root)
    after = summary(f"{remote_root}/ra", cache)
    assert after["run"]["steps"] == 13 and after["loss"]["train"]["last"] == 0.01
    assert shard.stat().st_ino == before[0] and shard.read_bytes().startswith(before[2])
    local = summary(str(root / "ra"), tmp_path / "other-cache")
    local["run"].pop("dir"), after["run"].pop("dir")
    assert after == local


def test_a_remote_run_that_is_missing_is_one_line(bucket: str) -> None:
    result = CliRunner().invoke(cli, ["summary", f"{bucket}/nope", "--json"])
    assert result.exit_code == 1
    assert result.output.startswith("gemmalog: error: ") and "no such run" in result.output
    with pytest.raises(RemoteError, match="no such run"):
        local_copy(f"{bucket}/nope")


def test_a_remote_run_replaced_by_another_is_fetched_anew(
    s3: s3server.S3Server, bucket: str, tmp_path: Path
) -> None:
    make_runs(tmp_path / "first", ("ra",), steps=3)
    push(tmp_path / "first" / "ra", bucket)
    cache = tmp_path / "cache"
    assert summary(f"{bucket}/ra", cache)["run"]["run"] == "ra"
    client = s3.client()
    prefix = bucket.split("/", 3)[3] + "/ra/"
    for o in client.list_objects_v2(Bucket=s3server.BUCKET, Prefix=prefix)["Contents"]:  # type: ignore[attr-defined]
        client.delete_object(Bucket=s3server.BUCKET, Key=o["Key"])  # type: ignore[attr-defined]
    make_runs(tmp_path / "second", ("other",), steps=5)
    (tmp_path / "second" / "other").rename(tmp_path / "second" / "ra")
    push(tmp_path / "second" / "ra", bucket)
    again = summary(f"{bucket}/ra", cache)
    assert (again["run"]["run"], again["run"]["steps"]) == ("other", 5)


def test_a_copy_up_to_date_costs_one_listing(
    s3: s3server.S3Server, remote_root: str, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    first = summary(f"{remote_root}/ra", cache)
    before = len(s3.requests())
    again = summary(f"{remote_root}/ra", cache)
    asked = s3.requests()[before:]
    assert again == first
    prefix = remote_root.split("/", 3)[3]
    assert len(asked) == 1, asked  # the listing, and no read, no HEAD
    assert "list-type=2" in asked[0] and f"prefix={prefix}/ra/" in asked[0]


def test_a_remote_file_rewritten_with_the_same_size_is_fetched_again(
    s3: s3server.S3Server, remote_root: str, root: Path, tmp_path: Path
) -> None:
    """The listing's ETag and time say a file changed where its size does not."""
    cache = tmp_path / "cache"
    assert summary(f"{remote_root}/ra", cache)["loss"]["train"]["first"] == 1.0
    shard = root / "ra" / "events.0.jsonl"
    data = shard.read_bytes()
    assert data.count(b'"metrics":{"loss":1.0,') == 1
    shard.write_bytes(data.replace(b'"metrics":{"loss":1.0,', b'"metrics":{"loss":9.0,'))
    key = f"{remote_root.split('/', 3)[3]}/ra/events.0.jsonl"
    s3.client().put_object(Bucket=s3server.BUCKET, Key=key, Body=shard.read_bytes())  # type: ignore[attr-defined]
    after = summary(f"{remote_root}/ra", cache)
    assert after["loss"]["train"]["first"] == 9.0
    local = summary(str(root / "ra"), tmp_path / "other-cache")
    after["run"].pop("dir"), local["run"].pop("dir")
    assert after == local


def test_a_copy_changed_locally_is_brought_back(remote_root: str, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = summary(f"{remote_root}/ra", cache)
    copy = Path(local_copy(f"{remote_root}/ra", cache_dir=cache))
    shard = copy / "events.0.jsonl"
    whole = shard.read_bytes()
    shard.write_bytes(whole[: len(whole) // 2])
    assert summary(f"{remote_root}/ra", cache) == first
    assert shard.read_bytes() == whole


def test_with_no_cache_duckdb_reads_the_remote_files_in_place(
    remote_root: str, root: Path, tmp_path: Path
) -> None:
    """``--no-cache``: no local copy, no query cache; DuckDB reads the objects through
    fsspec (``register_filesystem``), and every answer is the local run's."""
    cache = tmp_path / "cache"
    here = ("--no-cache", "--cache-dir", str(cache))
    for name in ("ra", "rb"):
        local = orjson.loads(run_cli("--no-cache", "summary", str(root / name), "--json"))
        local["run"].pop("dir")
        for args in ((f"{remote_root}/{name}",), (name, "--root", remote_root)):
            remote = orjson.loads(run_cli(*here, "summary", *args, "--json"))
            assert remote["run"].pop("dir") == f"{remote_root}/{name}"
            assert remote == local
    for query in SQL:
        local_rows = run_cli("--no-cache", "sql", str(root), query, "--format", "csv")
        assert run_cli(*here, "sql", remote_root, query, "--format", "csv") == local_rows
    assert run_cli(*here, "runs", remote_root) == run_cli("--no-cache", "runs", str(root))
    assert orjson.loads(run_cli(*here, "doctor", f"{remote_root}/ra", "--json")) == orjson.loads(
        run_cli("--no-cache", "doctor", str(root / "ra"), "--json")
    )
    assert run_cli(*here, "compare", f"{remote_root}/ra", f"{remote_root}/rb") == run_cli(
        "--no-cache", "compare", str(root / "ra"), str(root / "rb")
    )
    assert not (cache / "remote").exists()  # nothing copied
    assert not list(tmp_path.rglob("cache.json"))  # no query cache anywhere
    pytest.importorskip("matplotlib")
    run_cli("--no-cache", "report", str(root / "ra"), "-o", str(tmp_path / "local.html"))
    run_cli(*here, "report", f"{remote_root}/ra", "-o", str(tmp_path / "remote.html"))
    stamp = re.compile(rb"\d{4}-\d\d-\d\d[ T]\d\d:\d\d(:\d\d)?(\.\d+)?( UTC)?")
    local_html = stamp.sub(b"", (tmp_path / "local.html").read_bytes())
    remote_html = stamp.sub(b"", (tmp_path / "remote.html").read_bytes())
    url = f"{remote_root}/ra".encode()
    assert remote_html.count(url) == 1  # the one difference: it names where it read the run
    assert remote_html.replace(url, str(root / "ra").encode()) == local_html


def test_a_run_read_in_place_from_python(remote_root: str, root: Path) -> None:
    from gemmalog.remote import remote_source

    source = remote_source(f"{remote_root}/ra")
    assert source.run and source.fs is not None and os.fspath(source) == f"{remote_root}/ra"
    con = gemmalog.connect(source)
    local = gemmalog.connect(str(root / "ra"), cache=False)
    for query in SQL:
        assert con.execute(query).fetchall() == local.execute(query).fetchall()
    # the objects came through fsspec, never through an extension DuckDB would download
    settings = con.execute(
        "SELECT current_setting('autoinstall_known_extensions'), "
        "current_setting('autoload_known_extensions')"
    ).fetchone()
    assert settings == (False, False)
    files = [f for (f,) in con.execute("SELECT DISTINCT filename FROM _events_source").fetchall()]
    assert files == [f"{remote_root}/ra/events.0.jsonl"]


def test_sql_read_in_place_reads_that_run_only(remote_root: str) -> None:
    other = f"{remote_root}/rb/run.json"
    result = CliRunner().invoke(
        cli, ["--no-cache", "sql", f"{remote_root}/ra", f"SELECT * FROM read_text('{other}')"]
    )
    assert result.exit_code == 1
    assert (
        result.output.startswith("gemmalog: error: ")
        and "disabled by configuration" in result.output
    )
    allowed = run_cli(
        "--no-cache",
        "sql",
        f"{remote_root}/ra",
        f"SELECT count(*) FROM read_text('{remote_root}/ra/run.json')",
        "--format",
        "csv",
    )
    assert allowed.splitlines()[-1] == "1"


def test_read_in_place_errors_are_one_line(
    bucket: str, remote_root: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = CliRunner().invoke(cli, ["--no-cache", "summary", f"{bucket}/nope", "--json"])
    assert missing.exit_code == 1 and "no such run" in missing.output
    wrong = "not-the-secret-" + "y" * 24
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", wrong)
    refused = CliRunner().invoke(cli, ["--no-cache", "summary", f"{remote_root}/ra", "--json"])
    assert refused.exit_code == 1
    assert (
        refused.output.startswith("gemmalog: error: ")
        and "refused the credentials" in refused.output
    )
    assert wrong not in refused.output and "Traceback" not in refused.output


def test_files_read_in_place_keep_a_position_per_thread(tmp_path: Path) -> None:
    """DuckDB seeks and reads one file object from several threads: each thread reads what
    it asked for, across block edges, however the threads interleave."""
    import random
    import sys
    import threading

    import fsspec

    from gemmalog.remote import remote_source

    memory = fsspec.filesystem("memory")
    base = f"memory://gemmalog-{tmp_path.name}/run"
    data = random.Random(7).randbytes(140 << 20)  # three 64 MiB blocks
    memory.pipe_file(f"{base}/events.0.jsonl", data)
    source = remote_source(base)
    handle = source.fs.open(f"{base}/events.0.jsonl", "rb")
    wrong: list[tuple[int, int]] = []

    def reader(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(200):
            start, length = rng.randrange(len(data)), rng.choice([1, 4096, 2 << 20, 5 << 20])
            handle.seek(start)
            if handle.read(length) != data[start : start + length]:
                wrong.append((start, length))

    threads = [threading.Thread(target=reader, args=(seed,)) for seed in range(6)]
    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # threads switch between a seek and its read (a shared
    try:  # position, as an fsspec file has, then reads the wrong bytes now and then)
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(switch)
    assert wrong == []
    memory.rm(f"memory://gemmalog-{tmp_path.name}", recursive=True)
