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

from gemmalog.processors.sanitize import flat_finite_numbers

REDACTED = "[REDACTED]"

_SECRET_KEY = re.compile(
    r"(?:^|[_\-.])(?:api[_\-]?key|apikey|secret|secret[_\-]?key|client[_\-]?secret|password|passwd|"
    r"passphrase|authorization|auth|credentials?|private[_\-]?key|access[_\-]?key|session[_\-]?key|"
    r"signing[_\-]?key|encryption[_\-]?key|wandb[_\-]?key|hf[_\-]?key|"
    r"token|access[_\-]?token|refresh[_\-]?token|auth[_\-]?token|bearer|cookie)$",
    re.IGNORECASE,
)
# Tokenizer vocabulary names end in "_token" and are not credentials.
_NOT_SECRET_KEY = re.compile(
    r"^(?:pad|eos|bos|unk|sep|cls|mask|additional_special|start|end|image|audio|boi|eoi|"
    r"num|max|min|total|mean|special)[_\-]?tokens?$",
    re.IGNORECASE,
)

# (lower-case trigger substrings, pattern). A pattern runs only on text that contains one of
# its triggers: ``in`` is a C-speed substring search, while one big alternation regex costs
# about 0.5 ms per 2 KB of text in Python's ``re``.
_RULES: tuple[tuple[tuple[str, ...], str], ...] = (
    (("hf_",), r"\bhf_[A-Za-z0-9]{20,}"),  # Hugging Face user/org tokens
    (
        ("sk-", "rk-"),
        r"\b(?:sk|rk)-(?:[A-Za-z0-9_\-]{2,}-)?[A-Za-z0-9_\-]{20,}",
    ),  # OpenAI/Anthropic style
    (
        ("akia", "asia", "agpa", "aida", "aroa"),
        r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA)[0-9A-Z]{16}\b",
    ),  # AWS key ids
    (("ghp_", "gho_", "ghu_", "ghs_", "ghr_"), r"\bgh[pousr]_[A-Za-z0-9]{30,}"),  # GitHub tokens
    (("github_pat_",), r"\bgithub_pat_[A-Za-z0-9_]{30,}"),
    (("xox",), r"\bxox[abprs]-[A-Za-z0-9\-]{10,}"),  # Slack
    (("eyj",), r"\beyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}"),  # JWT
    (("bearer",), r"(?i:\bbearer\s+[A-Za-z0-9\-._~+/]{8,}=*)"),  # Authorization: Bearer ...
    (("basic",), r"(?i:\bbasic\s+[A-Za-z0-9+/]{12,}={0,2})"),  # Authorization: Basic ...
    # credential-named assignments: WANDB_API_KEY=..., password: ..., aws_secret_access_key = ...
    (
        ("key", "secret", "passw", "token"),
        r"(?i:(?:api[_\-]?key|access[_\-]?key|secret[_\-]?key|secret|password|passwd|token)"
        r"['\"]?\s*[:=]\s*['\"]?[^\s'\",;}]{6,})",
    ),
    (("://",), r"(?<=://)[^/\s:@]+:[^/\s@]+(?=@)"),  # user:password@ in URLs
    # `wandb login <40-hex key>` (or `wandb login --relogin <key>`) on a command line
    (("wandb",), r"(?<=login )[0-9a-f]{40}\b"),
)


def _compile(extra: Iterable[str]) -> tuple[tuple[tuple[str, ...], re.Pattern[str]], ...]:
    rules = [(triggers, re.compile(p)) for triggers, p in _RULES]
    rules.extend(((), re.compile(p)) for p in extra)  # user patterns always run
    return tuple(rules)


class Redact:
    """structlog processor: replace credential-looking keys' values and credential-shaped text."""

    __slots__ = ("_always", "_extra_keys", "_keys", "_safe", "_short", "_triggers")

    def __init__(self, extra_patterns: Iterable[str] = (), extra_keys: Iterable[str] = ()) -> None:
        rules = _compile(extra_patterns)
        self._triggers = tuple((t, pattern) for triggers, pattern in rules for t in triggers)
        self._always = tuple(pattern for triggers, pattern in rules if not triggers)
        self._extra_keys = frozenset(k.lower() for k in extra_keys)
        self._keys: dict[str, bool] = {}
        self._safe: set[str] = set()  # keys known not to name a credential
        # Short strings recur on every event (logger names, messages): remember the result.
        self._short: dict[str, str] = {}

    def is_secret_key(self, key: str) -> bool:
        """Whether a key names a credential; cached, since the same keys recur every step."""
        known = self._keys.get(key)
        if known is None:
            if len(self._keys) > 100_000:
                self._keys.clear()
                self._safe.clear()
            lowered = key.lower() if isinstance(key, str) else str(key)
            known = lowered in self._extra_keys or (
                bool(_SECRET_KEY.search(lowered)) and not _NOT_SECRET_KEY.match(lowered)
            )
            self._keys[key] = known
            if not known and isinstance(key, str):
                self._safe.add(key)
        return known

    def text(self, value: str) -> str:
        """Return ``value`` with every credential-shaped substring replaced."""
        short = len(value) <= 256
        if short:
            known = self._short.get(value)
            if known is not None:
                return known
        original = value
        lowered = value.lower()
        done: set[re.Pattern[str]] = set()
        for trigger, pattern in self._triggers:
            if trigger in lowered and pattern not in done:
                done.add(pattern)
                value = pattern.sub(REDACTED, value)
        for pattern in self._always:
            value = pattern.sub(REDACTED, value)
        if short:
            if len(self._short) > 10_000:
                self._short.clear()
            self._short[original] = value
        return value

    def value(self, value: Any, depth: int = 0) -> Any:
        t = type(value)
        if t is str:
            return self.text(value) if len(value) >= 8 else value
        if depth > 64:
            return value
        if t is dict:
            # Flat numeric dicts (metrics, rewards) with keys seen before: nothing to scan.
            if value.keys() <= self._safe and flat_finite_numbers(value):
                return value
            return {
                k: (
                    REDACTED
                    if value[k] is not None and self.is_secret_key(k)
                    else self.value(v, depth + 1)
                )
                for k, v in value.items()
            }
        if t is list:
            return [self.value(v, depth + 1) for v in value]
        return value

    def __call__(self, logger: Any, method_name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
        secret: list[str] | None = None
        for key, val in event_dict.items():
            if key in _OWN_KEYS:
                continue
            t = type(val)
            if t is str:
                if len(val) >= 8:
                    event_dict[key] = self.text(val)
            elif t is dict or t is list:
                event_dict[key] = self.value(val, 1)
            if val is not None and key != "event" and self.is_secret_key(key):
                secret = [*(secret or ()), key]
        for key in secret or ():
            event_dict[key] = REDACTED
        return event_dict


# Values gemmalog itself sets from numbers or fixed names: never credentials.
_OWN_KEYS = frozenset(
    {
        "v",
        "ts",
        "kind",
        "level",
        "run",
        "rank",
        "step",
        "epoch",
        "device",
        "rss_mb",
        "gpu_mb",
        "phase",
    }
)
