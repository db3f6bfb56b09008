"""The suite's per-test timeout: a hang is a named failure with tracebacks, not a stalled run."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_a_hanging_test_fails_by_name_with_its_traceback_and_the_run_goes_on(
    tmp_path: Path,
) -> None:
    (tmp_path / "test_hang.py").write_text(
        "import threading\n\n"
        "def test_blocks_forever():\n"
        "    threading.Event().wait()  # as a producer waiting for room that never comes\n\n"
        "def test_after():\n"
        "    assert True\n"
    )
    # The project's own pytest settings, with the limit shortened for the test.
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-c", str(REPO / "pyproject.toml"), "-p",
         "no:cacheprovider", "-o", "timeout=3", "--rootdir", str(tmp_path),
         str(tmp_path / "test_hang.py")],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    assert "FAILED test_hang.py::test_blocks_forever - Failed: Timeout" in out, out
    assert "threading.Event().wait()" in out  # the traceback of where it hung
    assert "1 failed, 1 passed" in out


def test_the_limit_leaves_room_for_the_slowest_tests() -> None:
    options = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    # The example and GRPO tests bound their own subprocesses at 600 s: the per-test limit
    # must not cut one of those first.
    bounds = [
        int(n)
        for path in (REPO / "tests").glob("test_*.py")
        for n in re.findall(r"timeout=(\d+)", path.read_text())
    ]
    assert options["timeout"] > max(bounds) and options["timeout_method"] == "signal"
    dev = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert any(d.startswith("pytest-timeout") for d in dev["dev"])
