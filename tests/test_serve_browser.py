"""`gemmalog serve` in a real browser: Debian's chromium driven by Selenium through Debian's
chromedriver, against a real server on 127.0.0.1. One browser session is shared by the module.

Each page's screenshot is saved under ``$GEMMALOG_SCREENSHOTS`` (docs/images for the docs)
or the test's temporary folder.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("starlette")
pytest.importorskip("selenium")

import gemmalog
from tests.serve_support import HOSTILE, log_step, make_run, running_server

CHROMEDRIVER = "/usr/bin/chromedriver"
TITLE = "gemmalog serve"  # the pages never change it: a script from the logs would
if not (os.path.exists(CHROMEDRIVER) and shutil.which("chromium")):
    pytest.skip("needs Debian's chromium and chromium-driver", allow_module_level=True)

from selenium import webdriver  # noqa: E402
from selenium.common.exceptions import StaleElementReferenceException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

HACK = "ANSWER ANSWER ANSWER"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, dict[str, str]]]:
    """A server over a root holding a run the doctor flags and a run of hostile texts."""
    from tests.test_doctor import Plan, _rewards, _text
    from tests.test_doctor import make_run as doctor_run

    root = tmp_path_factory.mktemp("serve-browser")

    def text(rng: Any, step: int, prompt: int, gen: int) -> str:
        share = min(1.0, max(0.0, (step - 14) / 6))
        return HACK if rng.random() < share else _text(rng, step, prompt, gen)

    def rewards(rng: Any, step: int, p: int, correct: bool, t: str) -> dict[str, float]:
        return {
            **_rewards(rng, step, p, correct, t),
            "keyword_reward_func": 3.0 if HACK in t else 0.0,
        }

    hack = doctor_run(
        root, "reward-hack", Plan(accuracy=lambda step: 0.25, text=text, rewards=rewards)
    )
    hostile = make_run(root, "hostile", steps=3, texts=HOSTILE)
    runs = {"hack": hack.name, "hostile": hostile.id}
    with running_server([root]) as url:
        yield url, root, runs


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[webdriver.Chrome]:
    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager never downloads a driver
    options = webdriver.ChromeOptions()
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1400,1000",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def _wait(driver: webdriver.Chrome, condition: Any, timeout: float = 20) -> Any:
    # the pages re-render on every change: an element found may be replaced before it is read
    return WebDriverWait(
        driver, timeout, poll_frequency=0.05, ignored_exceptions=[StaleElementReferenceException]
    ).until(condition)


def _shot(driver: webdriver.Chrome, name: str, tmp_path: Path) -> None:
    folder = Path(os.environ.get("GEMMALOG_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"serve-{name}.png"
    driver.save_screenshot(str(path))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _problems(driver: webdriver.Chrome) -> list[str]:
    """Console errors (a CSP violation among them), favicon requests aside."""
    return [
        entry["message"]
        for entry in driver.get_log("browser")
        if entry["level"] == "SEVERE" and "favicon" not in entry["message"]
    ]


def _visible_cards(driver: webdriver.Chrome) -> list[Any]:
    return driver.find_elements(By.CSS_SELECTOR, ".completion:not(.hidden)")


def _painted_pixels(driver: webdriver.Chrome, name: str) -> int:
    return int(
        driver.execute_script(
            """
            const box = [...document.querySelectorAll('.chart')].find(b => b.dataset.name === arguments[0]);
            if (!box) return 0;
            let painted = 0;
            for (const canvas of box.querySelectorAll('canvas')) {
              const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
              for (let i = 3; i < data.length; i += 4) if (data[i] !== 0) painted++;
            }
            return painted;
            """,
            name,
        )
    )


def test_runs_page_lists_the_runs(site: Any, browser: webdriver.Chrome, tmp_path: Path) -> None:
    url, _, runs = site
    browser.get(url + "/")
    _wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#runs tbody tr")) == 2)
    _wait(
        browser,
        lambda d: (
            "warning" in d.find_element(By.CSS_SELECTOR, f"tr[data-run='{runs['hack']}']").text
        ),
    )
    _shot(browser, "runs", tmp_path)
    assert browser.title == TITLE and _problems(browser) == []


def test_curves_render_and_a_live_step_appears(
    site: Any, browser: webdriver.Chrome, tmp_path: Path
) -> None:
    url, root, runs = site
    browser.get(f"{url}/runs/{runs['hack']}")
    _wait(browser, lambda d: _painted_pixels(d, "loss") > 0)
    _wait(browser, lambda d: "steps" in d.find_element(By.ID, "facts").text)
    assert _painted_pixels(browser, "reward/keyword_reward_func") > 0
    _shot(browser, "curves", tmp_path)
    live = gemmalog.initialize(root=root, run_name="live")
    for step in (1, 2):
        log_step(step)
    gemmalog.flush()
    browser.get(f"{url}/runs/{live.id}")
    _wait(browser, lambda d: d.find_element(By.ID, "last-step").text == "2")
    log_step(3)
    gemmalog.flush()
    flushed = time.monotonic()
    _wait(browser, lambda d: d.find_element(By.ID, "last-step").text == "3", timeout=3)
    shown = time.monotonic() - flushed
    last = browser.execute_script(
        "return document.querySelector(\".chart[data-name='loss']\").dataset.lastStep"
    )
    assert last == "3" and shown < 3
    assert browser.execute_script("return performance.getEntriesByType('navigation').length") == 1
    gemmalog.shutdown()
    assert _problems(browser) == []


def test_slider_and_filters(site: Any, browser: webdriver.Chrome, tmp_path: Path) -> None:
    url, _, runs = site
    browser.get(f"{url}/runs/{runs['hostile']}/rollouts")
    _wait(
        browser,
        lambda d: d.find_element(By.ID, "step-label").text == "3" and len(_visible_cards(d)) == 8,
    )
    slider = browser.find_element(By.ID, "step-slider")
    slider.send_keys(Keys.ARROW_LEFT)
    _wait(browser, lambda d: d.find_element(By.ID, "step-label").text == "2")
    _wait(browser, lambda d: {c.get_attribute("data-step") for c in _visible_cards(d)} == {"2"})
    search = browser.find_element(By.ID, "search")
    search.send_keys("pwned-img")
    _wait(browser, lambda d: len(_visible_cards(d)) == 1)
    assert "onerror" in _visible_cards(browser)[0].text
    search.send_keys(Keys.CONTROL + "a", Keys.DELETE)
    _wait(browser, lambda d: len(_visible_cards(d)) == 8)
    browser.find_element(By.CSS_SELECTOR, "#correct option[value='yes']").click()
    _wait(browser, lambda d: 0 < len(_visible_cards(d)) < 8)
    assert all("correct" in c.text for c in _visible_cards(browser))


def test_hostile_texts_run_nothing(site: Any, browser: webdriver.Chrome, tmp_path: Path) -> None:
    url, _, runs = site
    browser.get(f"{url}/runs/{runs['hostile']}/rollouts?step=2")
    _wait(browser, lambda d: len(_visible_cards(d)) == 8)
    _shot(browser, "rollouts", tmp_path)
    time.sleep(0.5)  # an onerror or onload would have fired by now
    assert browser.title == TITLE
    page = browser.find_element(By.ID, "groups").text
    for text in (
        "<script>document.title='pwned-script'</script>",
        "<img src=x onerror=",
        "javascript:alert(1)",
    ):
        assert text in page
    assert "U+202E" in page and "U+0000" in page  # bidi override and NUL shown, not applied
    assert browser.execute_script("return document.scripts.length") == 2  # uPlot and app.js
    big = browser.find_element(By.CSS_SELECTOR, ".completion[data-sample='6']")
    shown = big.find_element(By.CSS_SELECTOR, "pre").text
    assert shown.startswith("10 MB: <b>bold?</b>") and len(shown) < 2000  # collapsed
    more = big.find_element(By.CSS_SELECTOR, "button")
    assert "show all" in more.text
    more.click()
    assert len(big.find_element(By.CSS_SELECTOR, "pre").text) == 1_000_000  # max_string_length
    assert (
        browser.find_elements(
            By.CSS_SELECTOR, "#groups img, #groups svg, #groups a[href^='javascript']"
        )
        == []
    )
    assert _problems(browser) == []


def test_a_doctor_link_opens_the_step(site: Any, browser: webdriver.Chrome, tmp_path: Path) -> None:
    url, _, runs = site
    browser.get(f"{url}/runs/{runs['hack']}#doctor")
    finding = _wait(
        browser, lambda d: d.find_element(By.CSS_SELECTOR, ".finding[data-check='reward_hacking']")
    )
    _shot(browser, "doctor", tmp_path)
    link = finding.find_element(By.CSS_SELECTOR, ".example .doctor-link")
    step = link.text.removeprefix("step ")
    href = link.get_attribute("href")
    marks = href.split("mark=")[1].split(",")
    link.click()
    _wait(browser, lambda d: "/rollouts" in d.current_url)
    _wait(browser, lambda d: d.find_element(By.ID, "step-label").text == step)
    marked = _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, ".completion.marked"))
    assert {m.get_attribute("data-sample") for m in marked} == set(marks)
    assert all(HACK in m.text for m in marked)
    _shot(browser, "doctor-link", tmp_path)
    browser.get(f"{url}/runs/{runs['hack']}#sql")
    _wait(browser, lambda d: d.find_element(By.ID, "sql-run").is_displayed())
    browser.find_element(By.ID, "sql-run").click()
    _wait(browser, lambda d: "rows" in d.find_element(By.ID, "sql-note").text)
    _wait(browser, lambda d: "steps" in d.find_element(By.ID, "facts").text)
    _shot(browser, "sql", tmp_path)
    assert _problems(browser) == []
