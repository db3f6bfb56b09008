"""Secrets, paths, permissions, read-only SQL and spreadsheet-safe CSV."""

from __future__ import annotations

import csv
import hashlib
import stat
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

import gemmalog
from gemmalog.cli import cli
from tests.helpers import read_events

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "gemma_logging.yaml"

# Realistic shapes (fake values): Hugging Face user token, W&B API key (40 hex), AWS key id
# and secret access key, a bearer JWT, an OpenAI-style key.
SECRETS = {
    "hf": "hf_" + "xQzKpLmNoPqRsTuVwXyZaBcDeFgHiJkLmN",
    "wandb": "4f3c2b1a09e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4",
    "aws_id": "AKIA" + "Z7Q3XK2M9PLW4RTB",
    "aws_secret": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY",
    "bearer": "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJodWIifQ.c2lnbmF0dXJlX2J5dGVz",
    "openai": "sk-" + "proj-Ab12Cd34Ef56Gh78Ij90Kl12Mn34",
}


def test_secret_shapes_in_messages_fields_and_exceptions(root: Path) -> None:
    run = gemmalog.initialize(CONFIG, root=str(root))
    log = gemmalog.get_training_logger()
    log.info(f"huggingface-cli login --token {SECRETS['hf']}")
    log.info(
        "config",
        env={"WANDB_API_KEY": SECRETS["wandb"], "AWS_SECRET_ACCESS_KEY": SECRETS["aws_secret"]},
        nested={"deep": [{"headers": {"Authorization": f"Bearer {SECRETS['bearer']}"}}]},
        note=f"aws_access_key_id={SECRETS['aws_id']} aws_secret_access_key={SECRETS['aws_secret']}",
    )
    log.info("wandb", wandb_api_key=SECRETS["wandb"], login=f"WANDB_API_KEY={SECRETS['wandb']}")
    try:
        raise PermissionError(f"401 for token {SECRETS['hf']} and key {SECRETS['openai']}")
    except PermissionError:
        log.exception("hub refused")
    gemmalog.log_model_output(
        question=f"my key is {SECRETS['openai']}",
        true_answer="x",
        model_output=f"Authorization: Bearer {SECRETS['bearer']}",
        step=1,
    )
    gemmalog.shutdown()
    files = [p for p in run.dir.rglob("*") if p.is_file()]
    assert {p.suffix for p in files} >= {".jsonl", ".csv", ".log", ".json"}
    everything = b"".join(p.read_bytes() for p in files)
    for name, secret in SECRETS.items():
        assert secret.encode() not in everything, name
    events = read_events(run.dir)
    config = next(e for e in events if e.get("event") == "config")
    assert config["env"]["WANDB_API_KEY"] == "[REDACTED]"
    assert "[REDACTED]" in orjson.dumps(config["nested"]).decode()
    hub = next(e for e in events if e.get("event") == "hub refused")
    assert "PermissionError: 401 for token [REDACTED]" in hub["exc"]


def test_run_names_and_ids_cannot_escape_the_root(root: Path) -> None:
    for name, run_id in (
        ("../../etc/passwd", None),
        ("/abs/path", None),
        (None, "../outside"),
        (None, "/tmp/absolute"),
        ("..", ".."),
        (None, "a/../../b"),
    ):
        run = gemmalog.initialize(root=str(root), run_name=name, run_id=run_id)
        gemmalog.shutdown()
        assert run.dir.resolve().parent == root.resolve(), (name, run_id)
    assert sorted(p.name for p in root.parent.iterdir()) == ["runs"]


def test_private_runs_are_user_only_files_included(root: Path) -> None:
    run = gemmalog.initialize(CONFIG, root=str(root))  # private is the default
    assert stat.S_IMODE(run.dir.stat().st_mode) == 0o700
    assert stat.S_IMODE((run.dir / "events.0.jsonl").stat().st_mode) == 0o600
    assert stat.S_IMODE((run.dir / "run.json").stat().st_mode) == 0o600
    gemmalog.log_model_output(question="q", true_answer="a", model_output="a", step=1)
    gemmalog.log_training_progress(1, {"loss": 1.0})
    gemmalog.shutdown()
    paths = [run.dir, *run.dir.rglob("*")]
    assert len(paths) > 5  # jsonl, run.json, csv, text log, tensorboard dir and file
    for path in paths:
        want = 0o700 if path.is_dir() else 0o600
        assert stat.S_IMODE(path.stat().st_mode) == want, path


