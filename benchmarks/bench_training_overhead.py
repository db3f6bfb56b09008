"""Training overhead: what logging a GRPO run costs, by CPU accounting and by step time.

The same GRPO training (batch 4, 4 generations, ``logging_steps=1``) runs under each logger
in turn, in one process, rounds alternating (the order rotates every round), after a
warm-up run of each. ``--model`` picks the model, several comma-separated are run one after
the other with tables of their own:

- ``tiny``: the ~100k-parameter tiny Gemma of ``examples/tiny_gemma.py`` (completions of up
  to 32 tokens): a step of ~50-100 ms of CPU, so any fixed per-step cost looks large;
- ``small``: a randomly initialised Gemma-3 of hidden size 256, 4 layers (~3.5M parameters,
  the tiny one's tokenizer), completions of 64 tokens: a step closer to a real one's
  proportions on a CPU, for the same logging work per step;
- ``100m``: a randomly initialised Gemma-3 of hidden size 768, 12 layers (~104M parameters),
  completions of 128 tokens, for a GPU: ``--device cuda --bf16`` trains it there in bfloat16
  (issue 13, item 7); the loggers' CPU is accounted as on a CPU.

The loggers:

- ``none``: ``report_to="none"``, no callback;
- ``minimal`` / ``seed``: gemmalog with ``configs/minimal.yaml`` / ``configs/gemma_logging.yaml``,
  the callback and the wrapped reward functions (every completion of every step is logged);
- ``seed-tokens``: ``seed`` with the callback's ``log_token_stats=True`` (not among the
  defaults); its forward hook, called in every forward of the model, is timed like a
  callback hook (``_observe``);
- ``tensorboard``: transformers' own ``report_to="tensorboard"`` (its TensorBoardCallback);
- ``trackio`` and ``wandb`` (offline): ``report_to=...``, when the package imports.

Step times on a shared machine move by tens of percent between rounds, so the figure that
resolves 1 % is CPU: per run, the training thread's CPU (``time.thread_time``), the
process's CPU, and each logger's own CPU, which is

- on the training thread: ``time.thread_time`` around every hook of the logger's callback
  and (gemmalog) every reward call handed over; the timing itself costs about a
  microsecond a call, which the hooks a callback does not override (transformers' no-op
  ``TrainerCallback`` methods, timed the same way in the same run) measure: the tables
  give the figure with that timer cost taken out ("net") beside the raw one, and
- in the background: the CPU clock of every Python thread started during the run, read when
  the thread ends (``thread_time`` in the thread, via ``Thread._bootstrap_inner``) or, for one
  still running, from ``/proc`` (psutil), plus the CPU of child processes it started.

The step-time comparison (median TRL ``step_time`` and wall time per step, ratio to ``none``
in the same round) is kept beside it. ``--imports N`` adds the import-time comparison:
fresh interpreters alternating ``import structlog, orjson``, ``import gemmalog`` and
``import gemmalog`` plus a first log call.

    python benchmarks/bench_training_overhead.py --rounds 8 --steps 20 --model tiny,small \\
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
from transformers import (  # noqa: E402
    AutoModelForCausalLM,
    AutoTokenizer,
    Gemma3ForCausalLM,
    Gemma3TextConfig,
    TrainerCallback,
)
from trl import GRPOConfig, GRPOTrainer  # type: ignore[attr-defined]  # noqa: E402

import gemmalog  # noqa: E402
from gemmalog.integrations.token_stats import TokenStats  # noqa: E402
from gemmalog.integrations.trl import GemmalogCallback, RewardCollector  # noqa: E402

CONFIGS = {
    "minimal": HERE.parent / "configs" / "minimal.yaml",
    "seed": HERE.parent / "configs" / "gemma_logging.yaml",
    "seed-tokens": HERE.parent / "configs" / "gemma_logging.yaml",
}
#: Configurations run with the callback's log_token_stats=True (per-completion statistics).
TOKEN_STATS = {"seed-tokens"}
REPORTERS = {"tensorboard", "trackio", "wandb"}
LABELS = {
    "none": 'no logging (`report_to="none"`)',
    "minimal": "gemmalog, `configs/minimal.yaml`",
    "seed": "gemmalog, seed configuration (`configs/gemma_logging.yaml`)",
    "seed-tokens": "gemmalog, seed configuration, `log_token_stats=True`",
    "tensorboard": 'transformers\' TensorBoardCallback (`report_to="tensorboard"`)',
    "trackio": 'trackio, local (`report_to="trackio"`)',
    "wandb": 'wandb offline (`report_to="wandb"`, `WANDB_MODE=offline`)',
}
CALLBACK_CLASSES = {"GemmalogCallback", "TensorBoardCallback", "TrackioCallback", "WandbCallback"}

#: name -> (completion length, architecture; None: examples/tiny_gemma.py's build as it is).
MODELS: dict[str, tuple[int, dict[str, Any] | None]] = {
    "tiny": (32, None),
    "small": (
        64,
        {
            "hidden_size": 256,
            "intermediate_size": 1024,
            "num_hidden_layers": 4,
            "num_attention_heads": 4,
            "num_key_value_heads": 1,
            "head_dim": 64,
            "query_pre_attn_scalar": 64,
            "layer_types": ["sliding_attention"] * 3 + ["full_attention"],
            "sliding_window": 128,
            "max_position_embeddings": 512,
        },
    ),
    # Issue 13, item 7: a ~100M-parameter Gemma-3 for a GPU (bf16); on a CPU a step takes
    # seconds, so run it there only as a smoke test (--steps 2 --rounds 1).
    "100m": (
        128,
        {
            "hidden_size": 768,
            "intermediate_size": 3072,
            "num_hidden_layers": 12,
            "num_attention_heads": 12,
            "num_key_value_heads": 4,
            "head_dim": 64,
            "query_pre_attn_scalar": 64,
            "layer_types": (["sliding_attention"] * 5 + ["full_attention"]) * 2,
            "sliding_window": 512,
            "max_position_embeddings": 1024,
        },
    ),
}


def prepare_model(name: str, tiny_dir: Path, out: Path) -> tuple[Path, dict[str, Any]]:
    """The model directory for ``name`` and what the tables say of it."""
    length, spec = MODELS[name]
    path = tiny_dir
    if spec is not None:
        # Randomly initialised (seeded) with the tiny model's tokenizer: its completions are
        # noise, but every one is scored and logged all the same, at full length.
        tokenizer = AutoTokenizer.from_pretrained(tiny_dir)
        base = AutoModelForCausalLM.from_pretrained(tiny_dir).config
        config = Gemma3TextConfig(
            vocab_size=base.vocab_size,
            pad_token_id=base.pad_token_id,
            bos_token_id=base.bos_token_id,
            eos_token_id=base.eos_token_id,
            tie_word_embeddings=True,
            **spec,
        )
        import torch

        torch.manual_seed(0)
        model = Gemma3ForCausalLM(config)
        model.generation_config.eos_token_id = base.eos_token_id
        model.generation_config.pad_token_id = base.pad_token_id
        model.generation_config.bos_token_id = base.bos_token_id
        path = out / f"model-{name}"
        model.save_pretrained(path)
        tokenizer.save_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path)
    info = {
        "name": name,
        "parameters": sum(p.numel() for p in model.parameters()),
        "hidden_size": model.config.hidden_size,
        "layers": model.config.num_hidden_layers,
        "completion_length": length,
    }
    return path, info


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


#: The key of the hooks a callback leaves as TrainerCallback's no-ops, summed: their timed
#: cost is the timer's own (plus a no-op call), per call.
NOOP = "(no-op hooks)"


def time_hooks(owner: Any, names: list[str], into: dict[str, list[float]]) -> None:
    """Wrap ``owner``'s methods: CPU (thread_time) seconds, wall seconds and calls per method
    name; those ``owner``'s class does not override from TrainerCallback go under NOOP."""
    for name in names:
        original = getattr(owner, name)
        inherited = getattr(type(owner), name, None) is getattr(TrainerCallback, name, object())

        def timed(
            *a: Any,
            _original: Callable[..., Any] = original,
            _name: str = NOOP if inherited else name,
            **k: Any,
        ) -> Any:
            c0, w0 = time.thread_time(), time.perf_counter()
            try:
                return _original(*a, **k)
            finally:
                slot = into.setdefault(_name, [0.0, 0.0, 0])
                slot[0] += time.thread_time() - c0
                slot[1] += time.perf_counter() - w0
                slot[2] += 1

        setattr(owner, name, timed)


