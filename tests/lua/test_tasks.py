"""Lua task commands running on the engine: results, deps, params, concurrency, timeouts."""

from __future__ import annotations

import os
import time


def test_return_forms(run_lua):
    res, _ = run_lua('''
        task("t"):command(function() return true, "fine", {n = 1, list = {1, 2}} end):build()
        task("f"):command(function() return false, "bad news" end):build()
        task("nothing"):command(function() end):build()
        task("exec_ok"):command(function() return exec.run("echo hi") end):build()
        task("exec_bad"):command(function() return exec.run("echo oops >&2; exit 4") end):build()
        task("weird"):command(function() return "yes" end):build()
        task("bad_outputs"):command(function() return true, "m", 5 end):build()
    ''')
    assert (res["t"].status, res["t"].message, res["t"].outputs) == \
        ("success", "fine", {"n": 1, "list": [1, 2]})
    assert (res["f"].status, res["f"].error) == ("failed", "bad news")
    assert res["nothing"].status == "success"
    assert res["exec_ok"].status == "success" and res["exec_ok"].outputs["stdout"] == "hi\n"
    assert res["exec_bad"].status == "failed"
    assert res["exec_bad"].error == "exit code 4"
    assert res["exec_bad"].outputs["stderr"] == "oops\n"
    assert res["exec_bad"].outputs["exit_code"] == 4
    assert res["weird"].status == "failed" and "must return true or false" in res["weird"].error
    assert "outputs" in res["bad_outputs"].error


def test_lua_error_fails_the_task_with_file_and_line(run_lua, workflow_file):
    res, _ = run_lua('''
        task("boom"):command(function()
            local x = nil
            return x.field
        end):build()
        task("raise"):command(function() error("custom failure") end):build()
    ''')
    assert res["boom"].status == "failed"
    assert "wf.lua:4: attempt to index a nil value" in res["boom"].error
    assert "wf.lua:6: custom failure" in res["raise"].error


def test_deps_and_params(run_lua):
    res, _ = run_lua('''
        task("a"):command(function() return true, "", {n = 41, nested = {k = "v"}} end):build()
        task("silent"):command(function() return true end):build()
        task("b"):depends_on({"a", "silent"}):command(function(params, deps)
            return true, "", {
                sum = deps.a.n + 1, k = deps.a.nested.k, silent_is_table = type(deps.silent),
                me = params.task_name, wf = params.workflow_name, env = params.env,
            }
        end):build()
    ''', params={"env": "prod"})
    assert res["b"].outputs == {"sum": 42, "k": "v", "silent_is_table": "table", "me": "b",
                                "wf": "default", "env": "prod"}


def test_params_are_per_task_copies(run_lua):
    res, _ = run_lua('''
        task("a"):command(function(p) p.shared = "changed"; return true end):build()
        task("b"):depends_on("a"):command(function(p) return true, tostring(p.shared) end):build()
    ''', params={"shared": "original"})
    assert res["b"].message == "original"


def test_blocking_calls_run_concurrently(run_lua):
    started = time.monotonic()
    res, rec = run_lua('''
        for i = 1, 4 do
            task("s" .. i):command(function() return exec.run("sleep 0.5") end):build()
        end
    ''', max_parallel=4)
    assert all(r.status == "success" for r in res.values())
    spans = [(a.started_at, a.ended_at) for a in rec.attempts]
    latest_start = max(s for s, _ in spans)
    earliest_end = min(e for _, e in spans)
    assert latest_start < earliest_end  # all four were running at the same moment
    assert time.monotonic() - started < 2.0 - 0.1  # serialised would be 2.0 s or more


def test_timeout_interrupts_busy_lua_even_inside_pcall(run_lua):
    res, _ = run_lua('''
        task("spin"):timeout("200ms"):command(function() while true do end end):build()
        task("sneaky"):timeout("200ms"):command(function()
            while true do pcall(function() while true do end end) end
        end):build()
        task("fine"):command(function() return true end):build()
    ''')
    assert res["spin"].status == "timeout" and res["spin"].error == "timed out after 0.2s"
    assert res["sneaky"].status == "timeout"
    assert res["fine"].status == "success"


def test_timeout_kills_processes_started_by_lua(run_lua, tmp_path):
    pidfile = tmp_path / "pid"
    res, _ = run_lua(f'''
        task("slow"):timeout("300ms"):command(function()
            return exec.run("sleep 30 & echo $! > {pidfile}; wait")
        end):build()
    ''')
    assert res["slow"].status == "timeout"
    pid = int(pidfile.read_text())
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        with open(f"/proc/{pid}/stat") as fh:
            if fh.read().split(")")[1].split()[0] == "Z":
                break
        time.sleep(0.05)
    else:
        raise AssertionError("grandchild survived the timeout")