def digest(root: Path) -> dict[str, str]:
    return {
        str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in root.rglob("*") if p.is_file()
    }


@pytest.mark.parametrize(
    "sql",
    [
        "DELETE FROM events",
        "DROP VIEW events",
        "COPY (SELECT 'x') TO '{shard}'",
        "SELECT 1; COPY (SELECT 'x') TO '{shard}' (FORMAT csv)",
        "EXPORT DATABASE '{dir}'",
        "CREATE OR REPLACE VIEW events AS SELECT 1",
        "ATTACH '{dir}/run.json' AS x",
        "SET enable_external_access = true",
        "PRAGMA enable_profiling; SELECT 1",
        "CALL pragma_version()",
        "INSERT INTO events VALUES (1)",
        "UPDATE events SET run = 'x'",
        "LOAD httpfs",
    ],
)
def test_sql_never_modifies_or_deletes_run_files(root: Path, sql: str) -> None:
    run = gemmalog.initialize(root=str(root))
    gemmalog.log_training_progress(1, {"loss": 1.0})
    gemmalog.shutdown()
    before = digest(root)
    text = sql.format(shard=run.dir / "events.0.jsonl", dir=run.dir)
    result = CliRunner().invoke(cli, ["sql", str(run.dir), text], catch_exceptions=False)
    assert result.exit_code == 1 and "Traceback" not in result.stderr
    assert digest(root) == before


def test_csv_is_spreadsheet_safe_by_default(root: Path) -> None:
    run = gemmalog.initialize(CONFIG, root=str(root))
    payloads = ['=HYPERLINK("http://x")', "+1+1", "-2+3", "@SUM(A1)", "\t=1", "\r=1"]
    for i, text in enumerate(payloads):
        gemmalog.log_model_output(question=text, true_answer=text, model_output=text, step=i)
    gemmalog.shutdown()
    (path,) = run.dir.rglob("model_outputs.csv")
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(payloads)
    assert [r["question"] for r in rows] == ["'" + p for p in payloads]
    for row in rows:
        for value in row.values():
            assert not value.startswith(("=", "+", "-", "@", "\t", "\r")), value


def test_bare_wandb_key_is_redacted(root: Path) -> None:
    run = gemmalog.initialize(root=str(root))
    gemmalog.get_training_logger().info(
        f"wandb login {SECRETS['wandb']}", wandb_key=SECRETS["wandb"]
    )
    gemmalog.shutdown()
    raw = b"".join(p.read_bytes() for p in run.dir.glob("events.*.jsonl"))
    assert SECRETS["wandb"].encode() not in raw


def test_tuples_added_by_a_listener_processor_are_redacted(root: Path) -> None:
    # A listener processor runs after the caller's Sanitize (which turns tuples into lists):
    # a tuple it adds, at the top level or under a secret-patterns key, is still walked.
    def add_tuples(logger: object, method: str, event: dict[str, object]) -> dict[str, object]:
        event["endpoints"] = (f"Bearer {SECRETS['bearer']}", SECRETS["hf"], 3)
        event["redact_patterns"] = ("x", "y")
        return event

    run = gemmalog.initialize(CONFIG, root=str(root), listener_processors=[add_tuples])
    for step in range(5):  # the same shape again and again: the fast path too
        gemmalog.log_training_progress(step, {"loss": 0.5})
    gemmalog.shutdown()
    files = [p for p in run.dir.rglob("*") if p.is_file()]
    assert any(p.suffix == ".log" for p in files)  # the text file got the events too
    for path in files:
        data = path.read_bytes()
        for secret in (SECRETS["bearer"], SECRETS["hf"]):
            assert secret.encode() not in data, path
    metrics = [e for e in read_events(run.dir) if e.get("kind") == "metrics"]
    assert len(metrics) == 5
    for event in metrics:
        assert event["endpoints"][2] == 3  # the number kept, the texts redacted
        assert all("[REDACTED]" in part for part in event["endpoints"][:2])
        assert event["redact_patterns"] == ["[REDACTED]", "[REDACTED]"]


