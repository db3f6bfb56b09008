"""Caller-thread cost, end-to-end throughput, import time and memory of gemmalog's hot path.

Compared in the same process, alternating, against:
- raw floor: ``orjson.dumps`` + buffered ``file.write`` inline on the caller;
- hand-off floor: the envelope and a copy of the metrics on the caller, a ``deque`` to a
  thread that renders and writes, nothing else: what any design that moves rendering and
  I/O off the caller's thread pays at least, in Python;
- naive: structlog -> stdlib Logger -> ``QueueHandler`` -> ``QueueListener`` -> ``FileHandler``
  (the textbook form of this design, JSON rendered by structlog's JSONRenderer);
- stdlib: ``logging.FileHandler`` with a ``json.dumps`` formatter, inline.

Method: each contender logs N calls of a 20-float-metric step (and of a ~2 KB model output)
in rounds; per call cost is timed with ``perf_counter_ns`` around the call; the median, p99
and p99.9 of all calls are reported, then the median over rounds (N is large enough for the
p99.9 to be a few dozen calls, not the one slowest). Throughput is events/s until the last
line is durable in the file (flushed), with the CPU it took per event summed over all the
process's threads (the caller's, the listener's, a sink's writer thread); CPU per event is
also measured the way a training loop logs: bursts of 100 events with a few milliseconds
idle between them, from the first log call through ``shutdown()``.
Run: ``python benchmarks/bench_hot_path.py``.
"""

from __future__ import annotations

import argparse
import collections
import gc
import json
import logging
import logging.handlers
import os
import platform
import queue
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import structlog

import gemmalog

METRICS = {f"metric_{i}": 0.1 * i + 0.001 for i in range(20)}
TEXT = ("The model reasons step by step about the arithmetic problem, " * 34)[:2000]


class Contender:
    name = ""

    def setup(self, directory: Path) -> None: ...
    def step(self, i: int) -> None: ...
    def output(self, i: int) -> None: ...
    def finish(self) -> None: ...


class RawFloor(Contender):
    name = "raw floor (orjson + buffered write, inline)"

    def setup(self, directory: Path) -> None:
        self.file = open(directory / "raw.jsonl", "ab")  # noqa: SIM115

    def step(self, i: int) -> None:
        self.file.write(
            orjson.dumps({"ts": time.time(), "kind": "metrics", "step": i, "metrics": METRICS})
            + b"\n"
        )

    def output(self, i: int) -> None:
        self.file.write(
            orjson.dumps(
                {
                    "ts": time.time(),
                    "kind": "model_output",
                    "step": i,
                    "question": "q",
                    "model_output": TEXT,
                    "rewards": {"a": 1.0},
                }
            )
            + b"\n"
        )

    def finish(self) -> None:
        self.file.flush()
        self.file.close()


class HandoffFloor(Contender):
    """The least any design of this shape can cost: the caller builds the envelope (and copies
    the metrics, as the caller may change its dict after the call) and appends it to a deque;
    a thread renders and writes. No sanitizing, redaction, schema, routing, level checks,
    drop accounting or loss window: a bound for gemmalog, not a logger anyone should use."""

    name = "hand-off floor (envelope, deque, a writer thread; nothing else)"

    def setup(self, directory: Path) -> None:
        self.file = open(directory / "handoff.jsonl", "ab")  # noqa: SIM115
        self.events: collections.deque[dict[str, Any]] = collections.deque()
        self.wake = threading.Event()
        self.done = False
        self.thread = threading.Thread(target=self._drain, daemon=True)
        self.thread.start()

    def _put(self, event: dict[str, Any]) -> None:
        self.events.append(event)
        if len(self.events) >= 64 and not self.wake.is_set():  # set() takes a lock
            self.wake.set()

    def step(self, i: int) -> None:
        self._put(
            {
                "ts": time.time(),
                "kind": "metrics",
                "logger": "gemmalog.metrics",
                "level": "info",
                "run": "bench",
                "rank": 0,
                "step": i,
                "phase": "train",
                "metrics": dict(METRICS),
            }
        )

    def output(self, i: int) -> None:
        self._put(
            {
                "ts": time.time(),
                "kind": "model_output",
                "logger": "gemmalog.model",
                "level": "info",
                "run": "bench",
                "rank": 0,
                "step": i,
                "question": "q",
                "model_output": TEXT,
                "rewards": {"a": 1.0},
            }
        )

    def _drain(self) -> None:
        events, write = self.events, self.file.write
        while True:
            self.wake.wait(0.5)
            self.wake.clear()
            lines = []
            while events:
                lines.append(orjson.dumps(events.popleft()) + b"\n")
            if lines:
                write(b"".join(lines))
            if self.done and not events:
                return

    def finish(self) -> None:
        self.done = True
        self.wake.set()
        self.thread.join()
        self.file.close()


