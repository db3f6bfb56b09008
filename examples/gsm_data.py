"""Deterministic, GSM8K-like toy arithmetic data for the gemmalog examples.

Real GSM8K needs a download and a model far larger than anything that trains on two CPU
cores, so the examples use one-step word problems ("Tom has 3 apples and buys 4 more...")
whose answers are small integers. The same generator feeds three consumers, which is the
point of keeping it in one module:

* ``make_dataset`` builds the GRPO training set (conversational ``prompt`` plus the
  ``question`` and ``answer`` columns the reward functions read);
* ``tiny_gemma.py`` trains its BPE tokenizer on :func:`tokenizer_corpus`;
* ``tiny_gemma.py`` warms the model up on :func:`format_completion` targets, so the model has
  seen exactly the ``<reasoning>``/``<answer>`` layout that the format rewards look for.

Everything is driven by an explicit ``random.Random(seed)``: the same ``(n, seed)`` always
gives the same rows, on any machine, without touching global random state.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # datasets is only needed to build a Dataset, not to generate problems
    from datasets import Dataset

#: Bump when the problem generator changes; tiny_gemma.py folds it into its cache key so a
#: cached model is rebuilt when the text it was trained on would differ.
DATA_VERSION = 1

#: The output format of the plan (and of the original Gemma GRPO scripts).
SYSTEM_PROMPT = """Respond in the following format:
<reasoning>
...
</reasoning>
<answer>
...
</answer>"""

#: Format tags, shared with the tokenizer (which keeps each tag a single token).
FORMAT_TAGS: tuple[str, ...] = ("<reasoning>", "</reasoning>", "<answer>", "</answer>")

_NAMES = ("Tom", "Anna", "Ben", "Mia", "Sam", "Lily", "Max", "Emma", "Leo", "Zoe")
_ITEMS = ("apples", "books", "pens", "coins", "cards", "eggs", "shells", "stamps")

# (operation, template). Templates only use {name}, {item}, {a}, {b}.
_TEMPLATES: tuple[tuple[str, str], ...] = (
    ("+", "{name} has {a} {item} and buys {b} more. How many {item} does {name} have now?"),
    ("+", "{name} found {a} {item} on Monday and {b} {item} on Tuesday. How many {item} in total?"),
    ("+", "What is {a} + {b}?"),
    ("-", "{name} had {a} {item} and gave {b} away. How many {item} are left?"),
    ("-", "{name} has {a} {item} and loses {b} of them. How many {item} remain?"),
    ("-", "What is {a} - {b}?"),
    ("*", "{name} buys {a} boxes with {b} {item} each. How many {item} is that in total?"),
    ("*", "There are {a} bags and each bag holds {b} {item}. How many {item} are there?"),
    ("*", "What is {a} * {b}?"),
)


@dataclass(frozen=True)
class Problem:
    """One word problem with its worked solution."""

    question: str
    a: int
    b: int
    op: str
    result: int

    @property
    def reasoning(self) -> str:
        """The one-line worked solution, e.g. ``"3 + 4 = 7"`` (short enough for 32 tokens)."""
        return f"{self.a} {self.op} {self.b} = {self.result}"

    @property
    def answer(self) -> str:
        """The integer answer as a string, which is what GSM8K-style datasets store."""
        return str(self.result)


def generate_problem(rng: random.Random) -> Problem:
    """Draw one problem; operands are kept small so a ~100k-parameter model can learn some."""
    op, template = rng.choice(_TEMPLATES)
    if op == "+":
        a, b = rng.randint(1, 20), rng.randint(1, 20)
        result = a + b
    elif op == "-":
        a = rng.randint(2, 30)
        b = rng.randint(1, a - 1)
        result = a - b
    else:
        a, b = rng.randint(2, 9), rng.randint(2, 9)
        result = a * b
    question = template.format(name=rng.choice(_NAMES), item=rng.choice(_ITEMS), a=a, b=b)
    return Problem(question=question, a=a, b=b, op=op, result=result)


def iter_problems(n: int, seed: int = 0) -> Iterator[Problem]:
    """Yield ``n`` problems from a private RNG, so callers never disturb ``random``'s state."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    rng = random.Random(seed)
    for _ in range(n):
        yield generate_problem(rng)


def format_completion(problem: Problem) -> str:
    """The ideal model answer in the plan's format (what strict_format_reward_func accepts)."""
    return f"<reasoning>\n{problem.reasoning}\n</reasoning>\n<answer>\n{problem.answer}\n</answer>"


def make_prompt(question: str) -> list[dict[str, str]]:
    """Conversational prompt as TRL expects it: a system message and one user message."""
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": question},
    ]


def make_dataset(n: int, seed: int = 0) -> Dataset:
    """Build ``n`` rows with columns ``prompt``, ``question`` and ``answer``.

    ``answer`` is kept as a column because TRL passes every non-prompt column to reward
    functions as a keyword argument; correctness_reward_func reads it from there.
    """
    from datasets import Dataset

    problems = list(iter_problems(n, seed))
    return Dataset.from_dict(
        {
            "prompt": [make_prompt(p.question) for p in problems],
            "question": [p.question for p in problems],
            "answer": [p.answer for p in problems],
        }
    )


def tokenizer_corpus(n: int, seed: int = 0) -> Iterator[str]:
    """Texts for BPE training: the system prompt, questions, worked answers and role names.

    The format tags are left out on purpose: the tokenizer registers them as whole tokens,
    so spending BPE merges on ``reasoning``/``answer`` fragments would waste the small vocab.
    """
    system_text = SYSTEM_PROMPT
    for tag in FORMAT_TAGS:
        system_text = system_text.replace(tag, "")
    yield system_text
    yield "user\nmodel\n"
    for problem in iter_problems(n, seed):
        yield problem.question
        yield f"\n{problem.reasoning}\n\n\n{problem.answer}\n"


if __name__ == "__main__":
    ds = make_dataset(3)
    for row in ds:
        print(row["question"], "->", row["answer"])
    print(format_completion(next(iter_problems(1))))