# --- the listener's fast path for repeated event shapes (Redact._shapes) --------------------
# Events with the same keys as earlier clean ones skip the per-key walk; each test below gives
# the same keys again and again, then a secret where a clean value (a number, a short text, a
# metrics dict) used to be: the secret must be redacted however often the shape was seen.
# The shapes recognised by their text alone (the AWS secret key and a bare W&B key are
# recognised by the name they are given, tested elsewhere).
MARKED = {name: SECRETS[name] for name in ("hf", "aws_id", "bearer", "openai")}


def _metrics_event(at: int, values: dict[str, object], **over: object) -> dict[str, object]:
    event: dict[str, object] = {
        "v": 1,
        "ts": 1.0 + at,
        "kind": "metrics",
        "logger": "gemmalog.metrics",
        "level": "info",
        "run": "r-1",
        "rank": 0,
        "step": at,
        "phase": "train",
        "metrics": values,
        "event": "metrics",
        "device": "cpu",
        "rss_mb": 26.2,
    }
    event.update(over)
    return event


def _warm(redact: object, **over: object) -> None:
    for step in range(5):  # learn the shape, then hit it
        event = _metrics_event(step, {"loss": 0.5, "reward": 1.0}, **over)
        assert redact(None, "", dict(event)) == event  # type: ignore[operator]


@pytest.mark.parametrize("name", sorted(MARKED))
def test_repeated_metrics_events_still_redact_secret_keys_and_values(name: str) -> None:
    from gemmalog.processors.redact import REDACTED, Redact

    secret = MARKED[name]
    redact = Redact()
    _warm(redact)
    for step in range(5, 8):
        # a secret as a metric's name, as a metric's (string) value, beside safe floats
        event = _metrics_event(step, {"loss": 0.5, secret: 1.0, "note": f"key {secret}"})
        out = redact(None, "", event)
        assert secret not in orjson.dumps(out).decode(), out
        assert REDACTED in orjson.dumps(out["metrics"]).decode()
        # then a metrics dict with the same safe keys again: untouched
        again = _metrics_event(step, {"loss": 0.5, "reward": 1.0})
        assert redact(None, "", dict(again)) == again


@pytest.mark.parametrize("field", ["phase", "step", "rss_mb", "metrics", "event", "device"])
def test_repeated_shape_with_a_secret_where_a_clean_value_was(field: str) -> None:
    """A key that held a number, a short text or a dict now holds a secret text."""
    from gemmalog.processors.redact import Redact

    redact = Redact()
    _warm(redact)
    for name, secret in MARKED.items():
        out = redact(None, "", _metrics_event(9, {"loss": 0.5}, **{field: f"see {secret}"}))
        assert secret not in orjson.dumps(out).decode(), (name, out)
        # and as an item of a list where a number was
        out = redact(None, "", _metrics_event(9, {"loss": 0.5}, **{field: ["x", secret]}))
        assert secret not in orjson.dumps(out).decode(), (name, out)


def test_repeated_shape_with_secret_named_keys_in_nested_dicts() -> None:
    from gemmalog.processors.redact import REDACTED, Redact

    redact = Redact()
    _warm(redact)
    out = redact(None, "", _metrics_event(9, {"loss": 0.5, "hub_token": "abcdefgh123"}))
    assert out["metrics"] == {"loss": 0.5, "hub_token": REDACTED}
    out = redact(None, "", _metrics_event(9, {"loss": 0.5, "env": {"HF_TOKEN": "abc12345"}}))
    assert out["metrics"] == {"loss": 0.5, "env": {"HF_TOKEN": REDACTED}}


def test_redact_patterns_values_never_written_however_often_logged() -> None:
    """A short user pattern under redact_patterns: redacted on every event, not only the first
    (the key used to be cached as safe after the first one)."""
    from gemmalog.processors.redact import REDACTED, Redact

    redact = Redact(["hunter2"])
    for _ in range(5):
        out = redact(None, "", {"event": "config", "redact_patterns": ["hunter2"]})
        assert out["redact_patterns"] == [REDACTED]


