"""Conversations: prompts and completions given as chat message lists, kept whole.

TRL's conversational data gives a prompt as a list of messages (system, user, assistant,
tool) and a completion as the assistant's messages, with ``tool_calls`` and the tool
results of a tool-calling rollout. :func:`conversation` keeps them as they are, so the
``messages`` field of a ``model_output`` event round-trips; only images (a PIL image or
raw bytes in a content part) become the placeholder ``"<image>"``, since a log line holds
no pictures.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

#: What an image in a message is written as.
IMAGE: str = "<image>"

_PLAIN = (str, int, float, bool, type(None))


def is_messages(value: Any) -> bool:
    """Whether ``value`` is a chat conversation: a list of dicts, each with a ``role``."""
    return (
        isinstance(value, Sequence)
        and not isinstance(value, str | bytes)
        and len(value) > 0
        and all(isinstance(m, Mapping) and "role" in m for m in value)
    )


def _plain(value: Any, image: bool = False) -> Any:
    """``value`` as JSON data: dicts and lists copied, an image replaced by the placeholder."""
    if isinstance(value, _PLAIN):
        return value
    if isinstance(value, Mapping):
        is_image = value.get("type") == "image"
        return {str(k): _plain(v, is_image and k in ("image", "data")) for k, v in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, bytes | bytearray):
        return [_plain(v) for v in value]
    return IMAGE if image or isinstance(value, bytes | bytearray) or _is_picture(value) else value


def _is_picture(value: Any) -> bool:
    module = type(value).__module__ or ""
    return module.startswith("PIL.")


def conversation(prompt: Any, completion: Any) -> tuple[list[dict[str, Any]], int] | None:
    """``(messages, prompt_turns)``: the prompt's messages followed by the completion's, and
    how many of them were the prompt; None when neither is a message list.

    A plain-text prompt of a conversational completion becomes one ``user`` message; a
    single message dict counts as a list of one.
    """
    if isinstance(completion, Mapping) and "role" in completion:
        completion = [completion]
    if isinstance(prompt, Mapping) and "role" in prompt:
        prompt = [prompt]
    prompt_is, completion_is = is_messages(prompt), is_messages(completion)
    if not prompt_is and not completion_is:
        return None
    if prompt_is:
        head = [_plain(m) for m in prompt]
    elif isinstance(prompt, str):
        head = [{"role": "user", "content": prompt}]
    else:
        head = []
    if completion_is:
        tail = [_plain(m) for m in completion]
    elif isinstance(completion, str):
        tail = [{"role": "assistant", "content": completion}]
    else:
        tail = []
    return head + tail, len(head)
