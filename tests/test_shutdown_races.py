"""No accepted event vanishes around the end of a run (issue 22, D1 and W7).

Every log call that returned is a line on disk (the run's shard, or after ``run_end`` the
late shard ``events.<rank>.<pid>.jsonl``) or is counted in run.json (``drops``,
``events_lost``), whatever other threads do while ``shutdown()`` runs, with a SIGTERM, at
the interpreter's exit and while it finalizes. Real threads and processes; no timing
bounds: the threads are stopped by how far they got, not by a clock.
"""

from __future__ import annotations

import itertools
import os
import signal
import struct
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

import orjson
import pytest

import gemmalog
from tests.helpers import read_events

pytestmark = pytest.mark.faults

REPO = Path(__file__).resolve().parents[1]
ENV = {k: v for k, v in os.environ.items() if not k.startswith("GEMMALOG_")}
ENV["PYTHONPATH"] = str(REPO)
#: Only a deadlock comes near this: each child ends in well under a second when all is well.
HANG = 120


def _lines_by_thread(run_dir: Path) -> dict[int, list[int]]:
    """The ``i`` of every worker line, per worker ``k`` (every line of every shard parses)."""
    out: dict[int, list[int]] = {}
    for event in read_events(run_dir):
        if event.get("event") == "w":
            out.setdefault(event["k"], []).append(event["i"])
    return out


def _shards(run_dir: Path) -> dict[str, list[dict]]:
    return {
        p.name: [orjson.loads(line) for line in p.read_bytes().splitlines()]
        for p in sorted(run_dir.glob("events.*.jsonl"))
    }


@pytest.mark.parametrize(
    ("policy", "queue_size"), [("block", 64), ("block", 100_000), ("drop", 64)]
)
def test_shutdown_while_threads_log_loses_no_returned_call(
    root: Path, policy: str, queue_size: int
) -> None:
    """The defects note's D1: three threads log while the main thread calls shutdown(), and
    go on logging after it returned. calls that returned == lines on disk + counted as lost."""
    run = gemmalog.initialize(
        root=root,
        run_name="race",
        capture_stdlib=False,
        backpressure=policy,
        queue_size=queue_size,
    )
    workers = 3
    returned = [0] * workers
    before = threading.Barrier(workers + 1)  # every worker has logged 2,000 calls
    after = threading.Event()  # shutdown() has returned
    stop = threading.Event()

    def work(k: int) -> None:
        log = gemmalog.get_logger(f"w{k}")
        i = 0
        while not stop.is_set():
            log.info("w", k=k, i=i)
            i += 1
            returned[k] = i
            if i == 2_000:
                before.wait()
            if after.is_set() and i >= late_from[k] + 2_000:
                return

    late_from = [1 << 62] * workers
    threads = [threading.Thread(target=work, args=(k,)) for k in range(workers)]
    for t in threads:
        t.start()
    before.wait()  # all three are logging as shutdown() starts
    gemmalog.shutdown()
    late_from[:] = returned  # each goes on for 2,000 calls after shutdown() returned
    after.set()
    for t in threads:
        t.join()
    gemmalog.shutdown()  # records the late events in run.json (as the exit hook does)

    manifest = orjson.loads((run.dir / "run.json").read_bytes())
    on_disk = _lines_by_thread(run.dir)
    lines = sum(len(v) for v in on_disk.values())
    lost = manifest["drops"] + manifest["events_lost"]
    assert sum(returned) == lines + lost, (sum(returned), lines, manifest)
    for k in range(workers):
        indices = on_disk.get(k, [])
        assert len(indices) == len(set(indices))  # never twice
        if policy == "block":  # nothing dropped: every index of every worker, in order
            assert manifest["drops"] == 0
            assert sorted(indices) == list(range(returned[k]))
    # run_end is the last line of the run's shard; what came after is in the late shard,
    # which run.json counts
    shards = _shards(run.dir)
    main = shards.pop(f"events.{run.rank}.jsonl")
    assert main[-1]["kind"] == "run_end"
    assert [e["kind"] for e in main].count("run_end") == 1
    (late,) = shards.values()
    assert manifest["late_events"]["written"] == len(late) > 0
    assert manifest["late_events"]["lost"] == 0
    assert all(e["run"] == run.id for e in late)