# -- one run --------------------------------------------------------------------------------
def one_run(
    model_dir: Path,
    config: str,
    *,
    steps: int,
    batch: int,
    tmp: Path,
    clock: ThreadClock,
    completion_length: int = 32,
    device: str = "cpu",
    bf16: bool = False,
) -> dict[str, Any]:
    import torch

    model = AutoModelForCausalLM.from_pretrained(
        model_dir, dtype=torch.bfloat16 if bf16 else torch.float32
    )
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    funcs: list[Any] = list(reward_functions.REWARD_FUNCTIONS)
    callbacks: list[Any] = []
    hooks: dict[str, list[float]] = {}
    threads_before = set(threading.enumerate())
    mark = len(clock.ended)
    children_before = children_cpu()
    if config in CONFIGS:
        gemmalog.initialize(str(CONFIGS[config]), root=str(tmp / "runs"), capture_stdlib=True)
        options = {"log_token_stats": True} if config in TOKEN_STATS else {}
        callback = GemmalogCallback(RewardCollector(), **options)
        funcs = callback.wrap(funcs)
        callbacks = [callback]
        time_hooks(callback.collector, ["record"], hooks)
    # The token statistics' forward hook (every forward of the model, the loss pass's and
    # generation's): timed on the class, whose instance the callback makes in on_train_begin.
    observe = TokenStats._observe
    if config in TOKEN_STATS:
        time_hooks(TokenStats, ["_observe"], hooks)
    os.environ["TENSORBOARD_LOGGING_DIR"] = str(tmp / "tb")
    args = GRPOConfig(
        output_dir=str(tmp / "out"),
        max_steps=steps,
        per_device_train_batch_size=batch,
        num_generations=4,
        max_completion_length=completion_length,
        bf16=bf16,
        use_cpu=device == "cpu",
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
    try:
        trainer.train()
    finally:
        TokenStats._observe = observe  # type: ignore[method-assign]
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
    noop = hooks.get(NOOP)
    # The timer's cost per timed call, from the no-op hooks of the same run (0: none timed).
    per_call = noop[0] / noop[2] if noop and noop[2] else 0.0
    calls = sum(v[2] for k, v in hooks.items() if k != NOOP)
    return {
        "config": config,
        "step_ms": 1000 * statistics.median(step_times) if step_times else float("nan"),
        "wall_ms": 1000 * wall / steps,
        "process_cpu_ms": 1000 * proc_cpu / steps,
        "train_thread_cpu_ms": 1000 * train_thread_cpu / steps,
        "logger_caller_cpu_ms": 1000 * caller_cpu / steps,
        # Without the no-op hooks and the timer's cost on the timed calls of the others.
        "logger_caller_net_cpu_ms": 1000
        * max(0.0, caller_cpu - (noop[0] if noop else 0.0) - calls * per_call)
        / steps,
        "timer_us_per_call": 1e6 * per_call,
        "timed_calls_per_step": calls / steps,
        "logger_caller_wall_ms": 1000 * sum(v[1] for v in hooks.values()) / steps,
        "threads_cpu_ms": {k: 1000 * v / steps for k, v in sorted(threads.items())},
        "children_cpu_ms": 1000 * child_cpu / steps,
        "owned_children_cpu_ms": 1000 * owned_cpu / steps,
        "hooks_cpu_ms": {k: 1000 * v[0] / steps for k, v in sorted(hooks.items())},
        "hooks_calls": {k: v[2] / steps for k, v in sorted(hooks.items())},
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
        # Results saved before the timer's cost was measured have only the raw figure.
        net = [r.get("logger_caller_net_cpu_ms", r["logger_caller_cpu_ms"]) for r in rs]
        logger = [
            n + r["logger_threads_cpu_ms"] + r["logger_children_cpu_ms"]
            for n, r in zip(net, rs, strict=True)
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
            "caller_net_cpu_ms": statistics.median(net),
            "caller_net_cpu_spread": spread(net),
            "timer_us_per_call": statistics.median(r.get("timer_us_per_call", 0.0) for r in rs),
            "timed_calls_per_step": statistics.median(
                r.get("timed_calls_per_step", 0.0) for r in rs
            ),
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


def tables(summary: dict[str, Any], meta: dict[str, Any], model: dict[str, Any] | None) -> str:
    lines = [
        f"Rounds: {meta['rounds']} × {meta['steps']} steps, batch {meta['batch']}, "
        f"{meta['cpus']} CPUs, load average {meta['load_before']} before, "
        f"{meta['load_after']} after; Python {meta['python']}; the model on "
        f"{meta.get('device', 'cpu')} in {meta.get('dtype', 'float32')}.",
    ]
    if model is not None:
        lines.append(
            f"Model `{model['name']}`: {model['parameters']:,} parameters, hidden size "
            f"{model['hidden_size']}, {model['layers']} layers, completions of up to "
            f"{model['completion_length']} tokens."
        )
    lines += [
        "",
        "| logger | its CPU on the training thread, ms/step: net (raw) | its background CPU, "
        "ms/step | total, ms/step (spread) | % of the step's CPU | % of the step's wall time |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for config, s in summary.items():
        lines.append(
            f"| {LABELS[config]} | {s['caller_net_cpu_ms']:.3f} ({s['caller_cpu_ms']:.3f}; "
            f"{s['caller_net_cpu_spread']}) | "
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
    timers = ", ".join(
        f"{c} {s['timer_us_per_call']:.2f} × {s['timed_calls_per_step']:.0f} calls/step"
        for c, s in summary.items()
        if s["timed_calls_per_step"]
    )
    lines += [
        "",
        "Net: without the timer's own cost, measured in each run on the hooks a callback "
        "leaves as TrainerCallback's no-ops"
        + (f" (µs per timed call, median: {timers})" if timers else " (not in this result)")
        + ". Per hook, raw CPU ms/step on the training thread (median); the Python threads "
        "each run started (those a run without logging starts too are not counted as the "
        f"logger's: {', '.join(next(iter(summary.values()))['common_threads']) or 'none'}):",
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


def render(result: dict[str, Any]) -> str:
    """The tables of a result: one set per model (a result saved before ``--model`` existed
    has its runs at the top level, for the tiny model)."""
    meta = result["meta"]
    models = result.get("models") or {"": {"runs": result["runs"], "model": None}}
    text = "\n\n".join(tables(summarize(m["runs"]), meta, m["model"]) for m in models.values())
    if meta.get("skipped"):
        text += f"\n\nNot run (the package does not import): {', '.join(meta['skipped'])}."
    if result.get("imports"):
        times = result["imports"]
        rounds = len(next(iter(times.values())))
        text += f"\n\nImport, {rounds} alternating rounds:\n\n" + import_table(times)
    return text


def device_name(device: str) -> str:
    """What the model trained on, as the tables name it."""
    if device == "cuda":
        import torch

        return f"cuda ({torch.cuda.get_device_name(0)})"
    return "cpu"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument(
        "--configs", default="none,minimal,seed,tensorboard,trackio,wandb", help="comma-separated"
    )
    parser.add_argument(
        "--model",
        default="tiny",
        help=f"comma-separated, run one after the other: {', '.join(MODELS)} (see above)",
    )
    parser.add_argument(
        "--device",
        choices=("cpu", "cuda"),
        default="cpu",
        help="where the model trains (cuda: the first GPU; the loggers' CPU is accounted alike)",
    )
    parser.add_argument(
        "--bf16", action="store_true", help="load the model in bfloat16 and train with bf16"
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
        text = render(saved)
        print(text)
        args.render.with_suffix(".md").write_text(text + "\n")
        return
    names = [m for m in args.model.split(",") if m]
    unknown = [m for m in names if m not in MODELS]
    if unknown or not names:
        parser.error(f"--model: unknown {', '.join(unknown) or 'none given'}")
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            parser.error("--device cuda: torch sees no CUDA device here")
    tiny_dir = tiny_gemma.build_tiny_gemma(args.tiny_cache)
    configs = [c for c in args.configs.split(",") if available(c)]
    skipped = [c for c in args.configs.split(",") if c not in configs]
    if "none" not in configs:
        configs.insert(0, "none")
    meta: dict[str, Any] = {
        "rounds": args.rounds,
        "steps": args.steps,
        "batch": args.batch,
        "cpus": os.cpu_count(),
        "device": device_name(args.device),
        "dtype": "bfloat16" if args.bf16 else "float32",
        "python": sys.version.split()[0],
        "load_before": " ".join(f"{x:.1f}" for x in os.getloadavg()),
        "skipped": skipped,
    }
    clock = ThreadClock()
    models: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            model_dir, info = prepare_model(name, tiny_dir, Path(tmp))
            length = info["completion_length"]
            runs: dict[str, list[dict[str, Any]]] = {c: [] for c in configs}
            models[name] = {"model": info, "runs": runs}
            for config in configs:  # warm-up, not counted
                one_run(
                    model_dir,
                    config,
                    steps=2,
                    batch=args.batch,
                    tmp=Path(tmp) / f"{name}-w-{config}",
                    clock=clock,
                    completion_length=length,
                    device=args.device,
                    bf16=args.bf16,
                )
            for i in range(args.rounds):
                order = configs[i % len(configs) :] + configs[: i % len(configs)]
                for config in order:
                    r = one_run(
                        model_dir,
                        config,
                        steps=args.steps,
                        batch=args.batch,
                        tmp=Path(tmp) / f"{name}-r{i}-{config}",
                        clock=clock,
                        completion_length=length,
                        device=args.device,
                        bf16=args.bf16,
                    )
                    runs[config].append(r)
                    print(
                        f"{name} round {i} {config}: wall {r['wall_ms']:.1f} ms/step, "
                        f"process CPU {r['process_cpu_ms']:.1f} ms/step, logger CPU "
                        f"{r['logger_caller_net_cpu_ms']:.3f} (raw "
                        f"{r['logger_caller_cpu_ms']:.3f}) ms/step + threads "
                        f"{r['threads_cpu_ms']}",
                        file=sys.stderr,
                        flush=True,
                    )
    meta["load_after"] = " ".join(f"{x:.1f}" for x in os.getloadavg())
    result: dict[str, Any] = {"meta": meta, "models": models}
    if args.imports:
        result["imports"] = import_times(args.imports)
    for m in models.values():
        m["summary"] = summarize(m["runs"])
    text = render(result)
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.with_suffix(".md").write_text(text + "\n")
        args.out.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
