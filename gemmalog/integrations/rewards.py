"""Reward-function wrappers: every completion of every step, with each function's score.

No TrainerCallback hook sees prompts, completions or per-sample rewards; TRL's supported
way to reach them is the reward function itself. A wrapped function calls the original,
returns exactly what it returned, and hands the values to a
:class:`~gemmalog.integrations.collector.RewardCollector`. When every wrapped function has
scored a batch, the collector hands the batch to the pipeline, which logs one
``model_output`` event per sample with all the functions' scores on it, plus the
per-function ``reward`` events, a ``reward_summary`` and (every ``logging_frequency`` steps)
``generation_metrics`` (``collector.py``).

The wrappers keep TRL's view of each function: its name (TRL names metrics by it), its
signature, its being async (TRL awaits an async function, partial or ``__call__``), and the
result object it returned.

Sharing: wrappers made without a collector and a ``GemmalogCallback`` made without one use
the same process-wide :func:`default_collector`, so the callback's progress and final
accuracy count the completions the wrappers saw, whichever of the two was created first.

Two functions with one TRL name (two partials of one function) are told apart by their
position: the first keeps the name, later ones are recorded as ``<name>_2``, ``<name>_3``.

Nothing here imports torch, transformers or trl: the wrappers work with any trainer that
calls reward functions the way TRL does.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from gemmalog.deferred import answers_match
from gemmalog.integrations.advantages import Capture
from gemmalog.integrations.collector import RewardCollector
from gemmalog.notices import warn_once


def _is_reward_model(func: Any) -> bool:
    """A model id or an ``nn.Module``: TRL scores those itself, so they are not wrapped."""
    return isinstance(func, str) or (hasattr(func, "forward") and hasattr(func, "parameters"))


def _unwrap_partial(func: Any) -> Any:
    while isinstance(func, functools.partial):
        func = func.func
    return func


def reward_name(func: Any) -> str:
    """The name TRL gives a reward function (``trl.trainer.utils.get_callable_name``): a
    partial's wrapped function, a function's ``__name__``, else the instance's class name."""
    inner = _unwrap_partial(func)
    return str(getattr(inner, "__name__", type(inner).__name__))


def _is_async(func: Any) -> bool:
    """TRL's test (``is_async_callable``): an async function, partial or ``__call__``."""
    inner = _unwrap_partial(func)
    call = inner.__call__ if callable(inner) else None
    return inspect.iscoroutinefunction(inner) or inspect.iscoroutinefunction(call)


def unique_label(name: str, taken: Sequence[str]) -> str:
    """``name``, or ``name_2``, ``name_3``, ... for the first one not in ``taken``."""
    label, n = name, 2
    while label in taken:
        label, n = f"{name}_{n}", n + 1
    return label


