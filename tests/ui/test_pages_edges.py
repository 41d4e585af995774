"""The dashboard at the edges: a home with no database yet, a run cancelled from the page,
pages read while runs write."""

from __future__ import annotations

import re
import subprocess
import sys
import threading

import pytest

from tests.conftest import ROOT, poll


@pytest.fixture
def fresh_client(sloth_home):
    from starlette.testclient import TestClient

    from sloth_runner.ui.app import Settings, make_app

    with TestClient(make_app(Settings()), base_url="http://127.0.0.1") as c:
        yield c


def test_a_home_with_no_database_yet_shows_empty_pages(fresh_client, sloth_home):
    assert not (sloth_home / "sloth.db").exists()
    for path in ("/", "/ai", "/analytics", "/spend", "/schedules"):
        page = fresh_client.get(path)
        assert page.status_code == 200, path
    assert "No runs recorded yet" in fresh_client.get("/").text


def start(workflow_file, source: str, name: str) -> subprocess.Popen:
    path = workflow_file(source, name)
    return subprocess.Popen([sys.executable, "-m", "sloth_runner", "run", "-f", path],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**__import__("os").environ, "PYTHONPATH": ROOT})


def test_a_running_run_is_cancelled_from_its_page(fresh_client, workflow_file, tmp_path):
    started = tmp_path / "started"
    run = start(workflow_file, f'task("long"):command("touch {started}; sleep 60"):build()',
                "long.lua")
    try:
        assert poll(started.exists, 20)
        page = fresh_client.get("/").text
        run_id = re.search(r'data-run="(\w+)" data-status="running"', page).group(1)
        detail = fresh_client.get(f"/runs/{run_id}").text
        assert "Cancel</button>" in detail
        csrf = re.search(r'name="csrf" value="(\w+)"', detail).group(1)
        done = fresh_client.post(f"/runs/{run_id}/cancel", data={"csrf": csrf},
                                 follow_redirects=False)
        assert done.status_code == 303
        assert run.wait(20) == 130  # as Ctrl-C
        page = fresh_client.get(f"/runs/{run_id}").text
        assert 'data-status="interrupted"' in page
        again = fresh_client.post(f"/runs/{run_id}/cancel", data={"csrf": csrf})
        assert again.status_code == 409 and "not running" in again.text
    finally:
        run.kill()
        run.wait()


def test_pages_load_while_runs_write(fresh_client, workflow_file):
    source = "for i = 1, 300 do task('t' .. i):command(function() return true end):build() end"
    writers = [start(workflow_file, source, f"many{i}.lua") for i in range(3)]
    failures: list[str] = []

    def read() -> None:
        while any(w.poll() is None for w in writers):
            for path in ("/", "/?rows=1", "/analytics"):
                response = fresh_client.get(path)
                if response.status_code != 200:
                    failures.append(f"{path}: {response.status_code}")
            page = fresh_client.get("/").text
            for run_id in re.findall(r'data-run="(\w+)"', page)[:3]:
                if fresh_client.get(f"/runs/{run_id}").status_code != 200:
                    failures.append(run_id)

    reader = threading.Thread(target=read)
    reader.start()
    for w in writers:
        assert w.wait(60) == 0
    reader.join(60)
    assert failures == []
    assert fresh_client.get("/").text.count('data-status="success"') == 3


def test_schedules_are_listed_and_one_runs_now_from_the_page(fresh_client, workflow_file):
    from tests.conftest import cli

    path = workflow_file('task("nightly"):command(function() return true end):build()',
                         "nightly.lua")
    assert cli("schedule", "add", "nightly", "--cron", "0 2 * * *", "-f", path, "--tz",
               "Europe/Berlin").returncode == 0
    page = fresh_client.get("/schedules").text
    row = re.search(r'<tr data-schedule="nightly">(.*?)</tr>', page, re.S).group(1)
    import time

    from sloth_runner.schedules import ScheduleService

    nxt = ScheduleService().get("nightly")["next_runs"][0]
    assert "0 2 * * *" in row and "Europe/Berlin" in row
    assert time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(nxt)) in row  # its next run
    csrf = re.search(r'name="csrf" value="(\w+)"', page).group(1)
    started = fresh_client.post("/schedules/nightly/run", data={"csrf": csrf},
                                follow_redirects=False)
    assert started.status_code == 303 and "/runs/" in started.headers["location"]
    run_id = started.headers["location"].rsplit("/", 1)[-1]
    assert poll(lambda: 'data-status="success"' in fresh_client.get(f"/runs/{run_id}").text, 30)
    assert run_id in fresh_client.get("/schedules").text  # its last run, linked


def test_ten_thousand_runs_page_newest_first(fresh_client, sloth_home):
    from sloth_runner.store import Store

    store = Store()
    with store.transaction() as c:
        c.executemany("INSERT INTO runs (id, file, workflows, started_at, ended_at, status)"
                      " VALUES (?, ?, 'default', ?, ?, ?)",
                      [(f"r{i:011d}", f"/jobs/j{i % 9}.lua", 1e9 + i, 1e9 + i + 2,
                        "failed" if i % 10 == 0 else "success") for i in range(10_000)])
    page = fresh_client.get("/").text
    ids = re.findall(r'data-run="(\w+)"', page)
    assert ids == [f"r{i:011d}" for i in range(9_999, 9_949, -1)]  # the newest 50
    older = re.search(r'href="([^"]*before=[^"]+)">Older runs', page).group(1)
    ids = re.findall(r'data-run="(\w+)"', fresh_client.get(older.replace("&amp;", "&")).text)
    assert ids[0] == "r00000009949" and len(ids) == 50
    failed = re.findall(r'data-run="(\w+)"', fresh_client.get("/?status=failed").text)
    assert failed[:2] == ["r00000009990", "r00000009980"]
