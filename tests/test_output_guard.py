"""D3: no command writes over any run's files (shards, run.json, sink files, caches), whatever
the path looks like (relative, through symlinks or ``..``, a hard link), and whichever run of
the root it names. Every refusal exits non-zero with one line saying why; no file changes."""

from __future__ import annotations

import hashlib
import os
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

import gemmalog
from gemmalog.cli import cli

OUTSIDE_LOG = "outside-logs/train.log"


def _write_runs(base: Path) -> Path:
    """``runs/`` with two runs of the seed-like configuration (text log, CSV, TensorBoard
    under logs/) and one whose text log is an absolute path outside its run directory."""
    root = base / "runs"
    seed = Path(__file__).resolve().parent.parent / "configs" / "gemma_logging.yaml"
    for name in ("a", "b"):
        gemmalog.initialize(str(seed), root=str(root), run_id=name, capture_stdlib=False)
        gemmalog.log_training_progress(1, {"loss": 0.5})
        gemmalog.log_model_output("q", "4", "<answer>4</answer>", step=1, rewards={"f": 1.0})
        gemmalog.shutdown()
    config = base / "outside.yaml"
    config.write_text(
        textwrap.dedent(
            f"""\
            version: 1
            root: {{level: INFO, handlers: [file]}}
            handlers:
              file:
                class: logging.FileHandler
                filename: {base / OUTSIDE_LOG}
                level: INFO
            """
        )
    )
    gemmalog.initialize(str(config), root=str(root), run_id="c", capture_stdlib=False)
    gemmalog.get_logger("x").info("hello")
    gemmalog.shutdown()
    return root


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("guard")
    _write_runs(base)
    (base / "link-to-a").symlink_to(base / "runs" / "a")
    return base


