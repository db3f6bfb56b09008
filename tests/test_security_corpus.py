"""No secret in any file: every credential shape, in every position, absent from every file.

One run of the seed configuration (JSONL, text log, CSV, TensorBoard, run.json) receives each
shape as a field value, a dict key, a nested value, in a message, an exception, a chained
traceback, argv, the TRL arguments and the gemmalog configuration; then the run's files and
what the CLI derives from them (to-csv, to-parquet, the HTML report) are read back and
searched for every secret. The values are fake, built by concatenation so that no scanner
flags this file.
"""

from __future__ import annotations

import dataclasses
import os
import re
import stat
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import duckdb
import orjson
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

import gemmalog
from gemmalog.cli import cli
from gemmalog.processors.redact import REDACTED, Redact, key_names_secret
from gemmalog.processors.secret_rules import SHAPES, may_hold_secret
from tests.helpers import read_events

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "gemma_logging.yaml"

PEM_BODY = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7" + "VJTUt9Us8cKj"
AZURE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6" + "IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)

# name -> (the secret, the form it takes in text). Shapes that carry no marker of their own
# (an AWS secret key, a password) are given with the name that identifies them.
CORPUS: dict[str, tuple[str, str]] = {}


def _add(name: str, secret: str, form: str | None = None) -> None:
    CORPUS[name] = (secret, form if form is not None else secret)


_add("huggingface", "hf_" + "xQzKpLmNoPqRsTuVwXyZaBcDeFgHiJkLmN")
_add("openai", "sk-" + "proj-Ab12Cd34Ef56Gh78Ij90Kl12Mn34Op56")
_add("anthropic", "sk-" + "ant-api03-Zx9Yw8Vu7Ts6Rq5Po4Nm3Lk2Ji1Hg0FeDcBa")
_add("github", "ghp_" + "aB3dE5gH7jK9mN1pQ3sT5vW7yZ9bC1dF2gH4")
_add("github_pat", "github_pat_" + "11ABCDEFG0aBcDeFgHiJkLmNoPqRsTuVwXyZ01")
_add("gitlab", "glpat-" + "Xy7Zw6Vu5Ts4Rq3Po2Nm")
_add("slack", "xoxb-" + "123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUv")
_add("aws_key_id", "AKIA" + "Z7Q3XK2M9PLW4RTB")
_add(
    "aws_secret",
    "wJalrXUtnFEMI/K7MDENG/" + "bPxRfiCYzQ1x2Y3z",
    "aws_secret_access_key=wJalrXUtnFEMI/K7MDENG/" + "bPxRfiCYzQ1x2Y3z",
)
_add(
    "aws_session",
    "FwoGZXIvYXdzEBYaDHqa0AP1" + "x7Fm2Q9zKc",
    "{'SessionToken': 'FwoGZXIvYXdzEBYaDHqa0AP1" + "x7Fm2Q9zKc'}",
)
_add(
    "gcp_service_account",
    PEM_BODY,
    orjson.dumps(
        {
            "type": "service_account",
            "project_id": "demo",
            "private_key": f"-----BEGIN PRIVATE KEY-----\n{PEM_BODY}\n-----END PRIVATE KEY-----\n",
            "client_email": "trainer@demo.iam.gserviceaccount.com",
        }
    ).decode(),
)
_add(
    "azure",
    AZURE_KEY,
    f"DefaultEndpointsProtocol=https;AccountName=demo;AccountKey={AZURE_KEY};"
    "EndpointSuffix=core.windows.net",
)
_add(
    "jwt",
    "eyJhbGciOiJSUzI1NiJ9" + ".eyJzdWIiOiJ0cmFpbmVyIn0.c2lnbmF0dXJlX2J5dGVzXzEyMw",
)
_add(
    "authorization",
    "9944b09199c62bcf9418" + "ad846dd0e4bbdfc6ee4b",
    "Authorization: Token 9944b09199c62bcf9418" + "ad846dd0e4bbdfc6ee4b",
)
_add("url_password", "Sup3rS3cret" + "Pw", "redis://:Sup3rS3cret" + "Pw@db.internal:6379/0")
_add("google_api_key", "AIza" + "SyA1b2C3d4E5f6G7h8I9j0KlMnOpQrStUvW")
_add(
    "wandb",
    "4f3c2b1a09e8d7c6b5a4" + "f3e2d1c0b9a8f7e6d5c4",
    "WANDB_API_KEY=4f3c2b1a09e8d7c6b5a4" + "f3e2d1c0b9a8f7e6d5c4",
)

