"""What the `gemmalog serve` tests share: runs written with gemmalog's own API, and a real
server on a free port of 127.0.0.1 in a thread."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import gemmalog

#: Completions whose text must be shown literally and run nothing.
HOSTILE = [
    "<script>document.title='pwned-script'</script>",
    "</script><script>document.title='pwned-close'</script>",
    "<img src=x onerror=\"document.title='pwned-img'\">",
    "[click](javascript:document.title='pwned-md') javascript:alert(1)",
    "\u202eevil right-to-left override\u202c and a NUL:\x00 end",
    "<svg onload=\"document.title='pwned-svg'\"></svg>   two  spaces\n\tand a tab",
    "10 MB: " + "<b>bold?</b> " * 800_000,  # cut to max_string_length by the logger
]


def log_step(
    step: int, *, prompts: int = 2, generations: int = 4, texts: list[str] | None = None
) -> None:
    """One GRPO-like step: ``prompts`` groups of ``generations`` completions, then metrics."""
    totals = []
    for p in range(prompts):
        for g in range(generations):
            sample = p * generations + g
            correct = (step + sample) % 3 == 0
            rewards = {"correctness": 2.0 if correct else 0.0, "format": 0.25 * g}
            text = texts[sample % len(texts)] if texts else f"<answer>{step * 10 + sample}</answer>"
            gemmalog.log_model_output(
                f"question {p}: what is {p} + {step}?",
                str(p + step),
                text,
                rewards=rewards,
                correct=correct,
                step=step,
                sample=sample,
                length_tokens=10 + g,
            )
            totals.append(sum(rewards.values()))
    gemmalog.log_training_progress(
        step,
        {
            "loss": 1.0 / step,
            "grad_norm": 0.5,
            "learning_rate": 1e-5,
            "kl": 0.01 * step,
            "entropy": 1.5 - 0.01 * step,
            "reward": sum(totals) / len(totals),
        },
    )


def make_run(root: Path, name: str, steps: int = 5, **kwargs: Any) -> gemmalog.Run:
    """A finished run of ``steps`` steps under ``root`` (no stdlib bridge: the test client's own
    request log after shutdown() would be a late event of the run, written into it)."""
    run = gemmalog.initialize(root=root, run_name=name, capture_stdlib=False)
    for step in range(1, steps + 1):
        log_step(step, **kwargs)
    gemmalog.shutdown()
    return run


@contextmanager
def running_server(
    roots: list[Path] | list[str], token: str | None = None, **options: Any
) -> Iterator[str]:
    """``gemmalog.serve.server`` on a free port in a thread; yields its base URL.
    ``options`` go to ``create_app`` (``remote_interval``, ``cache_dir``)."""
    from gemmalog.serve import server

    srv = server([str(r) for r in roots], host="127.0.0.1", port=0, token=token, **options)
    thread = threading.Thread(target=srv.run, name="serve-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.05)
    port = srv.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        srv.should_exit = True
        thread.join(timeout=30)