def wrap_reward_function(
    func: Callable[..., Any],
    collector: RewardCollector,
    name: str | None = None,
    *,
    label: str | None = None,
) -> Callable[..., Any]:
    """Wrap one reward function; its TRL name and signature are kept (TRL names metrics by it).

    ``name`` is the wrapper's ``__name__`` (default: the name TRL gives ``func``); ``label``
    is the key of its values in the collector and in ``model_output.rewards`` (default:
    ``name``). Partials and callable instances keep the name TRL would give them; async
    functions (and instances with an async ``__call__``) get an async wrapper, which TRL
    awaits. The wrapper returns the original's result object, except that a one-shot
    iterator (a generator) is turned into a list first, so logging it does not leave TRL
    an empty one.
    """
    fn_name = name or reward_name(func)
    key = label or fn_name

    def report(result: Any, args: tuple[Any, ...], kwargs: dict[str, Any], capture: Capture) -> Any:
        # A list (what reward functions return) is no iterator: the ABC check is skipped.
        if type(result) is not list and isinstance(result, Iterator):
            result = list(result)
        try:
            prompts = kwargs.get("prompts", args[0] if args else None)
            completions = kwargs.get("completions", args[1] if len(args) > 1 else None)
            if completions is not None and result is not None:
                collector.record(key, result, prompts, completions, kwargs, capture)
        except Exception as exc:  # never let logging change what training sees
            collector.errors += 1
            if collector.errors == 1:
                warn_once(f"reward logging failed in {key}: {exc}", key=f"rewards:{key}")
        return result

    if _is_async(func):

        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            capture = Capture()  # log_extra / log_metric pass through it to TRL's
            return report(await func(*args, **capture.wrap(kwargs)), args, kwargs, capture)

        wrapped: Callable[..., Any] = async_wrapper
    else:

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            capture = Capture()  # log_extra / log_metric pass through it to TRL's
            return report(func(*args, **capture.wrap(kwargs)), args, kwargs, capture)

        wrapped = wrapper
    with contextlib.suppress(AttributeError, TypeError):  # docstring, module, attributes
        functools.update_wrapper(wrapped, _unwrap_partial(func))
    wrapped.__name__ = wrapped.__qualname__ = fn_name
    if isinstance(func, functools.partial) or not inspect.isfunction(func):
        wrapped.__signature__ = inspect.signature(func)  # type: ignore[attr-defined]
    wrapped.__wrapped__ = func  # type: ignore[attr-defined]
    wrapped.__gemmalog_collector__ = collector  # type: ignore[attr-defined]
    wrapped.__gemmalog_label__ = key  # type: ignore[attr-defined]
    return wrapped


_default: RewardCollector | None = None
_default_lock = threading.Lock()


def default_collector() -> RewardCollector:
    """The collector shared by the wrappers and callbacks made without one, in this process.

    Its counts and sample numbers follow the running run (they start afresh in each run);
    the options given to :func:`wrap_reward_functions` or ``GemmalogCallback`` apply to it.
    """
    global _default
    with _default_lock:
        if _default is None:
            _default = RewardCollector()
        return _default


def wrap_reward_functions(
    funcs: Sequence[Callable[..., Any]], collector: RewardCollector | None = None, **options: Any
) -> list[Callable[..., Any]]:
    """Wrap TRL reward functions so every sample's scores are logged on one ``model_output``.

    Pass the result as ``GRPOTrainer(reward_funcs=...)``, all functions in one call: the call
    sets the collector's functions. Without ``collector`` the wrappers report to
    :func:`default_collector`, which a ``GemmalogCallback`` made without one shares; or use
    ``callback.wrap(funcs)``. ``options`` are :class:`RewardCollector` options, applied to the
    collector used. A name TRL gives two functions (two partials of one function) is kept
    for the first; the later ones are recorded as ``<name>_2``, ``<name>_3`` ...
    """
    if collector is None:
        collector = default_collector()
    collector.configure(**options)
    labels: list[str] = []
    positions: dict[str, int] = {}
    wrapped: list[Callable[..., Any]] = []
    for i, func in enumerate(funcs):
        if _is_reward_model(func):
            wrapped.append(func)
            continue
        label = unique_label(reward_name(func), labels)
        labels.append(label)
        positions[label] = i  # TRL's reward_weights follow positions in reward_funcs
        wrapped.append(wrap_reward_function(func, collector, label=label))
    collector.expected = labels
    collector.positions = positions
    collector.total_functions = len(funcs)
    return wrapped


def logged_reward(
    collector: RewardCollector | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator form for one function: ``@logged_reward(collector)`` (or ``@logged_reward()``
    for :func:`default_collector`); the function joins the collector's functions."""
    target = collector if collector is not None else default_collector()

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        label = unique_label(reward_name(func), target.expected)
        wrapped = wrap_reward_function(func, target, label=label)
        target.expected.append(label)
        return wrapped

    return decorate


__all__ = [
    "RewardCollector",
    "answers_match",
    "default_collector",
    "logged_reward",
    "reward_name",
    "unique_label",
    "wrap_reward_function",
    "wrap_reward_functions",
]