CHILD = """
import mmap, os, signal, struct, sys, threading, gemmalog
root, ending, counters = sys.argv[1], sys.argv[2], sys.argv[3]
workers = 3
with open(counters, "r+b") as f:
    shared = mmap.mmap(f.fileno(), 8 * workers)
gemmalog.initialize(root=root, run_name="race", capture_stdlib=False, queue_size=64,
                    flush_interval=30)
ready = threading.Barrier(workers + 1)

def work(k):
    log = gemmalog.get_logger(f"w{k}")
    i = 0
    while True:
        log.info("w", k=k, i=i)
        i += 1
        struct.pack_into("q", shared, 8 * k, i)  # after the call returned
        if i == 2_000:
            ready.wait()

for k in range(workers):
    threading.Thread(target=work, args=(k,), daemon=True).start()
ready.wait()
if ending == "sigterm":
    os.kill(os.getpid(), signal.SIGTERM)
    signal.pause()
# "exit": the interpreter exits while the daemon threads log, through the exit hook's
# shutdown() and on into finalization
"""


@pytest.mark.parametrize("ending", ["sigterm", "exit"])
def test_threads_logging_through_sigterm_or_exit_lose_no_returned_call(
    root: Path, tmp_path: Path, ending: str
) -> None:
    """Three daemon threads flood a queue of 64 while the process ends by SIGTERM (the
    handler shuts the run down and the signal kills the process) or by leaving the
    interpreter. Each thread counts its returned calls in shared memory: every index up
    to that count is on disk exactly once (the rest were under way when the process died)."""
    counters = tmp_path / "counters"
    counters.write_bytes(bytes(8 * 3))
    child = subprocess.run(
        [sys.executable, "-c", CHILD, str(root), ending, str(counters)],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=HANG,
    )
    expected = -signal.SIGTERM if ending == "sigterm" else 0
    assert child.returncode == expected, child.stderr
    returned = struct.unpack("3q", counters.read_bytes())
    (run_dir,) = root.iterdir()
    manifest = orjson.loads((run_dir / "run.json").read_bytes())
    assert manifest["status"] == ("interrupted" if ending == "sigterm" else "completed")
    assert manifest["drops"] == 0 and manifest["events_lost"] == 0
    on_disk = _lines_by_thread(run_dir)
    for k in range(3):
        indices = on_disk[k]
        assert not [i for i, n in Counter(indices).items() if n > 1]
        # the shared count may trail the disk by the call that was under way
        assert sorted(indices) == list(range(len(indices)))
        assert len(indices) >= returned[k] >= 2_000
    main = _shards(run_dir)["events.0.jsonl"]
    assert main[-1]["kind"] == "run_end"


EARLY = """
import sys
_me = sys.modules[__name__]  # alive into the last stage of finalization
log = None
class Early:
    def __del__(self):
        log.info("from a module imported before gemmalog")
keep = Early()
"""

FINALIZING = """
import logging, sys
sys.path.insert(0, sys.argv[2])
import early
import gemmalog
gemmalog.initialize(root=sys.argv[1], run_name="fin", capture_stdlib=True)
log = gemmalog.get_training_logger()
early.log = log
class ModuleLogger:
    def __del__(self):
        log.info("from __del__ through a module's logger")
class FirstUse:  # gemmalog.get_logger and the helpers are first looked up here
    def __del__(self):
        gemmalog.get_logger("del").info("from __del__ through get_logger")
        gemmalog.log_training_progress(step=7, metrics={"loss": 0.5})
class Stdlib:
    def __del__(self):
        logging.getLogger("lib").warning("a stdlib record from __del__")
class Cycle:
    def __init__(self):
        self.me = self
    def __del__(self):
        log.info("from a cycle collected at exit")
a, b, c = ModuleLogger(), FirstUse(), Stdlib()
Cycle()
log.info("in the run")
if sys.argv[3] == "shutdown":
    gemmalog.shutdown()
    logging.getLogger("lib").warning("a stdlib record after shutdown")
"""


