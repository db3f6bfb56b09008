"""How a run is named and found: its id, its directory under the root, and the id every
rank of one launch agrees on (torchrun, SLURM, MPI) without talking to the others."""

from __future__ import annotations

import datetime as _dt
import hashlib
import os
import re
import secrets
import socket
from pathlib import Path

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


#: A run directory's name is at most this long (one path component, portable).
MAX_NAME = 100


def safe_name(name: str) -> str:
    """A run name made safe as one path component: no separators, no traversal, no dotfiles."""
    cleaned = re.sub(r"\.{2,}", ".", _UNSAFE.sub("-", name)).strip("-.")
    return cleaned[:MAX_NAME] or "run"


def new_run_id(name: str | None = None) -> str:
    """``<name>-<YYYYmmdd-HHMMSS>-<hex>``, sortable by start time and unique per start.

    The name part is shortened so that the stamp and the random suffix always fit in
    :data:`MAX_NAME`: two runs never share a directory because their names were cut.
    """
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    suffix = secrets.token_hex(3)
    if not name:
        return f"{stamp}-{suffix}"
    room = MAX_NAME - len(stamp) - len(suffix) - 2
    return f"{safe_name(name)[:room].rstrip('-.') or 'run'}-{stamp}-{suffix}"


def run_dir_for(root: Path, run_id: str) -> Path:
    """The directory of run ``run_id`` under ``root``: one directory per distinct id.

    An id that is already a safe name is its own directory name. Any other id (spaces,
    slashes, non-ASCII, too long) is made safe and given a short hash of the id itself, so
    ids that differ only in what was replaced (``实验一``/``实验二``, ``a b``/``a/b``) never
    share a directory, and the same id always finds its directory again (resume).
    """
    cleaned = safe_name(run_id)
    if cleaned == run_id:
        return root / run_id
    digest = hashlib.sha256(run_id.encode("utf-8", "surrogatepass")).hexdigest()[:10]
    return root / f"{cleaned[: MAX_NAME - len(digest) - 1]}-{digest}"


def distributed_env() -> tuple[int, int]:
    """(rank, world_size) from the launcher's environment (torchrun, accelerate, SLURM, MPI)."""
    for rank_key, size_key in (
        ("RANK", "WORLD_SIZE"),
        ("SLURM_PROCID", "SLURM_NTASKS"),
        ("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE"),
        ("PMI_RANK", "PMI_SIZE"),
    ):
        if rank_key in os.environ:
            try:
                return int(os.environ[rank_key]), int(os.environ.get(size_key, "1"))
            except ValueError:
                continue
    return 0, 1


def _int_env(key: str, default: int = 1) -> int:
    try:
        return int(os.environ.get(key, default))
    except ValueError:
        return default


def shared_run_id(name: str | None = None) -> str | None:
    """A run id every rank of one launch agrees on, from the environment, when there is one.

    Only processes started together as the ranks of one launch share it, and ``name``
    (the ``run_name`` setting) leads it when given. In order: ``GEMMALOG_RUN_ID`` (used as
    it is); torchrun's ``TORCHELASTIC_RUN_ID`` (a fresh uuid per launch with the default
    rendezvous, the ``--rdzv-id`` otherwise); for a single-node torchrun whose run id is
    ``none`` (the static rendezvous), the launcher's process id and start time, which every
    local rank shares as its parent; a SLURM job step of several tasks (``srun``: job id,
    step id); an MPI launch (PMIx namespace, unique per ``mpirun``). A script run several
    times inside one SLURM allocation without ``srun`` has no step of its own and gets a
    new run each time. Multi-node jobs with a static rendezvous must set
    ``GEMMALOG_RUN_ID`` (or ``--rdzv-id``).
    """
    explicit = os.environ.get("GEMMALOG_RUN_ID")
    if explicit:
        return explicit
    prefix = f"{safe_name(name)[:40]}-" if name else ""
    world = _int_env("WORLD_SIZE")
    elastic = os.environ.get("TORCHELASTIC_RUN_ID")
    if elastic and elastic != "none" and world > 1:
        return safe_name(f"{prefix}job-{elastic}")
    if elastic == "none" and world > 1 and _int_env("LOCAL_WORLD_SIZE", 0) == world:
        launcher = _launcher_id()
        if launcher is not None:
            return f"{prefix}{launcher}"
    slurm = os.environ.get("SLURM_JOB_ID")
    step = os.environ.get("SLURM_STEP_ID")
    if slurm and step is not None and _int_env("SLURM_STEP_NUM_TASKS", 1) > 1:
        return safe_name(f"{prefix}slurm-{slurm}-{step}")
    namespace = os.environ.get("PMIX_NAMESPACE")
    if namespace and _int_env("OMPI_COMM_WORLD_SIZE", _int_env("PMI_SIZE", 1)) > 1:
        return safe_name(f"{prefix}mpi-{namespace}")
    return None


def _launcher_id() -> str | None:
    """``job-<launcher start time>-<hash>`` from the parent process (torchrun's agent)."""
    import psutil

    try:
        parent = psutil.Process(os.getppid())
        started = parent.create_time()
    except (psutil.Error, OSError):
        return None
    key = f"{socket.gethostname()}:{os.environ.get('MASTER_PORT', '')}:{parent.pid}:{started}"
    stamp = _dt.datetime.fromtimestamp(started).strftime("%Y%m%d-%H%M%S")
    return f"job-{stamp}-{hashlib.sha1(key.encode()).hexdigest()[:6]}"