# What argv and the TRL arguments carry, and the user's own secret for redact_patterns.
HUB_TOKEN = "hf_" + "TrlArgsTokenAb12Cd34Ef56Gh78Ij90"
CLI_PASSWORD = "cli-pass" + "word-8812"
INTERNAL_CORE = "9f8e7d6c5b4a" + "39281706"
INTERNAL = "corp-" + INTERNAL_CORE
SECRETS = {
    **{name: secret for name, (secret, _) in CORPUS.items()},
    "argv_password": CLI_PASSWORD,
    "trl_hub_token": HUB_TOKEN,
    "user_pattern_secret": INTERNAL,
    "user_pattern_text": re.escape(INTERNAL),
    "user_pattern_core": INTERNAL_CORE,  # in any escaping
}


@dataclasses.dataclass
class FakeTrainingArguments:
    """The TrainingArguments fields that matter here (the callback snapshots a dataclass)."""

    output_dir: str = "out"
    hub_token: str = HUB_TOKEN
    push_to_hub: bool = True
    run_description: str = ""
    max_completion_length: int = 64


def _log_everything(run_dir: Path) -> None:
    log = gemmalog.get_training_logger()
    for name, (_secret, form) in CORPUS.items():
        log.info("field value", shape=name, value=form)
        log.info("key", shape=name, **{form: 1})
        log.info("nested", shape=name, cfg={"a": [{"b": form}], "keys": {form: "v"}})
        log.info(f"message with {form} inside", shape=name)
        try:
            raise PermissionError(f"hub refused {form}")
        except PermissionError:
            log.exception("exception", shape=name)
        try:
            try:
                raise KeyError(form)
            except KeyError as inner:
                raise RuntimeError("retry failed") from inner
        except RuntimeError:
            log.exception("traceback", shape=name)
        gemmalog.log_model_output(
            question=f"what is {form}?", true_answer=form, model_output=form, step=1
        )
        gemmalog.log_training_progress(step=1, metrics={"loss": 0.5})
    log.info("internal", note=f"the internal token is {INTERNAL}")
    # an environment snapshot: credential variables, and gemmalog's own variable for child
    # processes, which carries the configuration (redact_patterns included) as JSON
    log.info("environment", env=dict(os.environ))
    from gemmalog.integrations.trl import GemmalogCallback

    args = FakeTrainingArguments(run_description=" ".join(f for _, f in CORPUS.values()))
    GemmalogCallback().on_train_begin(args, SimpleNamespace(global_step=0, epoch=0.0), None)


def _derived_files(run_dir: Path, out: Path) -> list[Path]:
    """What the CLI writes from the run: CSV of every kind, Parquet, the HTML report."""
    runner = CliRunner()
    paths = []
    for kind in ("model_output", "metrics", "rewards"):
        target = out / f"{kind}.csv"
        result = runner.invoke(cli, ["to-csv", str(run_dir), "--kind", kind, "-o", str(target)])
        assert result.exit_code == 0, result.output
        paths.append(target)
    result = runner.invoke(cli, ["to-parquet", str(run_dir), str(out / "parquet")])
    assert result.exit_code == 0, result.output
    report = out / "report.html"
    result = runner.invoke(cli, ["report", str(run_dir), "-o", str(report)])
    assert result.exit_code == 0, result.output
    paths.append(report)
    return paths