@pytest.mark.parametrize("ending", ["exit", "shutdown"])
def test_logging_while_the_interpreter_finalizes_lands_in_the_run(
    root: Path, tmp_path: Path, ending: str
) -> None:
    """W7: ``__del__`` methods that run while the interpreter finalizes (module globals,
    objects of a module imported before gemmalog, a reference cycle) log through a module's
    logger, through ``gemmalog.get_logger`` and a helper looked up there for the first time,
    and through the standard library; a stdlib record after ``shutdown()`` too. Each is a
    line of the ended run (the late shard), once, and nothing is reported as failed."""
    (tmp_path / "early.py").write_text(EARLY)
    child = subprocess.run(
        [sys.executable, "-c", FINALIZING, str(root), str(tmp_path), ending],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=HANG,
    )
    assert child.returncode == 0, child.stderr
    for failure in ("Exception ignored", "Error", "could not be logged"):
        assert failure not in child.stderr, child.stderr
    (run_dir,) = root.iterdir()
    assert orjson.loads((run_dir / "run.json").read_bytes())["status"] == "completed"
    shards = _shards(run_dir)
    main = shards.pop("events.0.jsonl")
    assert [e["event"] for e in main if e["kind"] == "log"] == ["in the run"]
    assert main[-1]["kind"] == "run_end"
    (late,) = shards.values()
    expected = [
        "from __del__ through a module's logger",
        "from __del__ through get_logger",
        "a stdlib record from __del__",
        "from a cycle collected at exit",
        "from a module imported before gemmalog",
    ]
    if ending == "shutdown":
        expected.append("a stdlib record after shutdown")
        # and on stderr, as the standard library shows it without gemmalog
        assert "a stdlib record after shutdown" in child.stderr
    logged = Counter(e["event"] for e in late if e["kind"] == "log")
    assert logged == Counter(expected), logged
    (metrics,) = [e for e in late if e["kind"] == "metrics"]
    assert metrics["step"] == 7 and metrics["metrics"] == {"loss": 0.5}
    assert all(e["run"] == main[0]["run"] for e in late)


def test_shutdown_from_a_signal_handler_that_interrupted_a_log_call(root: Path) -> None:
    """A user's signal handler calls shutdown() on the main thread in the middle of one of
    its log calls (the signal is raised inside the 3,000th hand-over): shutdown() must not
    wait for the call it interrupted, and that call, when it resumes after the run ended,
    still lands its event. Every index the loop logged is on disk once, the later ones in
    the late shard, and run_end is the run's last line."""
    run = gemmalog.initialize(root=root, run_name="handler", capture_stdlib=False, queue_size=8)
    pipeline = gemmalog.running()
    assert pipeline is not None
    log = gemmalog.get_logger("main")
    ended = threading.Event()
    hand_over = pipeline._put
    calls = itertools.count()

    def interrupted_hand_over(event: dict) -> None:
        if next(calls) == 3_000:
            signal.pthread_kill(threading.get_ident(), signal.SIGUSR1)
            assert ended.is_set()  # the handler ran here, inside the log call
        hand_over(event)

    def handler(signum: int, frame: object) -> None:
        gemmalog.shutdown()
        ended.set()

    pipeline._put = interrupted_hand_over
    previous = signal.signal(signal.SIGUSR1, handler)
    try:
        for i in range(4_000):
            log.info("w", k=0, i=i)
    finally:
        signal.signal(signal.SIGUSR1, previous)
    gemmalog.shutdown()
    assert ended.is_set()
    assert sorted(_lines_by_thread(run.dir)[0]) == list(range(4_000))
    main = _shards(run.dir)[f"events.{run.rank}.jsonl"]
    assert main[-1]["kind"] == "run_end"


