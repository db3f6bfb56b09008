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
in prose decides whether that pass is needed at all (about 12 µs per 1.5 KB of reasoning
text, against 19-85 µs for a lower-cased copy, 24 substring scans and the rules they
triggered; benchmarks/bench_redact.py). Numbers, booleans and short strings are never
scanned; short strings and keys are cached, since the same ones recur on every event.

This processor runs on the listener thread, before rendering; every sink sits behind the
listener, and run.json goes through the same instance (:meth:`Redact.manifest`), so no file
ever sees an unredacted value.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from gemmalog.processors.sanitize import flat_finite_numbers

REDACTED = "[REDACTED]"

# --- credential-named keys --------------------------------------------------------------
# A key is cut into lower-case words whatever its case style: "AWSSecretAccessKey" ->
# aws secret access key, "x-api-key" -> x api key, "hfToken" -> hf token.
_WORDS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")
# The key names a credential when its last word, or its last two words joined, is one of these.
_SECRET_TAILS = frozenset(
    {
        "token",
        "secret",
        "password",
        "passwd",
        "passphrase",
        "pwd",
        "apikey",
        "credential",
        "credentials",
        "auth",
        "authorization",
        "bearer",
        "cookie",
        "secretkey",
        "accesskey",
        "privatekey",
        "apitoken",
        # two words joined: <word> key / <word> string / <word> signature
        "accountkey",
        "sessionkey",
        "signingkey",
        "encryptionkey",
        "subscriptionkey",
        "masterkey",
        "clientkey",
        "licensekey",
        "wandbkey",
        "hfkey",
        "connectionstring",
        "accesssignature",
    }
)
_PAIR_TAILS = tuple(t for t in _SECRET_TAILS if t.endswith(("key", "string", "signature")))
# Tokenizer vocabulary and counters end in "token" but are not credentials.
_NOT_SECRET_BEFORE_TOKEN = frozenset(
    {
        "pad",
        "eos",
        "bos",
        "unk",
        "sep",
        "cls",
        "mask",
        "special",
        "additional",
        "start",
        "end",
        "image",
        "audio",
        "video",
        "vision",
        "boi",
        "eoi",
        "num",
        "max",
        "min",
        "total",
        "mean",
        "prompt",
        "completion",
        "input",
        "output",
        "new",
        "think",
        "tool",
        "per",
        "first",
        "last",
        "next",
        "stop",
    }
)
# redact_patterns names the user's own secrets (often re.escape(secret)): never written.
_PATTERN_KEYS = frozenset({"redact_patterns", "redactPatterns", "redact-patterns"})


def key_names_secret(key: str) -> bool:
    """Whether a key names a credential, in any case style (uncached; see Redact.is_secret_key)."""
    words = [w.lower() for w in _WORDS.findall(key)]
    if not words:
        return False
    last = words[-1]
    pair = "".join(words[-2:])
    # an acronym run swallows the word before the last: "OpenAIAPIKey" -> open aiapi key
    if last not in _SECRET_TAILS and not any(pair.endswith(tail) for tail in _PAIR_TAILS):
        return False
    return not (last == "token" and len(words) > 1 and words[-2] in _NOT_SECRET_BEFORE_TOKEN)


# --- credential-shaped text -------------------------------------------------------------
# Each rule is (first literals, rest of the pattern). Rules that keep a prefix (the key, the
# header name and scheme, the URL user) put the secret in their only capturing group; the
# others are replaced whole. A word boundary is written as a lookbehind after the first
# literal (``h(?<![A-Za-z0-9_]h)f_``): a ``\b`` before it would stop ``re`` from using the
# first-character test (see _alternation).
_TOKEN_CHARS = r"[A-Za-z0-9_\-]"
_NOT_DONE = r"(?!\[REDACTED\])"  # redacting twice changes nothing
_PEM = r"-----BEGIN[A-Z ]*PRIVATE KEY-----(?:[\s\S]*?-----END[A-Z ]*PRIVATE KEY-----|[\s\S]*)"
# an assigned value: a PEM block (a service-account JSON's private_key), or up to a quote,
# separator or space
_VALUE = _NOT_DONE + rf"""({_PEM}|[^\s'"`,;&}}\]<>\\]{{4,}})"""
_ASSIGN = r"""\\?['"]?\s*[:=]\s*\\?['"]?"""  # key": "value / key=value / KEY: value


