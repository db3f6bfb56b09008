"""Every `gemmalog` command through click's CliRunner, and the console script in a subprocess."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from gemmalog.cli import cli
from tests.test_queries import build_runs

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def runs_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cli") / "runs"
    build_runs(root)
    return root


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_runs(runs_root: Path) -> None:
    code, out, _ = invoke("runs", str(runs_root))
    assert code == 0 and "alpha" in out and "beta" in out and "completed" in out


def test_sql_formats(runs_root: Path) -> None:
    q = "SELECT step, value FROM metrics WHERE run = 'beta' ORDER BY step"
    code, out, _ = invoke("sql", str(runs_root), q, "--format", "csv")
    assert code == 0 and out == "step,value\n0,3.0\n1,2.0\n"
    code, out, _ = invoke("sql", str(runs_root), q, "--format", "json")
    assert json.loads(out) == [{"step": 0, "value": 3.0}, {"step": 1, "value": 2.0}]
    code, out, _ = invoke("sql", str(runs_root), q, "--format", "jsonl")
    assert [json.loads(line) for line in out.splitlines()] == [
        {"step": 0, "value": 3.0},
        {"step": 1, "value": 2.0},
    ]
    code, out, _ = invoke(
        "sql", str(runs_root), "SELECT value FROM metrics WHERE isnan(value)", "--format", "json"
    )
    assert json.loads(out) == [{"value": "NaN"}]
    code, out, _ = invoke("sql", str(runs_root), q)
    assert code == 0 and "step" in out and "value" in out and "│ 3 " in out.replace("3    ", "3 ")


@pytest.mark.parametrize(
    "statement",
    [
        "COPY events TO '{shard}' (FORMAT csv)",
        "ATTACH '{root}/x.db'",
        "CREATE TABLE t AS SELECT 1",
        "INSTALL httpfs",
    ],
)
def test_sql_refuses_writes_and_leaves_files_unchanged(runs_root: Path, statement: str) -> None:
    before = digest(runs_root)
    shard = runs_root / "beta" / "events.0.jsonl"
    code, _out, err = invoke("sql", str(runs_root), statement.format(shard=shard, root=runs_root))
    assert (
        code == 1
        and "read-only" in err
        and "Traceback" not in err
        and len(err.strip().splitlines()) == 1
    )
    assert digest(runs_root) == before


def test_sql_cannot_read_outside_the_runs(runs_root: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("x")
    code, _, err = invoke("sql", str(runs_root), f"SELECT * FROM read_text('{secret}')")
    assert code == 1 and "disabled by configuration" in err


def test_summary_and_json(runs_root: Path) -> None:
    code, out, _ = invoke("summary", "alpha", "--root", str(runs_root))
    assert (
        code == 0
        and "loss train min" in out
        and "accuracy train" in out
        and "unreadable lines" in out
    )
    code, out, _ = invoke("summary", str(runs_root / "alpha"), "--json")
    data = orjson.loads(out)
    assert data["run"]["run"] == "alpha" and data["read_errors"] == 1


def test_compare(runs_root: Path) -> None:
    code, out, _ = invoke("compare", "alpha", "beta", "--root", str(runs_root))
    assert code == 0 and "Δ beta" in out and "steps" in out
    code, _, _err = invoke("compare", "alpha", "--root", str(runs_root))
    assert code == 2


def test_to_csv_kinds(runs_root: Path, tmp_path: Path) -> None:
    import pandas as pd

    code, out, _ = invoke(
        "to-csv", str(runs_root / "alpha"), "--kind", "rewards", "-o", str(tmp_path / "r.csv")
    )
    assert code == 0 and "wrote 7 rows" in out
    assert len(pd.read_csv(tmp_path / "r.csv")) == 7
    code, out, _ = invoke("to-csv", str(runs_root / "alpha"), "-o", str(tmp_path / "mo.csv"))
    assert code == 0 and "wrote 3 rows" in out  # rank 0's model outputs, as the live sink writes
    frame = pd.read_csv(tmp_path / "mo.csv", keep_default_na=False)
    assert list(frame["question"]) == ["q1", "q2", "q3"] and "reward_new_fn" in frame.columns


def test_to_csv_model_output_equals_the_live_sink(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    code = (
        "import gemmalog\n"
        f"run = gemmalog.initialize({str(REPO / 'configs' / 'gemma_logging.yaml')!r}, root={str(root)!r}, run_id='csvrun')\n"
        "for step in range(3):\n"
        "    rewards = {'a': 1.0} if step == 0 else {'a': 0.5, 'b': float('nan')}\n"
        "    gemmalog.log_model_output('=1+1, \"q\"', '2', '<answer>2</answer>\\nok', rewards=rewards, correct=True, step=step, sample=0)\n"
        "gemmalog.shutdown()\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=tmp_path, capture_output=True)
    live = next((root / "csvrun").rglob("model_outputs.csv"))
    assert (
        invoke("to-csv", "csvrun", "--root", str(root), "-o", str(tmp_path / "rebuilt.csv"))[0] == 0
    )
    assert (tmp_path / "rebuilt.csv").read_bytes() == live.read_bytes()


def test_to_parquet(runs_root: Path, tmp_path: Path) -> None:
    code, _out, _ = invoke("to-parquet", str(runs_root), str(tmp_path / "pq"))
    assert code == 0 and (tmp_path / "pq" / "run=beta" / "kind=metrics").is_dir()
    assert invoke("to-parquet", str(runs_root), str(tmp_path / "pq"))[0] == 0  # nothing new
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("not an export")
    assert invoke("to-parquet", str(runs_root), str(tmp_path / "notes"))[0] == 1
    assert invoke("to-parquet", str(runs_root), str(tmp_path / "pq"), "--overwrite")[0] == 0


def test_tail_filters(runs_root: Path) -> None:
    code, out, _ = invoke("tail", str(runs_root / "beta"), "--kind", "metrics")
    lines = out.splitlines()
    assert code == 0 and len(lines) == 2 and "loss=3" in lines[0] and "loss=2" in lines[1]
    code, out, _ = invoke("tail", str(runs_root / "beta"), "-n", "1")
    assert len(out.splitlines()) == 1 and "run_end" in out
    code, out, _ = invoke("tail", str(runs_root / "alpha"), "--level", "warning")
    assert code == 0 and out == ""
    code, out, _ = invoke("tail", str(runs_root / "alpha"), "--logger", "gemmalog.reward")
    assert len(out.splitlines()) == 2


def test_tensorboard_prints_the_command(runs_root: Path) -> None:
    code, out, _ = invoke("tensorboard", str(runs_root), "--print-command")
    assert code == 0 and out.strip() == f"tensorboard --logdir {runs_root} --port 6006"


def test_config_check(tmp_path: Path) -> None:
    code, out, _ = invoke("config", "check", str(REPO / "configs" / "gemma_logging.yaml"))
    assert code == 0 and out.startswith("OK")
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nhandlers: 3\n")
    code, _, err = invoke("config", "check", str(bad))
    assert code == 1 and str(bad) in err


def test_errors_are_one_line_and_exit_codes(runs_root: Path) -> None:
    code, _, err = invoke("summary", "nope", "--root", str(runs_root))
    assert code == 1 and err.startswith("gemmalog: error:") and len(err.strip().splitlines()) == 1
    assert invoke("no-such-command")[0] == 2
    assert invoke("sql", str(runs_root), "SELECT * FROM nope")[0] == 1
    result = CliRunner().invoke(cli, ["--debug", "summary", "nope", "--root", str(runs_root)])
    assert result.exit_code == 1 and result.exception is not None


def test_console_script(runs_root: Path) -> None:
    exe = shutil.which("gemmalog") or str(Path(sys.executable).parent / "gemmalog")
    ok = subprocess.run(
        [exe, "sql", str(runs_root), "SELECT count(*) AS n FROM runs", "--format", "csv"],
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0 and ok.stdout == "n\n2\n"
    before = digest(runs_root)
    bad = subprocess.run(
        [exe, "sql", str(runs_root), "COPY events TO 'out.csv'"],
        capture_output=True,
        text=True,
        cwd=runs_root,
    )
    assert bad.returncode == 1 and "refused COPY" in bad.stderr and "Traceback" not in bad.stderr
    assert digest(runs_root) == before
    usage = subprocess.run([exe, "summary"], capture_output=True, text=True)
    assert usage.returncode == 2


def test_conversions_of_large_runs_show_progress(
    runs_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GEMMALOG_PROGRESS_BYTES", "0")  # every run counts as large
    code, out, _ = invoke(
        "to-csv", str(runs_root / "alpha"), "--kind", "rewards", "-o", str(tmp_path / "r.csv")
    )
    assert code == 0 and "to-csv rewards" in out and "100%" in out and "wrote 7 rows" in out
    code, out, _ = invoke("to-parquet", str(runs_root), str(tmp_path / "pq"))
    assert code == 0 and "to-parquet" in out and "100%" in out
    assert (tmp_path / "pq" / "run=beta" / "kind=metrics").is_dir()


# -- a terminal shows data as data (issue 12 item 4, defects note 9, 16, 18) ---------------------
HOSTILE = "[INST] think [/INST] <answer>4</answer> [bold red]gone?[/] [link=https://evil.example]click[/link]"
ESCAPES = "\x1b]0;PWNED-TITLE\x07 \x1b[2J\rhidden"


@pytest.fixture(scope="module")
def hostile_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("hostile") / "runs"
    code = (
        "import gemmalog\n"
        f"gemmalog.initialize(root={str(root)!r}, run_id='llama', run_name='exp [/]', capture_stdlib=False)\n"
        f"gemmalog.log_model_output('What is 2+2?', '4', {HOSTILE!r}, step=1, rewards={{'f': 1.0}})\n"
        f"gemmalog.get_training_logger().info({ESCAPES!r})\n"
        "gemmalog.log_training_progress(2, {'loss': float('nan'), 'kl': float('inf')})\n"
        "gemmalog.shutdown()\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    (root / "console.txt").write_text(done.stderr)  # what the console sink wrote
    return root


def test_console_sink_escapes_control_characters(hostile_root: Path) -> None:
    console = (hostile_root / "console.txt").read_text()
    assert "\\x1b]0;PWNED-TITLE\\x07 \\x1b[2J\\rhidden" in console
    assert "\x1b" not in console and "\x07" not in console and "\r" not in console


def test_tables_render_markup_in_data_literally(hostile_root: Path) -> None:
    code, out, err = invoke("sql", str(hostile_root), "SELECT step, model_output FROM completions")
    assert code == 0, err
    assert "[/INST]" in out and "[bold red]gone?[/]" in out and "[link=https://evil.example]" in out
    for args in (("runs", str(hostile_root)), ("summary", str(hostile_root / "llama"))):
        code, out, err = invoke(*args)
        assert code == 0 and "exp [/]" in out, err
    code, out, err = invoke("compare", "llama", "llama", "--root", str(hostile_root))
    assert code == 0 and "exp [/]" in out, err


def test_terminal_escapes_are_shown_not_sent(hostile_root: Path) -> None:
    code, out, _ = invoke("tail", str(hostile_root / "llama"))
    assert code == 0 and "\\x1b]0;PWNED-TITLE\\x07 \\x1b[2J\\rhidden" in out
    code, table, _ = invoke("sql", str(hostile_root), "SELECT event FROM events WHERE kind = 'log'")
    assert code == 0 and "\\x1b[2J" in table
    for text in (out, table):
        assert "\x1b" not in text and "\x07" not in text and "\r" not in text


def test_non_finite_numbers_are_written_one_way(hostile_root: Path, tmp_path: Path) -> None:
    query = "SELECT name, value FROM metrics ORDER BY name"
    _, table, _ = invoke("sql", str(hostile_root), query)
    assert "Infinity" in table and "NaN" in table
    _, csv_out, _ = invoke("sql", str(hostile_root), query, "--format", "csv")
    assert csv_out == "name,value\nkl,Infinity\nloss,NaN\n"
    _, js, _ = invoke("sql", str(hostile_root), query, "--format", "json")
    assert json.loads(js) == [{"name": "kl", "value": "Infinity"}, {"name": "loss", "value": "NaN"}]
    _, js, _ = invoke("summary", str(hostile_root / "llama"), "--json")
    loss = json.loads(js)["loss"]["train"]
    assert loss["first"] == "NaN" and loss["last"] == "NaN"  # not null
    invoke(
        "to-csv", str(hostile_root / "llama"), "--kind", "metrics", "-o", str(tmp_path / "m.csv")
    )
    assert [line.split(",")[4:6] for line in (tmp_path / "m.csv").read_text().splitlines()[1:]] == [
        ["kl", "Infinity"],
        ["loss", "NaN"],
    ]


def test_sql_table_stops_at_a_row_limit_with_a_hint(runs_root: Path) -> None:
    query = "SELECT range AS i FROM range(1500)"
    code, out, err = invoke("sql", str(runs_root), query)
    assert code == 0 and "│ 999 " in out and "│ 1000 " not in out
    assert "showing the first 1000 rows" in err and "--format csv" in err
    code, out, err = invoke("sql", str(runs_root), query, "--limit", "0")
    assert code == 0 and err == "" and out.splitlines()[-1].strip() == "1499"
    code, out, err = invoke("sql", str(runs_root), query, "--format", "csv")
    assert len(out.splitlines()) == 1501 and err == ""
    code, out, err = invoke("sql", str(runs_root), query, "--format", "csv", "--limit", "10")
    assert out.splitlines() == ["i", *map(str, range(10))] and "first 10 rows" in err


def test_bad_run_json_is_reported_and_the_other_runs_listed(
    runs_root: Path, tmp_path: Path
) -> None:
    root = tmp_path / "runs"
    shutil.copytree(runs_root, root)
    (root / "alpha" / "run.json").write_text("{not json")
    code, out, err = invoke("runs", str(root))
    assert code == 0 and "alpha" in out and "unknown" in out and "completed" in out
    assert f"{root / 'alpha' / 'run.json'}: not valid JSON; skipped" in err
    code, out, _ = invoke("sql", str(root), "SELECT count(*) AS n FROM runs", "--format", "csv")
    assert out == "n\n2\n"


def test_messages_for_a_missing_root_and_an_empty_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GEMMALOG_ROOT", raising=False)
    code, _, err = invoke("runs")
    assert code == 1 and err.strip() == (
        "gemmalog: error: no ROOT given and gemmalog_runs (the default root) does not exist here; "
        "give ROOT (gemmalog runs path/to/runs) or set GEMMALOG_ROOT"
    )
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "events.0.jsonl").write_bytes(b"")
    code, _, err = invoke("summary", "r")
    assert code == 1 and "r: no readable events and no run.json; nothing to summarize" in err


def test_report_survives_a_line_without_a_run(runs_root: Path, tmp_path: Path) -> None:
    run = tmp_path / "beta"
    shutil.copytree(runs_root / "beta", run)
    with open(run / "events.0.jsonl", "ab") as shard:
        shard.write(b'{"v":1,"kind":"metrics","step":"abc","metrics":{"loss":"x"}}\n')
    code, out, err = invoke("summary", str(run))
    assert code == 0 and "unreadable lines" in out, err
    code, out, err = invoke("report", str(run), "-o", str(tmp_path / "r.html"))
    assert code == 0 and (tmp_path / "r.html").stat().st_size > 0, err


def test_tail_prints_one_line_per_event(tmp_path: Path) -> None:
    run = tmp_path / "r"
    run.mkdir()
    forged = "real message\n12:00:00 info    r0 gemmalog.training [log] forged line"
    (run / "events.0.jsonl").write_bytes(
        orjson.dumps(
            {
                "v": 1,
                "ts": 1.0,
                "kind": "log",
                "logger": "x",
                "run": "r",
                "rank": 0,
                "event": forged,
            }
        )
        + b"\n"
    )
    code, out, _ = invoke("tail", str(run))
    assert code == 0 and out.count("\n") == 1 and "real message\\n12:00:00" in out


def test_doctor_table_shows_the_error_text_literally(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    code = (
        "import gemmalog\n"
        f"with gemmalog.initialize(root={str(root)!r}, run_id='bad', capture_stdlib=False):\n"
        "    raise RuntimeError('[/INST] [bold red]boom[/] \\x1b]0;PWNED\\x07')\n"
    )
    subprocess.run([sys.executable, "-c", code], capture_output=True)
    _code, out, err = invoke("doctor", str(root / "bad"))
    assert "[/INST] [bold red]boom[/]" in out and "\\x1b]0;PWNED\\x07" in out, err
    assert "\x1b" not in out