def test_retries_rerun_the_lua_function(run_lua):
    res, rec = run_lua('''
        local calls = 0
        task("flaky"):retries(3, "fixed"):retry_delay("10ms"):command(function()
            calls = calls + 1
            return calls >= 3, "call " .. calls
        end):build()
    ''')
    assert res["flaky"].status == "success" and res["flaky"].attempts == 3
    assert [a.message for a in rec.attempts] == ["call 1", "call 2", "call 3"]


def test_hooks_and_conditions(run_lua, tmp_path):
    res, rec = run_lua('''
        task("ok"):command(function() return true, "", {v = 7} end)
            :on_success(function(params, outputs) log.info("success hook", outputs.v) end)
            :build()
        task("bad"):command(function() return false, "broken" end)
            :on_failure(function(params, err) log.warn("failure hook: " .. err) end)
            :build()
        task("cond_fn"):run_if(function() return false end):command("true"):build()
        task("cond_sh"):run_if("test 1 = 2"):command("true"):build()
        task("cond_yes"):run_if("test 1 = 1"):command("true"):build()
    ''')
    assert ("info", "success hook 7", "ok") in rec.logs
    assert ("warn", "failure hook: broken", "bad") in rec.logs
    assert res["cond_fn"].status == "skipped" and res["cond_sh"].status == "skipped"
    assert res["cond_yes"].status == "success"


def test_abort_if_stops_the_workflow(run_lua):
    res, _ = run_lua('''
        task("gate"):abort_if("true"):command("true"):build()
        task("after"):depends_on("gate"):command("true"):build()
    ''')
    assert res["gate"].status == "failed" and "abort_if" in res["gate"].error
    assert res["after"].status == "skipped"


def test_shell_commands_use_workdir_and_env(run_lua, tmp_path):
    res, _ = run_lua(f'''
        task("sh"):workdir("{tmp_path}"):env({{WHO = "sloth"}})
            :command("echo $WHO in $(pwd)"):build()
        task("lua"):workdir("{tmp_path}"):env({{WHO = "lua"}}):command(function()
            return exec.run("echo $WHO in $(pwd)")
        end):build()
    ''')
    assert res["sh"].outputs["stdout"] == f"sloth in {tmp_path}\n"
    assert res["lua"].outputs["stdout"] == f"lua in {tmp_path}\n"


def test_exec_outside_tasks_and_inside_user_coroutines(run_lua):
    res, _ = run_lua('''
        local top = exec.run("echo top").stdout
        task("t"):command(function()
            local co = coroutine.wrap(function() return exec.run("echo inner").stdout end)
            return true, top .. co()
        end):build()
    ''')
    assert res["t"].message == "top\ninner\n"


def test_exec_errors_point_at_the_caller(run_lua):
    res, _ = run_lua('''
        task("t"):command(function()
            local r = exec.run("true", {timeout = "1s", colour = "blue"})
            return r
        end):build()
        task("tail"):command(function()
            return exec.run(42)  -- a tail call: only the function's own line is left
        end):build()
        task("sync"):command(function()
            local ok = true
            json.decode("{")
        end):build()
    ''')
    assert "wf.lua:3: exec.run: unknown option 'colour'" in res["t"].error
    assert "wf.lua:6: exec.run expects a command string" in res["tail"].error
    assert "wf.lua:11: invalid JSON" in res["sync"].error


def test_a_module_failing_inside_is_an_error_of_the_task_not_a_failure(workflow_file, load):
    path = workflow_file('''
        task("broken"):command(function() return broken.call() end):build()
        task("caught"):command(function()
            local ok = pcall(broken.call)
            return not ok, "went on"
        end):build()
        task("refused"):command(function() return broken.refuse() end):build()
    ''')
    run, _ = load(path)
    rt = run._loaded.runtime

    def call():  # a bug of ours (or a store that cannot be written): the task could not run
        raise ZeroDivisionError("division by zero")

    def refuse():  # a request that was wrong: the task ran and said no
        raise ValueError("no such thing")

    rt.install("broken", {"call": rt.wrap(call), "refuse": rt.wrap(refuse)})
    tasks = {t.name: t for t in run.execute().workflows[0].tasks}
    assert tasks["broken"].status == "error"
    assert "ZeroDivisionError: division by zero" in tasks["broken"].error
    assert "Traceback" in tasks["broken"].trace
    assert tasks["caught"].status == "success"  # handled by the workflow: nothing went wrong
    assert tasks["refused"].status == "failed" and "no such thing" in tasks["refused"].error
