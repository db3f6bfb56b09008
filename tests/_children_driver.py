"""Child processes that fan out work: ``python tests/_children_driver.py ROOT WAY``.

Each way starts worker processes the way training code does; every worker logs
``PER_WORKER`` events tagged with its task number, then the parent shuts down. The test
reads the shards back: every event of every worker must be there, once.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import sys
from concurrent.futures import ProcessPoolExecutor

import gemmalog

PER_WORKER = 100
TASKS = (1, 2)


def work(task: int) -> int:
    log = gemmalog.get_logger("worker")
    for j in range(PER_WORKER):
        log.info("work", task=task, j=j)
    return os.getpid()


def dataloader(persistent: bool) -> None:
    import torch
    from torch.utils.data import DataLoader, Dataset

    class Tasks(Dataset[int]):
        def __len__(self) -> int:
            return len(TASKS)

        def __getitem__(self, index: int) -> int:
            work(TASKS[index])
            return index

    loader = DataLoader(Tasks(), num_workers=2, persistent_workers=persistent, batch_size=1)
    for _ in loader:
        pass
    del loader
    torch.set_num_threads(1)


def sigterm_action(_: int = 0) -> str:
    """What SIGTERM does in this process once it has logged: gemmalog's handler or the default."""
    gemmalog.get_logger("worker").info("work", task=0, j=-1)
    return "default" if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL else "handler"


def sigterm_actions(root: str) -> None:
    """Print ``<process> <action>`` for the parent, a pool worker of each start method, and a
    forked child that starts a run of its own."""
    print("parent", "default" if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL else "handler")
    for method in ("fork", "forkserver", "spawn"):
        with mp.get_context(method).Pool(1) as pool:  # left by terminate(): SIGTERM
            print(method, pool.apply(sigterm_action))
    pid = os.fork()
    if pid == 0:
        gemmalog.initialize(root=os.path.join(root, "own"), capture_stdlib=False)
        code = 0 if signal.getsignal(signal.SIGTERM) != signal.SIG_DFL else 3
        gemmalog.shutdown()
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    print("own-run", "handler" if os.waitstatus_to_exitcode(status) == 0 else "default")


def main(root: str, way: str) -> None:
    gemmalog.initialize(root=root, run_id="fanout", capture_stdlib=False)
    if way == "sigterm-actions":
        sigterm_actions(root)
        gemmalog.shutdown()
        return
    method, _, how = way.partition("-")
    if method == "raw":  # os.fork(), the child leaves with os._exit()
        pid = os.fork()
        if pid == 0:
            work(TASKS[0])
            os._exit(0)
        os.waitpid(pid, 0)
    elif method == "dataloader":
        dataloader(persistent=how == "persistent")
    else:
        ctx = mp.get_context(method)
        if how == "with":  # Pool.__exit__ terminates the workers (SIGTERM)
            with ctx.Pool(2) as pool:
                pool.map(work, TASKS, chunksize=1)
        elif how == "terminate":
            pool = ctx.Pool(2)
            pool.map(work, TASKS, chunksize=1)
            pool.terminate()
            pool.join()
        elif how == "close":
            pool = ctx.Pool(2)
            pool.map(work, TASKS, chunksize=1)
            pool.close()
            pool.join()
        elif how == "executor":
            with ProcessPoolExecutor(2, mp_context=ctx) as executor:
                list(executor.map(work, TASKS))
        else:
            raise SystemExit(f"unknown way {way!r}")
    gemmalog.shutdown()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
