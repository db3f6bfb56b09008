"""`gemmalog report`: the HTML of real runs, read back as text and rendered by headless Chromium."""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

import gemmalog
from gemmalog.cli import cli
from gemmalog.report import SECTIONS, ReportError, build_report

#: Sections that hold plots.
PLOTTED = ("loss", "reward", "reward-functions", "accuracy", "lengths", "kl-entropy", "memory")

pytest.importorskip("matplotlib")

CHROMIUM = Path("/usr/bin/chromium")
HOSTILE = '</pre><script>alert("pwned")</script><img src=x onerror=alert(1)>'
STEPS = 6


def _run(root: Path, run_id: str, *, rich: bool) -> Path:
    """A run through the public API; ``rich`` adds kl/entropy, NaN/inf, a sink error, a torn line."""
    gemmalog.initialize(root=str(root), run_id=run_id, run_name=run_id, capture_stdlib=False)
    for step in range(STEPS):
        metrics = {"loss": 1.0 / (step + 1) if not (rich and step == 3) else math.nan}
        if rich:
            metrics |= {"kl": 0.01 * step, "entropy": 1.5 - 0.1 * step}
            metrics |= {"grad_norm": -math.inf} if step == 4 else {}
        gemmalog.log_training_progress(step, metrics)
        for sample in range(4):
            fmt = 1.0 if sample % 2 else 0.0
            correct = sample == step % 4
            gemmalog.log_model_output(
                f"What is {step} + {sample}?",
                str(step + sample),
                "<answer>"
                + str(step + sample if correct else -1)
                + "</answer>"
                + "x" * (10 * step),
                rewards={"format_reward": fmt, "correctness_reward": 2.0 if correct else 0.0},
                correct=correct,
                step=step,
                sample=sample,
            )
        gemmalog.log_memory_usage(step=step)
    if rich:  # the best completion of the run, with hostile text everywhere it can be
        gemmalog.log_model_output(
            "<b>bold?</b> " + HOSTILE,
            HOSTILE,
            HOSTILE,
            answer=HOSTILE,
            rewards={"format_reward": 5.0, "correctness_reward": 5.0},
            correct=False,
            step=STEPS - 1,
            sample=9,
        )
    gemmalog.shutdown()
    run_dir = next(root.glob(f"{run_id}*"))
    if rich:
        manifest = run_dir / "run.json"
        data = orjson.loads(manifest.read_bytes())
        data["sink_errors"] = {"tensorboard": "OSError: [Errno 28] No space left on device"}
        manifest.write_bytes(orjson.dumps(data))
        with open(run_dir / "events.0.jsonl", "ab") as shard:  # a process killed mid-write
            shard.write(b'{"v":1,"ts":1.0,"kind":"metrics","run":"')
    return run_dir


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("report") / "runs"
    return _run(root, "alpha", rich=True), _run(root, "beta", rich=False)


