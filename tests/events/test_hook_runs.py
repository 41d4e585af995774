"""Hooks reacting to real runs: the real CLI in subprocesses, real SQLite, real Lua, and the
real detached dispatcher (waited on by polling the store, never by sleeping)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from tests.conftest import cli, cli_json, poll
from tests.events.waiting import (
    dispatcher_gone,
    finished_runs,
    run_events,
    wait_for_hook_runs,
)

RECORDER = '''
return {
    name = "recorder",
    event_type = "*",
    execute = function(event)
        state.increment("seen/" .. event.type .. "/" .. (event.task or "-"))
    end,
}
'''

EVERY_EVENT = '''
event.dispatch("custom.top", {where = "top"})
workflow.define("good", {
    tasks = {
        task("ok"):command(function()
            event.dispatch("custom.task", {n = 1})
            event.dispatch_custom("notify_team", "go's shorthand")  -- type `custom`
            return true
        end):build(),
        task("isolated"):timeout("20s"):command(function()   -- runs in a worker process
            event.dispatch("custom.worker", {n = 2})
            return true
        end):build(),
    },
})
workflow.define("bad", {
    tasks = {
        task("flaky"):retries(1, "fixed"):retry_delay(0)
            :command(function() return false, "nope" end):build(),
        task("slow"):timeout("300ms"):command("sleep 5"):build(),
        task("after"):depends_on("flaky"):command(function() return true end):build(),
    },
})
'''

EXPECTED = {
    "custom.top/-", "custom.task/ok", "custom.worker/isolated", "custom/ok",
    "workflow.started/-", "workflow.completed/-", "workflow.failed/-",
    "task.started/ok", "task.started/isolated", "task.started/flaky", "task.started/slow",
    "task.succeeded/ok", "task.succeeded/isolated", "task.retried/flaky", "task.failed/flaky",
    "task.timed_out/slow", "task.skipped/after",
}


def run_json(path: str, *args: str) -> tuple[int, dict]:
    proc = cli("run", "-f", path, *args, "-o", "json")
    return proc.returncode, json.loads(proc.stdout)


def test_every_event_type_reaches_a_hook(workflow_file, sloth_home):
    assert cli("hook", "add", workflow_file(RECORDER, "recorder.lua")).returncode == 0
    code, doc = run_json(workflow_file(EVERY_EVENT))
    assert code == 1, doc  # "bad" failed: a hook changes nothing about that
    run_id = doc["run_id"]
    events = run_events(sloth_home, run_id)
    seen = {f"{e['type']}/{e['task'] or '-'}" for e in events}
    assert seen == EXPECTED | {"workflow.started/-"}
    assert len(events) == len(EXPECTED) + 1  # two workflows started

    runs = wait_for_hook_runs(sloth_home, len(events), "recorder")
    assert {r["status"] for r in runs} == {"success"}, runs
    assert sorted(r["event_id"] for r in runs) == [e["id"] for e in events]
    dispatcher_gone(sloth_home, run_id)
    counts = cli_json("state", "list", "seen/")[1]
    assert set(counts) == {f"seen/{k}" for k in EXPECTED}
    assert counts["seen/workflow.started/-"] == 2
    assert all(v == 1 for k, v in counts.items() if k != "seen/workflow.started/-")

    by_type = {e["type"]: e for e in events}
    retried = json.loads(by_type["task.retried"]["data_json"])
    assert retried["attempt"] == 1 and retried["next_attempt"] == 2
    assert retried["error"] == "nope" and retried["status"] == "failed"
    failed = json.loads(by_type["task.failed"]["data_json"])
    assert failed["attempts"] == 2 and failed["status"] == "failed"
    timed_out = json.loads(by_type["task.timed_out"]["data_json"])
    assert timed_out["status"] == "timeout" and "timed out" in timed_out["error"]
    wf_failed = json.loads(by_type["workflow.failed"]["data_json"])
    assert wf_failed["workflow"] == "bad" and sorted(wf_failed["failed_tasks"]) == [
        "flaky", "slow"]
    assert json.loads(by_type["custom.worker"]["data_json"]) == {"n": 2}
    assert json.loads(by_type["custom"]["data_json"]) == {"name": "notify_team",
                                                         "message": "go's shorthand"}
    assert by_type["custom.worker"]["source"] == "lua"
    assert by_type["task.failed"]["source"] == "run"

    code, listed = cli_json("events", "list", "--run", run_id[:6], "--type", "task.*",
                            "--limit", "100")
    assert code == 0
    assert {e["type"] for e in listed["events"]} == {
        "task.started", "task.succeeded", "task.retried", "task.failed", "task.timed_out",
        "task.skipped"}
    assert all(e["hooks"] == {"success": 1} for e in listed["events"])
    proc = cli("events", "show", str(by_type["task.failed"]["id"]))
    assert proc.returncode == 0
    assert "task.failed" in proc.stdout and "flaky" in proc.stdout
    assert "hook      recorder: success" in proc.stdout


def test_only_subscribed_events_are_recorded(workflow_file, sloth_home):
    hook = workflow_file('return {name = "fails", event_types = {"workflow.failed", "oops"}, '
                         'execute = function() end}', "fails.lua")
    assert cli("hook", "add", hook).returncode == 0
    code, doc = run_json(workflow_file(EVERY_EVENT))
    assert code == 1
    events = run_events(sloth_home, doc["run_id"])
    assert [e["type"] for e in events] == ["workflow.failed"]
    wait_for_hook_runs(sloth_home, 1, "fails")
    dispatcher_gone(sloth_home, doc["run_id"])


def test_a_hook_that_errors_is_recorded_and_the_run_succeeds(workflow_file, sloth_home):
    boom = workflow_file('''
        return {
            name = "boom",
            event_type = "workflow.started",
            execute = function(event)
                log.warn("about to fail")
                error("cannot reach the pager for " .. event.data.workflow)
            end,
        }''', "boom.lua")
    no = workflow_file('return {name = "no", event_type = "workflow.completed", '
                       'execute = function() return false, "vetoed" end}', "no.lua")
    assert cli("hook", "add", boom).returncode == 0
    assert cli("hook", "add", no).returncode == 0
    code, doc = run_json(workflow_file('task("a"):command("true"):build()'))
    assert code == 0 and doc["status"] == "success"
    [error] = wait_for_hook_runs(sloth_home, 1, "boom")
    assert error["status"] == "error"
    assert error["error"] == f"{boom}:7: cannot reach the pager for default"
    assert error["output"] == "warn: about to fail"
    assert error["event_type"] == "workflow.started" and error["run_id"] == doc["run_id"]
    [failed] = wait_for_hook_runs(sloth_home, 1, "no")
    assert failed["status"] == "failed" and failed["error"] == "vetoed"
    dispatcher_gone(sloth_home, doc["run_id"])
    listed = cli("hook", "list").stdout
    assert "1 runs, last error" in listed and "1 runs, last failed" in listed
    assert f"{boom}:7: cannot reach" in cli("hook", "history", "boom").stdout


def test_a_slow_hook_does_not_delay_the_run_and_is_recorded(workflow_file, sloth_home):
    slow = workflow_file('''
        return {
            name = "slow",
            event_type = "task.started",
            execute = function(event)
                exec.run("sleep 5")
                state.set("slow-done", event.task)
            end,
        }''', "slow.lua")
    assert cli("hook", "add", slow).returncode == 0
    path = workflow_file('''
        task("a"):command("true"):build()
        task("b"):depends_on("a"):command("true"):build()
    ''')
    started = time.monotonic()
    code, doc = run_json(path)
    wall = time.monotonic() - started
    assert code == 0
    assert wall < 3.0, f"the run took {wall:.1f}s: it waited for its hooks"
    assert finished_runs(sloth_home, "slow") == []  # still sleeping, after the run ended
    runs = wait_for_hook_runs(sloth_home, 2, "slow", timeout=30)
    assert {r["status"] for r in runs} == {"success"}
    assert all(5.0 <= r["duration_s"] < 15 for r in runs)
    dispatcher_gone(sloth_home, doc["run_id"])
    assert cli_json("state", "get", "slow-done")[1] in ("a", "b")


def test_hooks_past_their_timeout_are_stopped_and_recorded(workflow_file, sloth_home, tmp_path):
    loop = workflow_file('return {name = "loop", event_type = "workflow.started", '
                         'timeout = "1s", execute = function() while true do end end}',
                         "loop.lua")
    sleeper = workflow_file('''
        return {
            name = "sleeper", event_type = "workflow.started", timeout = "500ms",
            execute = function() exec.run("sleep 30") state.set("woke", true) end,
        }''', "sleeper.lua")
    fifo = tmp_path / "nobody-writes"
    os.mkfifo(fifo)  # opening it blocks inside C until a writer comes: none will
    stuck = workflow_file('return {name = "stuck", event_type = "workflow.started", '
                          f'timeout = "500ms", execute = function() io.open("{fifo}") end}}',
                          "stuck.lua")
    for path in (loop, sleeper, stuck):
        assert cli("hook", "add", path).returncode == 0
    code, doc = run_json(workflow_file('task("a"):command("true"):build()'))
    assert code == 0
    runs = {r["hook"]: r for r in wait_for_hook_runs(sloth_home, 3, timeout=30)}
    assert runs["loop"]["status"] == "timeout"
    assert runs["loop"]["error"] == "timed out after 1s"
    assert 1.0 <= runs["loop"]["duration_s"] < 5
    assert runs["sleeper"]["status"] == "timeout"  # its process was killed at the deadline
    assert runs["sleeper"]["duration_s"] < 5
    # a C call cannot be stopped: given up on after a grace period, and recorded
    assert runs["stuck"]["status"] == "timeout" and "abandoned" in runs["stuck"]["error"]
    dispatcher_gone(sloth_home, doc["run_id"])
    assert cli("state", "get", "woke").returncode == 3


def test_events_are_kept_and_hooked_when_the_run_is_killed(workflow_file, sloth_home, tmp_path):
    assert cli("hook", "add", workflow_file(RECORDER, "recorder.lua")).returncode == 0
    pid_file = tmp_path / "sleep.pid"
    path = workflow_file(f'''
        task("quick"):command("true"):build()
        task("long"):depends_on("quick"):command(function()
            event.dispatch("long.begins", {{}})
            return exec.run("echo $$ > {pid_file}; exec sleep 60")
        end):build()
    ''')
    proc = subprocess.Popen([sys.executable, "-m", "sloth_runner", "run", "-f", path],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def long_started() -> bool:
            return bool(cli_json("events", "list", "--type", "long.begins")[1]["events"])

        assert poll(long_started, 30)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
        if pid_file.exists():
            try:
                os.kill(int(pid_file.read_text()), signal.SIGKILL)
            except ProcessLookupError:
                pass
    code, doc = cli_json("events", "list")
    assert code == 0
    types = [(e["type"], e["task"]) for e in reversed(doc["events"])]
    assert types[:4] == [("workflow.started", None), ("task.started", "quick"),
                         ("task.succeeded", "quick"), ("task.started", "long")]
    assert ("long.begins", "long") in types
    run_id = doc["events"][0]["run_id"]
    # the dispatcher saw the run die, and ran the hooks of everything that was stored
    runs = wait_for_hook_runs(sloth_home, len(types), "recorder")
    assert {r["status"] for r in runs} == {"success"}
    dispatcher_gone(sloth_home, run_id)
    assert cli_json("state", "get", "seen/long.begins/long")[1] == 1


def test_secrets_are_scrubbed_from_event_data(workflow_file, sloth_home):
    token = "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"
    hook = workflow_file('''
        return {
            name = "echo", event_types = {"task.failed", "deploy.done"},
            execute = function(event) log.info(json.encode(event.data)) end,
        }''', "echo.lua")
    assert cli("hook", "add", hook).returncode == 0
    path = workflow_file(f'''
        task("leaky"):command(function()
            event.dispatch("deploy.done", {{note = "pushed with {token}",
                                            nested = {{"password=hunter2supersecret"}}}})
            error("login failed: password=hunter2supersecret")
        end):build()
    ''')
    code, doc = run_json(path)
    assert code == 1
    runs = wait_for_hook_runs(sloth_home, 2, "echo")
    dispatcher_gone(sloth_home, doc["run_id"])
    stored = json.dumps(run_events(sloth_home, doc["run_id"])) + json.dumps(runs)
    assert "hunter2supersecret" not in stored and token not in stored
    assert "[REDACTED:" in stored
    shown = cli("events", "list").stdout + cli("hook", "history", "echo").stdout
    for e in cli_json("events", "list")[1]["events"]:
        shown += cli("events", "show", str(e["id"])).stdout
    assert "hunter2supersecret" not in shown and token not in shown


STACKED = '''
return {{
    name = "{name}", event_type = "workflow.started", {stack}
    execute = function(event) state.set("ran/{name}", event.stack or "none") end,
}}
'''


def run_with_stack(path: str, stack: str | None) -> str:
    """A run as the CLI makes it, with a stack name (the Go CLI's first argument)."""
    code = ("import sys\nfrom sloth_runner.running import Run\n"
            f"with Run({path!r}, stack={stack!r}, process_ends=True) as run:\n"
            "    run.load()\n    result = run.execute()\n"
            "print(result.run_id)\nsys.exit(0 if result.status == 'success' else 1)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split()[-1]


def test_hooks_naming_a_stack_run_only_for_that_stack(workflow_file, sloth_home):
    for name, stack in (("prod", 'stack = "prod",'), ("dev", 'stack = "dev",'), ("any", "")):
        path = workflow_file(STACKED.format(name=name, stack=stack), f"{name}.lua")
        assert cli("hook", "add", path).returncode == 0
    stacks = {h["name"]: h["stack"] for h in cli_json("hook", "list")[1]["hooks"]}
    assert stacks == {"any": None, "dev": "dev", "prod": "prod"}
    wf = workflow_file('task("a"):command("true"):build()')

    run_id = run_with_stack(wf, "prod")
    runs = wait_for_hook_runs(sloth_home, 2)
    dispatcher_gone(sloth_home, run_id)
    assert sorted(r["hook"] for r in runs) == ["any", "prod"]
    assert [e["stack"] for e in run_events(sloth_home, run_id)] == ["prod"]
    assert cli_json("state", "list", "ran/")[1] == {"ran/any": "prod", "ran/prod": "prod"}

    run_id = run_with_stack(wf, None)
    runs = wait_for_hook_runs(sloth_home, 3)
    dispatcher_gone(sloth_home, run_id)
    assert sorted(r["hook"] for r in runs) == ["any", "any", "prod"]
    assert cli_json("state", "get", "ran/any")[1] == "none"

    cli("hook", "remove", "any")
    run_id = run_with_stack(wf, "staging")  # no hook applies: nothing is recorded
    assert run_events(sloth_home, run_id) == []


def test_an_event_a_hook_dispatches_is_recorded_but_triggers_no_hook(workflow_file, sloth_home):
    echo = workflow_file('''
        return {
            name = "echoer", event_type = "*",
            execute = function(event)
                event.dispatch("echo." .. event.type, {of = event.id})
            end,
        }''', "echoer.lua")
    assert cli("hook", "add", echo).returncode == 0
    code, doc = run_json(workflow_file('task("a"):command("true"):build()'))
    assert code == 0
    events = run_events(sloth_home, doc["run_id"])
    runs = wait_for_hook_runs(sloth_home, len(events), "echoer")
    dispatcher_gone(sloth_home, doc["run_id"])
    assert len(runs) == len(events) == 4
    assert {r["status"] for r in runs} == {"success"}, runs
    echoes = [e for e in run_events(sloth_home, doc["run_id"]) if e["type"].startswith("echo.")]
    assert len(echoes) == 4
    assert {e["source"] for e in echoes} == {"hook:echoer"}
    assert len(finished_runs(sloth_home, "echoer")) == 4  # none ran for the echoes


def test_a_run_without_hooks_pays_nothing_for_them(workflow_file):
    path = workflow_file('''
        event.dispatch("top", {})
        task("a"):command(function() event.dispatch("in.task", {x = 1}) return true end):build()
    ''')
    code = ("import sys\nfrom sloth_runner.cli.main import main\n"
            f"rc = main(['run', '-f', {path!r}, '-o', 'json'])\n"
            "loaded = sorted(m for m in ('sloth_runner.events.recorder', 'sloth_runner.store.events',"
            " 'sloth_runner.events.hooks', 'subprocess') if m in sys.modules)\n"
            "print('LOADED', loaded, rc, file=sys.stderr)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "LOADED [] 0" in proc.stderr, proc.stderr
    assert cli_json("events", "list")[1] == {"events": []}


def test_event_dispatch_misuse_fails_at_the_callers_line(workflow_file):
    path = workflow_file('''
        task("a"):command(function()
            event.dispatch("has spaces", {})
        end):build()
        task("b"):command(function()
            event.dispatch("fine.name", "not a table")
        end):build()
    ''')
    code, doc = run_json(path)
    assert code == 1
    tasks = {t["name"]: t for t in doc["workflows"][0]["tasks"]}
    assert tasks["a"]["error"].startswith(f"{path}:3: event.dispatch expects an event type")
    assert tasks["b"]["error"] == f"{path}:6: event.dispatch: data must be a table, got string"
    top = workflow_file('event.dispatch()\ntask("a"):command("true"):build()\n', "top.lua")
    proc = cli("run", "-f", top)
    assert proc.returncode == 2 and f"{top}:1: event.dispatch expects" in proc.stderr
