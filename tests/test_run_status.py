"""Run status tells the truth (issue 11 item 5, defects 18); no hang from signal handlers
(issue 12 item 3, defects 10). Every case runs in a real child process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from tests.helpers import read_events

pytestmark = pytest.mark.faults

REPO = Path(__file__).resolve().parents[1]
ENV = {k: v for k, v in os.environ.items() if not k.startswith("GEMMALOG_")}
ENV["PYTHONPATH"] = str(REPO)


def _child(code: str, root: Path, **kwargs: object) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", code, str(root)],
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,  # type: ignore[arg-type]
    )


def _manifest(root: Path) -> dict:
    (run_dir,) = root.iterdir()
    return orjson.loads((run_dir / "run.json").read_bytes())


@pytest.mark.parametrize(
    ("ending", "returncode", "status", "error"),
    [
        ("sys.exit(0)", 0, "completed", None),
        ("sys.exit()", 0, "completed", None),
        ("sys.exit(None)", 0, "completed", None),
        ("sys.exit(3)", 3, "failed", "SystemExit: 3"),
        ("sys.exit('bad input')", 1, "failed", "SystemExit: bad input"),
        ("pass", 0, "completed", None),
    ],
)
def test_sys_exit_code_decides_the_status(
    root: Path, ending: str, returncode: int, status: str, error: str | None
) -> None:
    code = (
        "import sys, gemmalog\n"
        "gemmalog.initialize(root=sys.argv[1], run_name='exit')\n"
        "gemmalog.get_training_logger().info('working')\n"
        f"{ending}\n"
    )
    child = _child(code, root)
    child.communicate(timeout=60)
    assert child.returncode == returncode
    manifest = _manifest(root)
    assert (manifest["status"], manifest.get("error")) == (status, error)


@pytest.mark.parametrize(
    ("ending", "status"), [("raise SystemExit(0)", "completed"), ("raise SystemExit(2)", "failed")]
)
def test_system_exit_inside_a_with_block(root: Path, ending: str, status: str) -> None:
    code = (
        "import sys, gemmalog\n"
        "with gemmalog.initialize(root=sys.argv[1], run_name='with'):\n"
        f"    {ending}\n"
    )
    child = _child(code, root)
    child.communicate(timeout=60)
    assert _manifest(root)["status"] == status


def test_a_user_excepthook_installed_after_import_is_still_called(root: Path) -> None:
    code = (
        "import sys, gemmalog\n"
        "def mine(t, v, tb):\n"
        "    print('user hook saw', t.__name__, flush=True)\n"
        "sys.excepthook = mine\n"
        "gemmalog.initialize(root=sys.argv[1], run_name='hook')\n"
        "raise ValueError('boom')\n"
    )
    child = _child(code, root)
    out, _ = child.communicate(timeout=60)
    assert "user hook saw ValueError" in out
    assert _manifest(root)["status"] == "failed"


WAITING = (
    "import sys, time, gemmalog\n"
    "gemmalog.initialize(root=sys.argv[1], run_name='ctrlc', flush_interval=0.05)\n"
    "log = gemmalog.get_training_logger()\n"
    "print('ready', flush=True)\n"
    "i = 0\n"
    "while True:\n"
    "    log.info('work', i=i)\n"
    "    i += 1\n"
    "    time.sleep(0.0005)\n"
)


@pytest.mark.parametrize("trial", range(10))
def test_two_quick_ctrl_c_end_the_run_as_interrupted(root: Path, trial: int) -> None:
    child = _child(WAITING, root)
    assert child.stdout is not None and child.stdout.readline().strip() == "ready"
    time.sleep(0.05 + 0.01 * trial)
    child.send_signal(signal.SIGINT)
    time.sleep(0.002 * trial)  # 0 to 18 ms apart: lands anywhere in the first one's handling
    child.send_signal(signal.SIGINT)
    child.communicate(timeout=60)
    manifest = _manifest(root)
    assert manifest["status"] == "interrupted", manifest
    assert manifest["events_written"] >= 2  # the final counts were written


HANDLER_FLOOD = (
    "import signal, sys, gemmalog\n"
    "gemmalog.initialize(root=sys.argv[1], run_name='sig', queue_size=2, flush_interval=0.05,\n"
    "                    capture_stdlib=False)\n"
    "log = gemmalog.get_logger('sig')\n"
    "signal.signal(signal.SIGUSR1, lambda s, f: log.info('from handler'))\n"
    "print('ready', flush=True)\n"
    "while True:\n"
    "    log.info('main', pad='x' * 2000)\n"
)
#: What docs/reliability.md promises for SIGTERM: shutdown waits at most 30 s for the flush.
SIGTERM_BOUND = 30.0


@pytest.mark.parametrize("trial", range(20))
def test_signal_handlers_that_log_never_deadlock_and_sigterm_still_ends_the_run(
    root: Path, trial: int
) -> None:
    child = _child(HANDLER_FLOOD, root)
    assert child.stdout is not None and child.stdout.readline().strip() == "ready"
    for k in range(1000):
        os.kill(child.pid, signal.SIGUSR1)
        if k % 10 == 0:
            time.sleep(0.001)
    child.send_signal(signal.SIGTERM)
    started = time.monotonic()
    try:
        child.communicate(timeout=SIGTERM_BOUND)
    except subprocess.TimeoutExpired:
        child.kill()
        child.communicate()
        pytest.fail(f"trial {trial}: still running {SIGTERM_BOUND} s after SIGTERM (deadlock)")
    assert child.returncode == -signal.SIGTERM
    assert time.monotonic() - started < SIGTERM_BOUND
    (run_dir,) = root.iterdir()
    manifest = orjson.loads((run_dir / "run.json").read_bytes())
    assert manifest["status"] == "interrupted"
    events = read_events(run_dir)  # every line parses
    assert any(e.get("event") == "from handler" for e in events)
    assert events[-1]["kind"] == "run_end"


LATE_LOGGERS = (
    "import atexit, sys, threading, time, gemmalog\n"
    "atexit.register(lambda: gemmalog.get_logger('lib').info('from another atexit hook'))\n"
    "gemmalog.initialize(root=sys.argv[1], run_name='late', queue_size=4, capture_stdlib=False)\n"
    "log = gemmalog.get_logger('app')\n"
    "class Resource:\n"
    "    def __del__(self):\n"
    "        log.info('from __del__')\n"
    "def spin():\n"
    "    while True:\n"
    "        log.info('daemon thread', pad='x' * 500)\n"
    "threading.Thread(target=spin, daemon=True).start()\n"
    "for i in range(2000):\n"
    "    Resource()\n"
    "    log.info('main', i=i)\n"
    "print('leaving', flush=True)\n"
)


@pytest.mark.parametrize("trial", range(5))
def test_del_daemon_threads_and_other_exit_hooks_that_log_never_hang_the_exit(
    root: Path, trial: int
) -> None:
    """A ``__del__`` that logs while the main thread floods a tiny queue, a daemon thread
    still logging while the interpreter shuts down, and an atexit hook of another library
    that logs after gemmalog's own: the process exits, the run is completed, every line
    parses, and the late events join the ended run."""
    child = _child(LATE_LOGGERS, root)
    try:
        out, _ = child.communicate(timeout=SIGTERM_BOUND)
    except subprocess.TimeoutExpired:
        child.kill()
        child.communicate()
        pytest.fail(f"trial {trial}: the process did not exit (deadlock)")
    assert child.returncode == 0 and "leaving" in out
    (run_dir,) = root.iterdir()
    assert orjson.loads((run_dir / "run.json").read_bytes())["status"] == "completed"
    events = read_events(run_dir)  # every line of every shard parses
    messages = [e.get("event") for e in events]
    assert messages.count("main") == 2000 and "from __del__" in messages
    assert "from another atexit hook" in messages  # after run_end, in the late shard


OFF_MAIN_THREAD = (
    "import signal, sys, threading, time, gemmalog\n"
    "def train():\n"
    "    gemmalog.initialize(root=sys.argv[1], run_name='thread', flush_interval=30,\n"
    "                        capture_stdlib=False)\n"
    "    log = gemmalog.get_logger('t')\n"
    "    for i in range(100):\n"
    "        log.info('before', i=i)\n"
    "    while signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):\n"
    "        time.sleep(0.01)  # the main thread installs it: see below\n"
    "    print('ready', flush=True)\n"
    "    while True:\n"
    "        log.info('still training')\n"
    "        time.sleep(0.001)\n"
    "t = threading.Thread(target=train, daemon=True)\n"
    "t.start()\n"
    "while t.is_alive():\n"
    "    t.join(0.05)  # the main thread runs Python code between its waits\n"
)


def test_sigterm_ends_a_run_initialized_off_the_main_thread(root: Path) -> None:
    """W5: ``initialize()`` on a worker thread (the main thread waits for it) used to
    install no SIGTERM handler and say nothing: SIGTERM left run.json ``running`` and the
    shard empty. Now the main thread installs the handler and the run ends interrupted
    with every event written (flush_interval 30 s: only the shutdown can have written
    them), and stderr says why initialize() belongs on the main thread."""
    child = _child(OFF_MAIN_THREAD, root)
    assert child.stdout is not None
    try:
        # Hangs (until the bound, a deadlock-sized one) only when no handler ever comes.
        ready = _readline_within(child, SIGTERM_BOUND)
        assert ready == "ready\n", ready
        child.send_signal(signal.SIGTERM)
        _, err = child.communicate(timeout=SIGTERM_BOUND)
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()
    assert child.returncode == -signal.SIGTERM
    assert "not the main thread" in err and "SIGTERM" in err
    manifest = _manifest(root)
    assert manifest["status"] == "interrupted" and manifest["error"] == "signal SIGTERM"
    (run_dir,) = root.iterdir()
    main = [orjson.loads(line) for line in (run_dir / "events.0.jsonl").read_bytes().splitlines()]
    assert [e["i"] for e in main if e.get("event") == "before"] == list(range(100))
    assert main[-1]["kind"] == "run_end" and main[-1]["status"] == "interrupted"


def _readline_within(child: subprocess.Popen[str], seconds: float) -> str:
    """The child's next stdout line, or a failure naming the wait (the child never got there)."""
    import threading

    stream = child.stdout
    assert stream is not None
    got: list[str] = []
    reader = threading.Thread(target=lambda: got.append(stream.readline()), daemon=True)
    reader.start()
    reader.join(seconds)
    if not got:
        pytest.fail(f"no line from the child within {seconds} s (no SIGTERM handler installed?)")
    return got[0]
