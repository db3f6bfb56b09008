"""`gemmalog push` and remote reads: the cost of copying a run, and of querying it where it lies.

Over one generated run (``bench_queries.generate``: 100 events a step, a million events at
``--steps 10000``, about 1.2 GB of JSONL):

* **push vs raw copy**: `push(run, fresh folder)` against fsspec's own recursive copy of the
  same files (``LocalFileSystem.cp(recursive=True)``), alternated, best of ``--repeat``;
* **incremental push**: one more step appended (and run.json rewritten), then `push` again:
  what it sends and how long it takes;
* **summary over the remote copy vs local** (only when ``moto_server`` is installed): the run
  pushed to a local S3 server (moto's, in-process Python, so slower than a real store), then
  `gemmalog summary s3://...` cold (empty cache folder: fetch + parse) and again (cached),
  against `gemmalog summary` of the local run cold (no query cache) and cached.

    python benchmarks/bench_push.py --steps 10000          # the full million events
    python benchmarks/bench_push.py --steps 1000 --no-s3   # quick
"""

from __future__ import annotations

import argparse
import json
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


def _cli(*args: str, env: dict[str, str]) -> float:
    t = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "gemmalog", *args],
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
            results.update(_remote_summary(run, base))
    finally:
        _drop(base)
    text = json.dumps(results, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


def _remote_summary(run: Path, base: Path) -> dict[str, Any]:
    sys.path.insert(0, str(REPO))
    from tests import s3server

    if s3server.server_binary() is None:
        return {"remote_summary": "skipped: moto_server is not installed"}
    server = s3server.start(base / "s3.log")
    try:
        env = {**os.environ, **server.env(), "PYTHONPATH": str(REPO)}
        os.environ.update(server.env())
        from gemmalog.remote import push

        url = f"s3://{s3server.BUCKET}/bench"
        upload_s, _ = _timed(lambda: push(run, url))
        remote_cold = _cli(
            "--cache-dir", str(base / "cache-remote"), "summary", f"{url}/{run.name}", env=env
        )
        remote_warm = _cli(
            "--cache-dir", str(base / "cache-remote"), "summary", f"{url}/{run.name}", env=env
        )
        local_cold = _cli("--no-cache", "summary", str(run), env=env)
        local_cache_cold = _cli(
            "--cache-dir", str(base / "cache-local"), "summary", str(run), env=env
        )
        local_warm = _cli("--cache-dir", str(base / "cache-local"), "summary", str(run), env=env)
    finally:
        server.stop()
    return {
        "s3_upload_s": round(upload_s, 3),
        "summary_local_no_cache_s": round(local_cold, 3),
        "summary_local_cold_cache_s": round(local_cache_cold, 3),
        "summary_local_cached_s": round(local_warm, 3),
        "summary_remote_cold_s": round(remote_cold, 3),
        "summary_remote_cached_s": round(remote_warm, 3),
        "remote_cold_vs_local_cold_cache": round(remote_cold / local_cache_cold, 2),
        "remote_cached_vs_local_cached": round(remote_warm / local_warm, 2),
    }


if __name__ == "__main__":
    main()
