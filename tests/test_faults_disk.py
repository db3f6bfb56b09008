"""Disk full, permission denied, the run directory removed, a slow sink: the training loop
never sees an exception, the loss is counted and reported once, the other sinks carry on."""

from __future__ import annotations

import contextlib
import csv
import errno
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import orjson
import psutil
import pytest

import gemmalog
from gemmalog import running
from tests.helpers import events_of, read_events

pytestmark = pytest.mark.faults

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "gemma_logging.yaml"


def lines_of(shard: Path) -> list[dict[str, Any]]:
    out = []
    for line in shard.read_bytes().split(b"\n"):
        with contextlib.suppress(orjson.JSONDecodeError):
            out.append(orjson.loads(line))
    return out


def manifest(run_dir: Path) -> dict[str, Any]:
    return orjson.loads((run_dir / "run.json").read_bytes())


def csv_rows(run_dir: Path) -> list[dict[str, str]]:
    (path,) = run_dir.rglob("model_outputs.csv")
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def outputs(start: int, stop: int) -> None:
    for i in range(start, stop):
        gemmalog.log_model_output(question=f"q{i}", true_answer="1", model_output="1", step=i)


class FullDisk:
    """Stands in for the shard's file object: every write fails with ENOSPC while full."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.full = True

    def write(self, data: Any) -> int:
        if self.full:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return int(self.real.write(data))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


def test_disk_full_is_counted_reported_once_and_recovers(
    root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = gemmalog.initialize(CONFIG, root=str(root), flush_interval=0.05)
    pipeline = running()
    assert pipeline is not None
    primary = pipeline.listener.primary
    outputs(0, 100)
    assert gemmalog.flush(10)
    fake = FullDisk(primary._file)
    primary._file = fake  # type: ignore[assignment]
    outputs(100, 200)
    assert gemmalog.flush(10)
    time.sleep(0.2)  # several periodic flushes fail in a row: still one report
    outputs(200, 250)
    assert gemmalog.flush(10)
    fake.full = False
    outputs(250, 300)
    gemmalog.shutdown()
    err = capsys.readouterr().err
    assert err.count("No space left on device") == 1
    got = [e["step"] for e in events_of(run.dir, "model_output")]
    assert got == [*range(100), *range(250, 300)]
    notice = next(e for e in read_events(run.dir) if "events were lost" in e.get("event", ""))
    assert notice["events_lost"] == 150 and notice["level"] == "warning"
    m = manifest(run.dir)
    assert m["events_lost"] == 150 and "No space left" in m["sink_errors"]["jsonl"]["error"]
    assert m["sink_errors"]["jsonl"]["missed"] == 150 and m["status"] == "completed"
    # the CSV sink never noticed
    assert [int(r["step"]) for r in csv_rows(run.dir)] == list(range(300))


def test_a_real_full_filesystem(root: Path, tmp_path: Path) -> None:
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
        run = gemmalog.initialize(root=str(small), flush_interval=0.05)
        log = gemmalog.get_logger("fill")
        filler = small / "filler"
        with open(filler, "wb", buffering=0) as f:  # leave nothing
            try:
                while True:
                    f.write(b"\0" * 4096)
            except OSError:
                pass
        for i in range(2000):
            log.info("while full", i=i, pad="p" * 100)
        assert gemmalog.flush(10)
        filler.unlink()
        for i in range(100):
            log.info("after", i=i)
        gemmalog.shutdown()
        m = manifest(run.dir)
        events = lines_of(run.dir / "events.0.jsonl")  # a torn line may sit where it filled
        full = [e["i"] for e in events if e.get("event") == "while full"]
        after = [e["i"] for e in events if e.get("event") == "after"]
        assert after == list(range(100))
        starts = sum(1 for e in events if e["kind"] == "run_start")  # may be lost too
        assert m["events_lost"] > 0 and len(full) + starts + m["events_lost"] == 2001
        assert full == list(range(len(full)))  # what was written is a prefix, in order
        assert "No space left" in m["sink_errors"]["jsonl"]["error"]
    finally:
        if running() is not None:
            gemmalog.shutdown()
        subprocess.run(["umount", str(small)], check=False)


def _as_nobody(root: str, errfile: str) -> None:
    import sys

    sys.stderr = open(errfile, "w")  # noqa: SIM115 - the process ends right after
    os.setgid(65534)
    os.setuid(65534)
    run = gemmalog.initialize(root=root, run_name="denied", capture_stdlib=False)
    for i in range(100):
        gemmalog.log_training_progress(i, {"loss": 1.0})
    gemmalog.flush(5)
    gemmalog.shutdown()
    print(f"run {run.id} ended", file=sys.stderr)
    sys.stderr.flush()
    os._exit(0)


def test_permission_denied_never_reaches_the_training_loop(root: Path, tmp_path: Path) -> None:
    import multiprocessing as mp

    if os.geteuid() != 0:
        pytest.skip("needs root to drop to another user")
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o755)  # root-owned: the user 'nobody' cannot write here
    errfile = tmp_path / "stderr.txt"
    os.chmod(tmp_path, 0o777)
    errfile.touch()
    os.chmod(errfile, 0o666)
    proc = mp.get_context("fork").Process(target=_as_nobody, args=(str(locked), str(errfile)))
    proc.start()
    proc.join(30)
    assert proc.exitcode == 0
    err = errfile.read_text()
    assert err.count("Permission denied") >= 1 and "Traceback" not in err
    assert err.count("cannot create the run directory") == 1
    assert list(locked.iterdir()) == []


def test_run_directory_removed_mid_run(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = gemmalog.initialize(CONFIG, root=str(root), flush_interval=0.05)
    outputs(0, 50)
    assert gemmalog.flush(10)
    shutil.rmtree(run.dir)
    outputs(50, 100)
    assert gemmalog.flush(10)
    outputs(100, 150)
    gemmalog.shutdown()
    assert capsys.readouterr().err.count("was deleted during the run") == 1
    events = read_events(run.dir)
    steps = [e["step"] for e in events if e["kind"] == "model_output"]
    assert steps == list(range(50, 150))  # everything after the removal
    notice = next(e for e in events if "was deleted" in e.get("event", ""))
    assert notice["events_lost"] == 51  # run_start + 50 outputs went with the directory
    m = manifest(run.dir)  # run.json is written again
    assert m["events_lost"] == 51 and m["status"] == "completed"
    assert "deleted" in m["sink_errors"]["jsonl"]["error"]


# -- 4. backpressure --------------------------------------------------------------------
def slow_listener(delay: float) -> None:
    pipeline = running()
    assert pipeline is not None
    original = pipeline.listener._handle

    def slow(batch: list[Any]) -> None:
        time.sleep(delay)  # a sink that keeps up with ~1/10 of the producer
        original(batch)

    pipeline.listener._handle = slow  # type: ignore[method-assign]


def flood_and_measure(n: int, payload: str) -> tuple[int, float]:
    """Log n events; the largest queue length seen and the RSS growth in MiB."""
    pipeline = running()
    assert pipeline is not None
    proc = psutil.Process()
    base = proc.memory_info().rss
    peak_rss, peak_queue = base, 0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak_rss, peak_queue
        while not stop.is_set():
            peak_queue = max(peak_queue, len(pipeline.queue))
            peak_rss = max(peak_rss, proc.memory_info().rss)
            time.sleep(0.005)

    sampler = threading.Thread(target=sample)
    sampler.start()
    log = gemmalog.get_logger("flood")
    for i in range(n):
        log.info("flood", i=i, payload=payload)
    stop.set()
    sampler.join()
    return peak_queue, (peak_rss - base) / 2**20


QUEUE = 2000
N = 60_000
PAYLOAD = "x" * 4096  # unbounded, 60k events would hold ~250 MiB


def test_block_keeps_memory_bounded_and_loses_nothing(root: Path) -> None:
    run = gemmalog.initialize(root=str(root), queue_size=QUEUE, backpressure="block")
    slow_listener(0.002)
    peak_queue, grown = flood_and_measure(N, PAYLOAD)
    gemmalog.shutdown()
    print(f"\nblock: peak queue {peak_queue}/{QUEUE}, RSS growth {grown:.1f} MiB for {N} events")
    assert peak_queue <= QUEUE + 1
    assert grown < 64
    got = [e["i"] for e in read_events(run.dir) if e.get("event") == "flood"]
    assert got == list(range(N))
    assert manifest(run.dir)["drops"] == 0


def test_drop_keeps_memory_bounded_counts_and_records(root: Path) -> None:
    run = gemmalog.initialize(root=str(root), queue_size=QUEUE, backpressure="drop")
    slow_listener(0.01)
    peak_queue, grown = flood_and_measure(N, PAYLOAD)
    gemmalog.shutdown()
    m = manifest(run.dir)
    got = [e["i"] for e in read_events(run.dir) if e.get("event") == "flood"]
    print(
        f"\ndrop: peak queue {peak_queue}/{QUEUE}, RSS growth {grown:.1f} MiB, "
        f"{m['drops']} of {N} dropped"
    )
    assert peak_queue <= QUEUE + 1 and grown < 64
    assert m["drops"] > 0 and len(got) + m["drops"] == N
    assert got == sorted(got)
    (end,) = events_of(run.dir, "run_end")
    assert end["drops"] == m["drops"]
