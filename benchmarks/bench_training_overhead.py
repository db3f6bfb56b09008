"""Training overhead: what logging a GRPO run costs, by CPU accounting and by step time.

The same tiny-Gemma GRPO training (batch 4, 4 generations, ``logging_steps=1``) runs under
each logger in turn, in one process, rounds alternating (the order rotates every round),
after a warm-up run of each:

- ``none``: ``report_to="none"``, no callback;
- ``minimal`` / ``seed``: gemmalog with ``configs/minimal.yaml`` / ``configs/gemma_logging.yaml``,
  the callback and the wrapped reward functions (every completion of every step is logged);
- ``tensorboard``: transformers' own ``report_to="tensorboard"`` (its TensorBoardCallback);
- ``trackio`` and ``wandb`` (offline): ``report_to=...``, when the package imports.

Step times on a shared machine move by tens of percent between rounds, so the figure that
resolves 1 % is CPU: per run, the training thread's CPU (``time.thread_time``), the
process's CPU, and each logger's own CPU, which is

- on the training thread: ``time.thread_time`` around every hook of the logger's callback
  and (gemmalog) every reward batch handed over, and
- in the background: the CPU clock of every Python thread started during the run, read when
  the thread ends (``thread_time`` in the thread, via ``Thread._bootstrap_inner``) or, for one
  still running, from ``/proc`` (psutil), plus the CPU of child processes it started.

The step-time comparison (median TRL ``step_time`` and wall time per step, ratio to ``none``
in the same round) is kept beside it. ``--imports N`` adds the import-time comparison:
fresh interpreters alternating ``import structlog, orjson``, ``import gemmalog`` and
``import gemmalog`` plus a first log call.

    python benchmarks/bench_training_overhead.py --rounds 8 --steps 20 \\
        --out benchmarks/results/training_overhead_2core
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "examples"))
os.environ.setdefault("TQDM_DISABLE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("WANDB_DIR", str(Path(tempfile.gettempdir()) / "gemmalog-bench-wandb"))
Path(os.environ["WANDB_DIR"]).mkdir(parents=True, exist_ok=True)
os.environ.setdefault("TRACKIO_DIR", str(Path(tempfile.gettempdir()) / "gemmalog-bench-trackio"))

import gsm_data  # noqa: E402
import psutil  # noqa: E402
import reward_functions  # noqa: E402
import tiny_gemma  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402
from trl import GRPOConfig, GRPOTrainer  # type: ignore[attr-defined]  # noqa: E402

import gemmalog  # noqa: E402
from gemmalog.integrations.trl import GemmalogCallback, RewardCollector  # noqa: E402

CONFIGS = {
    "minimal": HERE.parent / "configs" / "minimal.yaml",
    "seed": HERE.parent / "configs" / "gemma_logging.yaml",
}
REPORTERS = {"tensorboard", "trackio", "wandb"}
LABELS = {
    "none": 'no logging (`report_to="none"`)',
    "minimal": "gemmalog, `configs/minimal.yaml`",
    "seed": "gemmalog, seed configuration (`configs/gemma_logging.yaml`)",
    "tensorboard": 'transformers\' TensorBoardCallback (`report_to="tensorboard"`)',
    "trackio": 'trackio, local (`report_to="trackio"`)',
    "wandb": 'wandb offline (`report_to="wandb"`, `WANDB_MODE=offline`)',
}
CALLBACK_CLASSES = {"GemmalogCallback", "TensorBoardCallback", "TrackioCallback", "WandbCallback"}


# -- per-thread CPU -------------------------------------------------------------------------
def _kind(name: str) -> str:
    """A thread's name without threading's counter: ``Thread-7 (_monitor)`` -> ``_monitor``."""
    kind = re.sub(r"^Thread-\d+ ?", "", name).strip("()")
    return kind or "Thread"


class ThreadClock:
    """The CPU time of every Python thread, read by the thread itself when it ends."""

    def __init__(self) -> None:
        self.ended: list[tuple[threading.Thread, float]] = []  # (thread, CPU seconds)
        self._original = threading.Thread._bootstrap_inner  # type: ignore[attr-defined]
        clock = self

        def bootstrap(thread: threading.Thread) -> None:
            try:
                clock._original(thread)
            finally:
                clock.ended.append((thread, time.thread_time()))

        threading.Thread._bootstrap_inner = bootstrap  # type: ignore[attr-defined]

    def started_since(self, before: set[threading.Thread], mark: int) -> dict[str, float]:
        """CPU seconds by thread name of the threads not in ``before`` (those alive when the
        run began): ended since ``len(self.ended)`` was ``mark``, or still running."""
        out: dict[str, float] = {}
        for thread, cpu in self.ended[mark:]:
            if thread not in before:
                name = _kind(thread.name)
                out[name] = out.get(name, 0.0) + cpu
        ended = {t for t, _ in self.ended[mark:]}
        process_threads = {t.id: t.user_time + t.system_time for t in psutil.Process().threads()}
        for thread in threading.enumerate():
            if thread in before or thread in ended or thread.native_id is None:
                continue
            cpu = process_threads.get(thread.native_id, 0.0)
            name = _kind(thread.name)
            out[name] = out.get(name, 0.0) + cpu
        return out


#: pid -> the logger whose run first saw the child process (wandb's service outlives its run).
CHILD_OWNERS: dict[int, str] = {}


def children_cpu() -> dict[int, float]:
    out = {}
    for child in psutil.Process().children(recursive=True):
        try:
            times = child.cpu_times()
            out[child.pid] = times.user + times.system
        except psutil.Error:
            pass
    return out


def time_hooks(owner: Any, names: list[str], into: dict[str, list[float]]) -> None:
    """Wrap ``owner``'s methods: CPU (thread_time) and wall seconds per method name."""
    for name in names:
        original = getattr(owner, name)

        def timed(
            *a: Any, _original: Callable[..., Any] = original, _name: str = name, **k: Any
        ) -> Any:
            c0, w0 = time.thread_time(), time.perf_counter()
            try:
                return _original(*a, **k)
            finally:
                slot = into.setdefault(_name, [0.0, 0.0])
                slot[0] += time.thread_time() - c0
                slot[1] += time.perf_counter() - w0

        setattr(owner, name, timed)