def _cased(*words: str) -> tuple[str, ...]:
    """lower, Capitalized and UPPER forms: snake/kebab, camel/Pascal and SCREAMING case."""
    out: list[str] = []
    for word in words:
        for form in (word, word[:1].upper() + word[1:], word.upper()):
            if form not in out:
                out.append(form)
    return tuple(out)


_KEY_SEP = r"[_\-.]?"
_RULES: tuple[tuple[tuple[str, ...], str], ...] = (
    # PEM private keys (a GCP service-account JSON's private_key, SSH and TLS keys)
    (
        ("-----BEGIN",),
        _PEM.removeprefix("-----BEGIN"),
    ),
    (("h",), r"(?<![A-Za-z0-9_]h)f_[A-Za-z0-9]{20,}"),  # Hugging Face
    # OpenAI (sk-, sk-proj-, sk-svcacct-), Anthropic (sk-ant-api03-): a digit in the body keeps
    # "sk-learn-baseline-experiment" out
    *(
        (
            (c,),
            rf"(?<![A-Za-z0-9_]{c})k-(?:[A-Za-z0-9]{{2,10}}-){{0,2}}(?=[A-Za-z_\-]*[0-9]){_TOKEN_CHARS}{{20,}}",
        )
        for c in "sr"
    ),
    (("gh",), r"(?<![A-Za-z0-9_]gh)[pousr]_[A-Za-z0-9]{30,}"),  # GitHub
    (("github_pat_",), r"[A-Za-z0-9_]{30,}"),
    (
        ("gl",),
        r"(?<![A-Za-z0-9_]gl)(?:pat|dt|rt|ptt|cbt|ft|imt|soat|oas|agent)-[A-Za-z0-9_\-]{20,}",
    ),
    (("xox",), r"[abposre]-[A-Za-z0-9\-]{10,}"),  # Slack bot/user/app tokens
    (("xapp-",), r"[A-Za-z0-9\-]{10,}"),
    (("hooks.slack.com/",), r"(?:services|workflows|triggers)/[A-Za-z0-9/_\-]+"),
    # AWS access key ids (the secret key and session token are caught by their names)
    (
        ("A",),
        r"(?<![A-Za-z0-9_]A)(?:KIA|SIA|GPA|IDA|ROA|NPA|NVA|IPA|BIA|CCA)[0-9A-Z]{16}(?![0-9A-Za-z])",
    ),
    (("AIza",), r"[0-9A-Za-z_\-]{35}"),  # Google API key
    (("ya29.",), r"[0-9A-Za-z_\-]{20,}"),  # Google OAuth access token
    (("eyJ",), r"[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]*"),  # JWT
    # Authorization / Proxy-Authorization headers, any scheme: the scheme is kept
    (
        _cased("authorization"),
        _ASSIGN + r"""(?>(?:[A-Za-z][\w.\-]*\s+)?)""" + _NOT_DONE + r"""([^\s'"`,;}\]]+)""",
    ),
    ((*_cased("bearer"),), r"\s+([A-Za-z0-9\-._~+/]{8,}=*)"),
    # "Basic <base64>": a digit, +/= or a case change, so "Basic Arithmetic" stays
    (
        ("Basic",),
        r"\s+((?=[A-Za-z0-9+/]*(?:[0-9+/=]|[a-z][A-Z]))[A-Za-z0-9+/]{8,}={0,2})",
    ),
    # credential-named assignments in any case style: HF_TOKEN=..., "SecretAccessKey": "...",
    # password: ..., Azure AccountKey=...;, SAS sig=..., Pwd=...
    (
        _cased(
            "token",
            "secret",
            "password",
            "passwd",
            "passphrase",
            "pwd",
            "credential",
            "credentials",
            "auth",
            "cookie",
            "apikey",
        ),
        _ASSIGN + _VALUE,
    ),
    (
        _cased("api", "access", "secret", "private", "account", "session", "subscription"),
        _KEY_SEP + r"(?:key|Key|KEY)" + _ASSIGN + _VALUE,
    ),
    (_cased("access"), _KEY_SEP + r"(?:signature|Signature|SIGNATURE)" + _ASSIGN + _VALUE),
    (("sig=",), _VALUE),
    # user:password@ (and :password@, the Redis form) in URLs: the user is kept
    (("://",), r"""[^/\s:@'"]*:([^/\s@'"]+)(?=@)"""),
    # secret command-line flags: --hub_token X, --api-key X, --password X
    (
        ("--",),
        r"[\w.\-]*?(?:token|Token|TOKEN|secret|Secret|SECRET|password|Password|PASSWORD|passwd|"
        r"(?:api|Api|API|access|Access|ACCESS|private|Private)[_\-.]?(?:key|Key|KEY)|"
        r"credentials?|auth|Auth)\s+(?!-)([^\s'\"`]+)",
    ),
    # `wandb login <40-hex key>` (or `wandb login --relogin <key>`)
    (("wandb login ",), r"(?:--relogin )?([0-9a-f]{40})(?![0-9a-f])"),
)