@pytest.fixture
def inside(base: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Run commands from ``base`` (relative paths), with caches off so nothing else changes."""
    monkeypatch.chdir(base)
    monkeypatch.delenv("GEMMALOG_CACHE_DIR", raising=False)
    monkeypatch.setenv("GEMMALOG_ROOT", "runs")
    yield base


def _digest(base: Path) -> dict[str, str]:
    return {
        str(p.relative_to(base)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(base.rglob("*"))
        if p.is_file() and not p.is_symlink() and ".gemmalog-cache" not in p.parts
    }


def _refused(base: Path, *args: str) -> str:
    before = _digest(base)
    result = CliRunner().invoke(cli, ["--no-cache", *args])
    assert result.exit_code == 1, (args, result.output)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gemmalog: error: "), result.stderr
    assert "give a path outside every run's files" in lines[0]
    assert _digest(base) == before, args
    return lines[0]


# Outputs that are, or lie in, a file of some run: relative, through `..`, through a symlinked
# run directory, and in the *other* run of the root (the command reads run a).
RUN_FILES = [
    "runs/a/events.0.jsonl",
    "runs/a/run.json",
    "runs/b/events.0.jsonl",
    "runs/b/run.json",
    "runs/b/logs/training.log",
    "runs/b/logs/model_outputs.csv",
    "runs/b/logs/tensorboard/new.html",
    "runs/a/logs/new-file.csv",
    "runs/a/../b/events.0.jsonl",
    "runs/b/./../a/run.json",
    "link-to-a/events.0.jsonl",
    "link-to-a/logs/training.log",
    "runs/a/.gemmalog-cache/cache.json",
    "runs/a/events.1.jsonl",  # a shard not written yet is the run's too
    "runs/b/doctor.live.jsonl",  # the live doctor's findings
    "runs/b/.writer.0.lock",  # the writer lock (a file written over would drop the lock)
    OUTSIDE_LOG,  # run c's text log, outside its directory: named in its run.json
    OUTSIDE_LOG + ".1",  # and its rotated form
    "outside-logs/train.rank3.log",  # and the text log of another rank
]


@pytest.mark.parametrize("out", RUN_FILES)
def test_report_refuses_every_run_file(inside: Path, out: str) -> None:
    message = _refused(inside, "report", "runs/a", "-o", out)
    assert out in message


@pytest.mark.parametrize("out", RUN_FILES)
@pytest.mark.parametrize("kind", ["model_output", "metrics", "rewards"])
def test_to_csv_refuses_every_run_file(inside: Path, out: str, kind: str) -> None:
    _refused(inside, "to-csv", "runs/a", "--kind", kind, "-o", out)


@pytest.mark.parametrize(
    "out",
    [
        "runs",  # holds every run
        ".",  # holds the root
        "runs/a",
        "link-to-a",
        "runs/b/tensorboard",
        "runs/b/logs",
        "runs/b/logs/tensorboard",
        "runs/a/.gemmalog-cache",
        "outside-logs",  # holds run c's text log
    ],
)
def test_to_parquet_refuses_run_folders(inside: Path, out: str) -> None:
    _refused(inside, "to-parquet", "runs/a", out)


@pytest.mark.parametrize(
    "folder", ["runs/a", "link-to-a", "runs", "runs/b/logs", "runs/a/.gemmalog-cache"]
)
def test_cache_dir_refuses_run_folders(
    inside: Path, folder: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = _digest(inside)
    result = CliRunner().invoke(cli, ["--cache-dir", folder, "summary", "runs/a"])
    assert result.exit_code == 1 and "give a path outside every run's files" in result.stderr
    monkeypatch.setenv("GEMMALOG_CACHE_DIR", folder)  # the same rule for the variable
    result = CliRunner().invoke(cli, ["cache", "build", "runs/a"])
    assert result.exit_code == 1 and "give a path outside every run's files" in result.stderr
    assert _digest(inside) == before


@pytest.mark.parametrize("folder", ["runs/a", "runs/a/logs", "runs/b/tensorboard"])
def test_connect_refuses_a_cache_root_in_a_run(
    inside: Path, folder: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """From Python too: ``gemmalog.connect`` writes its cache under ``$GEMMALOG_CACHE_DIR``,
    which may be none of any run's folders; nothing is created there."""
    before = sorted(str(p) for p in inside.rglob("*"))
    monkeypatch.setenv("GEMMALOG_CACHE_DIR", folder)
    with pytest.raises(gemmalog.queries.QueryError, match="outside every run's files"):
        gemmalog.connect("runs/b")
    assert sorted(str(p) for p in inside.rglob("*")) == before


def test_an_output_in_another_caches_folder_is_refused(inside: Path, tmp_path: Path) -> None:
    caches = tmp_path / "caches"
    result = CliRunner().invoke(cli, ["--cache-dir", str(caches), "cache", "build", "runs/b"])
    assert result.exit_code == 0, result.output
    (built,) = caches.iterdir()
    for out in (built / "cache.json", built / "parts" / "x.csv"):
        _refused(inside, "to-csv", "runs/a", "--kind", "metrics", "-o", str(out))
    message = _refused(
        inside, "--cache-dir", str(caches), "to-csv", "runs/a", "-o", str(caches / "x.csv")
    )
    assert "query cache" in message


def test_a_symlink_or_hard_link_to_a_shard_is_refused(inside: Path, tmp_path: Path) -> None:
    (tmp_path / "innocent.html").symlink_to(inside / "runs" / "b" / "events.0.jsonl")
    os.link(inside / "runs" / "b" / "run.json", tmp_path / "hard.csv")
    _refused(inside, "report", "runs/a", "-o", str(tmp_path / "innocent.html"))
    message = _refused(inside, "to-csv", "runs/a", "-o", str(tmp_path / "hard.csv"))
    assert "same file" in message


@pytest.mark.parametrize(
    "target", ["runs/b/logs/training.log", "runs/b/logs/model_outputs.csv", OUTSIDE_LOG]
)
def test_a_hard_link_to_any_sink_file_is_refused(inside: Path, tmp_path: Path, target: str) -> None:
    """A second name of a sink file (the text log, the CSV, a configured log outside the run)
    is that file: writing the report there would replace the log."""
    link = tmp_path / "report.html"
    os.link(inside / target, link)
    message = _refused(inside, "report", "runs/a", "-o", str(link))
    assert "same file" in message


def test_outputs_beside_the_runs_are_written(inside: Path, tmp_path: Path) -> None:
    """The guard refuses only run files: a report in a run directory, under a new name, is fine."""
    for args, out in (
        (["report", "runs/a", "-o"], "runs/a/report.html"),
        (["to-csv", "runs/a", "--kind", "metrics", "-o"], str(tmp_path / "m.csv")),
        (["to-parquet", "runs/a"], str(tmp_path / "pq")),
        (["to-parquet", "runs/a"], "runs/a/parquet"),
    ):
        result = CliRunner().invoke(cli, ["--no-cache", *args, out])
        assert result.exit_code == 0, result.output
        assert Path(out).exists()
    os.remove("runs/a/report.html")
    import shutil

    shutil.rmtree("runs/a/parquet")