_VALUES = [
    *SECRETS.values(),
    *(f"token={s}" for s in SECRETS.values()),
    "train",
    "a clean message",
    "",
    None,
    True,
    0,
    1.5,
    float("nan"),
    2**70,
    ["--api_key", "abc123xyz"],
    {"loss": 1.0},
    {"hub_token": "abc12345"},
    {SECRETS["hf"]: 1.0},
    ("tuple", SECRETS["openai"]),
    "a long clean completion, " * 20,
    "a long completion that quotes a key: " * 8 + SECRETS["hf"],
]


def test_fast_path_gives_what_the_walk_gives() -> None:
    """Events of one key set with values drawn from secrets, texts, numbers and containers:
    a long-lived Redact (shapes learned) writes exactly what a fresh one (the walk) writes."""
    import copy
    import random

    from gemmalog.processors.redact import Redact

    rng = random.Random(13)
    shared = Redact()
    keys = ["kind", "logger", "run", "step", "phase", "metrics", "event", "extra"]
    clean = {"kind": "metrics", "logger": "gemmalog.metrics", "run": "r-1", "step": 1}
    clean |= {"phase": "train", "metrics": {"loss": 0.5}, "event": "metrics", "extra": 2.0}
    for i in range(3000):
        event = dict(clean)
        if i % 3:  # mostly clean events, so the shape is learned and hit
            for key in rng.sample(keys[3:], rng.randint(1, 2)):
                event[key] = copy.deepcopy(rng.choice(_VALUES))
        expected = Redact()(None, "", copy.deepcopy(event))
        got = shared(None, "", copy.deepcopy(event))
        assert repr(got) == repr(expected), event  # repr: keys' order, NaN, big ints, tuples
    # not vacuous: the clean events went through the fast path
    assert any(shape is not None and shape.clean for shape in shared._shapes.values())


def test_pieces_of_a_clean_text_are_found_where_str_find_finds_them() -> None:
    """Redact._inside finds a piece from its first 64 characters: the same first occurrence
    (and so the same answer) as a plain find, also when that prefix occurs earlier."""
    import random

    from gemmalog.processors.redact import _CUTS, Redact

    def reference(part: str, clean: str) -> bool:
        at = clean.find(part)
        if at < 0:
            return False
        end = at + len(part)
        return (at == 0 or clean[at - 1] in _CUTS) and (end == len(clean) or clean[end] in _CUTS)

    rng = random.Random(5)
    redact = Redact()
    block = "a" * 70  # a 64-character prefix that recurs with different endings
    tokens = [block, block + "b", "<r>", "</r>", " ", "\n", "x", "yz", "7 = 7:"]
    found = 0
    for _ in range(4000):
        clean = "".join(rng.choice(tokens) for _ in range(rng.randint(1, 12)))
        start = rng.randrange(len(clean))
        part = clean[start : rng.randint(start + 1, len(clean))]
        if rng.random() < 0.2:
            part += rng.choice(tokens)  # sometimes not a piece at all
        assert redact._inside(part, clean) == reference(part, clean), (part, clean)
        found += reference(part, clean)
    assert found > 100


def test_events_with_long_texts_walk_without_key_checks_and_still_redact() -> None:
    """Completions (long texts that never repeat) are walked every time, their keys known
    safe: a secret in the completion, in a short field or as a new key is still redacted."""
    from gemmalog.processors.redact import _SAFE_KEYS, REDACTED, Redact

    redact = Redact()
    base = {"kind": "model_output", "logger": "gemmalog.model", "question": "q?", "step": 1}
    for i in range(40):
        completion = f"step {i}: " + "we add the numbers, " * 20
        out = redact(None, "", {**base, "model_output": completion, "answer": "42"})
        assert out["model_output"] == completion
    (shape,) = redact._shapes.values()
    assert shape is _SAFE_KEYS
    for name, secret in MARKED.items():
        out = redact(None, "", {**base, "model_output": "x " * 200 + secret, "answer": secret})
        assert secret not in orjson.dumps(out).decode(), name
        assert out["answer"] == REDACTED
    out = redact(
        None, "", {**base, "model_output": "x " * 200, "answer": "a", "hf_token": "abc1234"}
    )
    assert out["hf_token"] == REDACTED
