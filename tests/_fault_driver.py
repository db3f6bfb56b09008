"""Child processes for the fault tests: ``python tests/_fault_driver.py MODE ROOT ...``.

Modes:
  flood ROOT RUN_ID COUNTER FLUSH   log "tick" events as fast as possible, forever; the
                                    index of the last event handed to gemmalog is kept in
                                    the 8-byte file COUNTER (mmap) for the parent to sample
  stop ROOT HOW                     log, then end by HOW: completed | exception | wait
                                    (wait: print "ready" and keep logging until a signal)
  dist ROOT CONFIG                  a torchrun worker: log, barrier, log, exit
"""

from __future__ import annotations

import mmap
import os
import sys
import time

import gemmalog


def flood(root: str, run_id: str, counter_path: str, flush: str, kill: str = "0") -> None:
    with open(counter_path, "r+b") as f:
        counter = mmap.mmap(f.fileno(), 8)
    gemmalog.initialize(root=root, run_id=run_id, flush_interval=float(flush), capture_stdlib=False)
    gemmalog.bind(kill=int(kill))  # which kill point a line belongs to, for the test's pairing
    log = gemmalog.get_logger("flood")
    i = 0
    while True:
        log.info("tick", i=i, payload="x" * 40)
        counter[:8] = i.to_bytes(8, "little", signed=True)
        i += 1


def stop(root: str, how: str) -> None:
    gemmalog.initialize(root=root, run_name=f"stop-{how}", flush_interval=30.0)
    log = gemmalog.get_training_logger()
    for i in range(1000):
        log.info("work", i=i)
    if how == "exception":
        raise ValueError("boom at step 1000")
    if how == "wait":
        print("ready", flush=True)
        i = 1000
        while True:  # logging when the signal comes
            log.info("work", i=i)
            i += 1
            if i % 1000 == 0:
                time.sleep(0.001)


def dist(root: str, config: str) -> None:
    import torch.distributed as torch_dist

    run = gemmalog.initialize(config, root=root, capture_stdlib=False)
    torch_dist.init_process_group("gloo", timeout=__import__("datetime").timedelta(seconds=60))
    rank = torch_dist.get_rank()
    for step in range(5):
        gemmalog.log_training_progress(step, {"loss": 1.0 / (step + 1), "rank": float(rank)})
        gemmalog.log_model_output(
            question=f"q{rank}", true_answer="4", model_output="<answer>4</answer>", step=step
        )
    torch_dist.barrier()
    gemmalog.get_training_logger().info("after barrier", world=torch_dist.get_world_size())
    torch_dist.destroy_process_group()
    gemmalog.shutdown()
    print(f"RUN_DIR {rank} {run.dir}", flush=True)


if __name__ == "__main__":
    mode, *args = sys.argv[1:]
    sys.path.insert(0, os.getcwd())
    {"flood": flood, "stop": stop, "dist": dist}[mode](*args)
