"""Secret redaction: credentials never reach a file.

Two checks, both on by default:
- a key that names a credential (``api_key``, ``password``, ``hf_token``, ``authorization``
  ...) has its value replaced, whatever the value is;
- text that has the shape of a credential (Hugging Face ``hf_`` tokens, ``Bearer`` headers,
  AWS access keys, OpenAI/Anthropic-style ``sk-`` keys, GitHub and Slack tokens, JWTs,
  ``password=...`` assignments, passwords in URLs) is replaced wherever it appears: messages,
  nested fields, exception text.

This processor runs on the listener thread, before rendering: scanning text costs time in
proportion to its length (a 2 KB completion), which is serialization-side work. Every sink
sits behind the listener, so no file ever sees an unredacted value.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

REDACTED = "[REDACTED]"

_SECRET_KEY = re.compile(
    r"(?:^|[_\-.])(?:api[_\-]?key|apikey|secret|secret[_\-]?key|client[_\-]?secret|password|passwd|"
    r"passphrase|authorization|auth|credentials?|private[_\-]?key|access[_\-]?key|session[_\-]?key|"
    r"token|access[_\-]?token|refresh[_\-]?token|auth[_\-]?token|bearer|cookie)$",
    re.IGNORECASE,
)
# Tokenizer vocabulary names end in "_token" and are not credentials.
_NOT_SECRET_KEY = re.compile(
    r"^(?:pad|eos|bos|unk|sep|cls|mask|additional_special|start|end|image|audio|boi|eoi|"
    r"num|max|min|total|mean|special)[_\-]?tokens?$",
    re.IGNORECASE,
)

_VALUE_PATTERNS = (
    r"\bhf_[A-Za-z0-9]{20,}",  # Hugging Face user/org tokens
    r"\b(?:sk|rk)-(?:[A-Za-z0-9_\-]{2,}-)?[A-Za-z0-9_\-]{20,}",  # OpenAI/Anthropic style keys
    r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA)[0-9A-Z]{16}\b",  # AWS access key ids
    r"\bgh[pousr]_[A-Za-z0-9]{30,}",  # GitHub tokens
    r"\bgithub_pat_[A-Za-z0-9_]{30,}",
    r"\bxox[abprs]-[A-Za-z0-9\-]{10,}",  # Slack
    r"\beyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}",  # JWT
    r"(?i:\bbearer\s+[A-Za-z0-9\-._~+/]{8,}=*)",  # Authorization: Bearer ...
    r"(?i:\bbasic\s+[A-Za-z0-9+/]{12,}={0,2})",  # Authorization: Basic ...
    # key=value / key: value assignments of credential names, e.g. WANDB_API_KEY=..., password: ...
    r"(?i:\b[A-Za-z0-9_]*(?:api[_\-]?key|secret(?:[_\-]?access)?[_\-]?key|secret|password|passwd|token)"
    r"['\"]?\s*[:=]\s*['\"]?[^\s'\",;}]{6,})",
    r"(?<=://)[^/\s:@]+:[^/\s@]+(?=@)",  # user:password@ in URLs
)


def _compile(extra: Iterable[str]) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{p})" for p in (*_VALUE_PATTERNS, *extra)))


class Redact:
    """structlog processor: replace credential-looking keys' values and credential-shaped text."""

    __slots__ = ("_extra_keys", "_pattern")

    def __init__(self, extra_patterns: Iterable[str] = (), extra_keys: Iterable[str] = ()) -> None:
        self._pattern = _compile(extra_patterns)
        self._extra_keys = frozenset(k.lower() for k in extra_keys)

    def is_secret_key(self, key: str) -> bool:
        if key.lower() in self._extra_keys:
            return True
        return bool(_SECRET_KEY.search(key)) and not _NOT_SECRET_KEY.match(key)

    def text(self, value: str) -> str:
        """Return ``value`` with every credential-shaped substring replaced."""
        return self._pattern.sub(REDACTED, value)

    def value(self, value: Any, depth: int = 0) -> Any:
        t = type(value)
        if t is str:
            return self._pattern.sub(REDACTED, value) if len(value) >= 8 else value
        if depth > 64:
            return value
        if t is dict:
            return {
                k: (REDACTED if value[k] is not None and self.is_secret_key(k) else self.value(v, depth + 1))
                for k, v in value.items()
            }
        if t is list:
            return [self.value(v, depth + 1) for v in value]
        return value

    def __call__(self, logger: Any, method_name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
        for key, val in event_dict.items():
            t = type(val)
            if t is str:
                if len(val) >= 8:
                    event_dict[key] = self._pattern.sub(REDACTED, val)
            elif t is dict or t is list:
                event_dict[key] = self.value(val, 1)
        for key in [k for k in event_dict if k not in _ENVELOPE_KEYS and self.is_secret_key(k)]:
            if event_dict[key] is not None:
                event_dict[key] = REDACTED
        return event_dict


_ENVELOPE_KEYS = frozenset({"v", "ts", "kind", "logger", "level", "run", "rank", "step", "epoch", "event"})