class Naive(Contender):
    name = "naive structlog -> stdlib QueueHandler -> QueueListener"

    def setup(self, directory: Path) -> None:
        self.q: queue.Queue[Any] = queue.Queue(-1)
        handler = logging.FileHandler(directory / "naive.jsonl")
        handler.setFormatter(logging.Formatter("%(message)s"))
        self.listener = logging.handlers.QueueListener(self.q, handler)
        self.listener.start()
        std = logging.getLogger("bench.naive")
        std.handlers[:] = [logging.handlers.QueueHandler(self.q)]
        std.propagate = False
        std.setLevel(logging.INFO)
        self.log = structlog.wrap_logger(
            std,
            processors=[
                structlog.stdlib.add_log_level,
                structlog.processors.TimeStamper(fmt=None),
                structlog.processors.JSONRenderer(
                    serializer=lambda o, **kw: orjson.dumps(o).decode()
                ),
            ],
            wrapper_class=structlog.stdlib.BoundLogger,
        )

    def step(self, i: int) -> None:
        self.log.info("metrics", step=i, metrics=METRICS)

    def output(self, i: int) -> None:
        self.log.info("model_output", step=i, question="q", model_output=TEXT, rewards={"a": 1.0})

    def finish(self) -> None:
        self.listener.stop()
        for h in self.listener.handlers:
            h.close()


class Stdlib(Contender):
    name = "stdlib FileHandler + json formatter, inline"

    def setup(self, directory: Path) -> None:
        class JsonFormatter(logging.Formatter):
            def format(self, record: logging.LogRecord) -> str:
                return json.dumps(
                    {
                        "ts": record.created,
                        "event": record.getMessage(),
                        **record.__dict__.get("fields", {}),
                    }
                )

        self.handler = logging.FileHandler(directory / "stdlib.jsonl")
        self.handler.setFormatter(JsonFormatter())
        self.logger = logging.getLogger("bench.stdlib")
        self.logger.handlers[:] = [self.handler]
        self.logger.propagate = False
        self.logger.setLevel(logging.INFO)

    def step(self, i: int) -> None:
        self.logger.info("metrics", extra={"fields": {"step": i, "metrics": METRICS}})

    def output(self, i: int) -> None:
        self.logger.info(
            "model_output", extra={"fields": {"step": i, "question": "q", "model_output": TEXT}}
        )

    def finish(self) -> None:
        self.handler.close()


class Gemmalog(Contender):
    name = "gemmalog (default chain, block policy)"

    def setup(self, directory: Path) -> None:
        # The default configuration: JSONL for everything, console for training/system.
        gemmalog.initialize(root=str(directory / "gemmalog"), capture_stdlib=False)

    def step(self, i: int) -> None:
        gemmalog.log_training_progress(step=i, metrics=METRICS)

    def output(self, i: int) -> None:
        gemmalog.log_model_output(
            question="q", true_answer="4", model_output=TEXT, rewards={"a": 1.0}, step=i
        )

    def finish(self) -> None:
        gemmalog.shutdown()