def test_a_process_forked_after_the_run_ended_writes_its_late_events_to_its_own_shard(
    root: Path,
) -> None:
    """A child forked after shutdown() (with the parent's late writer open, its lock held
    by another thread at the fork) logs into a late shard named after itself, at once."""
    run = gemmalog.initialize(root=root, run_name="forked", capture_stdlib=False)
    gemmalog.shutdown()
    log = gemmalog.get_logger("late")
    log.info("from the parent")
    late = gemmalog.running()
    assert late is not None
    gemmalog.shutdown()  # counts the late event; the late writer stays for the next ones
    with late._write_now.lock:  # another thread is writing a late event as the fork happens
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            try:
                log.info("from the child")
            finally:
                os._exit(0)
    status = _wait_for(pid, HANG)
    assert status == 0
    shards = {name: [e["event"] for e in lines] for name, lines in _shards(run.dir).items()}
    assert shards[f"events.0.{os.getpid()}.jsonl"] == ["from the parent"]
    assert shards[f"events.0.{pid}.jsonl"] == ["from the child"]


def _wait_for(pid: int, seconds: float) -> int:
    """The child's exit status; a failure (the child killed) if it is still running after
    ``seconds``, a bound only a deadlock reaches."""
    done = threading.Event()
    result: list[int] = []

    def wait() -> None:
        result.append(os.waitpid(pid, 0)[1])
        done.set()

    threading.Thread(target=wait, daemon=True).start()
    if not done.wait(seconds):
        os.kill(pid, signal.SIGKILL)
        done.wait()
        pytest.fail(f"the forked child still ran after {seconds} s (deadlocked)")
    return result[0]


def test_a_late_event_does_not_make_a_deleted_run_again(
    root: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """A run directory deleted after its run ended stays deleted: the late writer opens its
    shard only in a directory that exists (a stdlib record or a helper's call after
    shutdown() would otherwise bring back a run someone removed)."""
    import logging
    import shutil

    run = gemmalog.initialize(root=root, run_name="gone")
    gemmalog.get_logger("t").info("during")
    gemmalog.shutdown()
    shutil.rmtree(run.dir)
    logging.getLogger("late.lib").warning("a library logs after the run was removed")
    gemmalog.get_logger("t").info("late")
    assert not run.dir.exists()
    assert list(root.iterdir()) == []
    capfd.readouterr()


def test_a_record_shown_on_stderr_after_the_run_is_redacted(root: Path) -> None:
    """After shutdown() a stdlib record no other handler takes is shown on stderr as the
    standard library would (a fresh process: pytest's own handlers would take it here); the
    secret in its text, arguments and traceback is redacted there as in the late shard."""
    code = f"""
import logging, gemmalog
gemmalog.initialize(root={str(root)!r}, run_name="echo", redact_patterns=["XSECRET[0-9]+"])
gemmalog.shutdown()
logger = logging.getLogger("late.echo")
logger.warning("std late %s", "XSECRET333")
try:
    raise ValueError("boom XSECRET444")
except ValueError:
    logger.exception("failed with XSECRET555")
"""
    done = subprocess.run(
        [sys.executable, "-c", code], env=ENV, capture_output=True, text=True, timeout=HANG
    )
    assert done.returncode == 0, done.stderr
    assert "std late [REDACTED]" in done.stderr
    assert "failed with [REDACTED]" in done.stderr and "boom [REDACTED]" in done.stderr
    assert "XSECRET" not in done.stderr
    late = [e for e in read_events(next(root.iterdir())) if e.get("logger") == "late.echo"]
    assert [e["event"] for e in late] == ["std late [REDACTED]", "failed with [REDACTED]"]
