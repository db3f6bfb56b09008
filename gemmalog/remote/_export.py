"""``gemmalog export --to trackio|wandb RUN``: replay a finished (or running) run into trackio
(local) or W&B (offline files for ``wandb sync``), as if TRL's ``report_to`` had been used.

Names are those transformers' trackio and W&B callbacks give TRL's logs: a metric ``name``
of phase ``train`` is ``train/name``, of phase ``eval`` is ``eval/name`` (TRL's ``eval_``
prefix), and every logged step carries ``train/global_step``. Each logged step also gets
one completions table (``completions``; ``eval/completions`` for evaluation samples) with
TRL's columns: ``step``, ``prompt``, ``completion``, one column per reward function and
``advantage`` (the advantage gemmalog logged, empty where none was), holding the completions
of the steps since the previous logged step. Nothing is read from
or sent to the network: trackio is initialized without a Space or server, W&B in offline
mode.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gemmalog
from gemmalog.remote._fs import RemoteError

TARGETS = ("trackio", "wandb")
#: Environment variables that would send trackio or W&B to the network.
_NETWORK = (
    "TRACKIO_SPACE_ID",
    "TRACKIO_SERVER_URL",
    "TRACKIO_DATASET_ID",
    "TRACKIO_BUCKET_ID",
    "WANDB_BASE_URL",
)


@dataclass
class Replay:
    """A run as TRL would have logged it: per logged step, the metrics and the tables."""

    run: str
    name: str
    config: dict[str, Any]
    #: step -> {"train/loss": 0.1, ...} (``train/global_step`` included)
    metrics: dict[int, dict[str, float | None]] = field(default_factory=dict)
    #: step -> {"completions": rows, "eval/completions": rows}; rows are dicts of TRL's columns
    tables: dict[int, dict[str, list[dict[str, Any]]]] = field(default_factory=dict)

    def steps(self) -> list[int]:
        return sorted({*self.metrics, *self.tables})


def _key(phase: str | None, name: str) -> str:
    return f"{phase or 'train'}/{name}"


def _table_key(phase: str | None) -> str:
    return "completions" if (phase or "train") == "train" else f"{phase}/completions"


def replay(run: str | os.PathLike[str], *, root: str | None = None) -> Replay:
    """Read ``run`` (a run directory or id) through the views into a :class:`Replay`."""
    con = gemmalog.connect(run, root=root)
    found = con.execute("SELECT run, name FROM runs ORDER BY run").fetchall()
    if len(found) != 1:
        names = ", ".join(str(r[0]) for r in found[:5])
        raise RemoteError(f"{run}: names {len(found)} runs ({names}); export one run at a time")
    run_id, name = str(found[0][0]), str(found[0][1] or found[0][0])
    config = {
        str(k): v
        for k, v in zip(
            ("run", "name", "status", "world_size", "host"),
            con.execute("SELECT run, name, status, world_size, host FROM runs").fetchone() or (),
            strict=False,
        )
    }
    out = Replay(run_id, name, config)
    # One value per (phase, step, name): rank 0's where ranks repeat it (TRL logs on rank 0).
    rows = con.execute(
        "SELECT phase, step, name, value FROM metrics WHERE step IS NOT NULL "
        "QUALIFY row_number() OVER (PARTITION BY phase, step, name ORDER BY rank) = 1 "
        "ORDER BY step, phase, name"
    ).fetchall()
    for phase, step, metric, value in rows:
        logged = out.metrics.setdefault(int(step), {"train/global_step": int(step)})
        logged[_key(phase, str(metric))] = None if value is None else float(value)
    logged_steps = sorted(out.metrics)
    samples = con.execute(
        "SELECT phase, step, coalesce(prompt, question) AS prompt, model_output, rewards, "
        "advantage FROM completions WHERE step IS NOT NULL ORDER BY step, phase, rank, sample, ts"
    ).fetchall()
    for phase, step, prompt, completion, rewards, advantage in samples:
        at = _logged_at(logged_steps, int(step))
        table = out.tables.setdefault(at, {}).setdefault(_table_key(phase), [])
        row: dict[str, Any] = {"step": int(step), "prompt": prompt, "completion": completion}
        row.update({str(k): v for k, v in (rewards or {}).items()})
        row["advantage"] = None if advantage is None else float(advantage)
        table.append(row)
    for tables in out.tables.values():
        for key, rows_ in tables.items():
            # TRL's order: step, prompt, completion, the reward functions, advantage last;
            # every row has every column of its table
            columns = [*dict.fromkeys(k for r in rows_ for k in r if k != "advantage")]
            tables[key] = [{c: r.get(c) for c in [*columns, "advantage"]} for r in rows_]
    return out


def _logged_at(logged: list[int], step: int) -> int:
    """The first logged step at or after ``step`` (TRL logs a table when it logs metrics);
    ``step`` itself after the last one."""
    import bisect

    i = bisect.bisect_left(logged, step)
    return logged[i] if i < len(logged) else step


@contextlib.contextmanager
def _offline() -> Iterator[None]:
    """No variable that would send the replay to a Space, a server or W&B's cloud."""
    saved = {k: os.environ.pop(k) for k in _NETWORK if k in os.environ}
    previous = {k: os.environ.get(k) for k in ("WANDB_MODE", "HF_HUB_OFFLINE", "WANDB_SILENT")}
    os.environ.update({"WANDB_MODE": "offline", "HF_HUB_OFFLINE": "1", "WANDB_SILENT": "true"})
    try:
        yield
    finally:
        for k, v in previous.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        os.environ.update(saved)