@pytest.fixture(scope="module")
def page(runs: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_report(runs[0], tmp_path_factory.mktemp("html") / "report.html")


def _section(html: str, key: str) -> str:
    match = re.search(rf'<section id="{key}">(.*?)</section>', html, re.DOTALL)
    assert match, key
    return match.group(1)


def test_the_report_holds_each_section(page: Path) -> None:
    html = page.read_text(encoding="utf-8")
    assert list(re.findall(r'<section id="([\w-]+)">', html)) == list(SECTIONS)
    for key in PLOTTED:
        assert _section(html, key).count("<svg") == 1, key
    assert ">format_reward<" in _section(html, "reward-functions")
    assert ">correctness_reward<" in _section(html, "reward-functions")
    assert all(t in _section(html, "accuracy") for t in (">per step<", ">cumulative<"))
    assert ">kl<" in _section(html, "kl-entropy") and ">entropy<" in _section(html, "kl-entropy")
    runs = _section(html, "runs")
    assert "alpha" in runs and "completed" in runs and "configuration" in runs
    completions = _section(html, "completions")
    assert "best 5 by total reward" in completions and "worst 5 by total reward" in completions
    assert "correctness_<wbr>reward" in completions and "What is 1 + 1?" in completions
    best, worst = completions.split("worst 5 by total reward")
    first_total = '<td>train</td><td class="num">{}</td>'
    assert first_total.format(10) in best.split("</tr>")[1]  # the hostile sample: 5 + 5
    assert first_total.format(0) in worst.split("</tr>")[1]
    non_finite = _section(html, "non-finite")
    assert "<td>loss</td>" in non_finite and "NaN" in non_finite
    assert "<td>grad_norm</td>" in non_finite and "-Infinity" in non_finite
    problems = _section(html, "sink-errors")
    assert "sink tensorboard" in problems and "No space left on device" in problems
    assert "unreadable lines" in problems


def test_hostile_completion_text_is_inert(page: Path) -> None:
    html = page.read_text(encoding="utf-8")
    assert "<script" not in html.lower()
    assert "<img" not in html.lower() and "<b>bold" not in html
    assert "&lt;script&gt;alert(&quot;pwned&quot;)&lt;/script&gt;" in html
    assert "&lt;b&gt;bold?&lt;/b&gt;" in html
    assert html.count("</pre>") == html.count("<pre")  # nothing closed a block it did not open


def test_no_external_assets(page: Path) -> None:
    html = page.read_text(encoding="utf-8")
    assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:|//)""", html, re.I)
    assert not re.search(
        r"<(?:script|link|iframe|object|embed)\b|@import|url\(\s*['\"]?http", html, re.I
    )
    # The only URLs are the SVG namespaces, which name a vocabulary and are never fetched.
    assert set(re.findall(r"https?://[^\s\"'<>)]+", html)) <= {
        "http://www.w3.org/2000/svg",
        "http://www.w3.org/1999/xlink",
    }
    assert "Content-Security-Policy" in html and "default-src 'none'" in html


def test_several_runs_are_overlaid(runs: tuple[Path, Path], tmp_path: Path) -> None:
    out = build_report([runs[0], runs[1], runs[0].parent / "alpha"], tmp_path / "both.html")
    html = out.read_text(encoding="utf-8")
    loss = _section(html, "loss")
    assert "alpha · train" in loss and "beta · train" in loss  # one legend entry per run
    assert html.count('<article class="run">') == 2  # alpha named twice is shown once
    only_beta = build_report(runs[1], tmp_path / "beta.html").read_text(encoding="utf-8")
    assert "Neither kl nor entropy was logged." in _section(only_beta, "kl-entropy")
    assert "Every logged metric value is finite." in _section(only_beta, "non-finite")


def test_cli_report(runs: tuple[Path, Path], tmp_path: Path) -> None:
    out = tmp_path / "sub" / "r.html"
    result = CliRunner().invoke(
        cli, ["report", "alpha", "beta", "--root", str(runs[0].parent), "-o", str(out)]
    )
    assert result.exit_code == 0 and f"wrote {out}" in result.output
    assert '<section id="loss">' in out.read_text(encoding="utf-8")
    result = CliRunner().invoke(cli, ["report", "nope", "--root", str(runs[0].parent)])
    assert result.exit_code == 1 and result.stderr.startswith("gemmalog: error:")
    assert len(result.stderr.strip().splitlines()) == 1
    assert CliRunner().invoke(cli, ["report"]).exit_code == 2


def test_import_gemmalog_stays_light() -> None:
    code = "import sys, gemmalog, gemmalog.report; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def _chromium(page: Path, tmp_path: Path, *, dark: bool = False) -> tuple[list[str], Path]:
    """Open ``page`` in headless Chromium: its console messages and a screenshot."""
    if not CHROMIUM.exists():
        pytest.skip("needs Debian's chromium at /usr/bin/chromium (installed by .ci/run)")
    shot = tmp_path / ("dark.png" if dark else "light.png")
    flags = [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0",
        "--hide-scrollbars", "--window-size=1280,2000", f"--screenshot={shot}",
    ]  # fmt: skip
    if dark:
        flags.append("--blink-settings=preferredColorScheme=0")
    done = subprocess.run(
        [str(CHROMIUM), *flags, page.as_uri()],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "HOME": str(tmp_path)},
    )
    console = [
        line for line in done.stderr.splitlines() if ":CONSOLE" in line or "Uncaught" in line
    ]
    assert shot.exists(), done.stderr[-2000:]
    return console, shot


def test_the_console_check_catches_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.html"
    bad.write_text("<!DOCTYPE html><p>x</p><script>missing()</script>", encoding="utf-8")
    console, _ = _chromium(bad, tmp_path)
    assert any("Uncaught ReferenceError" in line for line in console)


@pytest.mark.parametrize("dark", [False, True], ids=["light", "dark"])
def test_renders_in_chromium(page: Path, tmp_path: Path, dark: bool) -> None:
    from PIL import Image

    console, shot = _chromium(page, tmp_path, dark=dark)
    assert console == []
    image = Image.open(shot).convert("RGB")
    assert image.size == (1280, 2000)
    colours = image.getcolors(maxcolors=1 << 20) or []
    assert len(colours) > 200  # text, axes and coloured curves, not a blank page
    background = sum(image.getpixel((5, 5))) / 3  # type: ignore[arg-type]
    assert background < 60 if dark else background > 200


@pytest.mark.slow
def test_report_of_a_real_grpo_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("trl")
    from tests.test_integration_trl import _train

    _, run, _ = _train(tmp_path, monkeypatch, "report", steps=2, eval_steps=2)
    html = build_report(run.dir, tmp_path / "grpo.html").read_text(encoding="utf-8")
    for key in PLOTTED:
        assert "<svg" in _section(html, key), key
    assert "correctness_<wbr>reward_<wbr>func" in _section(html, "completions")
    assert "tiny-gemma" in _section(html, "runs")
    console, _ = _chromium(tmp_path / "grpo.html", tmp_path)
    assert console == []


def test_a_bare_run_and_a_missing_matplotlib(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gemmalog.initialize(root=str(tmp_path / "runs"), run_id="bare", capture_stdlib=False)
    gemmalog.log_training_progress(1, {"loss": math.nan})
    gemmalog.shutdown()
    html = build_report(tmp_path / "runs", tmp_path / "bare.html").read_text(encoding="utf-8")
    assert "No loss was logged." in html and "No completions were logged." in html
    assert "No completion has a total reward." in html and "<td>loss</td>" in html
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ReportError, match=r"pip install 'gemmalog\[report\]'"):
        build_report(tmp_path / "runs", tmp_path / "again.html")
