"""S4, W2: the query cache is disposable and never wrong. A shard edited in place (same size,
mtime put back or not) is never answered from the old parts; a damaged or lost part is
rebuilt from the JSONL with one notice, never an error; `cache verify` checks every byte.
Each check compares the answer through the cache with the JSONL's (``--no-cache``)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

import gemmalog
from gemmalog.cli import cli
from gemmalog.queries import _cache_check

STEPS = 6000
SUM = "SELECT sum(value) FROM metrics WHERE name = 'loss'"


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished run whose shard spans a few blocks of the content check."""
    root = tmp_path_factory.mktemp("integrity") / "runs"
    gemmalog.initialize(root=str(root), run_id="r", capture_stdlib=False)
    log = gemmalog.get_logger("filler")
    for step in range(STEPS):
        gemmalog.log_training_progress(step, {"loss": 0.5})
        log.info("filler", text="x" * 600)
    gemmalog.shutdown()
    assert (root / "r" / "events.0.jsonl").stat().st_size > 4 * _cache_check.BLOCK
    return root / "r"


@pytest.fixture
def run(pristine: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "runs" / "r"
    shutil.copytree(pristine, copy)
    shutil.rmtree(copy / ".gemmalog-cache", ignore_errors=True)
    return copy


def cli_run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


def loss_sum(run: Path, *flags: str) -> tuple[float, str]:
    code, out, err = cli_run(*flags, "sql", str(run), SUM, "--format", "json")
    assert code == 0, err
    return float(orjson.loads(out)[0]['sum("value")']), err


def state(run: Path) -> str:
    code, out, err = cli_run("cache", "status", str(run), "--format", "json")
    assert code == 0, err
    return str(orjson.loads(out)[0]["state"])


def edit_middle(shard: Path, keep_times: bool) -> None:
    """Turn one loss of 0.5 near the middle into 9.5, in place: the size does not change."""
    data = shard.read_bytes()
    at = data.index(b'"loss":0.5', len(data) // 2)
    st = shard.stat()
    with open(shard, "r+b") as fh:
        fh.seek(at)
        fh.write(b'"loss":9.5')
    if keep_times:  # as `touch -r` or `cp -p` would leave it
        os.utime(shard, ns=(st.st_atime_ns, st.st_mtime_ns))


def cached_parts(run: Path) -> list[Path]:
    manifest = orjson.loads((run / ".gemmalog-cache" / "cache.json").read_bytes())
    entry = manifest["shards"]["events.0.jsonl"]
    return [run / ".gemmalog-cache" / p["file"] for p in entry["parts"]]


@pytest.mark.parametrize("keep_times", [False, True])
def test_an_in_place_edit_is_never_served_from_the_cache(run: Path, keep_times: bool) -> None:
    assert loss_sum(run)[0] == 0.5 * STEPS  # builds the cache
    assert state(run) == "fresh"
    edit_middle(run / "events.0.jsonl", keep_times)
    assert state(run) == "stale"
    truth, _ = loss_sum(run, "--no-cache")
    assert truth == 0.5 * STEPS + 9
    got, err = loss_sum(run)
    assert got == truth
    assert err.count("query cache of") == 1 and "changed since they were cached" in err
    got, err = loss_sum(run)  # rebuilt once: no second notice
    assert got == truth and "query cache" not in err
    assert state(run) == "fresh"


def test_an_edit_while_the_shard_grows_is_found_by_verify(
    run: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A shard that grew since the last query has only sampled blocks checked: with no
    random sample the edit goes unseen until `cache verify`, which finds and rebuilds it."""
    monkeypatch.setattr(_cache_check, "SAMPLES", 0)
    assert loss_sum(run)[0] == 0.5 * STEPS
    shard = run / "events.0.jsonl"
    edit_middle(shard, keep_times=False)
    with open(shard, "ab") as fh:
        fh.write(shard.read_bytes().splitlines(keepends=True)[-1])
    truth, _ = loss_sum(run, "--no-cache")
    code, out, err = cli_run("cache", "verify", str(run), "--format", "json")
    assert code == 0, err
    (row,) = orjson.loads(out)
    assert row["state"] == "rebuilt" and "changed since they were cached" in row["problem"]
    assert loss_sum(run)[0] == truth
    code, out, _ = cli_run("cache", "verify", str(run), "--format", "json")
    assert [r["state"] for r in orjson.loads(out)] == ["ok"]


@pytest.mark.parametrize("damage", ["garbage", "truncated", "deleted", "empty"])
def test_a_damaged_part_is_rebuilt_with_one_notice(run: Path, damage: str) -> None:
    truth = loss_sum(run)[0]
    (part,) = cached_parts(run)
    if damage == "garbage":
        part.write_bytes(os.urandom(part.stat().st_size))  # same size: the footer differs
    elif damage == "truncated":
        part.write_bytes(part.read_bytes()[:-100])
    elif damage == "deleted":
        part.unlink()
    else:
        part.write_bytes(b"")
    got, err = loss_sum(run)
    assert got == truth
    assert err.count("query cache of") == 1 and "rebuilt from the JSONL" in err, err
    got, err = loss_sum(run)
    assert got == truth and err == ""


def test_damage_inside_a_part_is_found_by_verify(run: Path) -> None:
    loss_sum(run)
    (part,) = cached_parts(run)
    data = bytearray(part.read_bytes())
    data[len(data) // 2] ^= 0xFF  # the size and the footer are intact
    part.write_bytes(bytes(data))
    code, out, err = cli_run("cache", "verify", str(run), "--format", "json")
    assert code == 0, err
    (row,) = orjson.loads(out)
    assert row["state"] == "rebuilt" and "damaged" in row["problem"]
    assert part not in cached_parts(run)
    assert loss_sum(run)[0] == loss_sum(run, "--no-cache")[0]


def test_a_cache_without_content_checks_is_built_again(run: Path) -> None:
    """A cache.json written before the checks existed is not trusted: parsed again."""
    loss_sum(run)
    manifest_path = run / ".gemmalog-cache" / "cache.json"
    manifest = orjson.loads(manifest_path.read_bytes())
    del manifest["content"]
    manifest_path.write_bytes(orjson.dumps(manifest))
    old = cached_parts(run)
    edit_middle(run / "events.0.jsonl", keep_times=True)
    assert loss_sum(run)[0] == 0.5 * STEPS + 9
    assert set(cached_parts(run)).isdisjoint(old)


def test_a_part_damaged_inside_never_fails_a_command(run: Path) -> None:
    """Damage connect() does not look for (size and footer intact) is met by the query
    itself: the command is answered from the JSONL, with a notice; verify then rebuilds."""
    truth = loss_sum(run)[0]
    (part,) = cached_parts(run)
    data = bytearray(part.read_bytes())
    end = len(data) - 2 * _cache_check.TAIL
    assert end > 1000
    data[4:end] = os.urandom(end - 4)
    part.write_bytes(bytes(data))
    for args in (
        ["sql", str(run), SUM, "--format", "json"],
        ["summary", str(run), "--json"],
    ):
        code, out, err = cli_run(*args)
        assert code == 0, err
        assert "answered from the JSONL" in err and err.count("\n") == 1
        if args[0] == "sql":
            assert float(orjson.loads(out)[0]['sum("value")']) == truth
    code, _, err = cli_run("sql", str(run), "SELECT no_such_column FROM metrics")
    assert code == 1 and "answered from the JSONL" not in err  # a bad statement is not retried
    code, out, _ = cli_run("cache", "verify", str(run), "--format", "json")
    assert [r["state"] for r in orjson.loads(out)] == ["rebuilt"]
    assert loss_sum(run) == (truth, "")


def test_the_runs_listing_sees_an_edit_that_put_the_mtime_back(run: Path) -> None:
    """`gemmalog runs` remembers each run's row; the key holds the shard's ctime, which an
    edit cannot put back (`touch -r` can only put back the mtime)."""
    from gemmalog.queries import list_runs

    root = run.parent
    columns, order = ("run", "steps"), ("run",)
    assert list_runs(str(root), columns, order)[1] == [("r", STEPS - 1)]
    shard = run / "events.0.jsonl"
    data = shard.read_bytes()
    at = data.rindex(f'"step":{STEPS - 1}'.encode())
    st = shard.stat()
    with open(shard, "r+b") as fh:
        fh.seek(at)
        fh.write(f'"step":{STEPS + 3000}'.encode())  # same width: the size does not change
    os.utime(shard, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert list_runs(str(root), columns, order)[1] == [("r", STEPS + 3000)]
