"""The redaction rules: which keys name a credential, which text has a credential's shape.

Used by :class:`gemmalog.processors.redact.Redact`; docs/security.md lists them all. Kept
apart from the processor because they are data (tables, one compiled pattern, its
prefilter), and the processor is the walk over an event.
"""

from __future__ import annotations

import re

REDACTED = "[REDACTED]"

# --- credential-named keys --------------------------------------------------------------
# A key is cut into lower-case words whatever its case style: "AWSSecretAccessKey" ->
# aws secret access key, "x-api-key" -> x api key, "hfToken" -> hf token.
_WORDS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")
# The key names a credential when its last word, or its last two words joined, is one of these.
#: The words that name a credential, in every list below (keys, assignments, the prefilter).
_CREDENTIAL_WORDS = (
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
)
_SECRET_TAILS = frozenset(
    {
        *_CREDENTIAL_WORDS,
        "apikey",
        "authorization",
        "bearer",
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
PATTERN_KEYS = frozenset({"redact_patterns", "redactPatterns", "redact-patterns"})


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


def _flag_endings() -> tuple[str, ...]:
    """How a secret flag's name can end, in every case style: token, Token, TOKEN, api_key,
    api-key, apikey, apiKey, ApiKey, API_KEY, ..."""
    words = ("token", "secret", "password", "passwd", "credential", "credentials", "auth")
    pairs = (("api", "key"), ("access", "key"), ("private", "key"))
    out = [form for word in words for form in _cased(word)]
    for first, second in pairs:
        for sep in ("_", "-", "."):
            out += [f"{first}{sep}{second}", f"{first.upper()}{sep}{second.upper()}"]
        out += [
            first + second,
            first + second.capitalize(),
            first.capitalize() + second.capitalize(),
            (first + second).upper(),
        ]
    return tuple(dict.fromkeys(out))


_FLAG_NAME = r"(?=[A-Za-z0-9_.])[\w.\-]{1,128}+"
_FLAG_END = "(?:" + "|".join(f"(?<={re.escape(e)})" for e in _flag_endings()) + ")"
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
            rf"(?<![A-Za-z0-9_\-]{c})k-(?:[A-Za-z0-9]{{2,10}}-){{0,2}}(?=[A-Za-z_\-]{{0,200}}[0-9]){_TOKEN_CHARS}{{20,}}",
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
    # JWT; the boundary keeps "eyJeyJ..." from rescanning the same run from every "eyJ"
    (("e",), r"(?<![A-Za-z0-9_\-]e)yJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]*"),
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
        _cased(*_CREDENTIAL_WORDS, "apikey"),
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
    # secret command-line flags: --hub_token X, --api-key X, --password X. The name is read
    # possessively, then its end checked: a run of dashes costs one step a position, not a
    # scan to the end of the text from each of them.
    (("--",), _FLAG_NAME + _FLAG_END + r"\s+(?!-)([^\s'\"`]+)"),
    # `wandb login <40-hex key>` (or `wandb login --relogin <key>`)
    (("wandb login ",), r"(?:--relogin )?([0-9a-f]{40})(?![0-9a-f])"),
)


# The prefilter: a necessary condition for every rule, in two steps per anchor. Every rule
# contains a character that is rare in prose (``_ - . J A`` here, ``: = @`` below) or one of
# three words; ``anchor in text`` finds a character with memchr (~0.03 µs per 2 KB), and only
# when it is there does that anchor's pattern run. Each pattern starts with its one literal,
# which ``re`` scans for in a tight C loop (~0.3 ns a character) before trying the
# lookbehinds that name the rules; a pattern starting with a set of characters (the rules'
# first characters together) is tested through ``re``'s generic set check, ~3 ns a character:
# 6-9 µs per 2 KB of prose or arithmetic, most of the listener's time on a completion.
# Credential-named assignments (``token: ...``, ``"SecretAccessKey": "..."``) are found from
# their ``:``/``=`` in the reversed, lower-cased text, where the separator comes first.
# After its literal, each pattern tests the character before it against one class (every
# rule's), so an ordinary "-" or "." costs one test, not one per rule.
_FORWARD_ANCHORS: tuple[tuple[str, str], ...] = (
    ("_", r"_(?<=[fpousrt]_)(?:(?<=hf_)|(?<=gh[pousr]_)|(?<=_pat_))"),
    (
        "-",
        r"-(?:-(?:---BEGIN"
        # a flag whose name ends as a secret flag's can (the rule checks the whole ending)
        r"|" + _FLAG_NAME + r"(?<=[nNtTdDyYlLsShH])\s)"
        r"|(?<=[abeknoprst]-)(?:(?<=[sr]k-)|(?<=xox[abposre]-)|(?<=xapp-)|(?<=gl[a-z]{2}-)"
        r"|(?<=gl[a-z]{3}-)|(?<=gl[a-z]{4}-)|(?<=gl[a-z]{5}-)))",
    ),
    (".", r"\.(?<=[9s]\.)(?:(?<=ya29\.)|(?<=hooks\.))"),
    ("J", r"J(?<=eyJ)"),
    ("A", r"A(?=[KSGIRNBC])(?:KIA|SIA|GPA|IDA|ROA|NPA|NVA|IPA|BIA|CCA|Iza)"),
)
_FORWARD = tuple((anchor, re.compile(pattern).search) for anchor, pattern in _FORWARD_ANCHORS)
# Rules with no rare character ("Bearer", "bearer", "BEARER" and "Basic" followed by a space,
# "wandb login "): one pattern led by the "b" they share, on the lower-cased text (a superset).
_WORD_TRIGGER = re.compile(r"b(?:earer\s|asic\s|(?<=wandb) login )").search
_ASSIGNED_KEYWORDS = ("authorization", *_CREDENTIAL_WORDS, "key", "signature", "sig")


def may_hold_secret(text: str) -> bool:
    """Whether any rule can match ``text`` (false positives cost one full pass, nothing more)."""
    for anchor, search in _FORWARD:
        if anchor in text and search(text) is not None:
            return True
    lower = text.lower()
    if _WORD_TRIGGER(lower) is not None:
        return True
    backward = [search for anchor, search in _BACKWARD if anchor in text]
    if not backward:
        return False
    reverse = lower[::-1]
    return any(search(reverse) is not None for search in backward)


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


SHAPES = re.compile(_alternation(_RULES))
# On the reversed, lower-cased text, one literal-led pattern per separator: `= "nekot` for
# `token" =`, and a URL's `user:pw@` from its `@`. Longest keyword first ("credentials"
# before "credential").
_ASSIGNED = (
    # Whitespace taken possessively (what follows it is never whitespace), then one class
    # test: the separators of arithmetic ("12 * 7 = 84") fail here, before the alternation.
    r"""\s*+(?=['"\\"""
    + "".join(sorted({k[-1] for k in _ASSIGNED_KEYWORDS}))
    + r"""])['"]?\\?(?:"""
    + _alternation(
        tuple(((k[::-1],), "") for k in sorted(_ASSIGNED_KEYWORDS, key=len, reverse=True))
    )
    + ")"
)
_BACKWARD = (
    ("=", re.compile("=" + _ASSIGNED).search),
    (":", re.compile(":" + _ASSIGNED).search),
    ("@", re.compile(r"""@[^/\s@'"]+:[^/\s:@'"]*//:""").search),
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


def redact_text(text: str) -> str:
    """``text`` with every credential-shaped substring replaced (the same object when clean)."""
    return SHAPES.sub(_replace, text) if may_hold_secret(text) else text