# The prefilter: a necessary condition for every rule, anchored on a character that is rare
# in prose (``_ - . J A B b w`` here, ``: = @`` below). ``re`` tests a pattern's first character in
# C and pays ~15 ns at each position where it passes, so the common letters that begin the
# rules ("token", "sk-", "hf_") would cost ~20 µs per 1.5 KB; a literal followed by a
# lookbehind for the rest costs a few. Credential-named assignments (``token: ...``,
# ``"SecretAccessKey": "..."``) are found from their ``:``/``=`` in the reversed, lower-cased
# text, where the separator comes first.
_FORWARD_TRIGGERS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("_",), r"(?<=hf_)|(?<=gh[pousr]_)|(?<=_pat_)"),
    (
        ("-",),
        r"(?<=[sr]k-)|(?<=xox[abposre]-)|(?<=xapp-)|(?<=gl[a-z]{2}-)|(?<=gl[a-z]{3}-)"
        r"|(?<=gl[a-z]{4}-)|(?<=gl[a-z]{5}-)|----BEGIN"
        r"|-[\w.\-]*?(?i:token|secret|password|passwd|key|credential|auth)",
    ),
    ((".",), r"(?<=ya29\.)|(?<=hooks\.)"),
    (("J",), r"(?<=eyJ)"),
    (("A",), r"(?:KIA|SIA|GPA|IDA|ROA|NPA|NVA|IPA|BIA|CCA|Iza)"),
    (("Bearer", "bearer", "BEARER", "Basic"), r"\s"),
    (("wandb login ",), ""),
)
_ASSIGNED_KEYWORDS = (
    "authorization",
    "token",
    "secret",
    "password",
    "passwd",
    "passphrase",
    "pwd",
    "credential",
    "credentials",
    "auth",
    "cookie",
    "key",
    "signature",
    "sig",
)


def _may_hold_secret(text: str) -> bool:
    """Whether any rule can match ``text`` (false positives cost one full pass, nothing more)."""
    if _FORWARD.search(text) is not None:
        return True
    return ("=" in text or ":" in text or "@" in text) and _BACKWARD.search(
        text.lower()[::-1]
    ) is not None


def _alternation(rules: tuple[tuple[tuple[str, ...], str], ...]) -> str:
    """One alternation for every rule, grouped by first character.

    Each top-level alternative starts with a literal, so ``re`` builds a first-character set
    for the whole pattern and tests it in C before trying any rule at a position; grouping by
    that character keeps the rules tried at a matching position to the few that share it.
    """
    by_first: dict[str, list[str]] = {}
    for literals, rest in rules:
        for literal in literals:
            by_first.setdefault(literal[0], []).append(f"{re.escape(literal[1:])}(?:{rest})")
    return "|".join(
        re.escape(first) + (f"(?:{'|'.join(alts)})" if len(alts) > 1 else alts[0])
        for first, alts in by_first.items()
    )


_SHAPES = re.compile(_alternation(_RULES))
_FORWARD = re.compile(_alternation(_FORWARD_TRIGGERS))
# On the reversed, lower-cased text: `= "nekot` for `token" =`, and a URL's `user:pw@` from
# its `@`. Longest keyword first ("credentials" before "credential").
_BACKWARD = re.compile(
    _alternation(
        (
            (
                (":", "="),
                r"""\s*['"]?\\?(?:"""
                + _alternation(
                    tuple(
                        ((k[::-1],), "") for k in sorted(_ASSIGNED_KEYWORDS, key=len, reverse=True)
                    )
                )
                + ")",
            ),
            (("@",), r"""[^/\s@'"]+:[^/\s:@'"]*//:"""),
        )
    )
)


