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


#: Launchers that give no id of their own, on several nodes: ranks whose launchers started
#: in one window of this many seconds, with one rendezvous address and port, share a run.
LAUNCH_WINDOW = 60


def shared_run_id(name: str | None = None) -> str | None:
    """A run id every rank of one launch agrees on, from the environment, when there is one.

    Only processes started together as the ranks of one launch share it, and ``name``
    (the ``run_name`` setting) leads it when given. In order: ``GEMMALOG_RUN_ID`` (used as
    it is); torchrun's ``TORCHELASTIC_RUN_ID`` (a fresh uuid per launch with the default
    rendezvous, the ``--rdzv-id`` otherwise); a SLURM job step of several tasks (``srun``:
    job id, step id); an MPI launch (PMIx namespace, unique per ``mpirun``); else, for the
    ranks of any other launch (``WORLD_SIZE`` > 1: DeepSpeed, accelerate, a static torchrun
    rendezvous; or an MPI world of more than one rank), :func:`launch_id`. A script run
    several times inside one SLURM allocation without ``srun`` has no step of its own and
    gets a new run each time. The rule and its limits: docs/reliability.md, "Ranks".
    """
    explicit = os.environ.get("GEMMALOG_RUN_ID")
    if explicit:
        return explicit
    prefix = f"{safe_name(name)[:40]}-" if name else ""
    world = _int_env("WORLD_SIZE")
    elastic = os.environ.get("TORCHELASTIC_RUN_ID")
    if elastic and elastic != "none" and world > 1:
        return safe_name(f"{prefix}job-{elastic}")
    slurm = os.environ.get("SLURM_JOB_ID")
    step = os.environ.get("SLURM_STEP_ID")
    if slurm and step is not None and _int_env("SLURM_STEP_NUM_TASKS", 1) > 1:
        return safe_name(f"{prefix}slurm-{slurm}-{step}")
    namespace = os.environ.get("PMIX_NAMESPACE")
    if namespace and _int_env("OMPI_COMM_WORLD_SIZE", _int_env("PMI_SIZE", 1)) > 1:
        return safe_name(f"{prefix}mpi-{namespace}")
    launch = launch_id()
    return None if launch is None else f"{prefix}{launch}"


#: (world size, ranks on this node) variables of the launchers that set no run id.
_WORLDS = (
    ("WORLD_SIZE", "LOCAL_WORLD_SIZE"),  # torch.distributed: DeepSpeed, accelerate, torchrun
    ("OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_SIZE"),  # Open MPI
    ("PMI_SIZE", "MPI_LOCALNRANKS"),  # MPICH, Intel MPI (Hydra)
)


def launch_id() -> str | None:
    """The id the ranks of a launch without an id of its own derive from what they all see.

    - All ranks on this node (the local world is the world): the launcher that started them,
      their common parent process (DeepSpeed's ``launch.py``, torchrun's agent, ``mpirun``):
      ``job-<start time>-<hash of host, port, its pid and start time, and the start time
      of the first of its live children that share this rank's launch variables>``. Two
      launches have two launchers, or one parent (a sweep script, a notebook calling
      ``mp.spawn`` twice) whose earlier launch's ranks have ended: either way two ids.
    - Several nodes: each node has its own launcher, so the key is what every rank is told
      alike, the rendezvous ``MASTER_ADDR`` and ``MASTER_PORT``, plus the
      :data:`LAUNCH_WINDOW` in which the local launcher started:
      ``job-<window start>-<hash>``.

    None when this is no launch of several ranks, or a multi-node one without a rendezvous
    address (set ``GEMMALOG_RUN_ID`` there).
    """
    worlds = [(_int_env(size, 1), _int_env(local, 0)) for size, local in _WORLDS]
    world, local = next(((w, n) for w, n in worlds if w > 1), (1, 0))
    started = _launcher_start() if world > 1 else None
    if started is None:
        return None
    parent, created = started
    addr, port = os.environ.get("MASTER_ADDR", ""), os.environ.get("MASTER_PORT", "")
    if local == world or (local == 0 and addr in ("", "localhost", "127.0.0.1", "::1")):
        first = _first_sibling_start()
        key = f"{socket.gethostname()}:{port}:{parent}:{created}:{first}"
        stamp = _dt.datetime.fromtimestamp(first or created).strftime("%Y%m%d-%H%M%S")
    elif addr and port:
        window = int(created // LAUNCH_WINDOW) * LAUNCH_WINDOW
        key = f"{addr}:{port}:{window}"
        stamp = _dt.datetime.fromtimestamp(window, _dt.UTC).strftime("%Y%m%d-%H%M%S")
    else:
        return None
    return f"job-{stamp}-{hashlib.sha1(key.encode('utf-8', 'surrogatepass')).hexdigest()[:6]}"


#: The variables that tell one launch's ranks from another's under the same parent.
_LAUNCH_VARS = ("MASTER_ADDR", "MASTER_PORT", *(v for pair in _WORLDS for v in pair))


def _first_sibling_start() -> float | None:
    """The start time of the earliest live child of this rank's parent launched with the
    same launch variables (this rank included): the same for every rank of a launch as long
    as its first rank runs, and new for a later launch by the same parent, whose earlier
    ranks have ended. None when the processes cannot be read."""
    import psutil

    try:
        me = psutil.Process()
        first = me.create_time()
        # Read as the siblings' are (the environment the process started with), not
        # os.environ, which a rank may change after it starts.
        mine = {k: me.environ().get(k) for k in _LAUNCH_VARS}
        siblings = psutil.Process(os.getppid()).children()
    except (psutil.Error, OSError):
        return None
    for sibling in siblings:
        if sibling.pid == me.pid:
            continue
        try:
            started = sibling.create_time()
            if started >= first:
                continue
            env = sibling.environ()
        except (psutil.Error, OSError):
            continue
        if all(env.get(k) == v for k, v in mine.items()):
            first = started
    return first


def _launcher_start() -> tuple[int, float] | None:
    """(pid, start time) of the parent process: the launcher of this rank."""
    import psutil

    try:
        parent = psutil.Process(os.getppid())
        return parent.pid, parent.create_time()
    except (psutil.Error, OSError):
        return None