def _frame(rows: list[dict[str, Any]]) -> Any:
    import pandas as pd

    return pd.DataFrame(rows, columns=list(rows[0]) if rows else None)


def to_trackio(data: Replay, *, project: str, directory: str | None = None) -> str:
    """Log ``data`` into a local trackio project; returns the trackio run's name."""
    if directory is not None:
        os.environ["TRACKIO_DIR"] = str(Path(directory).absolute())
    with _offline():
        try:
            import trackio
        except ImportError as exc:
            raise RemoteError("export --to trackio needs trackio (pip install trackio)") from exc
        if directory is not None and Path(trackio.utils.TRACKIO_DIR) != Path(directory).absolute():
            raise RemoteError(
                f"trackio was imported before with TRACKIO_DIR={trackio.utils.TRACKIO_DIR}; "
                "export in a new process to write elsewhere"
            )
        trackio.init(
            project=project,
            name=data.name,
            config=data.config,
            embed=False,
            auto_log_gpu=False,
            auto_log_cpu=False,
        )
        try:
            for step in data.steps():
                logged: dict[str, Any] = dict(data.metrics.get(step, {}))
                for key, rows in data.tables.get(step, {}).items():
                    logged[key] = trackio.Table(dataframe=_frame(rows))
                trackio.log(logged, step=step)
        finally:
            trackio.finish()  # type: ignore[no-untyped-call]
    return data.name


def to_wandb(data: Replay, *, project: str, directory: str | None = None) -> Path:
    """Write ``data`` as an offline W&B run under ``directory`` (default: the current one);
    returns the run's folder, ready for ``wandb sync``."""
    with _offline():
        try:
            import wandb
        except ImportError as exc:
            raise RemoteError("export --to wandb needs wandb (pip install wandb)") from exc
        where = Path(directory or ".").absolute()
        where.mkdir(parents=True, exist_ok=True)
        run = wandb.init(
            project=project,
            name=data.name,
            dir=str(where),
            config=data.config,
            mode="offline",
            settings=wandb.Settings(
                x_disable_stats=True, disable_git=True, save_code=False, console="off"
            ),
        )
        try:
            run.define_metric("train/global_step")
            run.define_metric("*", step_metric="train/global_step", step_sync=True)
            for step in data.steps():
                logged: dict[str, Any] = dict(data.metrics.get(step, {}))
                for key, rows in data.tables.get(step, {}).items():
                    logged[key] = wandb.Table(dataframe=_frame(rows))
                run.log(logged, step=step)
            folder = Path(run.dir).parent
        finally:
            run.finish()
    return folder


def export(
    run: str | os.PathLike[str],
    to: str,
    *,
    root: str | None = None,
    project: str = "gemmalog",
    directory: str | None = None,
) -> str:
    """Replay ``run`` into ``to`` (``trackio`` or ``wandb``); returns where it went."""
    if to not in TARGETS:
        raise RemoteError(f"--to {to!r}: give one of {', '.join(TARGETS)}")
    data = replay(run, root=root)
    if to == "trackio":
        name = to_trackio(data, project=project, directory=directory)
        return f"trackio project {project!r}, run {name!r} (trackio show --project {project})"
    folder = to_wandb(data, project=project, directory=directory)
    return f"{folder} (wandb sync {folder})"


__all__ = ["TARGETS", "Replay", "export", "replay", "to_trackio", "to_wandb"]
