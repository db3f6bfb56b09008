"""Secret redaction: credentials never reach a file.

Two checks, both on by default (docs/security.md lists every rule and where it applies):

- a key that names a credential, in any case style (``hub_token``, ``X-Api-Key``,
  ``secretAccessKey``, ``SessionToken``, ``aws.secret_access_key``), has its value replaced,
  whatever the value is (except ``None``, booleans and floats, which cannot be credentials);
- text that has the shape of a credential (Hugging Face, OpenAI, Anthropic, GitHub, GitLab,
  Slack, AWS and Google tokens, JWTs, PEM private keys, ``Authorization:`` headers of any
  scheme, ``password=...``-style assignments, Azure connection-string parts, passwords in
  URLs, secret command-line flags) is replaced wherever it appears: messages, nested fields,
  dict keys, exception text, argv.

One pass per string: every rule is an alternative of one compiled regex, and every
alternative starts with a literal character, so ``re`` skips the positions where no rule can
start with a C-speed first-character test. A prefilter anchored on characters that are rare
in prose decides whether that pass is needed at all (about 5 µs per 1.5 KB of reasoning
text, against 12 µs for one prefilter regex and 19-85 µs for a lower-cased copy, 24
substring scans and the rules they triggered; benchmarks/bench_redact.py). Numbers, booleans
and short strings are never scanned; short strings and keys are cached, since the same ones
recur on every event; and an event with the keys and short texts of one already found
clean (every training step's metrics event) only has its numbers and dicts looked at.

This processor runs on the listener thread, before rendering; every sink sits behind the
listener, and run.json goes through the same instance (:meth:`Redact.manifest`), so no file
ever sees an unredacted value.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from operator import itemgetter
from typing import Any

from gemmalog.processors.sanitize import flat_finite_numbers
from gemmalog.processors.secret_rules import (
    PATTERN_KEYS,
    REDACTED,
    key_names_secret,
    redact_text,
)

__all__ = ["REDACTED", "Redact", "key_names_secret"]


def _literal_forms(pattern: str) -> set[str]:
    """How a user pattern's own text appears when written: as is, JSON- or repr-escaped."""
    return {pattern, json.dumps(pattern)[1:-1], repr(pattern)[1:-1]}


