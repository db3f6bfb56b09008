"""What the TRL callback reads from transformers' objects, apart from when it logs it.

- :func:`split_logs`: an ``on_log`` dict split by phase (TRL's ``eval_`` keys);
- :func:`snapshot`: the TrainingArguments / GRPOConfig as a dict;
- :func:`gradient_norms`: the gradients' L2 norm per parameter group (a layer or a top
  module), with torch taken from ``sys.modules`` (the trainer imported it).
"""

from __future__ import annotations

import dataclasses
import sys
from typing import Any

_EVAL_PREFIX = "eval_"


def split_logs(logs: dict[str, Any]) -> dict[str, dict[str, float]]:
    """``{phase: {name: value}}`` from an ``on_log`` dict: numeric values only (bools as 0/1
    excluded, as transformers' TensorBoardCallback does); ``eval_`` keys go to phase eval."""
    train: dict[str, float] = {}
    evals: dict[str, float] = {}
    eval_first = False  # the phases in the order their first key came, as logs has them
    for key, value in logs.items():
        # TRL's values are plain floats and ints: one type() check each; bools are ints.
        t = type(value)
        if t is not float and t is not int and (t is bool or not isinstance(value, int | float)):
            continue
        if key.startswith(_EVAL_PREFIX):
            if not evals and not train:
                eval_first = True
            evals[key[len(_EVAL_PREFIX) :]] = value
        else:
            train[key] = value
    if eval_first:
        return {"eval": evals, "train": train} if train else {"eval": evals}
    out: dict[str, dict[str, float]] = {"train": train} if train else {}
    if evals:
        out["eval"] = evals
    return out


def snapshot(args: Any) -> dict[str, Any]:
    """TrainingArguments (or any dataclass or object) as a dict, for ``run_start``."""
    if dataclasses.is_dataclass(args) and not isinstance(args, type):
        try:
            return dict(args.to_dict()) if hasattr(args, "to_dict") else dataclasses.asdict(args)
        except Exception:
            pass
    return {k: v for k, v in vars(args).items() if not k.startswith("_")}


def group_of(name: str) -> str:
    """Parameter group for gradient norms: the layer (``model.layers.3``) or the top module."""
    parts = name.split(".")
    for i, part in enumerate(parts):
        if part.isdigit():
            return ".".join(parts[: i + 1])
    return ".".join(parts[:2]) if len(parts) > 2 else parts[0]


def gradient_norms(model: Any) -> dict[str, float]:
    """group -> the L2 norm of the gradients of the group's parameters (those with one)."""
    torch = sys.modules["torch"]
    squares: dict[str, Any] = {}
    for name, param in model.named_parameters():
        if param.grad is None:
            continue
        group = group_of(name)
        # dtype= accumulates in fp32 without an fp32 copy of the gradient
        value = torch.linalg.vector_norm(param.grad.detach(), dtype=torch.float32) ** 2
        squares[group] = squares[group] + value if group in squares else value
    if not squares:
        return {}
    names = list(squares)
    norms = torch.stack([squares[n] for n in names]).sqrt().tolist()  # one device sync
    return dict(zip(names, norms, strict=True))
