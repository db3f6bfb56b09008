"""Secrets stay in the process (S1): redaction patterns reach children through a user-only file,
never through the environment, and every child still redacts with them."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import orjson

import gemmalog
from tests.helpers import read_events

REPO = Path(__file__).resolve().parents[1]
SECRET = "corp-4b1d9e77c0a2f3561e88"  # no built-in rule knows its shape
PATTERN = re.escape(SECRET)
CHILD = "import gemmalog, sys; gemmalog.get_logger('sub').info('from subprocess', t=sys.argv[1])"


def _spawned(secret: str) -> None:
    gemmalog.get_logger("spawned").info("from spawned worker", token_text=f"using {secret}")


def _child_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO)}


def test_children_redact_with_patterns_that_never_travel_in_the_environment(
    root: Path,
) -> None:
    run = gemmalog.initialize(root=str(root), run_name="secrets", redact_patterns=[PATTERN])
    env_dump = subprocess.run(
        ["sh", "-c", "env"], capture_output=True, timeout=30, check=True, env=_child_env()
    ).stdout
    parent = json.loads(os.environ["GEMMALOG_PARENT"])
    secrets_file = Path(parent["secrets"])
    assert stat.S_IMODE(secrets_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(secrets_file.parent.stat().st_mode) == 0o700
    ctx = mp.get_context("spawn")
    proc = ctx.Process(target=_spawned, args=(SECRET,))
    proc.start()
    proc.join(60)
    assert proc.exitcode == 0
    sub = subprocess.run(
        [sys.executable, "-c", CHILD, f"key {SECRET} end"],
        capture_output=True,
        timeout=60,
        check=True,
        env=_child_env(),
    )
    gemmalog.get_logger("parent").info("in parent", t=SECRET)
    gemmalog.shutdown()
    for text in (env_dump, sub.stderr):
        assert SECRET.encode() not in text
        assert PATTERN.encode() not in text and b"4b1d9e77c0a2f3561e88" not in text
    assert b"GEMMALOG_PARENT=" in env_dump  # the children are still told which run to join
    assert not secrets_file.exists() and not secrets_file.parent.exists()  # gone at shutdown
    by_event = {e["event"]: e for e in read_events(run.dir)}
    assert by_event["from spawned worker"]["token_text"] == "using [REDACTED]"
    assert by_event["from subprocess"]["t"] == "key [REDACTED] end"
    assert by_event["in parent"]["t"] == "[REDACTED]"
    shards = {p.name for p in run.dir.glob("events.*.jsonl")}
    # the parent's, the spawned worker's and the subprocess's
    assert {"events.0.jsonl", f"events.0.{proc.pid}.jsonl"} < shards and len(shards) == 3
    for path in run.dir.rglob("*"):
        if path.is_file():
            assert b"4b1d9e77c0a2f3561e88" not in path.read_bytes(), path
    manifest = orjson.loads((run.dir / "run.json").read_bytes())
    assert manifest["config"]["settings"]["redact_patterns"] == ["[REDACTED]"]


def test_a_child_that_cannot_read_the_patterns_writes_no_text(root: Path) -> None:
    """Fail closed: a subprocess that first imports gemmalog after its parent's run ended (the
    file is gone) redacts all of its text rather than write a secret."""
    run = gemmalog.initialize(root=str(root), run_name="late", redact_patterns=[PATTERN])
    env = _child_env()  # what a subprocess started now inherits
    gemmalog.shutdown()
    sub = subprocess.run(
        [sys.executable, "-c", CHILD, f"key {SECRET} end"],
        capture_output=True,
        timeout=60,
        check=True,
        env=env,
    )
    assert b"cannot read the parent run's redaction settings" in sub.stderr
    (event,) = [e for e in read_events(run.dir) if e.get("logger") == "sub"]
    assert event["t"] == "[REDACTED]" and event["run"] == run.id
    assert all(b"4b1d9e77c0a2f3561e88" not in p.read_bytes() for p in run.dir.glob("events.*"))
