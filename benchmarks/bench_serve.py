"""`gemmalog serve` costs: page data over a large run, live latency, and the server's CPU
while browsers watch a run that trains.

The run is bench_queries' generated run (100 events a step: 32 completions of 1 KB, 61
metrics events, rewards, generation and system events), its query cache built first (a
warm cache, as after any earlier `gemmalog` command or page view). The server runs as
`python -m gemmalog serve` in its own process; the clients are httpx in this one.

* **page data**: ``/api/runs`` (the runs page), ``/api/runs/<id>`` + ``/metrics`` (the run
  page; the first request opens the run's connection), ``/completions?step=N`` (one step's
  rollouts), ``/doctor``; each the median of several requests, the first one apart. The run
  page is also opened once from a second server process (``run_page_next_server_s``: what
  it costs once the run's curves and summary are kept in the query cache).
* **live**: one step (100 events) appended and flushed; the time until a client watching
  the stream has the step's new metrics (the page's path: the ``change`` event, then
  ``/metrics?since_step=``). Median of ``--appends``.
* **watchers**: ``--clients`` streams on the run while a writer appends one step a second
  for ``--seconds``; on each change a client fetches the new metrics and the newest step's
  completions, as the run and rollouts pages do. The server's CPU time over the wall time.

    python benchmarks/bench_serve.py --steps 10000      # 1,000,000 events
    python benchmarks/bench_serve.py --steps 1000 --seconds 20
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_queries import generate

REPO = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(root: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "gemmalog", "serve", str(root), "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            httpx.get(url + "/static/style.css", timeout=1)
            return proc, url
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("the server did not start")


def _timed(client: httpx.Client, path: str, repeat: int = 5) -> dict[str, float]:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        answer = client.get(path)
        times.append(time.perf_counter() - t0)
        answer.raise_for_status()
    return {"first_s": times[0], "median_s": statistics.median(times[1:] or times)}


class Watcher(threading.Thread):
    """One browser: a stream on the run; on each change the new metrics and the newest step."""

    def __init__(self, url: str, run: str, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.url, self.run_id, self.stop = url, run, stop
        self.seen: list[float] = []  # when each change's new data had arrived
        self.last_step = 0
        self.errors: list[str] = []

    def run_once(self, client: httpx.Client) -> None:
        since = {"since_step": self.last_step - 1} if self.last_step else {}  # a page's first load
        metrics = client.get(f"/api/runs/{self.run_id}/metrics", params=since).json()
        self.last_step = metrics["last_step"] or self.last_step
        client.get(f"/api/runs/{self.run_id}/completions", params={"step": self.last_step})
        self.seen.append(time.monotonic())

    def run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=60) as client:
            try:
                self.run_once(client)
                with client.stream("GET", "/api/stream", params={"run": self.run_id}) as events:
                    for line in events.iter_lines():
                        if self.stop.is_set():
                            return
                        if line.startswith("event: change"):
                            self.run_once(client)
            except (httpx.HTTPError, ValueError) as exc:
                if not self.stop.is_set():  # the server stopping at the end is no error
                    self.errors.append(repr(exc))


def _append_step(run_dir: Path, step: int) -> None:
    generate(run_dir, 1, start=step)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10_000, help="steps of 100 events")
    parser.add_argument("--appends", type=int, default=10, help="live-latency samples")
    parser.add_argument("--clients", type=int, default=5, help="watching browsers")
    parser.add_argument("--seconds", type=float, default=30.0, help="watching time")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = parser.parse_args()

    base = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    root = base / "runs"
    run_dir = root / "bench-run"
    out: dict[str, Any] = {"steps": args.steps, "events": args.steps * 100}
    try:
        t0 = time.perf_counter()
        out["shard_mb"] = generate(run_dir, args.steps) / 2**20
        out["generate_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "gemmalog", "cache", "build", str(run_dir)],
            env={**os.environ, "PYTHONPATH": str(REPO)},
            check=True,
            stdout=subprocess.DEVNULL,
        )
        out["cache_build_s"] = time.perf_counter() - t0
        proc, url = _start(root)
        try:
            server = psutil.Process(proc.pid)
            with httpx.Client(base_url=url, timeout=600) as client:
                t0 = time.perf_counter()
                runs = client.get("/api/runs").json()["runs"]
                out["runs_page_cold_s"] = time.perf_counter() - t0
                run = runs[0]["run"]
                out["runs_page"] = _timed(client, "/api/runs")
                detail = _timed(client, f"/api/runs/{run}")
                curves = _timed(client, f"/api/runs/{run}/metrics")
                out["run_page"] = {
                    "first_s": detail["first_s"] + curves["first_s"],
                    "median_s": detail["median_s"] + curves["median_s"],
                }
                # the same page from a second server (a restart, another user): the run's
                # curves and summary are read back from the query cache
                other, other_url = _start(root)
                try:
                    with httpx.Client(base_url=other_url, timeout=600) as again:
                        t0 = time.perf_counter()
                        again.get(f"/api/runs/{run}").raise_for_status()
                        again.get(f"/api/runs/{run}/metrics").raise_for_status()
                        out["run_page_next_server_s"] = time.perf_counter() - t0
                finally:
                    other.terminate()
                    other.wait(timeout=30)
                out["rollouts_step"] = _timed(
                    client, f"/api/runs/{run}/completions?step={args.steps // 2}"
                )
                out["doctor"] = _timed(client, f"/api/runs/{run}/doctor", repeat=2)

                # live: append a step, wait for the stream, then fetch what is new
                latencies = []
                step = args.steps
                with client.stream("GET", "/api/stream", params={"run": run}) as events:
                    lines = events.iter_lines()
                    next(line for line in lines if line.startswith("event: hello"))
                    for _ in range(args.appends):
                        time.sleep(0.5)
                        t0 = time.perf_counter()
                        _append_step(run_dir, step)
                        next(line for line in lines if line.startswith("event: change"))
                        got = client.get(
                            f"/api/runs/{run}/metrics", params={"since_step": step - 1}
                        ).json()
                        latencies.append(time.perf_counter() - t0)
                        assert got["last_step"] == step, got["last_step"]
                        step += 1
                out["live_latency"] = {
                    "median_s": statistics.median(latencies),
                    "max_s": max(latencies),
                }

            # watchers: N browsers on the run while it gains a step a second
            stop = threading.Event()
            watchers = [Watcher(url, run, stop) for _ in range(args.clients)]
            for w in watchers:
                w.start()
            time.sleep(2)
            cpu0 = sum(server.cpu_times()[:2])
            wall0 = time.monotonic()
            while time.monotonic() - wall0 < args.seconds:
                tick = time.monotonic()
                _append_step(run_dir, step)
                step += 1
                time.sleep(max(0.0, 1.0 - (time.monotonic() - tick)))
            cpu = sum(server.cpu_times()[:2]) - cpu0
            wall = time.monotonic() - wall0
            stop.set()
            for w in watchers:
                w.join(timeout=5)
            out["watchers"] = {
                "clients": args.clients,
                "seconds": wall,
                "server_cpu_percent_of_a_core": 100 * cpu / wall,
                "updates_per_client": [len(w.seen) for w in watchers],
                "errors": [e for w in watchers for e in w.errors],
            }
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    text = json.dumps(out, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