# -- one run --------------------------------------------------------------------------------
def one_run(
    model_dir: Path, config: str, *, steps: int, batch: int, tmp: Path, clock: ThreadClock
) -> dict[str, Any]:
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    funcs: list[Any] = list(reward_functions.REWARD_FUNCTIONS)
    callbacks: list[Any] = []
    hooks: dict[str, list[float]] = {}
    threads_before = set(threading.enumerate())
    mark = len(clock.ended)
    children_before = children_cpu()
    if config in CONFIGS:
        gemmalog.initialize(str(CONFIGS[config]), root=str(tmp / "runs"), capture_stdlib=True)
        callback = GemmalogCallback(RewardCollector())
        funcs = callback.wrap(funcs)
        callbacks = [callback]
        time_hooks(callback.collector, ["record"], hooks)
    os.environ["TENSORBOARD_LOGGING_DIR"] = str(tmp / "tb")
    args = GRPOConfig(
        output_dir=str(tmp / "out"),
        max_steps=steps,
        per_device_train_batch_size=batch,
        num_generations=4,
        max_completion_length=32,
        bf16=False,
        use_cpu=True,
        activation_checkpointing=False,
        logging_steps=1,
        report_to=config if config in REPORTERS else "none",
        project="gemmalog-bench",
        run_name=f"bench-{config}",
        save_strategy="no",
        disable_tqdm=True,
        seed=0,
    )
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=funcs,
        args=args,
        train_dataset=gsm_data.make_dataset(256),
        processing_class=tokenizer,
        callbacks=callbacks,
    )
    for cb in trainer.callback_handler.callbacks:
        if type(cb).__name__ in CALLBACK_CLASSES:
            time_hooks(cb, [n for n in dir(type(cb)) if n.startswith("on_")], hooks)
    process = psutil.Process()
    rss_before = process.memory_info().rss
    wall0, proc0, thread0 = time.perf_counter(), time.process_time(), time.thread_time()
    trainer.train()
    if config in CONFIGS:
        gemmalog.shutdown()  # drains the queue: the listener's work for the run is counted
    wall = time.perf_counter() - wall0
    proc_cpu = time.process_time() - proc0
    train_thread_cpu = time.thread_time() - thread0
    rss_after = process.memory_info().rss
    threads = clock.started_since(threads_before, mark)
    children = children_cpu()
    for pid in children:
        CHILD_OWNERS.setdefault(pid, config)
    child_cpu = sum(v - children_before.get(pid, 0.0) for pid, v in children.items())
    owned_cpu = sum(
        v - children_before.get(pid, 0.0)
        for pid, v in children.items()
        if CHILD_OWNERS[pid] == config
    )
    step_times = [e["step_time"] for e in trainer.state.log_history if "step_time" in e]
    caller_cpu = sum(v[0] for v in hooks.values())
    return {
        "config": config,
        "step_ms": 1000 * statistics.median(step_times) if step_times else float("nan"),
        "wall_ms": 1000 * wall / steps,
        "process_cpu_ms": 1000 * proc_cpu / steps,
        "train_thread_cpu_ms": 1000 * train_thread_cpu / steps,
        "logger_caller_cpu_ms": 1000 * caller_cpu / steps,
        "logger_caller_wall_ms": 1000 * sum(v[1] for v in hooks.values()) / steps,
        "threads_cpu_ms": {k: 1000 * v / steps for k, v in sorted(threads.items())},
        "children_cpu_ms": 1000 * child_cpu / steps,
        "owned_children_cpu_ms": 1000 * owned_cpu / steps,
        "hooks_cpu_ms": {k: 1000 * v[0] / steps for k, v in sorted(hooks.items())},
        "rss_delta_mb": (rss_after - rss_before) / 2**20,
    }


