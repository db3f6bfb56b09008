"""The training thread's cost of one reward batch: two gemmalog trees compared, rounds alternating.

One reward batch is what TRL's ``_calculate_rewards`` does for one generation: every wrapped
reward function called once with the same completions (here two functions, 8 conversational
completions of about 2 KB each, with the question, answer and token-id columns). The cost is
the CPU time of the calling thread (``time.thread_time_ns``) across those calls: the reward
functions' own work, the collector's bookkeeping and the hand-over of the batch to the queue.
Everything else (the listener's expansion, the writing) runs on other threads and is not
counted.

Each tree runs in a worker process of its own (``PYTHONPATH`` set to the tree); the driver
asks them for one round at a time, alternating, so both see the same machine load. Each
round times ``--batches`` batches and reports the median; the table gives the median of the
rounds' medians, and the quartiles.

    python benchmarks/bench_reward_handover.py --tree old=/tmp/base --tree new=. --rounds 200
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

SAMPLES = 8
TEXT = 2048


def _completions(round_: int) -> list[Any]:
    """8 conversational completions of about 2 KB; new objects each batch, as TRL's are."""
    body = ("step by step, " * (TEXT // 14))[: TEXT - 40]
    return [
        [
            {
                "role": "assistant",
                "content": f"<reasoning>{body}{round_}</reasoning><answer>{i % 3}</answer>",
            }
        ]
        for i in range(SAMPLES)
    ]


def correctness(prompts: Any, completions: Any, answer: Any, **kwargs: Any) -> list[float]:
    return [
        2.0 if f"<answer>{a}</answer>" in c[0]["content"] else 0.0
        for c, a in zip(completions, answer, strict=True)
    ]


def formatted(prompts: Any, completions: Any, **kwargs: Any) -> list[float]:
    return [0.5 if "</reasoning><answer>" in c[0]["content"] else 0.0 for c in completions]


def _worker(batches: int) -> None:
    import time

    import gemmalog
    from gemmalog.integrations.rewards import RewardCollector, wrap_reward_functions

    print(json.dumps({"gemmalog": gemmalog.__file__}), flush=True)
    root = tempfile.mkdtemp(prefix="bench-reward-")
    gemmalog.initialize(root=root, run_name="bench")
    funcs = wrap_reward_functions([correctness, formatted], RewardCollector())
    prompts = [[{"role": "user", "content": f"What is {i} mod 3?"}] for i in range(SAMPLES)]
    columns = {
        "answer": [str(i % 3) for i in range(SAMPLES)],
        "question": [f"What is {i} mod 3?" for i in range(SAMPLES)],
        "completion_ids": [list(range(600)) for _ in range(SAMPLES)],
    }
    step = 0
    for line in sys.stdin:
        if line.strip() != "round":
            break
        times = []
        for _ in range(batches):
            completions = _completions(step)
            state = SimpleNamespace(global_step=step)
            start = time.thread_time_ns()
            for f in funcs:
                f(prompts=prompts, completions=completions, trainer_state=state, **columns)
            times.append(time.thread_time_ns() - start)
            step += 1
        gemmalog.flush()  # the listener catches up outside the timed calls
        print(json.dumps({"median_ns": statistics.median(times)}), flush=True)
    gemmalog.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tree", action="append", default=[], help="label=path of a tree")
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--batches", type=int, default=5, help="batches timed per round")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        _worker(args.batches)
        return
    if not args.tree:
        parser.error("give at least one --tree label=path")
    workers = {}
    for spec in args.tree:
        label, _, path = spec.partition("=")
        env = {**os.environ, "PYTHONPATH": str(Path(path).resolve())}
        proc = subprocess.Popen(
            [sys.executable, __file__, "--worker", "--batches", str(args.batches)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert proc.stdout is not None and proc.stdin is not None
        print(f"{label}: {json.loads(proc.stdout.readline())['gemmalog']}")
        workers[label] = proc
    results: dict[str, list[float]] = {label: [] for label in workers}
    for r in range(args.rounds):
        order = list(workers) if r % 2 == 0 else list(reversed(workers))
        for label in order:
            proc = workers[label]
            proc.stdin.write("round\n")  # type: ignore[union-attr]
            proc.stdin.flush()  # type: ignore[union-attr]
            results[label].append(json.loads(proc.stdout.readline())["median_ns"])  # type: ignore[union-attr]
    for proc in workers.values():
        proc.stdin.close()  # type: ignore[union-attr]
        proc.wait()
    print(f"{args.rounds} rounds x {args.batches} batches; training-thread CPU per reward batch")
    print("tree   median_us   q1_us   q3_us")
    for label, values in results.items():
        q1, med, q3 = statistics.quantiles(values, n=4)
        print(f"{label:6} {med / 1e3:9.1f} {q1 / 1e3:7.1f} {q3 / 1e3:7.1f}")


if __name__ == "__main__":
    main()
