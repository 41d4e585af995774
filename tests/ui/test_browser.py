"""The dashboard in a real headless Chromium (Debian's `chromium`, driven by Playwright through
`executable_path`): every view loads without a console error, the DAG and the timeline show
what the run did, a run started while the page is open appears and finishes live, and re-run
works. A screenshot of each view is saved in the test's temp folder."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from tests.conftest import ROOT

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no Chromium here: `apt-get install chromium` (Debian) gives the "
                             "browser these tests drive; .ci/run installs it")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
STATUS_COLOURS = {"success": "rgb(31, 157, 85)", "failed": "rgb(214, 69, 69)"}


@pytest.fixture
def browser():
    playwright = pytest.importorskip("playwright.sync_api")
    with playwright.sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser):
    """A page that collects console errors and uncaught exceptions."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.problems = []
    page.on("console", lambda m: page.problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: page.problems.append(str(e)))
    yield page
    page.close()


def test_every_view_loads_without_a_console_error(page, ui_server, tmp_path):
    page.goto(ui_server.url + "/")
    run_links = page.locator("tr.run a").all()
    assert len(run_links) == 4
    views = ["/", "/ai", "/analytics", "/spend", "/agents", "/schedules",
             run_links[0].get_attribute("href")]
    page.goto(views[-1])
    views.append(page.locator("table.tasks a").first.get_attribute("href"))  # an attempt
    for path in views:
        page.goto(path if path.startswith("http") else ui_server.url + path)
        name = path.split("//", 1)[-1].split("/", 1)[-1].strip("/").replace("/", "_") or "runs"
        page.screenshot(path=str(tmp_path / f"{name}.png"), full_page=True)
        assert page.locator("h1").count() >= 1, path
    assert page.problems == []
    assert len(list(tmp_path.glob("*.png"))) == len(views)


def test_the_dag_and_timeline_show_the_run(page, ui_server, tmp_path):
    page.goto(ui_server.url + "/?file=flaky")
    page.locator("tr.run a").first.click()
    nodes = page.locator("svg .node")
    assert sorted(nodes.evaluate_all("ns => ns.map(n => n.dataset.task)")) == \
        ["after_broken", "broken", "flaky"]
    stroke = page.locator('svg .node[data-task="flaky"] rect').evaluate(
        "r => getComputedStyle(r).stroke")
    assert stroke == STATUS_COLOURS["success"]
    stroke = page.locator('svg .node[data-task="broken"] rect').evaluate(
        "r => getComputedStyle(r).stroke")
    assert stroke == STATUS_COLOURS["failed"]
    bars = page.locator("svg .bar[data-attempt]").evaluate_all(
        "bs => bs.map(b => b.dataset.task + '#' + b.dataset.attempt)")
    assert sorted(b for b in bars if not b.startswith("after_broken")) == \
        ["broken#1", "flaky#1", "flaky#2"]
    page.screenshot(path=str(tmp_path / "run.png"), full_page=True)
    assert page.problems == []


def test_a_run_started_while_the_page_is_open_appears_and_finishes_live(
        page, ui_server, tmp_path):
    page.goto(ui_server.url + "/")
    page.wait_for_selector(".live-dot.on", timeout=10_000)
    wf = tmp_path / "live.lua"
    gate = tmp_path / "gate"
    wf.write_text(f'task("wait"):command("while [ ! -e {gate} ]; do sleep 0.05; done")'
                  ':build()\n')
    run = subprocess.Popen([sys.executable, "-m", "sloth_runner", "run", "-f", str(wf)],
                           env={**ui_server.env, "PYTHONPATH": ROOT},
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        page.wait_for_selector('tr.run[data-status="running"]', timeout=15_000)
        gate.touch()
        assert run.wait(30) == 0
        page.wait_for_selector('tr.run[data-status="success"] td.file[title$="live.lua"]',
                               timeout=15_000)
    finally:
        gate.touch()
        run.wait(30)
    assert page.problems == []


def test_re_run_starts_a_new_run_and_shows_it(page, ui_server):
    page.goto(ui_server.url + "/?file=ok")
    before = page.locator("tr.run").count()
    page.locator("tr.run a").first.click()
    old = page.locator("#run").get_attribute("data-run")
    page.locator("button", has_text="Re-run").first.click()
    page.wait_for_url(lambda url: "/runs/" in url and old not in url, timeout=20_000)
    assert page.locator("#run").get_attribute("data-run") != old
    page.goto(ui_server.url + "/?file=ok")
    assert page.locator("tr.run").count() == before + 1
    assert page.problems == []
