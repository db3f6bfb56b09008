"""CPU of the listener's sinks with the seed configuration, against the raw floor.

What is measured: gemmalog runs ``configs/gemma_logging.yaml`` (JSONL + console + rotating
text file + CSV + TensorBoard). Events come in bursts of 100 (``log_training_progress`` with
20 float metrics, or ``log_model_output`` with ~2 KB of text) followed by a few ms of idle
time in which the listener drains them, as in a training loop. The raw floor
(``orjson.dumps`` + buffered ``file.write`` inline) runs the same bursts in the same process,
alternating burst by burst.

Reported per event:

- **total**: CPU of every thread but the caller over the round (``time.process_time`` less
  the calling thread's ``thread_time``: the listener, any writer thread, including work that
  finishes after a burst), plus the caller's own log calls and one ``gemmalog.flush()`` per
  round (so buffered sinks pay for their writes). The harness's sleeps and polling on the
  calling thread are left out; they are no part of logging;
- **per thread**: each thread's CPU clock (``pthread_getcpuclockid``);
- **per sink**: ``time.thread_time`` around every ``write``/``flush``/``flush_now`` call of
  each sink, on the listener thread; "listener, other" is the listener thread's CPU outside
  the sinks (queue, processors such as redaction, rendering, routing).

Median over rounds. The console is redirected to a file so a terminal's speed is not measured.
Run: ``python benchmarks/bench_sinks.py [--rounds 7] [--bursts 20] [--json out.json]``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import platform
import statistics
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson

import gemmalog
from gemmalog import running
from gemmalog.engine._pipeline import Pipeline

ROOT = Path(__file__).resolve().parent.parent
SEED = ROOT / "configs" / "gemma_logging.yaml"
METRICS = {f"metric_{i}": 0.1 * i + 0.001 for i in range(20)}
TEXT = ("The model reasons step by step about the arithmetic problem, " * 34)[:2000]
BURST = 100
IDLE_S = 0.004


def thread_clocks() -> dict[int, tuple[str, float]]:
    """CPU seconds of every live thread: ident -> (name, seconds)."""
    out: dict[int, tuple[str, float]] = {}
    for t in threading.enumerate():
        if t.ident is None:
            continue
        try:
            out[t.ident] = (t.name, time.clock_gettime(time.pthread_getcpuclockid(t.ident)))
        except (OSError, AttributeError):  # the thread ended meanwhile, or not Linux
            continue
    return out


class SinkClock:
    """``thread_time`` spent in each sink's methods, wrapped on the instance."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.spent: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)  # write calls: the batches a sink got
        for sink in pipeline.listener.sinks:
            for method in ("write", "flush", "flush_now"):
                if hasattr(sink, method):
                    setattr(sink, method, self._timed(sink.name, getattr(sink, method)))

    def _timed(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        spent = self.spent
        clock = time.thread_time

        calls = self.calls

        def timed(*args: Any) -> Any:
            if args:  # write(batch)
                calls[name] += 1
            t0 = clock()
            try:
                return fn(*args)
            finally:
                spent[name] += clock() - t0

        return timed

    def snapshot(self) -> dict[str, float]:
        return dict(self.spent)


class Floor:
    """orjson.dumps + buffered write, inline: the least any JSON logger can do."""

    def __init__(self, directory: Path) -> None:
        self.file = open(directory / "floor.jsonl", "ab")  # noqa: SIM115 - closed in close()

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
                    "question": "What is 12 * 7?",
                    "true_answer": "84",
                    "model_output": TEXT,
                    "rewards": {"correctness": 1.0, "format": 0.5},
                }
            )
            + b"\n"
        )

    def close(self) -> None:
        self.file.close()


def gemmalog_step(i: int) -> None:
    gemmalog.log_training_progress(i, METRICS)


def gemmalog_output(i: int) -> None:
    gemmalog.log_model_output(
        "What is 12 * 7?",
        "84",
        TEXT,
        step=i // 8,
        rewards={"correctness": 1.0, "format": 0.5},
        correct=True,
    )


def drain(pipeline: Pipeline, target: int) -> None:
    """Sleep (no CPU) until the listener has taken ``target`` events off the queue."""
    while pipeline.listener.events_handled < target:
        time.sleep(0.001)


@contextlib.contextmanager
def console_to(path: Path) -> Iterator[None]:
    """The seed configuration's console writes to ``sys.stderr``: send it to a file."""
    saved = sys.stderr
    with open(path, "w", encoding="utf-8") as out:
        sys.stderr = out
        try:
            yield
        finally:
            sys.stderr = saved


def thread_label(pipeline: Pipeline, ident: int, name: str) -> str:
    listener = pipeline.listener._thread
    if listener is not None and ident == listener.ident:
        return "listener"
    if ident == threading.main_thread().ident:
        return "caller (and the floor's bursts)"
    return name


