"""`sloth-runner run` at the edges: task code that no Lua hook can stop, processes that escape
their group, memory limits, signals while a task waits, and a closed stdout."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import cli_json, gone_or_zombie, poll, tasks_by_name


def read_pid(path) -> int | None:
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        return None
    return int(text) if text.isdigit() else None


def history(run_id: str) -> dict:
    _, runs = cli_json("history")
    (run,) = [r for r in runs["runs"] if r["run_id"] == run_id]
    _, detail = cli_json("history", run_id)
    return {"run": run, "attempts": {(a["task"], a["attempt"]): a for a in detail["attempts"]}}


# -- code that no Lua hook can interrupt ----------------------------------------------------------

STUCK = {
    "backtracking_find": 'string.find(string.rep("a", 30), ".-.-.-.-.-.-.-.-.-x")',
    "huge_table_move": "table.move({}, 1, 3e9, 2)",
    "loop_in_coroutine_wrap": "coroutine.wrap(function() while true do end end)()",
    "loop_in_gc_finaliser":
        "setmetatable({}, {__gc = function() while true do end end}); collectgarbage()",
    "sethook_replaced": "debug.sethook = function() end; while true do end",
    "sethook_cleared": "debug.sethook(); while true do end",
}


@pytest.mark.parametrize("code", list(STUCK.values()), ids=list(STUCK))
def test_a_timeout_holds_whatever_the_lua_code_does(workflow_file, code):
    path = workflow_file(f'''
        task("stuck"):timeout("1s"):command(function()
            {code}
            return true, "should not get here"
        end):build()
        task("independent"):command(function()
            return exec.run("sleep 0.3; echo fine")
        end):build()
    ''')
    started = time.monotonic()
    rc, doc = cli_json("run", "-f", path, timeout=30)
    elapsed = time.monotonic() - started
    t = tasks_by_name(doc)
    assert (t["stuck"]["status"], t["stuck"]["error"]) == ("timeout", "timed out after 1s"), t
    assert t["stuck"]["duration_s"] < 3
    assert elapsed < 4, f"the run took {elapsed:.1f} s"
    assert t["independent"]["status"] == "success"
    assert t["independent"]["outputs"]["stdout"] == "fine\n"
    assert rc == 1 and doc["status"] == "failed"


@pytest.mark.parametrize("form", ["shell", "exec.run"])
def test_a_timeout_kills_a_grandchild_that_left_with_setsid(workflow_file, tmp_path, form):
    pidfile = tmp_path / "grandchild.pid"
    command = f"setsid sh -c 'echo $$ > {pidfile}; exec sleep 60' & wait"
    body = f'"{command}"' if form == "shell" else \
        f'function() return exec.run("{command}") end'
    path = workflow_file(f'''
        task("escape"):timeout("1s"):command({body}):build()
        task("independent"):command("true"):build()
    ''')
    rc, doc = cli_json("run", "-f", path, timeout=30)
    t = tasks_by_name(doc)
    assert t["escape"]["status"] == "timeout" and t["independent"]["status"] == "success"
    pid = read_pid(pidfile)
    assert pid is not None, "the grandchild never started"
    assert poll(lambda: gone_or_zombie(pid), 5), f"grandchild {pid} outlived the timeout"


def test_a_timeout_in_lua_kills_what_the_task_left_running(workflow_file, tmp_path):
    """A worker stopped by its Lua hook (not killed whole) ends its background processes."""
    pidfile = tmp_path / "background.pid"
    path = workflow_file(f'''
        task("loops"):timeout("1s"):command(function()
            exec.run("sleep 60 >/dev/null 2>&1 & echo $! > {pidfile}")
            while true do end
        end):build()
    ''')
    rc, doc = cli_json("run", "-f", path, timeout=30)
    assert tasks_by_name(doc)["loops"]["status"] == "timeout"
    pid = read_pid(pidfile)
    assert pid is not None, "the background process never started"
    assert poll(lambda: gone_or_zombie(pid), 5), f"process {pid} outlived the task's timeout"


def test_a_memory_limit_fails_the_task_and_the_run_goes_on(workflow_file):
    path = workflow_file('''
        task("hog"):memory_limit("50MB"):command(function()
            local s = string.rep("x", 200 * 1024 * 1024)
            return true, "built " .. #s
        end):build()
        task("cleanup"):depends_on("hog"):trigger_rule("all_done"):memory_limit("50MB")
            :command(function(p, deps)
                local s = string.rep("y", 1024 * 1024)  -- a fresh limit, not the hog's
                return true, deps.hog.status .. "|" .. #s
            end):build()
        task("independent"):command(function() return true, "fine" end):build()
    ''')
    rc, doc = cli_json("run", "-f", path, timeout=30)
    t = tasks_by_name(doc)
    assert t["hog"]["status"] == "failed"  # the task's fault: not an `error` of the runner
    assert "not enough memory" in t["hog"]["error"]
    assert (t["cleanup"]["status"], t["cleanup"]["message"]) == ("success", "failed|1048576")
    assert (t["independent"]["status"], t["independent"]["message"]) == ("success", "fine")
    assert rc == 1


# -- signals --------------------------------------------------------------------------------------

@pytest.mark.parametrize("call", ["exec.run", "os.execute"])  # os.execute: system() ignores
@pytest.mark.parametrize("isolated", [False, True], ids=["in_process", "in_worker"])  # SIGINT
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP],
                         ids=lambda s: s.name)
def test_a_signal_while_a_task_waits_inside_pcall_interrupts_the_run(workflow_file, tmp_path,
                                                                     sig, isolated, call):
    pidfile = tmp_path / "sleep.pid"
    marker = tmp_path / "after_pcall"
    path = workflow_file(f'''
        task("waiting"){':timeout("60s")' if isolated else ''}:command(function()
            local ok, err = pcall({call}, "echo $$ > {pidfile}; exec sleep 30")
            fs.write("{marker}", tostring(ok) .. " " .. tostring(err))
            return true
        end):build()
        task("after"):depends_on("waiting"):command("true"):build()
    ''')
    proc = subprocess.Popen([sys.executable, "-m", "sloth_runner", "run", "-f", path,
                             "-o", "json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=dict(os.environ))
    try:
        # the pid is written by the command itself: the task is inside exec.run now
        assert poll(lambda: read_pid(pidfile) is not None, 20), "the task never started"
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, err
    doc = json.loads(out)
    assert doc["status"] == "interrupted"
    sleeper = read_pid(pidfile)
    assert poll(lambda: gone_or_zombie(sleeper), 5), "the sleep survived the interruption"
    assert not marker.exists(), f"the task went on after pcall: {marker.read_text()}"
    h = history(doc["run_id"])
    assert h["run"]["status"] == "interrupted"
    assert h["run"]["error"] == f"run interrupted by {sig.name}"
    waiting = h["attempts"][("waiting", 1)]
    assert (waiting["status"], waiting["final"]) == ("interrupted", 1)
    assert h["attempts"][("after", 0)]["status"] == "skipped"
    assert sorted(h["attempts"]) == [("after", 0), ("waiting", 1)]
    assert h["run"]["tasks"] == {"interrupted": 1, "skipped": 1}


BUSY = {
    "lua_loop": "while true do end",
    "pcall_loop": "while true do pcall(function() while true do end end) end",
}


def _signal_when_started(path, marker, sig):
    proc = subprocess.Popen([sys.executable, "-m", "sloth_runner", "run", "-f", path,
                             "-o", "json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=dict(os.environ))
    try:
        assert poll(marker.exists, 20), "the task never started"
        started = time.monotonic()
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return proc.returncode, out, err, time.monotonic() - started


@pytest.mark.parametrize("body", list(BUSY.values()), ids=list(BUSY))
def test_sigterm_while_an_in_process_task_computes_interrupts_the_run(workflow_file, tmp_path,
                                                                       body):
    marker = tmp_path / "started"
    path = workflow_file(f'''
        task("busy"):command(function()
            fs.write("{marker}", "")
            {body}
        end):build()
    ''')
    rc, out, err, elapsed = _signal_when_started(path, marker, signal.SIGTERM)
    doc = json.loads(out)
    assert tasks_by_name(doc)["busy"]["status"] == "interrupted"
    assert elapsed < 2
    assert (rc, doc["status"]) == (130, "interrupted"), err


def test_sigterm_during_a_long_c_call_in_process_still_ends_the_run(workflow_file, tmp_path):
    marker = tmp_path / "started"
    path = workflow_file(f'''
        task("stuck"):command(function()
            fs.write("{marker}", "")
            table.move({{}}, 1, 3e9, 2)
        end):build()
    ''')
    rc, out, err, elapsed = _signal_when_started(path, marker, signal.SIGTERM)
    assert rc == 130, err
    assert elapsed < 4
    (run,) = cli_json("history")[1]["runs"]
    assert run["status"] == "interrupted"


def test_sigterm_kills_a_setsid_grandchild_of_an_in_process_task(workflow_file, tmp_path):
    pidfile = tmp_path / "grandchild.pid"
    path = workflow_file(f'''
        task("escape"):command("setsid sh -c 'echo $$ > {pidfile}; exec sleep 60' & wait")
            :build()
    ''')
    proc = subprocess.Popen([sys.executable, "-m", "sloth_runner", "run", "-f", path],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=dict(os.environ))
    try:
        assert poll(lambda: read_pid(pidfile) is not None, 20)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 130
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    pid = read_pid(pidfile)
    try:
        assert poll(lambda: gone_or_zombie(pid), 1.5), f"grandchild {pid} outlived the run"
    finally:
        if not gone_or_zombie(pid):  # our own test's leftover: end it by its pid
            os.kill(pid, signal.SIGKILL)


# -- a closed stdout ------------------------------------------------------------------------------

@pytest.mark.parametrize("output", [[], ["-o", "json"]], ids=["text", "json"])
def test_a_closed_stdout_never_means_exit_0_with_nothing_run(workflow_file, tmp_path, output):
    ran = tmp_path / "ran"
    path = workflow_file(f'''
        task("a"):command("echo a >> {ran}"):build()
        task("b"):depends_on("a"):command("echo b >> {ran}"):build()
    ''')
    read_end, write_end = os.pipe()
    os.close(read_end)  # like `sloth-runner run ... | true`: nobody will ever read
    try:
        proc = subprocess.run([sys.executable, "-m", "sloth_runner", "run", "-f", path, *output],
                              stdout=write_end, stderr=subprocess.PIPE, text=True,
                              env=dict(os.environ), timeout=30)
    finally:
        os.close(write_end)
    _, runs = cli_json("history")
    (run,) = runs["runs"]
    if proc.returncode == 0:  # it may succeed only by having done the work
        assert ran.read_text() == "a\nb\n"
        assert run["status"] == "success" and run["tasks"] == {"success": 2}
    else:  # or say it was stopped, and record so
        assert proc.returncode == 130, proc.stderr
        assert run["status"] == "interrupted"
        assert "Traceback" not in proc.stderr
