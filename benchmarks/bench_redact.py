"""Listener-side cost of secret redaction: µs per 1.5 KB string and per ``model_output`` event.

The texts are GSM8K-style reasoning (numbers, ``=``, ``:``, and words such as "key",
"token" and "pass" that a substring prefilter trips on; timed again without those words),
all distinct, so no per-string cache helps; none holds a secret, which is the case that matters for speed (a secret costs one
substitution more). The event is a real ``model_output`` line of a gemmalog run (the
envelope, a 1.5 KB completion, its ~1.4 KB reasoning, the question, rewards), with fresh
texts per call, as the listener sees it before rendering.

``--impl PATH`` times another version of ``gemmalog/processors/redact.py`` (for example
``git show <commit>:gemmalog/processors/redact.py > /tmp/redact_before.py``), so before and
after run on the same machine with the same inputs. Run:
``python benchmarks/bench_redact.py [--impl PATH] [--json OUT]``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

import gemmalog
from gemmalog.processors.textstats import extract_reasoning_and_answer

PROSE = (
    "the model first computes the total cost then subtracts the discount so each box holds "
    "apples and she pays dollars per hour which gives key step answer token count is "
    "therefore we multiply both sides by three to get pass rate of students equals"
)
WORDS = tuple(PROSE.split())


# The same prose without the words an older prefilter tripped on.
PLAIN_WORDS = tuple(w for w in WORDS if w not in ("key", "token", "pass"))


def reasoning_text(rng: random.Random, size: int, words: tuple[str, ...] = WORDS) -> str:
    parts: list[str] = []
    length = 0
    while length < size:
        if rng.random() < 0.2:
            a, b = rng.randint(2, 999), rng.randint(2, 99)
            piece = f"{a} * {b} = {a * b}:"
        else:
            piece = rng.choice(words)
        parts.append(piece)
        length += len(piece) + 1
    return " ".join(parts)[:size]


def load_redact(impl: str | None) -> type[Any]:
    if impl is None:
        from gemmalog.processors.redact import Redact

        return Redact
    spec = importlib.util.spec_from_file_location("redact_under_test", impl)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.Redact  # type: ignore[no-any-return]


def model_output_template() -> dict[str, Any]:
    """A real model_output line, read back from a run's JSONL."""
    with tempfile.TemporaryDirectory() as tmp:
        run = gemmalog.initialize(root=tmp, run_name="bench", private=True)
        gemmalog.log_model_output(
            "Natalia sold clips to 48 of her friends in April. How many clips in total?",
            "72",
            "<reasoning>x</reasoning><answer>72</answer>",
            step=3,
            rewards={"format": 1.0, "correctness": 2.0, "length": 0.25, "xml": 0.5},
            correct=True,
        )
        gemmalog.shutdown()
        for line in run.jsonl_path.read_bytes().splitlines():
            event = orjson.loads(line)
            if event.get("kind") == "model_output":
                return dict(event)
    raise RuntimeError("the benchmark run wrote no model_output line")


def time_per_call(fn: Any, inputs: list[Any], rounds: int) -> float:
    """Best round's mean µs per call: on a shared machine the other rounds measure the
    neighbours (the ``timeit`` convention)."""
    results = []
    for _ in range(rounds):
        start = time.perf_counter_ns()
        for item in inputs:
            fn(item)
        results.append((time.perf_counter_ns() - start) / len(inputs) / 1000)
    return min(results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--impl", help="path of a redact.py to time instead of the installed one")
    parser.add_argument("--n", type=int, default=2000, help="distinct inputs per round")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--json", help="write the results to this file")
    args = parser.parse_args()

    redact_cls = load_redact(args.impl)
    rng = random.Random(13)
    strings = [reasoning_text(rng, 1536) for _ in range(args.n)]
    plain = [reasoning_text(rng, 1536, PLAIN_WORDS) for _ in range(args.n)]
    template = model_output_template()
    events = []
    for _ in range(args.n):
        event = dict(template)
        text = f"<reasoning>{reasoning_text(rng, 1400)}</reasoning><answer>72</answer>"
        # as log_model_output does: the reasoning and answer are pieces of the completion
        event["model_output"] = text
        event["reasoning"], event["answer"] = extract_reasoning_and_answer(text)
        event["rewards"] = dict(template["rewards"])
        events.append(event)
    redact = redact_cls()
    # warm the key caches (a training run logs the same keys every step)
    redact(None, "info", dict(events[0]))

    per_string = time_per_call(redact.text, strings, args.rounds)
    per_plain = time_per_call(redact.text, plain, args.rounds)
    # The processor mutates the event: give each call its own shallow copy, and subtract the
    # cost of that copy.
    copies = [dict(e) for e in events]
    copy_cost = time_per_call(dict, events, args.rounds)
    per_event = time_per_call(lambda e: redact(None, "info", dict(e)), copies, args.rounds)
    result = {
        "impl": args.impl or "gemmalog.processors.redact",
        "python": platform.python_version(),
        "machine": platform.machine(),
        "us_per_1_5kb_string": round(per_string, 2),
        "us_per_1_5kb_string_without_trigger_words": round(per_plain, 2),
        "us_per_model_output_event": round(per_event - copy_cost, 2),
        "event_text_bytes": sum(len(v) for v in events[0].values() if isinstance(v, str)),
    }
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    sys.exit(main())
