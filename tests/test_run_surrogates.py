"""Bytes that are not UTF-8 in argv, the environment, the working directory or a configured
path reach Python as lone surrogates; a run records them escaped, never fails on them (C1)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson

from tests.helpers import read_events

REPO = Path(__file__).resolve().parents[1]

SCRIPT = """
import sys, gemmalog
run = gemmalog.initialize(sys.argv[1], root=sys.argv[2])
gemmalog.get_training_logger().info("data", path=sys.argv[4])
gemmalog.log_training_progress(1, {"loss": 0.5})
gemmalog.shutdown()
print(run.dir.name)
"""

CONFIG = """
handlers:
  file: {class: logging.FileHandler, filename: training.log}
root: {level: INFO, handlers: [file]}
"""


def test_non_utf8_argv_env_cwd_and_paths_are_recorded_escaped(tmp_path: Path) -> None:
    base = os.fsencode(tmp_path)
    cwd = base + b"/cwd-caf\xe9"
    root = base + b"/runs-caf\xe9"
    config = base + b"/conf-caf\xe9.yaml"
    os.mkdir(cwd)
    with open(config, "wb") as f:
        f.write(CONFIG.encode())
    env = {
        os.fsencode(k): os.fsencode(v)
        for k, v in os.environ.items()
        if not k.startswith(("GEMMALOG_", "RANK", "WORLD_SIZE"))
    }
    env |= {b"PYTHONPATH": os.fsencode(REPO), b"GEMMALOG_RUN_NAME": b"name-caf\xe9"}
    result = subprocess.run(
        [sys.executable.encode(), b"-c", SCRIPT.encode(), config, root, b"--data", b"/d/caf\xe9"],
        cwd=cwd,
        env=env,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    assert b"Traceback" not in result.stderr and b"Error" not in result.stderr
    (run_dir,) = Path(os.fsdecode(root)).iterdir()
    manifest = orjson.loads((run_dir / "run.json").read_bytes())
    assert manifest["status"] == "completed"
    # escaped as the JSONL's repair escapes them: the surrogate's code point, readable
    assert manifest["argv"][-2:] == ["--data", "/d/caf\\udce9"]
    assert manifest["cwd"].endswith("/cwd-caf\\udce9")
    assert manifest["name"] == "name-caf\\udce9"
    assert manifest["config"]["settings"]["root"].endswith("/runs-caf\\udce9")
    events = read_events(run_dir)
    assert [e["kind"] for e in events] == ["run_start", "log", "metrics", "run_end"]
    assert events[0]["name"] == "name-caf\\udce9" and events[1]["path"] == "/d/caf\\udce9"
    assert events[0]["run"] == manifest["id"]
    log = (run_dir / "training.log").read_text(encoding="utf-8")
    assert "path=/d/caf\\udce9" in log and "run completed" in log
