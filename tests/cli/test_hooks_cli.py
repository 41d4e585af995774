"""`sloth-runner hook` and `sloth-runner events`: the commands, their output and exit codes."""

from __future__ import annotations

import json

from tests.conftest import cli, cli_json

HOOK = '''
return {
    name = "notify",
    event_types = {"task.failed", "workflow.failed"},
    description = "tell someone",
    timeout = "10s",
    execute = function(event)
        log.info("hook saw " .. event.type .. " of " .. (event.data.task or "?"))
        state.set("notified", event.type)
        return true
    end,
}
'''


def test_add_list_test_history_remove(workflow_file, sloth_home):
    path = workflow_file(HOOK, "notify.lua")
    proc = cli("hook", "add", path)
    assert proc.returncode == 0, proc.stderr
    assert "hook 'notify' added: task.failed, workflow.failed" in proc.stdout

    proc = cli("hook", "list")
    assert proc.returncode == 0
    assert "notify" in proc.stdout and "never ran" in proc.stdout and path in proc.stdout
    code, doc = cli_json("hook", "list")
    assert code == 0
    [hook] = doc["hooks"]
    assert hook["name"] == "notify" and hook["file"] == path
    assert hook["event_types"] == ["task.failed", "workflow.failed"]
    assert hook["timeout_s"] == 10 and hook["description"] == "tell someone"
    assert hook["stack"] is None and hook["runs"] == 0

    proc = cli("hook", "test", "notify")  # a sample task.failed event, run in the foreground
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "hook saw task.failed of test" in proc.stdout
    assert "hook 'notify' on task.failed: success" in proc.stdout
    assert json.loads(cli("state", "get", "notified", "-o", "json").stdout) == "task.failed"

    code, doc = cli_json("hook", "test", "notify", "--type", "workflow.failed", "--data",
                         '{"workflow": "ci", "task": "deploy"}')
    assert code == 0 and doc["status"] == "success"
    assert doc["output"] == "hook saw workflow.failed of deploy"

    code, doc = cli_json("hook", "history", "notify")
    assert code == 0
    assert [(r["status"], r["event_type"], r["event_id"]) for r in doc["runs"]] == [
        ("success", "workflow.failed", None), ("success", "task.failed", None)]
    assert all(r["duration_s"] >= 0 for r in doc["runs"])
    proc = cli("hook", "history", "notify", "--limit", "1")
    assert proc.returncode == 0 and len(proc.stdout.splitlines()) == 1
    assert "success" in proc.stdout and "test workflow.failed" in proc.stdout
    assert "2 runs, last success" in cli("hook", "list").stdout

    proc = cli("hook", "remove", "notify")
    assert proc.returncode == 0 and "removed" in proc.stdout
    assert "no hooks registered" in cli("hook", "list").stdout
    assert cli_json("hook", "list")[1] == {"hooks": []}
    proc = cli("hook", "remove", "notify")
    assert proc.returncode == 3 and "no hook named 'notify'" in proc.stderr
    # its history outlives it
    assert len(cli_json("hook", "history", "notify")[1]["runs"]) == 2


def test_add_refuses_a_second_hook_of_the_same_name_unless_replacing(workflow_file):
    path = workflow_file(HOOK, "notify.lua")
    assert cli("hook", "add", path).returncode == 0
    proc = cli("hook", "add", path)
    assert proc.returncode == 3
    assert "a hook named 'notify' exists" in proc.stderr and "--replace" in proc.stderr
    changed = workflow_file(HOOK.replace('"task.failed", ', '').replace('"10s"', '"2m"'),
                            "notify.lua")
    code, doc = cli_json("hook", "add", changed, "--replace")
    assert code == 0
    assert doc["event_types"] == ["workflow.failed"] and doc["timeout_s"] == 120
    assert cli_json("hook", "list")[1]["hooks"][0]["event_types"] == ["workflow.failed"]