def test_no_secret_in_any_file(root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        sys,
        "argv",
        [
            "train.py",
            "--hub_token",
            HUB_TOKEN,
            "--password",
            CLI_PASSWORD,
            f"--api-key={CORPUS['openai'][0]}",
            "--deepspeed_config",
            CORPUS["azure"][1],
        ],
    )
    monkeypatch.setenv("HF_TOKEN", CORPUS["huggingface"][0])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", CORPUS["aws_secret"][0])
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", CORPUS["azure"][1])
    run = gemmalog.initialize(CONFIG, root=str(root), redact_patterns=[re.escape(INTERNAL)])
    assert INTERNAL_CORE not in os.environ["GEMMALOG_PARENT"]  # children read it from a file (S1)
    with pytest.raises(ValueError), run:
        _log_everything(run.dir)
        raise ValueError("upload failed: " + " ".join(f for _, f in CORPUS.values()))

    files = [p for p in run.dir.rglob("*") if p.is_file()]
    kinds = {p.name.split(".")[0] for p in files}
    assert {"events", "run", "model_outputs", "training"} <= kinds, kinds
    assert any("tfevents" in p.name for p in files), files
    out = tmp_path / "exports"
    out.mkdir()
    derived = _derived_files(run.dir, out)
    texts = {str(p): p.read_bytes() for p in [*files, *derived]}
    # Parquet is compressed: read its values back with DuckDB rather than its bytes.
    parquet = (
        duckdb.connect()
        .execute(
            "SELECT string_agg(CAST(t AS VARCHAR), ' ') FROM read_parquet(?, "
            "hive_partitioning=true, union_by_name=true) AS t",
            [f"{out}/parquet/**/*.parquet"],
        )
        .fetchone()
    )
    assert parquet is not None and parquet[0]
    texts["parquet"] = parquet[0].encode()
    for where, data in texts.items():
        for name, secret in SECRETS.items():
            assert secret.encode() not in data, f"{name} in {where}"

    # Redacted, not dropped: every position still says something was there.
    events = read_events(run.dir)
    env = next(e for e in events if e.get("event") == "environment")["env"]
    assert env["HF_TOKEN"] == env["AWS_SECRET_ACCESS_KEY"] == REDACTED
    assert env["AZURE_STORAGE_CONNECTION_STRING"] == REDACTED
    for position in ("field value", "key", "nested", "exception", "traceback"):
        lines = [e for e in events if e.get("event") == position]
        assert len(lines) == len(CORPUS), position
        assert all(REDACTED in orjson.dumps(e).decode() for e in lines), position
    manifest = orjson.loads((run.dir / "run.json").read_bytes())
    assert manifest["status"] == "failed" and REDACTED in manifest["error"]
    assert manifest["argv"][:5] == ["train.py", "--hub_token", REDACTED, "--password", REDACTED]
    # the user's patterns: counted, never written
    assert manifest["config"]["settings"]["redact_patterns"] == [REDACTED]
    start = next(e for e in events if e["kind"] == "run_start" and "config" in e)
    assert start["config"]["settings"]["redact_patterns"] == [REDACTED]
    trl = next(e for e in events if e.get("event") == "training started")
    assert trl["training_args"]["hub_token"] == REDACTED
    assert trl["training_args"]["push_to_hub"] is True  # a bool is never a credential