def _replace(match: re.Match[str]) -> str:
    group = match.lastindex
    if group is None:
        return REDACTED
    start = match.start()
    return (
        match.string[start : match.start(group)]
        + REDACTED
        + match.string[match.end(group) : match.end()]
    )


def _literal_forms(pattern: str) -> set[str]:
    """How a user pattern's own text appears when written: as is, JSON- or repr-escaped."""
    return {pattern, json.dumps(pattern)[1:-1], repr(pattern)[1:-1]}


class Redact:
    """structlog processor: replace credential-named keys' values and credential-shaped text.

    ``extra_patterns`` are the user's own regular expressions (``redact_patterns``): each
    match is replaced, and so is the patterns' own text (``re.escape(secret)`` does not
    match itself), so they are never written either.
    """

    __slots__ = ("_extra", "_keys", "_safe", "_short")

    def __init__(self, extra_patterns: Iterable[str] = (), extra_keys: Iterable[str] = ()) -> None:
        patterns = [p for p in extra_patterns if p]
        literals = sorted(
            {form for p in patterns for form in _literal_forms(p)}, key=len, reverse=True
        )
        extra = [re.compile(p) for p in patterns]
        if literals:
            extra.append(re.compile("|".join(re.escape(form) for form in literals)))
        self._extra = tuple(extra)
        # key -> (names a credential, the key with any credential-shaped text replaced)
        self._keys: dict[str, tuple[bool, str]] = {
            k: (True, k) for k in extra_keys if isinstance(k, str)
        }
        self._safe: set[str] = set()  # keys that name no credential and hold none
        # Short strings recur on every event (logger names, messages): remember the result.
        self._short: dict[str, str] = {}

    # -- keys ----------------------------------------------------------------------------
    def _key(self, key: str) -> tuple[bool, str]:
        known = self._keys.get(key)
        if known is None:
            if len(self._keys) > 100_000:
                self._keys.clear()
                self._safe.clear()
            known = (key_names_secret(key), self.text(key) if len(key) >= 8 else key)
            self._keys[key] = known
            if known == (False, key):
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
        out = _SHAPES.sub(_replace, value) if _may_hold_secret(value) else value
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
            elif shown in _PATTERN_KEYS and type(v) in (list, tuple):
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
            return self._sequence(list(value), depth)
        return value

    def manifest(self, data: dict[str, Any]) -> dict[str, Any]:
        """A run.json manifest redacted like an event; the run id is kept (it names the run)."""
        out = self._mapping({k: v for k, v in data.items() if k != "id"}, 0)
        return {"id": data["id"], **out} if "id" in data else out

    def __call__(self, logger: Any, method_name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
        renamed: list[tuple[str, str]] | None = None
        clean: str | None = None  # the longest text of this event found clean, if any
        for key, val in event_dict.items():
            t = type(val)
            if t is str:
                # The envelope's run id names the run in every view: never rewritten. A
                # piece of a text already found clean needs no scan of its own.
                skip = len(val) < 8 or key == "run"
                if not skip and (clean is None or not self._inside(val, clean)):
                    out = event_dict[key] = self.text(val)
                    if out is val and len(val) > 256 and (clean is None or len(val) > len(clean)):
                        clean = val
            elif t is dict or t is list:
                event_dict[key] = self.value(val, 1)
            if key not in self._safe:
                shown = key if type(key) is str else str(key)
                secret, name = self._key(shown)
                if secret and _secret_value(val) and key != "event":
                    event_dict[key] = REDACTED
                elif shown in _PATTERN_KEYS and t is list:
                    event_dict[key] = [REDACTED] * len(val)
                if name != shown:
                    renamed = [*(renamed or ()), (key, name)]
        for key, name in renamed or ():
            while name in event_dict:
                name += "#"
            event_dict[name] = event_dict.pop(key)
        return event_dict


_CUTS = frozenset(" \t\r\n<>")


def _secret_value(value: Any) -> bool:
    """Whether a value under a credential-named key is replaced: not None, a bool or a float
    (``use_auth_token: true`` and a ``token_entropy`` metric are not credentials)."""
    return value is not None and type(value) is not bool and type(value) is not float