def available(config: str) -> bool:
    if config not in ("trackio", "wandb"):
        return True
    try:
        __import__(config)
    except Exception:
        return False
    return True


# -- summary --------------------------------------------------------------------------------
def spread(values: list[float]) -> str:
    return f"{min(values):.2f}–{max(values):.2f}"


def summarize(runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    base = runs["none"]
    # Threads a run without any logger starts too (TRL's, torch's) are not the logger's.
    common = {k for r in base for k in r["threads_cpu_ms"]}
    # Child processes (wandb's service) outlive the run that started them and keep using
    # CPU through every run after it, logged or not: a run is charged only its own logger's
    # children, beyond what all children used in the median run without logging.
    idle_children = statistics.median(r["children_cpu_ms"] for r in base)
    for rs in runs.values():
        for r in rs:
            r["logger_threads_cpu_ms"] = sum(
                v for k, v in r["threads_cpu_ms"].items() if k not in common
            )
            owned = r["owned_children_cpu_ms"]
            r["logger_children_cpu_ms"] = max(0.0, owned - idle_children) if owned else 0.0
    for config, rs in runs.items():
        logger = [
            r["logger_caller_cpu_ms"] + r["logger_threads_cpu_ms"] + r["logger_children_cpu_ms"]
            for r in rs
        ]
        background = [r["logger_threads_cpu_ms"] + r["logger_children_cpu_ms"] for r in rs]
        out[config] = {
            "runs": len(rs),
            "step_ms": statistics.median(r["step_ms"] for r in rs),
            "step_ms_spread": spread([r["step_ms"] for r in rs]),
            "wall_ms": statistics.median(r["wall_ms"] for r in rs),
            "step_vs_none_pct": [
                100 * (r["step_ms"] / b["step_ms"] - 1) for r, b in zip(rs, base, strict=True)
            ],
            "wall_vs_none_pct": [
                100 * (r["wall_ms"] / b["wall_ms"] - 1) for r, b in zip(rs, base, strict=True)
            ],
            "process_cpu_ms": statistics.median(r["process_cpu_ms"] for r in rs),
            "train_thread_cpu_ms": statistics.median(r["train_thread_cpu_ms"] for r in rs),
            "caller_cpu_ms": statistics.median(r["logger_caller_cpu_ms"] for r in rs),
            "caller_cpu_spread": spread([r["logger_caller_cpu_ms"] for r in rs]),
            "caller_wall_ms": statistics.median(r["logger_caller_wall_ms"] for r in rs),
            "threads_cpu_ms": statistics.median(r["logger_threads_cpu_ms"] for r in rs),
            "threads_cpu_spread": spread([r["logger_threads_cpu_ms"] for r in rs]),
            "background_cpu_ms": statistics.median(background),
            "background_cpu_spread": spread(background),
            "children_cpu_ms": statistics.median(r["logger_children_cpu_ms"] for r in rs),
            "children_cpu_raw_ms": statistics.median(r["children_cpu_ms"] for r in rs),
            "logger_cpu_ms": statistics.median(logger),
            "logger_cpu_spread": spread(logger),
            "pct_of_step_cpu": statistics.median(
                100 * lg / r["process_cpu_ms"] for lg, r in zip(logger, rs, strict=True)
            ),
            "pct_of_step_wall": statistics.median(
                100 * lg / r["wall_ms"] for lg, r in zip(logger, rs, strict=True)
            ),
            "threads": sorted({n for r in rs for n in r["threads_cpu_ms"]}),
            "common_threads": sorted(common),
            "hooks_cpu_ms": {
                k: statistics.median(r["hooks_cpu_ms"].get(k, 0.0) for r in rs)
                for k in sorted({k for r in rs for k in r["hooks_cpu_ms"]})
            },
            "rss_delta_mb": statistics.median(r["rss_delta_mb"] for r in rs),
        }
    return out


def tables(summary: dict[str, Any], meta: dict[str, Any]) -> str:
    lines = [
        f"Rounds: {meta['rounds']} × {meta['steps']} steps, batch {meta['batch']}, "
        f"{meta['cpus']} CPUs, load average {meta['load_before']} before, "
        f"{meta['load_after']} after; Python {meta['python']}.",
        "",
        "| logger | its CPU on the training thread, ms/step | its background CPU, ms/step | "
        "total, ms/step (spread) | % of the step's CPU | % of the step's wall time |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for config, s in summary.items():
        lines.append(
            f"| {LABELS[config]} | {s['caller_cpu_ms']:.3f} ({s['caller_cpu_spread']}) | "
            f"{s['background_cpu_ms']:.3f} ({s['background_cpu_spread']}) | "
            f"**{s['logger_cpu_ms']:.3f}** "
            f"({s['logger_cpu_spread']}) | **{s['pct_of_step_cpu']:.2f} %** | "
            f"{s['pct_of_step_wall']:.2f} % |"
        )
    lines += [
        "",
        "| logger | step ms, median (spread) | wall ms/step | step vs none, median of rounds "
        "(spread) | wall vs none (spread) | process CPU ms/step | training thread CPU ms/step "
        "| RSS Δ MB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for config, s in summary.items():
        sv, wv = s["step_vs_none_pct"], s["wall_vs_none_pct"]
        lines.append(
            f"| {LABELS[config]} | {s['step_ms']:.1f} ({s['step_ms_spread']}) | {s['wall_ms']:.1f} | "
            f"{statistics.median(sv):+.1f} % ({min(sv):+.1f}…{max(sv):+.1f}) | "
            f"{statistics.median(wv):+.1f} % ({min(wv):+.1f}…{max(wv):+.1f}) | "
            f"{s['process_cpu_ms']:.1f} | {s['train_thread_cpu_ms']:.1f} | {s['rss_delta_mb']:+.1f} |"
        )
    lines += [
        "",
        "Per hook, CPU ms/step on the training thread (median); the Python threads each run "
        "started (those a run without logging starts too are not counted as the logger's: "
        f"{', '.join(next(iter(summary.values()))['common_threads']) or 'none'}):",
        "",
    ]
    for config, s in summary.items():
        hooks = ", ".join(f"`{k}` {v:.3f}" for k, v in s["hooks_cpu_ms"].items() if v >= 0.0005)
        lines.append(
            f"- {config}: {hooks or '—'}; threads started: {', '.join(s['threads']) or '—'}"
        )
    return "\n".join(lines)


# -- imports --------------------------------------------------------------------------------
IMPORTS = {
    "structlog, orjson": "import structlog, orjson",
    "gemmalog": "import gemmalog",
    "gemmalog + first log call": (
        "import gemmalog; gemmalog.initialize(root={root!r}); "
        "gemmalog.get_logger('bench').info('first'); gemmalog.flush()"
    ),
}


def import_times(n: int) -> dict[str, list[float]]:
    """Milliseconds per statement in fresh interpreters, the three alternating."""
    out: dict[str, list[float]] = {k: [] for k in IMPORTS}
    with tempfile.TemporaryDirectory() as root:
        for i in range(n):
            for name, code in IMPORTS.items():
                timed = (
                    "import time; _t = time.perf_counter(); "
                    + code.format(root=f"{root}/{i}")
                    + "; print(1000 * (time.perf_counter() - _t))"
                )
                result = subprocess.run(
                    [sys.executable, "-c", timed], capture_output=True, text=True, check=True
                )
                out[name].append(float(result.stdout.strip().splitlines()[-1]))
    return out


def import_table(times: dict[str, list[float]]) -> str:
    base = times["structlog, orjson"]
    lines = [
        "| statement, fresh interpreter | median ms | spread ms | × `import structlog, orjson` "
        "(median of rounds) |",
        "|---|---:|---:|---:|",
    ]
    for name, values in times.items():
        ratios = [v / b for v, b in zip(values, base, strict=True)]
        lines.append(
            f"| `{IMPORTS[name].split(';')[0]}`{' + initialize + first log call' if 'first' in name else ''} "
            f"| {statistics.median(values):.0f} | {min(values):.0f}–{max(values):.0f} | "
            f"{statistics.median(ratios):.2f} |"
        )
    return "\n".join(lines)


def render(result: dict[str, Any], summary: dict[str, Any]) -> str:
    meta = result["meta"]
    text = tables(summary, meta)
    if meta.get("skipped"):
        text += f"\n\nNot run (the package does not import): {', '.join(meta['skipped'])}."
    if result.get("imports"):
        times = result["imports"]
        rounds = len(next(iter(times.values())))
        text += f"\n\nImport, {rounds} alternating rounds:\n\n" + import_table(times)
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument(
        "--configs", default="none,minimal,seed,tensorboard,trackio,wandb", help="comma-separated"
    )
    parser.add_argument("--imports", type=int, default=0, help="rounds of the import comparison")
    parser.add_argument("--out", type=Path, help="write <out>.md and <out>.json")
    parser.add_argument(
        "--tiny-cache", default=str(Path.home() / ".cache" / "gemmalog" / "tiny-gemma")
    )
    parser.add_argument(
        "--render", type=Path, help="only write the tables again from an earlier <out>.json"
    )
    args = parser.parse_args()
    if args.render is not None:
        saved = json.loads(args.render.read_text())
        text = render(saved, summarize(saved["runs"]))
        print(text)
        args.render.with_suffix(".md").write_text(text + "\n")
        return
    model_dir = tiny_gemma.build_tiny_gemma(args.tiny_cache)
    configs = [c for c in args.configs.split(",") if available(c)]
    skipped = [c for c in args.configs.split(",") if c not in configs]
    if "none" not in configs:
        configs.insert(0, "none")
    meta: dict[str, Any] = {
        "rounds": args.rounds,
        "steps": args.steps,
        "batch": args.batch,
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "load_before": " ".join(f"{x:.1f}" for x in os.getloadavg()),
        "skipped": skipped,
    }
    clock = ThreadClock()
    runs: dict[str, list[dict[str, Any]]] = {c: [] for c in configs}
    with tempfile.TemporaryDirectory() as tmp:
        for config in configs:  # warm-up, not counted
            one_run(
                model_dir,
                config,
                steps=2,
                batch=args.batch,
                tmp=Path(tmp) / f"w-{config}",
                clock=clock,
            )
        for i in range(args.rounds):
            order = configs[i % len(configs) :] + configs[: i % len(configs)]
            for config in order:
                r = one_run(
                    model_dir,
                    config,
                    steps=args.steps,
                    batch=args.batch,
                    tmp=Path(tmp) / f"r{i}-{config}",
                    clock=clock,
                )
                runs[config].append(r)
                print(
                    f"round {i} {config}: wall {r['wall_ms']:.1f} ms/step, logger CPU "
                    f"{r['logger_caller_cpu_ms']:.3f} ms/step + threads {r['threads_cpu_ms']}",
                    file=sys.stderr,
                    flush=True,
                )
    meta["load_after"] = " ".join(f"{x:.1f}" for x in os.getloadavg())
    result: dict[str, Any] = {"meta": meta, "runs": runs}
    if args.imports:
        result["imports"] = import_times(args.imports)
    result["summary"] = summarize(runs)
    text = render(result, result["summary"])
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.with_suffix(".md").write_text(text + "\n")
        args.out.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