def test_run_json_of_a_failed_run_is_redacted(root: Path, tmp_path: Path) -> None:
    """The defects note's case, as a script: argv and an uncaught exception, in run.json."""
    token = CORPUS["huggingface"][0]
    script = tmp_path / "sec1.py"
    script.write_text(
        "import sys, gemmalog\n"
        "run = gemmalog.initialize(root=sys.argv[-1], run_name='sec')\n"
        "print(run.dir, flush=True)\n"
        f"raise RuntimeError('login failed with token {token} for https://user:pa55word@example.com')\n"
    )
    result = subprocess.run(
        [sys.executable, str(script), "--hub_token", token, "--api-key", CLI_PASSWORD, str(root)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
    )
    assert result.returncode == 1 and "RuntimeError" in result.stderr
    run_dir = Path(result.stdout.strip())
    manifest = orjson.loads((run_dir / "run.json").read_bytes())
    assert manifest["argv"][1:5] == ["--hub_token", REDACTED, "--api-key", REDACTED]
    assert manifest["error"] == (
        f"RuntimeError: login failed with token {REDACTED} for https://user:{REDACTED}@example.com"
    )
    assert manifest["status"] == "failed"
    for path in run_dir.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert token.encode() not in data and b"pa55word" not in data, path


def test_redaction_off_writes_values_as_given(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``redact: false`` is honoured in run.json too (and the default is on)."""
    monkeypatch.setattr(sys, "argv", ["t.py", "--password", CLI_PASSWORD])
    run = gemmalog.initialize(root=str(root), redact=False)
    gemmalog.shutdown()
    assert orjson.loads((run.dir / "run.json").read_bytes())["argv"][2] == CLI_PASSWORD


@pytest.mark.parametrize(
    "key",
    [
        "hub_token",
        "HF_TOKEN",
        "hf-token",
        "hfToken",
        "HFToken",
        "githubToken",
        "SessionToken",
        "sessionToken",
        "session.token",
        "SecretAccessKey",
        "secretAccessKey",
        "aws_secret_access_key",
        "AWS_SECRET_ACCESS_KEY",
        "aws.secretAccessKey",
        "openaiApiKey",
        "OpenAIAPIKey",
        "x-api-key",
        "X-Api-Key",
        "api.key",
        "apikey",
        "accessKey",
        "access-key",
        "private_key",
        "PrivateKey",
        "privateKey",
        "db.password",
        "dbPassword",
        "DB_PASSWD",
        "clientSecret",
        "client-secret",
        "Credentials",
        "gcp_credentials",
        "Authorization",
        "proxy-authorization",
        "basicAuth",
        "AUTH",
        "AccountKey",
        "AZURE_STORAGE_CONNECTION_STRING",
    ],
)
def test_credential_keys_in_every_case_style(key: str) -> None:
    assert key_names_secret(key)
    event = Redact()(None, "info", {"event": "x", key: "s3cr3t-value", "nested": {key: "v"}})
    assert event[key] == REDACTED and event["nested"][key] == REDACTED


@pytest.mark.parametrize(
    "key",
    [
        "pad_token",
        "eos_token",
        "padToken",
        "num_tokens",
        "max_new_tokens",
        "eos_token_id",
        "tokenizer",
        "token_count",
        "author",
        "AccessKeyId",
        "private_key_id",
        "keyword",
        "monkey",
        "password_length",
    ],
)
def test_ordinary_keys_are_kept(key: str) -> None:
    assert not key_names_secret(key)
    assert Redact()(None, "info", {"event": "x", key: "value-kept"})[key] == "value-kept"


@pytest.mark.parametrize(
    "text",
    [
        "The key step: multiply 12 by 7 = 84, so the answer is 84.",
        "Basic Arithmetic: 3 + 4 = 7",
        "sk-learn-baseline-experiment-with-lr finished",
        "task-abcdefghijklmnopqrstuvwxyz0123456789",
        "see https://huggingface.co/google/gemma-3-1b-it for the model",
        "eos_token: <end_of_turn>",
        "tokens: 128, keys: 4, passes: 3",
    ],
)
def test_ordinary_text_is_kept(text: str) -> None:
    assert Redact().text(text) == text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Authorization: Bearer abcdefgh12345678", f"Authorization: Bearer {REDACTED}"),
        ("Authorization: Digest abcdef123456", f"Authorization: Digest {REDACTED}"),
        ('"authorization": "ApiKey zyx987654321"', f'"authorization": "ApiKey {REDACTED}"'),
        ("postgresql://:Sup3rS3cret@db:5432/x", f"postgresql://:{REDACTED}@db:5432/x"),
        ("https://user:pa55word@example.com", f"https://user:{REDACTED}@example.com"),
        ("Server=tcp:x;Pwd=hunter22;", f"Server=tcp:x;Pwd={REDACTED};"),
        ("https://a.blob.core.windows.net/c?sv=1&sig=abcDEF123&se=2", None),
        ("python t.py --hub-token abc123def --max_tokens 512", None),
        ("wandb login " + "0123456789abcdef" * 2 + "01234567", f"wandb login {REDACTED}"),
        (f"password={REDACTED}", f"password={REDACTED}"),  # redacting twice changes nothing
        (f"Authorization: Bearer {REDACTED}", f"Authorization: Bearer {REDACTED}"),
    ],
)
def test_text_rules(text: str, expected: str | None) -> None:
    out = Redact().text(text)
    if expected is not None:
        assert out == expected
    else:
        assert out != text and REDACTED in out


# Pieces of every rule, glued in any order with random text: the prefilter must say "maybe"
# whenever the full rules find something, or a secret would pass unscanned.
FRAGMENTS = [
    *("hf_", "sk-", "rk-", "ghp_", "github_pat_", "glpat-", "gldt-", "xoxb-", "xapp-", "AKIA"),
    *("hooks.slack.com/services/", "AIza", "ya29.", "eyJ", "Authorization", "AUTHORIZATION"),
    *("Bearer", "bearer", "Basic", "token", "Token", "TOKEN", "password", "Pwd", "api_key"),
    *("AccessKey", "Signature", "sig", "secret", "auth", "cookie", "credentials", "://", "@"),
    *(":", "=", " ", "  ", "\n", '"', "'", "\\", "--", "x", "-----BEGIN PRIVATE KEY-----"),
    *("wandb login ", "A1b2C3d4E5f6G7h8I9j0K1l2", "0123456789abcdef" * 3, "ZZQ3XK2M9PLW4RTB"),
    *("--hub_token ", "--api-key ", "--apiKey ", "--PASSWORD ", "--x ", "-"),
]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(FRAGMENTS) | st.text(max_size=6), max_size=14).map("".join))
def test_prefilter_never_misses_a_rule(text: str) -> None:
    if SHAPES.search(text) is not None:
        assert may_hold_secret(text), text


_KEYWORDS = [
    *("token", "secret", "password", "passwd", "passphrase", "pwd", "credential", "credentials"),
    *("auth", "cookie", "apikey", "authorization", "api_key", "accessKey", "AccountKey"),
    *("SessionKey", "access_signature", "sig"),
]


@pytest.mark.parametrize("keyword", [f(k) for k in _KEYWORDS for f in (str, str.upper, str.title)])
def test_prefilter_finds_every_assignment_form(keyword: str) -> None:
    """Every gap between a credential word and its separator, amid arithmetic (whose many
    ``=`` and ``:`` the prefilter now rejects with one class test each)."""
    gaps = ["", " ", "   ", "\t", '"', "'", '\\"', "\\'", '" ', "'\t ", '\\" ']
    for gap in gaps:
        for sep in ":=":
            for value in (" abcd1234", '"abcd1234"', "abcd1234", " 'abcd1234'"):
                text = f"12 * 7 = 84: 3 - 1 = 2. {keyword}{gap}{sep}{value} and 5 = 5:"
                if SHAPES.search(text) is not None:
                    assert may_hold_secret(text), text


@pytest.mark.parametrize(
    "secret",
    [
        *(f"gl{p}-" + "Xy7Zw6Vu5Ts4Rq3Po2Nm" for p in ("pat", "dt", "rt", "ptt", "cbt", "ft")),
        *(f"gl{p}-" + "Xy7Zw6Vu5Ts4Rq3Po2Nm" for p in ("imt", "soat", "oas", "agent")),
        *(f"gh{c}_" + "aB3dE5gH7jK9mN1pQ3sT5vW7yZ9bC1dF2gH4" for c in "pousr"),
        *(f"xox{c}-" + "123456789012-AbCdEf" for c in "abposre"),
        *(f"A{p}" + "Z7Q3XK2M9PLW4RTB" for p in ("KIA", "SIA", "GPA", "IDA", "ROA", "NPA")),
        *(f"A{p}" + "Z7Q3XK2M9PLW4RTB" for p in ("NVA", "IPA", "BIA", "CCA")),
        "AIza" + "SyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q",
        "ya29." + "a0AfH6SMBx1234567890abcdefg",
        "https://hooks.slack.com/" + "services/T000/B000/XXXX",
        "sk-" + "proj-Ab12Cd34Ef56Gh78Ij90Kl12Mn34",
        "rk-" + "live-Ab12Cd34Ef56Gh78Ij90Kl12Mn34",
        "hf_" + "xQzKpLmNoPqRsTuVwXyZaBcDeFgHiJkLmN",
        "github_pat_" + "11ABCDEFG0aBcDeFgHiJkLmNoPqRsTuVwXyZ01",
        "eyJhbGciOiJIUzI1NiJ9" + ".eyJzdWIiOiIxIn0.c2lnbmF0dXJl",
        "-----BEGIN RSA PRIVATE KEY-----\nMIIE",
        "Bearer abcdefgh12345678",
        "BEARER abcdefgh12345678",
        "Basic dXNlcjpwYXNz",
        "--hub_token abc123def",
        "wandb login " + "0123456789abcdef" * 2 + "01234567",
    ],
)
def test_prefilter_finds_every_rule_amid_arithmetic(secret: str) -> None:
    for text in (secret, f"12 * 7 = 84. so x - 1 = 83: {secret} and half-sum. Done", f"{secret}."):
        assert SHAPES.search(text) is not None, text
        assert may_hold_secret(text), text


@pytest.mark.parametrize(
    "text",
    [
        "-" * 100_000,  # was quadratic (minutes): the flag rule rescanned from every dash
        "--a" * 30_000,
        "sk-" * 30_000,
        "eyJ" * 30_000,
        "://a:" * 20_000,
        "@a:" * 30_000,
        ("Basic " + "a" * 50) * 2_000,
        "Authorization: " * 6_000,
        "token=" * 20_000,
    ],
    ids=lambda t: repr(t[:6]),
)
def test_no_text_makes_redaction_slow(text: str) -> None:
    """Degenerate completions (a run of one character, one token repeated) cost linear time."""
    start = time.perf_counter()
    Redact().text(text)
    assert time.perf_counter() - start < 2.0  # ~10 ms; a quadratic rule takes minutes


def test_argv_lists_anywhere() -> None:
    """A command line logged as a list: the value after a secret flag is the secret."""
    event: dict[str, Any] = {
        "event": "launch",
        "cmd": ["accelerate", "launch", "--api_key", "abc123", "--lr", "1e-6", "--verbose"],
    }
    out = Redact()(None, "info", event)
    assert out["cmd"] == [
        "accelerate",
        "launch",
        "--api_key",
        REDACTED,
        "--lr",
        "1e-6",
        "--verbose",
    ]


def test_keys_are_checked_as_they_are_written() -> None:
    """A non-str key is written as its str(): a credential there is replaced, other keys kept."""
    token = CORPUS["huggingface"][0]
    out = Redact()(None, "info", {"event": "x", "m": {(token, 1): 1.0, 7: 2.0, "ok": 3.0}})
    assert out["m"] == {f"('{REDACTED}', 1)": 1.0, 7: 2.0, "ok": 3.0}


def test_values_proven_clean_are_not_copied() -> None:
    """Metrics and rewards dicts whose keys were seen before are passed through as they are."""
    redact = Redact()
    metrics = {"loss": 0.5, "reward": 1.0, "kl": 0.01}
    redact(None, "info", {"event": "m", "metrics": metrics})
    event = {"event": "m", "metrics": metrics, "step": 3, "correct": True}
    assert redact(None, "info", event)["metrics"] is metrics


def test_pieces_of_a_clean_completion_are_skipped_only_when_cut_at_a_boundary() -> None:
    """The reasoning of a clean completion is not scanned again; any other piece is."""
    token = CORPUS["huggingface"][0]
    prose = "step by step, 12 * 7 = 84. " * 20
    clean = f"<reasoning>{prose}</reasoning><answer>84</answer>"
    redact = Redact()
    event = {"event": "model_output", "model_output": clean, "reasoning": prose.strip()}
    out = redact(None, "info", dict(event))
    assert out["model_output"] is clean and out["reasoning"] == prose.strip()
    # "x" + token is no token (a word character before it); the token alone, cut out of it, is
    glued = prose + "x" + token
    out = redact(None, "info", {"event": "e", "text": glued, "piece": token})
    assert out["text"] == glued and out["piece"] == REDACTED
    # a completion holding a secret: its reasoning is scanned, and redacted, on its own
    leaky = f"<reasoning>{prose} {token}</reasoning><answer>84</answer>"
    out = redact(
        None, "info", {"event": "m", "model_output": leaky, "reasoning": f"{prose} {token}"}
    )
    assert token not in out["model_output"] and token not in out["reasoning"]


def test_private_is_the_default_and_can_be_turned_off(root: Path) -> None:
    """Default: 0700/0600 from the first write on; ``private: false`` leaves it to the umask."""
    old = os.umask(0o022)
    try:
        run = gemmalog.initialize(CONFIG, root=str(root), run_name="private")
        started = [run.dir, *run.dir.rglob("*")]
        assert any("tfevents" in p.name for p in started)  # the sinks' own files, at start
        for path in started:
            assert stat.S_IMODE(path.stat().st_mode) == (0o700 if path.is_dir() else 0o600), path
        gemmalog.shutdown()
        run = gemmalog.initialize(CONFIG, root=str(root), run_name="open", private=False)
        gemmalog.log_model_output(question="q", true_answer="a", model_output="a", step=1)
        gemmalog.shutdown()
        paths = [run.dir, *run.dir.rglob("*")]
        assert {p.name for p in paths} >= {"run.json", "events.0.jsonl", "model_outputs.csv"}
        for path in paths:
            assert stat.S_IMODE(path.stat().st_mode) == (0o755 if path.is_dir() else 0o644), path
    finally:
        os.umask(old)


def test_a_list_is_walked_unless_every_item_is_a_plain_number() -> None:
    """Lists of plain numbers skip the walk; anything else in a list is walked, even after an
    object whose ``__add__``/``__radd__`` would make the list add up to a number."""

    class Absorbing:
        def __radd__(self, other: Any) -> Absorbing:
            return self

        def __add__(self, other: Any) -> int:
            return 0

    token = "ghp_" + "A" * 36
    redact = Redact()
    values = [0.5, 1, True]
    out = redact.value(values)
    assert out == values and out is not values  # a copy, unchanged
    assert redact.value([Absorbing(), token])[1] == REDACTED
    assert redact.value((1.0, token)) == [1.0, REDACTED]