class Redact:
    """structlog processor: replace credential-named keys' values and credential-shaped text.

    ``extra_patterns`` are the user's own regular expressions (``redact_patterns``): each
    match is replaced, and so is the patterns' own text (``re.escape(secret)`` does not
    match itself), so they are never written either.
    """

    __slots__ = ("_extra", "_keys", "_safe", "_shapes", "_short")

    def __init__(self, extra_patterns: Iterable[str] = ()) -> None:
        patterns = [p for p in extra_patterns if p]
        literals = sorted(
            {form for p in patterns for form in _literal_forms(p)}, key=len, reverse=True
        )
        extra = [re.compile(p) for p in patterns]
        if literals:
            extra.append(re.compile("|".join(re.escape(form) for form in literals)))
        self._extra = tuple(extra)
        # key -> (names a credential, the key with any credential-shaped text replaced)
        self._keys: dict[str, tuple[bool, str]] = {}
        self._safe: set[str] = set()  # keys that name no credential and hold none
        # Short strings recur on every event (logger names, messages): remember the result.
        self._short: dict[str, str] = {}
        # An event's keys, in order -> what is known of events with exactly those keys (see
        # _Shape); _VOLATILE for key sets that are not all safe or whose texts never repeat.
        self._shapes: dict[tuple[Any, ...], Any] = {}

    # -- keys ----------------------------------------------------------------------------
    def _key(self, key: str) -> tuple[bool, str]:
        known = self._keys.get(key)
        if known is None:
            if len(self._keys) > 100_000:
                self._keys.clear()
                self._safe.clear()
                self._shapes.clear()
            known = (key_names_secret(key), self.text(key) if len(key) >= 8 else key)
            self._keys[key] = known
            # redact_patterns is safe as a name but never as a value (see __call__)
            if known == (False, key) and key not in PATTERN_KEYS:
                self._safe.add(key)
        return known

    def is_secret_key(self, key: str) -> bool:
        """Whether a key names a credential; cached, since the same keys recur every step."""
        return self._key(key)[0] if isinstance(key, str) else False

    # -- text ----------------------------------------------------------------------------
    def text(self, value: str) -> str:
        """Return ``value`` with every credential-shaped substring replaced."""
        short = len(value) <= 256
        if short:
            known = self._short.get(value)
            if known is not None:
                return known
        out = redact_text(value)
        for pattern in self._extra:  # user patterns always run
            out = pattern.sub(REDACTED, out)
        if short:
            if len(self._short) > 10_000:
                self._short.clear()
            self._short[value] = out
        return out

    def _inside(self, part: str, clean: str) -> bool:
        """Whether ``part`` is clean because it is a piece of ``clean`` cut at whitespace or
        ``<``/``>``: a model output's extracted reasoning and answer.

        Every rule either stops at those characters or only looks past its match to refuse
        a word character, so a match in the piece would be one in the whole text. User
        patterns can look anywhere: with any, nothing is skipped.
        """
        if self._extra:
            return False
        # Where the piece first occurs: found from its first 64 characters (a long needle
        # costs str.find a table over all of it), and confirmed by comparing the rest. Where
        # the whole piece is, its prefix is too, so a confirmed first prefix is the first piece.
        at = clean.find(part[:64])
        if at < 0:
            return False
        if not clean.startswith(part, at):
            at = clean.find(part)
            if at < 0:
                return False
        end = at + len(part)
        return (at == 0 or clean[at - 1] in _CUTS) and (end == len(clean) or clean[end] in _CUTS)

    # -- values --------------------------------------------------------------------------
    def _mapping(self, value: dict[Any, Any], depth: int) -> dict[Any, Any]:
        # Flat numeric dicts (metrics, rewards) with keys seen before: nothing to scan.
        if value.keys() <= self._safe and flat_finite_numbers(value):
            return value
        out: dict[Any, Any] = {}
        for k, v in value.items():
            # A key is written as its str(): that is what is checked. A key whose str() raises
            # fails here, and the listener retries the event with plain keys.
            shown = k if type(k) is str else str(k)
            secret, name = self._key(shown)
            key: Any = k
            if name != shown:  # a credential in the key itself
                key = name if name not in out else f"{name}#{len(out)}"
            if secret and _secret_value(v):
                out[key] = REDACTED
            elif shown in PATTERN_KEYS and type(v) in (list, tuple):
                out[key] = [REDACTED] * len(v)  # the count, never the patterns
            else:
                out[key] = self.value(v, depth + 1)
        return out

    def _sequence(self, value: list[Any], depth: int) -> list[Any]:
        out = [self.value(v, depth + 1) for v in value]
        # A command line as a list (argv): the value after a secret flag is the secret.
        for i in range(len(value) - 1):
            flag = value[i]
            if type(flag) is str and flag[:1] == "-" and "=" not in flag:
                following = value[i + 1]
                if (
                    type(following) is str
                    and following[:1] != "-"
                    and self.is_secret_key(flag.lstrip("-"))
                ):
                    out[i + 1] = REDACTED
        return out

    def value(self, value: Any, depth: int = 0) -> Any:
        """``value`` with credentials replaced; containers are copied, never changed in place."""
        t = type(value)
        if t is str:
            return self.text(value) if len(value) >= 8 else value
        if depth > 64:
            return value
        if t is dict:
            return self._mapping(value, depth)
        if t is list or t is tuple:  # tuples: run.json's config is not sanitized
            items = list(value)
            # Plain numbers only (a reward event's values): nothing the walk could change. The
            # exact types, checked in C; no sum(), which would run the items' own __add__.
            if set(map(type, items)) <= _PLAIN_NUMBERS:
                return items
            return self._sequence(items, depth)
        return value

    def manifest(self, data: dict[str, Any]) -> dict[str, Any]:
        """A run.json manifest redacted like an event; the run id is kept (it names the run)."""
        out = self._mapping({k: v for k, v in data.items() if k != "id"}, 0)
        return {"id": data["id"], **out} if "id" in data else out

    def __call__(self, logger: Any, method_name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
        keys = tuple(event_dict)
        shape = self._shapes.get(keys, _UNSEEN)
        if shape is None:  # a key not known safe, or a value of another type: the walk
            return self._walk(event_dict)
        if shape is _SAFE_KEYS:  # texts that never repeat (completions), keys all safe
            return self._walk(event_dict, keys_safe=True)
        if shape is _UNSEEN:
            event_dict = self._walk(event_dict)
            self._learn(keys, event_dict)
            return event_dict
        try:
            texts = shape.texts(event_dict)
            known = texts in shape.clean
        except TypeError:  # an unhashable value where a text was: the walk decides
            texts, known = None, False
        if known:
            # sum() runs in C and fails on text, None or a container: a plain int or float
            # total means every value under a number's key is still a number.
            try:
                total = sum(shape.numbers(event_dict))
            except Exception:
                total = None
            if type(total) is float or type(total) is int:
                safe = self._safe
                # Under a safe key (not "run", see _learn) the walk gives any value what
                # value() does, whatever it has become: only texts and containers change.
                for key in shape.containers:
                    val = event_dict[key]
                    if type(val) is dict and val.keys() <= safe:  # metrics, rewards
                        try:
                            total = sum(val.values())
                        except Exception:
                            total = None
                        if type(total) is float or type(total) is int:
                            continue  # safe keys, numbers: the walk would change nothing
                    event_dict[key] = self.value(val, 1)
                shape.misses = 0
                return event_dict
        event_dict = self._walk(event_dict)
        shape.missed(self._shapes, keys, texts, event_dict)
        return event_dict

    def _learn(self, keys: tuple[Any, ...], event_dict: dict[str, Any]) -> None:
        """After the first walk of events with these keys: their shape, when every key is
        safe (then only values decide) and every value is text, a number or a container;
        only the keys' safety when a text is long (a completion's texts never repeat)."""
        if len(self._shapes) > 4096:
            self._shapes.clear()
        if not self._safe.issuperset(keys):
            self._shapes[keys] = None
            return
        texts: list[Any] = []
        numbers: list[Any] = []
        containers: list[Any] = []
        for key, val in event_dict.items():
            t = type(val)
            if t is str and len(val) > 256:  # a completion: its texts will not repeat
                self._shapes[keys] = _SAFE_KEYS
                return
            if t is str or t is bool or val is None:
                texts.append(key)
            elif t is int or t is float:
                numbers.append(key)
            elif (t is dict or t is list) and key != "run":
                containers.append(key)
            else:  # another type (a listener processor's own), or a run id that is not text
                self._shapes[keys] = None
                return
        self._shapes[keys] = _Shape(texts, numbers, containers)

    def _walk(self, event_dict: dict[str, Any], keys_safe: bool = False) -> dict[str, Any]:
        """Every value, then every key not known safe (``keys_safe``: none is)."""
        renamed: list[tuple[str, str]] | None = None
        clean: str | None = None  # the longest text of this event found clean, if any
        for key, val in event_dict.items():
            t = type(val)
            if t is str:
                # The envelope's run id names the run in every view: never rewritten. A long
                # piece of a text already found clean needs no scan of its own (a short text
                # is looked up in the cache, cheaper than looking for it in the long one).
                skip = len(val) < 8 or key == "run"
                if not skip and (clean is None or len(val) <= 256 or not self._inside(val, clean)):
                    out = event_dict[key] = self.text(val)
                    if out is val and len(val) > 256 and (clean is None or len(val) > len(clean)):
                        clean = val
            elif t is dict or t is list or t is tuple:  # a tuple from a listener processor
                event_dict[key] = self.value(val, 1)
            if not keys_safe and key not in self._safe:
                shown = key if type(key) is str else str(key)
                secret, name = self._key(shown)
                if secret and _secret_value(val) and key != "event":
                    event_dict[key] = REDACTED
                elif shown in PATTERN_KEYS and (t is list or t is tuple):
                    event_dict[key] = [REDACTED] * len(val)
                if name != shown:
                    renamed = [*(renamed or ()), (key, name)]
        for key, name in renamed or ():
            while name in event_dict:
                name += "#"
            event_dict[name] = event_dict.pop(key)
        return event_dict


_CUTS = frozenset(" \t\r\n<>")
_PLAIN_NUMBERS = frozenset({int, float, bool})
_UNSEEN: Any = object()
#: The shape of events whose keys are all safe but whose texts never repeat.
_SAFE_KEYS: Any = object()


def _getter(keys: list[Any]) -> Callable[[dict[str, Any]], tuple[Any, ...]]:
    """``itemgetter`` that returns a tuple whatever the number of keys."""
    if len(keys) == 1:
        key = keys[0]
        return lambda event: (event[key],)
    if not keys:
        return lambda event: ()
    return itemgetter(*keys)


class _Shape:
    """What is known of events with one set of keys, all safe: which keys held texts (with
    None and booleans), numbers and containers, and the tuples of texts already found clean.

    An event whose texts are such a tuple, whose numbers are still numbers and whose
    containers are still containers needs only its containers looked at: the walk would
    change nothing else (no key names a credential, no text holds one, numbers are never
    changed). Anything else is walked, and its texts remembered if the walk left them as
    they were. Texts of a kind that never repeat (a completion) turn the shape off.
    """

    __slots__ = ("clean", "containers", "misses", "numbers", "texts")

    #: Clean text tuples kept per shape; consecutive misses before it is turned off.
    MAX_CLEAN = 512
    MAX_MISSES = 32

    def __init__(self, texts: list[Any], numbers: list[Any], containers: list[Any]) -> None:
        self.texts = _getter(texts)
        # No numbers: sum(()) is 0, a plain int, so the check passes.
        self.numbers = _getter(numbers)
        self.containers = tuple(containers)
        self.clean: set[tuple[Any, ...]] = set()
        self.misses = 0

    def missed(
        self,
        shapes: dict[tuple[Any, ...], Any],
        keys: tuple[Any, ...],
        before: tuple[Any, ...] | None,
        event_dict: dict[str, Any],
    ) -> None:
        """After a walk: remember ``before`` (the event's texts) if the walk kept them all
        and they are short (texts that recur), or count the miss."""
        self.misses += 1
        if self.misses > self.MAX_MISSES:
            shapes[keys] = _SAFE_KEYS
            return
        if before is None or tuple(event_dict) != keys:
            return
        try:
            after = self.texts(event_dict)
        except Exception:
            return
        if after != before or any(type(v) is str and len(v) > 256 for v in before):
            return
        if len(self.clean) >= self.MAX_CLEAN:
            self.clean.clear()
        self.clean.add(before)


def _secret_value(value: Any) -> bool:
    """Whether a value under a credential-named key is replaced: not None, a bool or a float
    (``use_auth_token: true`` and a ``token_entropy`` metric are not credentials)."""
    return value is not None and type(value) is not bool and type(value) is not float
