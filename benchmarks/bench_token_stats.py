"""Per-token statistics (``log_token_stats``): what the forward hook costs a call, and what
joining ``token_stats`` into ``completions`` would cost its queries.

- The hook, on the training thread, one torch thread: a loss forward's call (the reductions
  over a micro-batch of ``--rows`` rows of ``--tokens`` tokens, CPU tensors) and any other
  forward's (generation's: the hook returns at once), plus what a registered hook costs
  torch's module call (its fast path is left), on a trivial module.
- The views: a generated run (``bench_queries.generate``, 100 events a step, no token
  statistics) queried through the query cache, ``completions`` against ``completions`` left
  joined with ``token_stats`` (what its queries would cost if the statistics were columns of
  it), alternating, median of ``--rounds``.

    python benchmarks/bench_token_stats.py --steps 1000,5000
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import types
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def _per_call(fn: object, calls: int, rounds: int = 5) -> float:
    """Median over ``rounds`` of the thread CPU µs a call of ``fn()``."""
    out = []
    for _ in range(rounds):
        t = time.thread_time()
        for _ in range(calls):
            fn()  # type: ignore[operator]
        out.append((time.thread_time() - t) / calls * 1e6)
    return statistics.median(out)


def hook_costs(rows: int, tokens: int) -> dict[str, float]:
    import torch

    from gemmalog.deferred import RewardBatch
    from gemmalog.integrations.token_stats import TokenStats

    torch.set_num_threads(1)
    collector = types.SimpleNamespace(latest=None)
    stats = TokenStats(collector)  # type: ignore[arg-type]
    stats._torch = torch
    module = types.SimpleNamespace(training=True)
    length = 4 * tokens
    labels = torch.full((rows, length), -100)
    labels[:, -tokens:] = torch.randint(0, 500, (rows, tokens))
    output = types.SimpleNamespace(
        log_probs=-torch.rand(rows, length - 1),
        entropy=torch.rand(rows, length - 1),
        label_mask=labels[:, 1:] != -100,
    )
    loss = {
        "input_ids": torch.randint(0, 500, (rows, length)),
        "attention_mask": torch.ones(rows, length, dtype=torch.long),
        "labels": labels,
        "fused_lm_head": True,
    }
    generation = {"input_ids": loss["input_ids"]}

    def new_batch() -> None:
        collector.latest = RewardBatch([0] * rows, None, 1, "train")

    def loss_call() -> None:
        new_batch()  # every call a first pass
        stats._observe(module, (), loss, output)

    def other_call() -> None:
        stats._observe(module, (), generation, output)

    linear, x = torch.nn.Linear(4, 4), torch.zeros(1, 4)
    bare = _per_call(lambda: linear(x), 20000)
    handle = linear.register_forward_hook(lambda *a: None, with_kwargs=True)
    hooked = _per_call(lambda: linear(x), 20000)
    handle.remove()
    with torch.enable_grad():
        return {
            "loss forward, µs": _per_call(loss_call, 2000) - _per_call(new_batch, 2000),
            "other forward, µs": _per_call(other_call, 200000),
            "torch's module call with a hook, µs more": hooked - bare,
        }


#: ``completions`` with the statistics joined in: what every ``completions`` query would cost
#: if they were columns of it (they are a view of their own, ``token_stats``).
JOINED = """
CREATE VIEW completions_joined AS
SELECT c.*, t.logp_mean, t.logp_min, t.entropy_mean
FROM completions c LEFT JOIN token_stats t USING (run, rank, phase, step, sample)
"""


def view_costs(steps: int, rounds: int) -> dict[str, tuple[float, float]]:
    import bench_queries

    from gemmalog.queries import connect

    queries = {
        "count": "SELECT count(*), avg(length), avg(total_reward) FROM {view}",
        "one step": "SELECT sample, model_output, rewards FROM {view} WHERE step = 500",
    }
    views = ("completions", "completions_joined")
    times: dict[tuple[str, str], list[float]] = {(q, v): [] for q in queries for v in views}
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        run.mkdir()
        bench_queries.generate(run, steps)
        connect(run).close()  # the query cache, built once
        for r in range(rounds):
            con = connect(run)
            con.execute(JOINED)
            for view in views if r % 2 else views[::-1]:
                for name, sql in queries.items():
                    t = time.perf_counter()
                    con.execute(sql.format(view=view)).fetchall()
                    times[(name, view)].append(time.perf_counter() - t)
            con.close()
    return {
        name: tuple(1000 * statistics.median(times[(name, v)]) for v in views)  # type: ignore[misc]
        for name in queries
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=4)
    parser.add_argument("--tokens", type=int, default=30)
    parser.add_argument(
        "--steps", default="1000", help="comma-separated run sizes (100 events a step)"
    )
    parser.add_argument(
        "--base", default="ffb48ee", help="git revision of the view without the join"
    )
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    for name, value in hook_costs(args.rows, args.tokens).items():
        print(f"hook: {name}: {value:.2f}")
    for steps in (int(s) for s in args.steps.split(",")):
        for name, (plain, joined) in view_costs(steps, args.rounds).items():
            print(
                f"view, {100 * steps:,} events, {name}: completions {plain:.1f} ms, "
                f"joined with token_stats {joined:.1f} ms"
            )


if __name__ == "__main__":
    main()