def one_round(
    pipeline: Pipeline, clock: SinkClock, floor: Floor, kind: str, bursts: int, first: int
) -> dict[str, Any]:
    """``bursts`` bursts of the floor and of gemmalog, alternating; CPU µs per event.

    The floor runs on the calling thread alone: ``thread_time`` around its bursts. gemmalog's
    CPU is the other threads' over the whole round (``process_time`` less the calling thread's
    ``thread_time``), plus the calling thread's log calls and final flush.
    """
    floor_fn = floor.step if kind == "step" else floor.output
    log_fn = gemmalog_step if kind == "step" else gemmalog_output
    floor_cpu = 0.0
    calls_cpu = 0.0  # the caller's own log calls (part of the caller thread's CPU)
    threads_before = thread_clocks()
    sinks_before = clock.snapshot()
    process_before = time.process_time()
    main_before = time.thread_time()
    i = first
    for _ in range(bursts):
        t0 = time.thread_time()
        for j in range(BURST):
            floor_fn(i + j)
        floor_cpu += time.thread_time() - t0
        time.sleep(IDLE_S)

        handled = pipeline.listener.events_handled + BURST
        t0 = time.thread_time()
        for j in range(BURST):
            log_fn(i + j)
        calls_cpu += time.thread_time() - t0
        time.sleep(IDLE_S)
        drain(pipeline, handled)
        i += BURST
    t0 = time.thread_time()
    gemmalog.flush()
    calls_cpu += time.thread_time() - t0
    floor.file.flush()
    time.sleep(IDLE_S)
    main_cpu = time.thread_time() - main_before
    gl_cpu = time.process_time() - process_before - main_cpu + calls_cpu
    events = bursts * BURST
    threads_after = thread_clocks()
    sinks_after = clock.snapshot()
    per_thread: dict[str, float] = {}
    for ident, (name, after) in threads_after.items():
        before = threads_before.get(ident, (name, 0.0))[1]
        label = thread_label(pipeline, ident, name)
        per_thread[label] = per_thread.get(label, 0.0) + (after - before) / events * 1e6
    per_sink = {
        name: (sinks_after.get(name, 0.0) - sinks_before.get(name, 0.0)) / events * 1e6
        for name in sinks_after
    }
    per_sink["listener, other"] = per_thread.get("listener", 0.0) - sum(per_sink.values())
    per_thread["caller: the log calls and flush alone"] = calls_cpu / events * 1e6
    return {
        "floor_us": floor_cpu / events * 1e6,
        "gemmalog_us": gl_cpu / events * 1e6,
        "threads_us": per_thread,
        "sinks_us": per_sink,
    }


def median_of(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    def med(values: list[float]) -> float:
        return statistics.median(values) if values else 0.0

    sink_names = sorted({k for r in rounds for k in r["sinks_us"]})
    thread_names = sorted({k for r in rounds for k in r["threads_us"]})
    out: dict[str, Any] = {
        "floor_us": med([r["floor_us"] for r in rounds]),
        "gemmalog_us": med([r["gemmalog_us"] for r in rounds]),
        "ratio": med([r["gemmalog_us"] / r["floor_us"] for r in rounds]),
        "sinks_us": {n: med([r["sinks_us"].get(n, 0.0) for r in rounds]) for n in sink_names},
        "threads_us": {n: med([r["threads_us"].get(n, 0.0) for r in rounds]) for n in thread_names},
    }
    return out


def run(rounds: int, bursts: int, config: Path) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        with console_to(directory / "console.txt"):
            gemmalog.initialize(config, root=directory / "runs")
            pipeline = running()
            assert pipeline is not None
            clock = SinkClock(pipeline)
            floor = Floor(directory)
            try:
                i = 0
                for kind in ("step", "output"):
                    one_round(pipeline, clock, floor, kind, 3, i)  # warm-up
                    i += 3 * BURST
                    measured = []
                    for _ in range(rounds):
                        measured.append(one_round(pipeline, clock, floor, kind, bursts, i))
                        i += bursts * BURST
                    results[kind] = median_of(measured)
            finally:
                floor.close()
                gemmalog.shutdown()
    return results


def table(results: dict[str, Any]) -> str:
    out = io.StringIO()
    titles = {"step": "20-scalar event", "output": "2 KB completion record"}
    for kind, res in results.items():
        out.write(f"\n## {titles[kind]}: CPU µs per event (median of rounds)\n")
        out.write("| what | µs | × floor |\n|---|---:|---:|\n")
        floor = res["floor_us"]
        out.write(f"| raw floor (orjson + buffered write) | {floor:.2f} | 1.00 |\n")
        out.write(
            f"| **gemmalog, all threads** | **{res['gemmalog_us']:.2f}** | **{res['ratio']:.2f}** |\n"
        )
        for name, us in sorted(res["threads_us"].items(), key=lambda kv: -kv[1]):
            if us >= 0.01:
                out.write(f"| thread {name} | {us:.2f} | {us / floor:.2f} |\n")
        for name, us in sorted(res["sinks_us"].items(), key=lambda kv: -kv[1]):
            out.write(f"| sink {name} | {us:.2f} | {us / floor:.2f} |\n")
    return out.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--bursts", type=int, default=20, help="bursts of 100 events per round")
    parser.add_argument("--config", type=Path, default=SEED)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    results = run(args.rounds, args.bursts, args.config)
    print(table(results))
    print(
        f"{platform.machine()}, Python {platform.python_version()}, "
        f"{args.rounds} rounds of {args.bursts} bursts of {BURST} events, {IDLE_S * 1e3:g} ms idle"
    )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