class GemmalogSeed(Gemmalog):
    name = "gemmalog (seed configuration: file, CSV, TensorBoard too)"

    def setup(self, directory: Path) -> None:
        config = Path(__file__).resolve().parents[1] / "configs" / "gemma_logging.yaml"
        gemmalog.initialize(str(config), root=str(directory / "gemmalog"), capture_stdlib=False)


def time_calls(call: Callable[[int], None], n: int, pause: float) -> list[int]:
    samples = []
    clock = time.perf_counter_ns
    for i in range(n):
        t0 = clock()
        call(i)
        samples.append(clock() - t0)
        if pause:
            time.sleep(pause)
    return samples


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def alternating(
    contenders: list[type[Contender]],
    rounds: int,
    measure: Callable[[Contender], tuple[float, ...]],
) -> dict[str, list[tuple[float, ...]]]:
    """``measure`` of each contender, set up afresh in a temporary folder and finished by
    ``measure`` itself, round after round in alternating order: each contender's figures."""
    per: dict[str, list[tuple[float, ...]]] = {c.name: [] for c in contenders}
    for r in range(rounds):
        order = contenders if r % 2 == 0 else list(reversed(contenders))
        for cls in order:
            with tempfile.TemporaryDirectory() as tmp:
                c = cls()
                c.setup(Path(tmp))
                per[cls.name].append(measure(c))
    return per


def medians(
    per: dict[str, list[tuple[float, ...]]], names: tuple[str, ...]
) -> dict[str, dict[str, float]]:
    """Per contender, the median over rounds of each figure, named."""
    return {
        contender: {name: statistics.median(v[i] for v in vals) for i, name in enumerate(names)}
        for contender, vals in per.items()
    }