def test_a_hook_file_that_does_not_load_exits_2_naming_file_and_line(workflow_file, sloth_home):
    broken = workflow_file('return {\n  name = "x",\n  execute = function(e) end end\n}\n',
                           "broken.lua")
    proc = cli("hook", "add", broken)
    assert proc.returncode == 2
    assert f"{broken}:3:" in proc.stderr

    raising = workflow_file('local x = nil\nlocal y = x.field\nreturn {}\n', "raising.lua")
    proc = cli("hook", "add", raising)
    assert proc.returncode == 2 and f"{raising}:2:" in proc.stderr

    nothing = workflow_file('log.info("no declaration")\n', "nothing.lua")
    proc = cli("hook", "add", nothing)
    assert proc.returncode == 2
    assert f"{nothing}:1: a hook file must return a table" in proc.stderr
    assert "returned nil" in proc.stderr
    assert "no declaration" in proc.stderr  # its top-level log, on stderr

    cases = {
        'return {name = "a", event_type = "task.failed"}': "needs execute = function(event)",
        'return {name = "a", execute = function() end}': "needs event_type",
        'return {name = "a", event_type = "x", event_types = {"y"}, execute = function() end}':
            "give event_type or event_types, not both",
        'return {name = "a", evnt_type = "x", execute = function() end}':
            "unknown hook field 'evnt_type'",
        'return {name = "bad name", event_type = "x", execute = function() end}':
            "the hook needs a name",
        'return {name = "a", event_type = "no spaces", execute = function() end}':
            "'no spaces' is not an event type",
        'return {name = "a", event_type = "x", timeout = "soon", execute = function() end}':
            "timeout: bad duration",
    }
    for source, message in cases.items():
        path = workflow_file("-- a hook\n" + source + "\n", "case.lua")
        proc = cli("hook", "add", path)
        assert proc.returncode == 2, (source, proc.stderr)
        assert f"{path}:2: " in proc.stderr and message in proc.stderr, (source, proc.stderr)

    proc = cli("hook", "add", str(sloth_home / "missing.lua"))
    assert proc.returncode == 2 and "no such hook file" in proc.stderr
    assert cli_json("hook", "list")[1] == {"hooks": []}


def test_usage_errors_exit_3(workflow_file):
    assert cli("hook").returncode == 3
    assert cli("events").returncode == 3
    assert cli("hook", "add").returncode == 3
    for args in (("hook", "history", "ghost"), ("hook", "test", "ghost"),
                 ("events", "show", "42"), ("events", "show", "abc"),
                 ("events", "list", "--limit", "0"), ("hook", "history", "ghost", "--limit", "0")):
        proc = cli(*args)
        assert proc.returncode == 3, (args, proc.stderr)
        assert proc.stderr.startswith("error: ") or "usage" in proc.stderr, proc.stderr
    path = workflow_file('return {name = "p", event_type = "task.*", execute = function() end}',
                         "p.lua")
    assert cli("hook", "add", path).returncode == 0
    proc = cli("hook", "test", "p")
    assert proc.returncode == 3 and "give --type" in proc.stderr
    proc = cli("hook", "test", "p", "--type", "task.failed", "--data", "[1]")
    assert proc.returncode == 3 and "JSON object" in proc.stderr


def test_hook_test_of_a_failing_hook_exits_1_with_its_error(workflow_file):
    path = workflow_file('''
        return {
            name = "boom",
            event_type = "deploy.done",
            execute = function(event)
                print("before")
                error("no webhook configured for " .. event.data.service)
            end,
        }
    ''', "boom.lua")
    cli("hook", "add", path)
    proc = cli("hook", "test", "boom", "--data", '{"service": "api"}')
    assert proc.returncode == 1
    assert "before" in proc.stdout
    assert f"error: {path}:7: no webhook configured for api" in proc.stdout
    [run] = cli_json("hook", "history", "boom")[1]["runs"]
    assert run["status"] == "error" and run["output"] == "before"
    assert f"{path}:7: no webhook configured for api" in run["error"]

    falsy = workflow_file('return {name = "no", event_type = "x.y", '
                          'execute = function() return false, "not today" end}', "no.lua")
    cli("hook", "add", falsy)
    code, doc = cli_json("hook", "test", "no")
    assert code == 1 and doc["status"] == "failed" and doc["error"] == "not today"


def test_go_event_names_get_a_hint(workflow_file):
    path = workflow_file('return {name = "go", event_types = {"task.completed", "deploy.done"},'
                         ' execute = function() end}', "go.lua")
    proc = cli("hook", "add", path)
    assert proc.returncode == 0
    assert "warning: sloth-runner emits no 'task.completed' event (did you mean " \
           "'task.succeeded'?" in proc.stderr
    assert "deploy.done" not in proc.stderr  # a custom type: event.dispatch sends it


def test_events_list_is_empty_without_hooks(workflow_file):
    path = workflow_file('''
        event.dispatch("deploy.done", {service = "api"})
        task("a"):command(function() event.dispatch("x.y") return true end):build()
    ''')
    assert cli("run", "-f", path).returncode == 0
    assert cli_json("events", "list") == (0, {"events": []})
    assert "no events recorded" in cli("events", "list").stdout
