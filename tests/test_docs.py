"""The documentation is tested: its Python blocks run, its links resolve, the site builds."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]
FENCE = re.compile(r"(?P<before>[^\n]*)\n```python\n(?P<code>.*?)\n```", re.DOTALL)
LINK = re.compile(r"\]\((?P<target>[^)\s]+)\)")


def python_blocks(page: Path) -> list[str]:
    """The page's ```python blocks, except those preceded by a ``<!-- skip: reason -->`` line."""
    text = "\n" + page.read_text(encoding="utf-8")
    return [m["code"] for m in FENCE.finditer(text) if not m["before"].startswith("<!-- skip:")]


RUNNABLE = [p for p in PAGES if python_blocks(p)]


@pytest.mark.parametrize("page", RUNNABLE, ids=lambda p: p.name)
def test_python_blocks_run(page: Path, tmp_path: Path) -> None:
    script = tmp_path / "blocks.py"
    script.write_text("\n\n".join(python_blocks(page)), encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, f"{page.name}:\n{result.stdout}\n{result.stderr}"


def test_getting_started_blocks_do_what_they_say(tmp_path: Path) -> None:
    page = DOCS / "getting-started.md"
    script = tmp_path / "blocks.py"
    script.write_text("\n\n".join(python_blocks(page)), encoding="utf-8")
    result = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert (
        "[(1, 'loss', 1.0), (2, 'loss', 0.5)" in result.stdout
    )  # the loss curve read back through DuckDB
    assert "'logs/model_outputs.csv'" in result.stdout and "'logs/training.log'" in result.stdout
    assert len(list((tmp_path / "runs").iterdir())) == 2


def test_every_page_is_runnable_or_says_why_not() -> None:
    assert {p.name for p in RUNNABLE} >= {"getting-started.md"}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_internal_links_resolve(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    for match in LINK.finditer(text):
        target = match["target"]
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        assert resolved.exists(), f"{page.name}: broken link {target}"
        if anchor and resolved.suffix == ".md":
            slugs = {
                _slug(h)
                for h in re.findall(
                    r"^#+\s+(.*)$", resolved.read_text(encoding="utf-8"), re.MULTILINE
                )
            }
            assert anchor in slugs, f"{page.name}: no heading for #{anchor} in {resolved.name}"


def _slug(heading: str) -> str:
    text = re.sub(r"[`*_]", "", heading).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return re.sub(r"[\s]+", "-", text)


def test_every_page_is_in_the_site_navigation() -> None:
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    for page in DOCS.glob("*.md"):
        assert f": {page.name}" in nav, page.name


@pytest.mark.skipif(
    shutil.which("mkdocs", path=str(Path(sys.executable).parent)) is None,
    reason="mkdocs is not installed",
)
def test_site_builds_in_strict_mode(tmp_path: Path) -> None:
    mkdocs = shutil.which("mkdocs", path=str(Path(sys.executable).parent))
    assert mkdocs is not None
    result = subprocess.run(
        [mkdocs, "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "WARNING" not in result.stderr
    assert (tmp_path / "site" / "index.html").exists()


def test_every_configuration_key_and_class_is_documented() -> None:
    from gemmalog.config import schema
    from gemmalog.config.overrides import ENV_OVERRIDES

    text = (DOCS / "configuration.md").read_text(encoding="utf-8")
    keys = {*schema.TOP, *schema.SETTINGS, *schema.METRICS, *ENV_OVERRIDES} - {"enable"}
    keys |= {f"enable.{k}" for k in schema.ENABLE_KEYS}
    keys |= {key for options in schema.OPTIONS.values() for key in options}
    keys |= {name for name in schema.HANDLER_CLASSES if name.startswith("logging.")}
    missing = sorted(k for k in keys if f"`{k}`" not in text)
    assert not missing, f"docs/configuration.md does not document: {missing}"
