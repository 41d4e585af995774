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
    from sloth_runner.schedules import ScheduleService
    from sloth_runner.schedules.cron import format_time

    nxt = ScheduleService().get("nightly")["next_runs"][0]
    assert "0 2 * * *" in row and "Europe/Berlin" in row
    assert format_time(nxt, "Europe/Berlin") in row and "02:00" in row  # on its own clock
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
    with store.transaction() as c:  # runs sharing one start time straddle a page's end
        c.executemany("INSERT INTO runs (id, file, workflows, started_at, ended_at, status)"
                      " VALUES (?, 'same.lua', 'default', 2e9, 2e9, 'success')",
                      [(f"same{i:03d}",) for i in range(60)])
    first = re.findall(r'data-run="(\w+)"', fresh_client.get("/").text)
    nxt = re.search(r'href="([^"]*before=[^"]+)">Older runs', fresh_client.get("/").text)
    second = re.findall(r'data-run="(\w+)"', fresh_client.get(nxt.group(1).replace("&amp;", "&")).text)
    assert sorted(set(first + second) & {f"same{i:03d}" for i in range(60)}) == \
        sorted(f"same{i:03d}" for i in range(60))  # none skipped
    failed = re.findall(r'data-run="(\w+)"', fresh_client.get("/?status=failed").text)
    assert failed[:2] == ["r00000009990", "r00000009980"]


def test_a_whole_output_downloads_without_the_runs_secrets(fresh_client, workflow_file):
    import os

    secret = "tok-PLAIN-value-0123456789"
    path = workflow_file('task("loud"):command("echo start $DEPLOY_TOKEN; head -c 1200000 '
                         '/dev/zero | tr \'\\\\0\' x; echo; echo end $DEPLOY_TOKEN"):build()',
                         "loud.lua")
    run = subprocess.run([sys.executable, "-m", "sloth_runner", "run", "-f", path],
                         env={**os.environ, "PYTHONPATH": ROOT, "DEPLOY_TOKEN": secret},
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    run_id = re.search(r'data-run="(\w+)"', fresh_client.get("/").text).group(1)
    link = re.search(rf'href="[^"]*(/runs/{run_id}/attempts/\d+)">loud<',
                     fresh_client.get(f"/runs/{run_id}").text).group(1)
    whole = fresh_client.get(link + "/stdout.txt").text
    assert len(whole) > 1_200_000 and "REDACTED" in whole[-100:]
    assert secret not in whole  # the dashboard's environment does not know it: the run did


def test_re_run_keeps_the_sandbox_and_the_files_folder(fresh_client, workflow_file, tmp_path):
    import os

    (tmp_path / "input.txt").write_text("from beside the file")
    path = workflow_file('''
        task("read"):command(function() return true, fs.read("input.txt") end):build()
        task("shell"):command("true"):build()
    ''', "boxed.lua")
    first = subprocess.run([sys.executable, "-m", "sloth_runner", "run", "-f", path,
                            "--sandbox"], env={**os.environ, "PYTHONPATH": ROOT},
                           capture_output=True, text=True, cwd=tmp_path)
    assert first.returncode == 1  # the shell task is refused in the sandbox
    run_id = re.search(r'data-run="(\w+)"', fresh_client.get("/").text).group(1)
    page = fresh_client.get(f"/runs/{run_id}").text
    csrf = re.search(r'name="csrf" value="(\w+)"', page).group(1)
    again = fresh_client.post(f"/runs/{run_id}/rerun", data={"csrf": csrf},
                              follow_redirects=False)
    new_id = again.headers["location"].rsplit("/", 1)[-1]
    assert poll(lambda: 'data-status="running"' not in fresh_client.get(f"/runs/{new_id}").text,
                30)
    page = fresh_client.get(f"/runs/{new_id}").text
    assert "from beside the file" in page  # relative paths as in the first run
    assert "not allowed in the sandbox" in page  # still sandboxed


def test_re_run_keeps_the_parameters_types_and_refuses_redacted_ones(fresh_client,
                                                                     workflow_file):
    import os

    path = workflow_file('''
        task("p"):command(function(this, params)
            return true, type(params.n) .. " " .. tostring(params.flag) .. " " .. params.name
        end):build()
    ''', "params.lua")
    values = os.path.join(os.path.dirname(path), "v.yaml")
    with open(values, "w") as fh:
        fh.write("n: 3\nflag: true\nname: web 01\n")
    env = {**os.environ, "PYTHONPATH": ROOT}
    assert subprocess.run([sys.executable, "-m", "sloth_runner", "run", "-f", path, "-v",
                           values], env=env, capture_output=True).returncode == 0
    run_id = re.search(r'data-run="(\w+)"', fresh_client.get("/").text).group(1)
    csrf = re.search(r'name="csrf" value="(\w+)"',
                     fresh_client.get(f"/runs/{run_id}").text).group(1)
    again = fresh_client.post(f"/runs/{run_id}/rerun", data={"csrf": csrf},
                              follow_redirects=False)
    new_id = again.headers["location"].rsplit("/", 1)[-1]
    assert poll(lambda: 'data-status="success"' in fresh_client.get(f"/runs/{new_id}").text, 30)
    assert "number true web 01" in fresh_client.get(f"/runs/{new_id}").text
    assert subprocess.run([sys.executable, "-m", "sloth_runner", "run", "-f", path, "--param",
                           "db_password=plain-words-here", "--param", "name=x"], env=env,
                          capture_output=True).returncode == 0
    secret_run = re.search(r'data-run="(\w+)"', fresh_client.get("/").text).group(1)
    refused = fresh_client.post(f"/runs/{secret_run}/rerun", data={"csrf": csrf})
    assert refused.status_code == 409 and "redacted" in refused.text
