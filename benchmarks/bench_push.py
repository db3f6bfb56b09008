"""`gemmalog push` and remote reads: the cost of copying a run, and of querying it where it lies.

Over one generated run (``bench_queries.generate``: 100 events a step, a million events at
``--steps 10000``, about 1.2 GB of JSONL):

* **push vs raw copy**: `push(run, fresh folder)` against fsspec's own recursive copy of the
  same files (``LocalFileSystem.cp(recursive=True)``), alternated, best of ``--repeat``;
* **incremental push**: one more step appended (and run.json rewritten), then `push` again:
  what it sends and how long it takes;
* **summary over the remote run vs local** (only when ``moto_server`` is installed): the run
  pushed to a local S3 server (moto's, in-process Python, so slower than a real store), then
  `gemmalog summary s3://...` through the local copy cold (empty cache folder: fetch +
  parse) and again (cached, best of ``--repeat``), and with ``--no-cache`` read in place
  by DuckDB through fsspec (every byte read and parsed each time), against `gemmalog
  summary` of the local run with a cold query cache, cached, and without one; the time
  one GET of the whole shard takes, what an up-to-date copy's refresh costs alone,
  botocore's import and Python's start; and whether the three answers are the same.

    python benchmarks/bench_push.py --steps 10000          # the full million events
    python benchmarks/bench_push.py --steps 1000 --no-s3   # quick
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_queries import generate

REPO = Path(__file__).resolve().parents[1]


def _timed(fn: Any) -> tuple[float, Any]:
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def _drop(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def _cli(*args: str, env: dict[str, str], module: bool = True) -> float:
    t = time.perf_counter()
    subprocess.run(
        [sys.executable, *(("-m", "gemmalog") if module else ()), *args],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10000, help="100 events a step")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-s3", action="store_true", help="skip the remote summary")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    args = parser.parse_args()

    import fsspec

    from gemmalog.remote import push

    base = Path(tempfile.mkdtemp(prefix="bench-push-"))
    results: dict[str, Any] = {
        "steps": args.steps,
        "events": args.steps * 100,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
    }
    try:
        run = base / "runs" / "bench-run"
        size = generate(run, args.steps)
        results["shard_mb"] = round(size / 2**20, 1)
        local = fsspec.filesystem("file")
        push_s, raw_s = [], []
        for _ in range(args.repeat):
            _drop(base / "raw")
            raw_s.append(_timed(lambda: local.cp(str(run), str(base / "raw"), recursive=True))[0])
            _drop(base / "dest")
            push_s.append(_timed(lambda: push(run, base / "dest"))[0])
        assert (base / "dest" / "bench-run" / "events.0.jsonl").stat().st_size == size
        results["raw_copy_s"] = round(min(raw_s), 3)
        results["push_s"] = round(min(push_s), 3)
        results["push_speed_vs_raw"] = round(min(raw_s) / min(push_s), 2)

        unchanged_s, stats = _timed(lambda: push(run, base / "dest"))
        results["push_unchanged_s"] = round(unchanged_s, 3)
        results["push_unchanged_bytes"] = stats.bytes_sent
        grown = generate(run, 1, start=args.steps)
        incremental_s, stats = _timed(lambda: push(run, base / "dest"))
        results["incremental_push_s"] = round(incremental_s, 3)
        results["incremental_bytes_sent"] = stats.bytes_sent
        results["incremental_bytes_appended"] = grown - size

        if not args.no_s3:
            results.update(_remote_summary(run, base, args.repeat))
    finally:
        _drop(base)
    text = json.dumps(results, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


def _remote_summary(run: Path, base: Path, repeat: int) -> dict[str, Any]:
    sys.path.insert(0, str(REPO))
    from tests import s3server

    if s3server.server_binary() is None:
        return {"remote_summary": "skipped: moto_server is not installed"}
    server = s3server.start(base / "s3.log")
    try:
        env = {**os.environ, **server.env(), "PYTHONPATH": str(REPO)}
        os.environ.update(server.env())
        from gemmalog.remote import push

        url = f"s3://{s3server.BUCKET}/bench/{run.name}"
        upload_s, _ = _timed(lambda: push(run, url.rsplit("/", 1)[0]))
        mirror = ("--cache-dir", str(base / "cache-remote"))
        local = ("--cache-dir", str(base / "cache-local"))
        out: dict[str, Any] = {"s3_upload_s": round(upload_s, 3)}
        # what any reader pays before parsing: the shard's bytes, in one GET
        from gemmalog.remote._fs import filesystem

        fs, path = filesystem(f"{url}/events.0.jsonl")
        out["s3_read_shard_s"] = _timed(lambda: len(fs.cat_file(path)))[0]
        # cold: the first command, every byte fetched (a copy) or read (in place) and parsed
        out["summary_remote_cold_s"] = _cli(*mirror, "summary", url, env=env)
        out["summary_local_cold_cache_s"] = _cli(*local, "summary", str(run), env=env)
        out["summary_local_no_cache_s"] = _best(repeat, "--no-cache", "summary", str(run), env=env)
        out["summary_in_place_s"] = _best(repeat, "--no-cache", "summary", url, env=env)
        # cached: the same command again, nothing new
        out["summary_remote_cached_s"] = _best(repeat, *mirror, "summary", url, env=env)
        out["summary_local_cached_s"] = _best(repeat, *local, "summary", str(run), env=env)
        out["remote_refresh_up_to_date_s"] = _best(
            repeat,
            "-c",
            f"from gemmalog.remote import local_copy; local_copy({url!r}, cache_dir={str(base / 'cache-remote')!r})",
            env=env,
            module=False,
        )
        out["import_botocore_s"] = _best(
            repeat, "-c", "import botocore.session", env=env, module=False
        )
        out["python_startup_s"] = _best(repeat, "-c", "pass", env=env, module=False)
        answers = {
            name: _json(*args, env=env)
            for name, args in {
                "local": (*local, "summary", str(run), "--json"),
                "remote": (*mirror, "summary", url, "--json"),
                "in_place": ("--no-cache", "summary", url, "--json"),
            }.items()
        }
        for answer in answers.values():
            answer["run"].pop("dir")
        # equal up to the last bit of a float mean: DuckDB's parallel sums differ there
        # between two runs of the very same local command
        out["answers_equal"] = _same(answers["local"], answers["remote"]) and _same(
            answers["local"], answers["in_place"]
        )
    finally:
        server.stop()
    out = {k: round(v, 3) if isinstance(v, float) else v for k, v in out.items()}
    out["remote_cold_vs_local_cold_cache"] = round(
        out["summary_remote_cold_s"] / out["summary_local_cold_cache_s"], 2
    )
    out["in_place_vs_local_no_cache"] = round(
        out["summary_in_place_s"] / out["summary_local_no_cache_s"], 2
    )
    out["remote_cached_vs_local_cached"] = round(
        out["summary_remote_cached_s"] / out["summary_local_cached_s"], 2
    )
    return out


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-12)
    return bool(a == b)


def _best(repeat: int, *args: str, env: dict[str, str], module: bool = True) -> float:
    return min(_cli(*args, env=env, module=module) for _ in range(repeat))


def _json(*args: str, env: dict[str, str]) -> Any:
    done = subprocess.run(
        [sys.executable, "-m", "gemmalog", *args], env=env, check=True, capture_output=True
    )
    return json.loads(done.stdout)


if __name__ == "__main__":
    main()