def run_latency(
    contenders: list[type[Contender]], method: str, n: int, rounds: int, pause: float
) -> dict[str, dict[str, float]]:
    def measure(c: Contender) -> tuple[float, ...]:
        gc.collect()
        gc.disable()
        samples = time_calls(getattr(c, method), n, pause)
        gc.enable()
        c.finish()
        us = [s / 1000 for s in samples[n // 10 :]]  # drop warm-up
        median, p999 = statistics.median(us), percentile(us, 0.999)
        # The tail relative to the same round's median (then the median over rounds).
        return (median, percentile(us, 0.99), p999, p999 / median)

    per = alternating(contenders, rounds, measure)
    return medians(per, ("median_us", "p99_us", "p999_us", "p999_over_median"))


def run_throughput(
    contenders: list[type[Contender]], n: int, rounds: int
) -> dict[str, dict[str, float]]:
    """Events/s of a tight loop until flushed and closed, and the CPU it took per event.

    ``cpu_us``: process CPU (all threads) per event; ``caller_cpu_us``: the calling thread's
    share. Each contender's threads have ended before the next one starts.
    """

    def measure(c: Contender) -> tuple[float, ...]:
        cpu0, own0 = time.process_time(), time.thread_time()
        t0 = time.perf_counter()
        for i in range(n):
            c.step(i)
        c.finish()  # flushes and closes: durable in the file (page cache)
        elapsed = time.perf_counter() - t0
        cpu, own = time.process_time() - cpu0, time.thread_time() - own0
        return (n / elapsed, cpu / n * 1e6, own / n * 1e6)

    per = alternating(contenders, rounds, measure)
    return medians(per, ("events_per_s", "cpu_us", "caller_cpu_us"))


def run_cpu_bursts(
    contenders: list[type[Contender]], n: int, rounds: int, burst: int = 100, idle: float = 0.003
) -> dict[str, dict[str, float]]:
    """CPU per event as a training loop logs: ``burst`` events, ``idle`` s asleep, and so on,
    from the first log call through ``finish()`` (shutdown), process CPU of all threads."""

    def measure(c: Contender) -> tuple[float, ...]:
        cpu0, own0 = time.process_time(), time.thread_time()
        i = 0
        while i < n:
            for _ in range(burst):
                c.step(i)
                i += 1
            time.sleep(idle)
        c.finish()
        cpu, own = time.process_time() - cpu0, time.thread_time() - own0
        return (cpu / i * 1e6, own / i * 1e6)

    per = alternating(contenders, rounds, measure)
    return medians(per, ("cpu_us", "caller_cpu_us"))


def caller_only(rounds: int, n: int = 1000, batches: int = 100) -> dict[str, float]:
    """The caller's own work, with gemmalog's listener paused: no GIL contention from it.

    The queue is emptied between batches of ``n`` calls (the events are discarded: this
    measures the caller, not delivery), so memory stays flat as in the floor's case.
    """
    from gemmalog import running

    out: dict[str, list[float]] = {"raw floor": [], "gemmalog": []}
    for _ in range(rounds):
        with tempfile.TemporaryDirectory() as tmp:
            floor = RawFloor()
            floor.setup(Path(tmp))
            # A flush interval longer than the measurement: the queue's time bound (callers
            # wait while the listener trails by 1.5 intervals) never applies while the
            # listener is paused.
            gemmalog.initialize(root=tmp, capture_stdlib=False, flush_interval=3600)
            pipeline = running()
            assert pipeline is not None
            pipeline.listener.stop()
            for name, call in (("raw floor", floor.step), ("gemmalog", Gemmalog().step)):
                per = []
                gc.disable()
                for _ in range(batches):
                    t0 = time.perf_counter_ns()
                    for i in range(n):
                        call(i)
                    per.append((time.perf_counter_ns() - t0) / n / 1000)
                    pipeline.queue._dq.clear()
                gc.enable()
                out[name].append(statistics.median(per))
            # The stopped listener took the sentinel: a restarted one must not stop at once
            # (shutdown's flush would then wait its whole timeout for nobody).
            pipeline.queue._sentinel_seen = False
            pipeline.listener.start()
            gemmalog.shutdown()
            floor.finish()
    return {name: statistics.median(v) for name, v in out.items()}


def import_time() -> float:
    code = "import time; t=time.perf_counter(); import gemmalog, sys; d=time.perf_counter()-t; assert 'torch' not in sys.modules; print(d)"
    times = [
        float(subprocess.check_output([sys.executable, "-c", code], text=True)) for _ in range(5)
    ]
    return statistics.median(times) * 1000


def rss_growth(n: int) -> tuple[float, float]:
    code = f"""
import psutil, gemmalog, tempfile, gc
p = psutil.Process()
with tempfile.TemporaryDirectory() as tmp:
    gemmalog.initialize(root=tmp, capture_stdlib=False)
    metrics = {{f"metric_{{i}}": 0.1 * i for i in range(20)}}
    for i in range(2000):
        gemmalog.log_training_progress(step=i, metrics=metrics)
    gemmalog.flush(); gc.collect()
    before = p.memory_info().rss
    peak = before
    for i in range({n}):
        gemmalog.log_training_progress(step=i, metrics=metrics)
        if i % 50000 == 0:
            peak = max(peak, p.memory_info().rss)
    gemmalog.flush(); gc.collect()
    peak = max(peak, p.memory_info().rss)
    after = p.memory_info().rss
    gemmalog.shutdown()
print((after - before) / 2**20, (peak - before) / 2**20)
"""
    out = subprocess.check_output([sys.executable, "-c", code], text=True).split()
    return float(out[0]), float(out[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # Enough calls for the p99.9 to be the 30th slowest of the tight loop's measured calls
    # and the 9th of the paced loop's (the first tenth of each round is warm-up).
    parser.add_argument("--calls", type=int, default=33000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--paced-calls", type=int, default=10000)
    parser.add_argument("--burst-events", type=int, default=20000)
    parser.add_argument("--rss-events", type=int, default=1_000_000)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    contenders: list[type[Contender]] = [
        RawFloor,
        HandoffFloor,
        Gemmalog,
        GemmalogSeed,
        Naive,
        Stdlib,
    ]
    results: dict[str, Any] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "versions": {
            "gemmalog": gemmalog.__version__,
            "structlog": structlog.__version__,
            "orjson": orjson.__version__,
        },
    }
    results["step_tight"] = run_latency(contenders, "step", args.calls, args.rounds, 0.0)
    results["step_paced_1ms"] = run_latency(
        contenders, "step", args.paced_calls, args.rounds, 0.001
    )
    results["model_output_tight"] = run_latency(
        contenders, "output", args.calls // 4, args.rounds, 0.0
    )
    results["throughput"] = run_throughput(contenders, args.calls * 3, args.rounds)
    results["cpu_bursts"] = run_cpu_bursts(contenders, args.burst_events, args.rounds)
    results["step_caller_only"] = caller_only(args.rounds)
    results["import_ms"] = import_time()
    if args.rss_events:
        growth, peak = rss_growth(args.rss_events)
        results["rss_growth_mb"] = {"events": args.rss_events, "after_flush": growth, "peak": peak}
    floor = RawFloor.name
    naive = Naive.name
    g = Gemmalog.name
    for table in ("step_tight", "step_paced_1ms", "model_output_tight"):
        print(f"\n## {table}: caller-thread µs per call (median of {args.rounds} rounds)")
        print(
            "| contender | median µs | p99 µs | p99.9 µs | p99.9 × own median | "
            "× raw floor | × naive |"
        )
        print("|---|---:|---:|---:|---:|---:|---:|")
        for name, v in results[table].items():
            f = v["median_us"] / results[table][floor]["median_us"]
            nv = v["median_us"] / results[table][naive]["median_us"]
            print(
                f"| {name} | {v['median_us']:.2f} | {v['p99_us']:.2f} | {v['p999_us']:.1f} | "
                f"{v['p999_over_median']:.1f} | {f:.2f} | {nv:.2f} |"
            )
    co = results["step_caller_only"]
    print(
        "\n## step, caller's own work (gemmalog's listener paused; mean µs per call in batches of 1,000)"
    )
    print(
        f"raw floor {co['raw floor']:.2f} µs, gemmalog {co['gemmalog']:.2f} µs: {co['gemmalog'] / co['raw floor']:.2f} × the floor"
    )
    tp = results["throughput"]
    print(
        "\n## end-to-end throughput (20-metric steps in a tight loop until flushed and closed);"
        " CPU µs per event, all threads"
    )
    print("| contender | events/s | × raw floor | CPU µs/event | of which caller | × raw floor |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, v in tp.items():
        print(
            f"| {name} | {v['events_per_s']:,.0f} | "
            f"{v['events_per_s'] / tp[floor]['events_per_s']:.2f} | {v['cpu_us']:.2f} | "
            f"{v['caller_cpu_us']:.2f} | {v['cpu_us'] / tp[floor]['cpu_us']:.2f} |"
        )
    cb = results["cpu_bursts"]
    print(
        f"\n## CPU µs per event, bursts of 100 steps 3 ms apart, first call through shutdown "
        f"({args.burst_events:,} events; process CPU, all threads)"
    )
    print("| contender | CPU µs/event | of which caller | × raw floor |")
    print("|---|---:|---:|---:|")
    for name, v in cb.items():
        print(
            f"| {name} | {v['cpu_us']:.2f} | {v['caller_cpu_us']:.2f} | "
            f"{v['cpu_us'] / cb[floor]['cpu_us']:.2f} |"
        )
    print(
        f"\nimport gemmalog: {results['import_ms']:.0f} ms (median of 5 fresh interpreters; torch not imported)"
    )
    if "rss_growth_mb" in results:
        r = results["rss_growth_mb"]
        print(
            f"RSS growth over {r['events']:,} events (block policy): {r['after_flush']:.1f} MB after flush, peak +{r['peak']:.1f} MB"
        )
    print(
        f"\n{results['machine']}; gemmalog target: step median ≤ 1.5× floor and ≤ 0.3× naive -> "
        f"{results['step_tight'][g]['median_us'] / results['step_tight'][floor]['median_us']:.2f}× floor, "
        f"{results['step_tight'][g]['median_us'] / results['step_tight'][naive]['median_us']:.2f}× naive"
    )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
