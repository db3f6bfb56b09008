"""The process samplers of gemmalog.processors.resources: RSS from /proc/self/statm, CPU
percent from process_time deltas, measured against psutil's figures for the same process."""

from __future__ import annotations

import mmap
import os
import sys
import time

import psutil
import pytest

from gemmalog.processors import resources

_MB = 1024.0 * 1024.0
linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/self")


@pytest.fixture
def fresh_sampler() -> None:
    """A sampler as a new process has it (no descriptor, no CPU baseline)."""
    resources._after_fork()


def _busy(seconds: float) -> None:
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


def test_rss_matches_psutil(fresh_sampler: None) -> None:
    process = psutil.Process()
    # An anonymous mapping of its own, not the allocator's: unmapping it gives the pages back
    # to the system whatever malloc's thresholds are (a heap block may be kept).
    hold = mmap.mmap(-1, 64 * 1024 * 1024)
    for i in range(0, len(hold), 4096):  # touched: resident, so the figure moves
        hold[i] = 1
    before = process.memory_info().rss / _MB
    ours = resources.rss_mb()
    after = process.memory_info().rss / _MB
    # Between two psutil reads (allocations by the interpreter may move a page or two).
    assert min(before, after) - 1.0 <= ours <= max(before, after) + 1.0
    hold.close()
    assert resources.rss_mb() < ours - 32  # a second read sees the memory given back


def test_rss_without_proc_uses_psutil(fresh_sampler: None, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_proc(*args: object, **kwargs: object) -> int:
        raise OSError("no /proc here")

    monkeypatch.setattr(os, "open", no_proc)
    expected = psutil.Process().memory_info().rss / _MB
    assert resources.rss_mb() == pytest.approx(expected, abs=1.0)
    assert resources._SAMPLER.statm == -1 and resources._SAMPLER.process is not None


def test_cpu_percent_first_call_is_zero_as_psutil(fresh_sampler: None) -> None:
    _busy(0.05)
    assert resources.cpu_percent() == 0.0 == psutil.Process().cpu_percent(interval=None)


def test_cpu_percent_agrees_with_psutil(fresh_sampler: None) -> None:
    process = psutil.Process()
    process.cpu_percent(interval=None)
    resources.cpu_percent()
    _busy(0.4)
    ours = resources.cpu_percent()
    theirs = process.cpu_percent(interval=None)
    # One busy thread: about 100 % of one CPU by both counts (psutil's clock ticks are
    # 10 ms, so over 0.4 s the two may differ by a few percent), rounded to 0.1 as psutil.
    assert ours == round(ours, 1)
    assert abs(ours - theirs) <= 10.0
    assert 20.0 <= ours <= 110.0


def test_process_memory_fields(fresh_sampler: None) -> None:
    first = resources.process_memory()
    assert set(first) == {"cpu_rss_mb", "cpu_percent"} and first["cpu_percent"] == 0.0
    assert first["cpu_rss_mb"] > 0


@linux_only
def test_forked_child_samples_itself() -> None:
    """A child reads its own /proc entry (not the parent's, through an inherited
    descriptor) and starts its CPU percentage afresh."""
    resources.rss_mb()
    resources.cpu_percent()
    parent_fd = resources._SAMPLER.statm
    assert parent_fd is not None and parent_fd >= 0
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report, and never return into pytest
        code = 1
        try:
            before = resources.rss_mb()
            hold = bytearray(96 * 1024 * 1024)
            for i in range(0, len(hold), 4096):
                hold[i] = 1
            grown = resources.rss_mb() - before
            first = resources.cpu_percent()
            own = psutil.Process().memory_info().rss / _MB
            ok = grown > 64 and first == 0.0 and abs(resources.rss_mb() - own) < 2.0
            os.write(write, b"ok" if ok else f"{grown} {first} {own}".encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write)
    _, status = os.waitpid(pid, 0)
    answer = os.read(read, 200)
    os.close(read)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    assert answer == b"ok"
    assert resources._SAMPLER.statm == parent_fd  # the parent's own is left as it was


@linux_only
def test_a_reused_descriptor_is_not_read_as_memory(fresh_sampler: None, tmp_path: object) -> None:
    # A program that closes every descriptor, then opens a file of its own which gets the
    # number: its bytes must not become the process's memory figure.
    import pathlib

    resources.rss_mb()
    fd = resources._SAMPLER.statm
    assert fd is not None and fd >= 0
    os.close(fd)
    decoy = pathlib.Path(str(tmp_path)) / "decoy"
    decoy.write_text("1 999999999 3\n")
    reused = os.open(decoy, os.O_RDONLY)
    try:
        assert reused == fd  # the lowest free number: the one just closed
        expected = psutil.Process().memory_info().rss / _MB
        assert resources.rss_mb() == pytest.approx(expected, abs=2.0)
        assert resources._SAMPLER.statm == -1  # psutil from now on, the decoy left open
        os.fstat(reused)
    finally:
        os.close(reused)
