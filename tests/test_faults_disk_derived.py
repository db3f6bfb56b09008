"""Derived files survive a full disk (W8): `model_outputs.csv` and `training.log` end at their
last whole row or line, read back with csv, pandas and the text format; the JSONL has it all."""

from __future__ import annotations

import csv
import errno
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import gemmalog
from gemmalog import running
from tests.helpers import events_of

pytestmark = pytest.mark.faults

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "gemma_logging.yaml"
LINE = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d - [\w.]+ - [A-Z]+ - .*")
CSV_COLUMNS = 7  # the seed configuration's columns, then step and correct


def outputs(start: int, stop: int, pad: int = 20) -> None:
    for i in range(start, stop):
        gemmalog.log_model_output(
            question=f"q{i} " + "x" * pad,
            true_answer="1",
            model_output="<answer>1</answer>",
            step=i,
        )
        gemmalog.get_training_logger().info("generated", i=i, text="t" * pad)


def csv_rows(run_dir: Path) -> tuple[list[str], list[list[str]]]:
    (path,) = run_dir.rglob("model_outputs.csv")
    raw = path.read_bytes()
    assert raw == b"" or raw.endswith(b"\r\n"), raw[-80:]
    with open(path, newline="", encoding="utf-8") as f:
        header, *rows = list(csv.reader(f))
    assert all(len(row) == len(header) == CSV_COLUMNS for row in rows)
    frame = pd.read_csv(path)  # pandas agrees: every row whole, no garbage last row
    assert len(frame) == len(rows) and not frame["question"].isna().any()
    assert list(frame["question"]) == [row[1] for row in rows]
    return header, rows


def log_lines(run_dir: Path) -> list[str]:
    (path,) = run_dir.rglob("training.log")
    text = path.read_text(encoding="utf-8")
    assert text == "" or text.endswith("\n")
    lines = text.splitlines()
    assert all(LINE.fullmatch(line) for line in lines), [
        line for line in lines if not LINE.fullmatch(line)
    ][:3]
    return lines


def _fills_up_at(path: Path, budget: int, real_write: Any) -> Any:
    """An ``os.write`` for which the file at ``path`` has ``budget`` bytes of room left."""
    room = [budget]

    def write(fd: int, data: Any) -> int:
        try:
            target = os.readlink(f"/proc/self/fd/{fd}") == str(path)
        except OSError:
            target = False
        if not target:
            return int(real_write(fd, data))
        if room[0] <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        n = int(real_write(fd, bytes(data[: room[0]])))
        room[0] -= n
        return n

    return write


@pytest.mark.parametrize("budget", [0, 1, 517, 4096])
def test_csv_cut_part_way_by_a_full_disk_ends_at_its_last_whole_row(
    root: Path, monkeypatch: pytest.MonkeyPatch, budget: int, capsys: pytest.CaptureFixture[str]
) -> None:
    run = gemmalog.initialize(CONFIG, root=str(root), flush_interval=0.05)
    outputs(0, 250)
    assert gemmalog.flush(10)  # an explicit flush writes the CSV's waiting rows too
    (path,) = run.dir.rglob("model_outputs.csv")
    before = path.stat().st_size
    _, written = csv_rows(run.dir)
    monkeypatch.setattr(os, "write", _fills_up_at(path.resolve(), budget, os.write))
    outputs(250, 400)  # the next write of 100+ rows runs out of room part-way
    assert gemmalog.flush(10)
    monkeypatch.undo()
    gemmalog.shutdown()
    assert "sink 'csv'" in capsys.readouterr().err
    assert path.stat().st_size == before
    _, rows = csv_rows(run.dir)
    assert rows == written
    assert [row[1].split()[0] for row in rows] == [f"q{i}" for i in range(250)]
    # the source of truth has every row, and to-csv rebuilds the whole file from it
    assert [e["step"] for e in events_of(run.dir, "model_output")] == list(range(400))


class _FillsUp:
    """Stands in for the log file's stream: ``budget`` more characters fit, then ENOSPC."""

    def __init__(self, real: Any, budget: int) -> None:
        self.real = real
        self.room = budget

    def write(self, text: str) -> int:
        if self.room <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        part = text[: self.room]
        self.real.write(part)
        self.real.flush()  # the torn part really is on disk
        self.room -= len(part)
        if len(part) < len(text):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return len(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


@pytest.mark.parametrize("budget", [1, 333, 5000])
def test_text_log_cut_part_way_by_a_full_disk_ends_at_its_last_whole_line(
    root: Path, budget: int, capsys: pytest.CaptureFixture[str]
) -> None:
    run = gemmalog.initialize(CONFIG, root=str(root), flush_interval=0.05)
    outputs(0, 50)
    assert gemmalog.flush(10)
    pipeline = running()
    assert pipeline is not None
    handler = pipeline.router.sinks["file"].handler  # type: ignore[attr-defined]
    (path,) = run.dir.rglob("training.log")
    before = path.stat().st_size
    handler.stream = _FillsUp(handler.stream, budget)
    outputs(50, 150)
    assert gemmalog.flush(10)
    gemmalog.shutdown()
    assert "sink 'file'" in capsys.readouterr().err
    lines = log_lines(run.dir)
    assert path.stat().st_size >= before
    # a prefix of what was logged, each line whole: nothing torn, nothing after the cut
    numbers = [int(m[1]) for line in lines if (m := re.search(r" i=(\d+)", line))]
    assert numbers == list(range(len(numbers)))
    assert len(numbers) >= 50


def test_a_real_full_filesystem_leaves_whole_rows_and_lines(root: Path, tmp_path: Path) -> None:
    small = tmp_path / "small"
    small.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(small)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (not root, or no CAP_SYS_ADMIN)")
    try:
        run = gemmalog.initialize(CONFIG, root=str(small), flush_interval=0.05)
        for start in range(0, 1500, 50):  # ~3 MB into 1 MiB: every file fills up
            outputs(start, start + 50, pad=700)
            assert gemmalog.flush(10)
        gemmalog.shutdown()
        _, rows = csv_rows(run.dir)
        steps = [int(row[1].split()[0][1:]) for row in rows]
        assert steps == list(range(len(steps)))  # whole rows, in order, none torn
        lines = log_lines(run.dir)
        numbers = [int(m[1]) for line in lines if (m := re.search(r" i=(\d+)", line))]
        assert numbers == list(range(len(numbers)))
        assert len(steps) < 1500 and len(numbers) < 1500  # the disk did fill up
    finally:
        if running() is not None:
            gemmalog.shutdown()
        subprocess.run(["umount", str(small)], check=False)
