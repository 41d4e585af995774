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


def test_go_event_names_are_registered_as_ours_and_dead_types_warned(workflow_file):
    path = workflow_file('return {name = "go", event_types = {"task.completed", "task.timeout",'
                         ' "task.retrying", "task.cancelled", "task.succeeded", "deploy.done", '
                         '"agent.registered", "system.*", "workflow.paused"}, '
                         'execute = function(event) print("saw " .. event.type) end}', "go.lua")
    proc = cli("hook", "add", path, "-o", "json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["event_types"] == ["task.succeeded", "task.timed_out", "task.retried",
                                  "task.failed", "deploy.done", "agent.registered", "system.*",
                                  "workflow.paused"]
    assert "note: 'task.completed' (the Go sloth-runner's name) is 'task.succeeded' here: " \
           "registered as 'task.succeeded'" in proc.stderr
    assert "'task.cancelled' (the Go sloth-runner's name) is 'task.failed'" in proc.stderr
    for dead in ("agent.registered", "system.*", "workflow.paused"):
        assert f"warning: '{dead}' never fires in this version (" in proc.stderr, dead
    assert len(doc["notes"]) == 4 and len(doc["warnings"]) == 3
    assert "deploy.done" not in proc.stderr  # a type of the user's own: event.dispatch sends it
    listed = cli("hook", "list").stdout
    assert "agent.registered (never fires)" in listed and "deploy.done, " in listed
    assert "task.succeeded (never" not in listed
    proc = cli("hook", "test", "go", "--type", "task.completed")  # Go's name works here too
    assert proc.returncode == 0 and "saw task.succeeded" in proc.stdout


GO_HOOK = '''
-- Hook: a file in the Go sloth-runner's form
-- Event: task.completed
function on_event()
    log.info("on_event saw " .. event.type .. " of " .. event.data.task .. " in "
             .. os.date("%Y", event.timestamp))
    state.set("go-hook", event.type)
    event.dispatch("go.dispatched", {from = event.type})
    return event.data.task ~= "bad"
end
'''


def test_go_hook_files_and_commands(workflow_file):
    path = workflow_file(GO_HOOK, "go-hook.lua")
    proc = cli("hook", "add", path)  # it says neither its name nor its event type
    assert proc.returncode == 3
    assert f"register it with `sloth-runner hook add go-hook --file {path} --event TYPE`" \
        in proc.stderr
    proc = cli("hook", "add", "mine", "--file", path)
    assert proc.returncode == 3
    assert f"`sloth-runner hook add mine --file {path} --event TYPE`" in proc.stderr
    declared = workflow_file(HOOK, "notify.lua")
    proc = cli("hook", "add", "other", "--file", declared, "--event", "x.y")
    assert proc.returncode == 3 and "declares hook 'notify', not 'other'" in proc.stderr
    assert cli_json("hook", "list")[1] == {"hooks": []}

    proc = cli("hook", "add", "go-hook", "--file", path, "--event", "task.completed",
               "--description", "from Go", "--stack", "prod", "--enabled=false")
    assert proc.returncode == 0, proc.stderr
    assert f"hook 'go-hook' added disabled: task.succeeded (stack prod), from {path}" \
        in proc.stdout
    assert "'task.completed' (the Go sloth-runner's name) is 'task.succeeded'" in proc.stderr
    proc = cli("hook", "get", "go-hook")  # JSON, as the Go sloth-runner prints it
    hook = json.loads(proc.stdout)
    assert (hook["event_types"], hook["stack"], hook["description"], hook["enabled"],
            hook["file"], hook["runs"]) == (["task.succeeded"], "prod", "from Go", False, path, 0)
    shown = cli("hook", "show", "go-hook").stdout
    assert "enabled:     no" in shown and "event types: task.succeeded" in shown
    assert "DISABLED" in cli("hook", "list").stdout
    assert cli("hook", "enable", "go-hook").stdout == "hook 'go-hook' enabled\n"
    assert cli("hook", "enable", "go-hook").stdout == "hook 'go-hook' is already enabled\n"
    assert cli_json("hook", "show", "go-hook")[1]["enabled"] is True
    assert cli_json("hook", "list", "--stack", "prod")[1]["hooks"][0]["name"] == "go-hook"
    assert cli_json("hook", "list", "--stack", "dev")[1] == {"hooks": []}

    proc = cli("hook", "test", "go-hook")  # the global `event`, and event.dispatch from it
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "on_event saw task.succeeded of test in 20" in proc.stdout
    assert json.loads(cli("state", "get", "go-hook", "-o", "json").stdout) == "task.succeeded"
    [event] = cli_json("events", "list", "--type", "go.dispatched")[1]["events"]
    assert event["data"] == {"from": "task.succeeded"} and event["source"] == "hook:go-hook"
    code, doc = cli_json("hook", "test", "go-hook", "-d", '{"task": "bad"}')
    assert code == 1 and doc["status"] == "failed" and doc["error"] == "on_event returned false"

    assert cli("hook", "disable", "go-hook").stdout == "hook 'go-hook' disabled\n"
    assert cli_json("hook", "get", "go-hook")[1]["enabled"] is False
    logs = cli("hook", "logs", "go-hook", "-n", "1").stdout.splitlines()
    assert len(logs) == 1 and "failed" in logs[0]
    assert len(cli_json("hook", "logs", "go-hook")[1]["runs"]) == 2
    proc = cli("hook", "delete", "go-hook", "--force")
    assert proc.returncode == 0 and "removed" in proc.stdout
    for op in ("get", "show", "enable", "disable", "delete"):
        proc = cli("hook", op, "go-hook")
        assert proc.returncode == 3 and "no hook named 'go-hook'" in proc.stderr, op


def test_the_enabled_field_and_re_adding_a_disabled_hook(workflow_file):
    source = 'return {name = "quiet", event_type = "x.y", enabled = false, execute = print}'
    path = workflow_file(source, "quiet.lua")
    proc = cli("hook", "add", path)
    assert proc.returncode == 0 and "hook 'quiet' added disabled: x.y" in proc.stdout
    assert cli_json("hook", "list")[1]["hooks"][0]["enabled"] is False
    cli("hook", "enable", "quiet")
    workflow_file(source.replace("enabled = false, ", ""), "quiet.lua")
    cli("hook", "disable", "quiet")
    assert cli_json("hook", "add", path, "--replace")[1]["enabled"] is False  # stays disabled
    assert cli_json("hook", "add", path, "--replace", "--enabled")[1]["enabled"] is True
    assert cli_json("hook", "add", path, "--replace", "--enabled", "no")[1]["enabled"] is False
    bad = workflow_file('return {name = "b", event_type = "x", enabled = "yes", '
                        'execute = print}', "bad.lua")
    proc = cli("hook", "add", bad)
    assert proc.returncode == 2 and "enabled must be true or false" in proc.stderr


def test_go_form_usage_errors_exit_3(workflow_file):
    path = workflow_file(GO_HOOK, "go.lua")
    for args, message in (
            (("--event", "x.y", "--enabled=maybe"), "expected true or false"),
            (("--event", "no spaces"), "'no spaces' is not an event type"),
            (("--event", "x.y", "--timeout", "soon"), "--timeout: bad duration"),
            (("--event", "x.y", "--timeout", "0s"), "--timeout must be longer than 0"),
            (("--event", "x.y", "--stack", " "), "--stack must be a stack name")):
        proc = cli("hook", "add", "g", "--file", path, *args)
        assert proc.returncode == 3 and message in proc.stderr, (args, proc.stderr)
    proc = cli("hook", "add", "not/a/name", "--file", path, "--event", "x.y")
    assert proc.returncode == 3 and "with --file, the first argument is the hook's name" \
        in proc.stderr
    code, doc = cli_json("hook", "add", "g", "--file", path, "--event", "x.y", "--timeout",
                         "2m", "--event", "a.b")
    assert code == 0 and doc["timeout_s"] == 120 and doc["event_types"] == ["x.y", "a.b"]


def test_events_list_is_empty_without_hooks(workflow_file):
    path = workflow_file('''
        event.dispatch("deploy.done", {service = "api"})
        task("a"):command(function() event.dispatch("x.y") return true end):build()
    ''')
    assert cli("run", "-f", path).returncode == 0
    assert cli_json("events", "list") == (0, {"events": []})
    assert "no events recorded" in cli("events", "list").stdout


# An AWS key id and a GitHub token, as a hook might come by them; neither may reach a terminal.
AWS_KEY = "AKIAIOSFODNN7EXAMPLE"
TOKEN = "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"

LEAKY = '''
return {
    name = "leaky",
    event_type = "task.failed",
    execute = function(event)
        log.info("key AKIAIOSFODNN7EXAMPLE")
        log.warn("data " .. json.encode(event.data))
        print("token " .. os.getenv("HOOK_SECRET"))
        error("token=" .. os.getenv("HOOK_SECRET"))
    end,
}
'''


def test_hook_test_shows_only_what_its_history_keeps_scrubbed(workflow_file):
    path = workflow_file(LEAKY, "leaky.lua")
    assert cli("hook", "add", path).returncode == 0
    env = {"HOOK_SECRET": TOKEN}
    proc = cli("hook", "test", "leaky", env=env)
    assert proc.returncode == 1
    shown = proc.stdout + proc.stderr
    assert AWS_KEY not in shown and TOKEN not in shown
    lines = proc.stdout.splitlines()
    assert lines[0] == "key [REDACTED:aws_access_key:1]"  # the line is there, its key is not
    assert lines[2] == "token [REDACTED:github_token:1]"
    assert f"error: {path}:9: token=[REDACTED:github_token:1]" in lines

    data = json.dumps({"task": "deploy", "note": f"pushed with {TOKEN}"})
    proc = cli("hook", "test", "leaky", "--data", data, "-o", "json", env=env)
    assert proc.returncode == 1
    assert AWS_KEY not in proc.stdout + proc.stderr and TOKEN not in proc.stdout + proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["status"] == "error"
    assert doc["error"] == f"{path}:9: token=[REDACTED:github_token:1]"
    assert doc["event"]["data"]["note"] == "pushed with [REDACTED:github_token:1]"
    assert "key [REDACTED:aws_access_key:1]" in doc["output"]

    # the hook's own error, with the secret it read, is scrubbed in its history too
    history = cli("hook", "history", "leaky").stdout + cli("hook", "logs", "leaky").stdout
    runs = cli_json("hook", "history", "leaky")[1]["runs"]
    stored = history + json.dumps(runs)
    assert AWS_KEY not in stored and TOKEN not in stored
    assert [r["error"] for r in runs] == [f"{path}:9: token=[REDACTED:github_token:1]"] * 2
    assert f"{path}:9: token=[REDACTED:github_token:1]" in history


def test_hook_add_scrubs_what_the_file_logs_and_its_load_error(workflow_file):
    path = workflow_file('log.info("key AKIAIOSFODNN7EXAMPLE")\n'
                         'error("token=" .. os.getenv("HOOK_SECRET"))\n', "bad.lua")
    proc = cli("hook", "add", path, env={"HOOK_SECRET": TOKEN})
    assert proc.returncode == 2
    assert AWS_KEY not in proc.stderr and TOKEN not in proc.stderr
    assert "key [REDACTED:aws_access_key:1]" in proc.stderr
    assert f"{path}:2: token=[REDACTED:github_token:1]" in proc.stderr


SAMPLE_FIELDS = '''
return {
    name = "fields",
    event_types = {"task.failed", "workflow.failed"},
    stack = "prod",
    execute = function(event)
        print("id=" .. event.id .. " run=" .. event.run_id .. " type=" .. event.type
              .. " source=" .. event.source .. " stack=" .. event.stack
              .. " workflow=" .. event.workflow .. " task=" .. tostring(event.task)
              .. " at=" .. math.type(event.timestamp) .. " data=" .. type(event.data))
    end,
}
'''

GO_FIELDS = '''
function on_event()
    print("go id=" .. event.id .. " run=" .. event.run_id .. " workflow=" .. event.workflow
          .. " task=" .. event.task .. " stack=" .. tostring(event.stack)
          .. " at=" .. math.type(event.timestamp))
    event.dispatch("go.tested", {id = event.id})
end
'''


def test_hook_test_gives_the_sample_event_every_documented_field(workflow_file):
    assert cli("hook", "add", workflow_file(SAMPLE_FIELDS, "fields.lua")).returncode == 0
    proc = cli("hook", "test", "fields")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.splitlines()[0] == (
        "id=0 run=test type=task.failed source=test stack=prod workflow=test task=test "
        "at=float data=table")
    proc = cli("hook", "test", "fields", "--type", "workflow.failed")  # no task, as in a run
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "id=0 run=test type=workflow.failed source=test stack=prod workflow=test task=nil" \
        in proc.stdout
    proc = cli("hook", "test", "fields", "-d", '{"workflow": "ci", "task": "deploy"}')
    assert "workflow=ci task=deploy" in proc.stdout
    code, doc = cli_json("hook", "test", "fields")
    assert code == 0
    assert (doc["event"]["id"], doc["event"]["run_id"], doc["event"]["source"]) == \
        (0, "test", "test")

    go = workflow_file(GO_FIELDS, "go-fields.lua")
    assert cli("hook", "add", "go-fields", "--file", go, "--event", "task.completed"
               ).returncode == 0
    proc = cli("hook", "test", "go-fields")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "go id=0 run=test workflow=test task=test stack=nil at=integer" in proc.stdout

    # a test is recorded as one: no stored event, no run, in its history and in what it sent
    runs = cli_json("hook", "history", "fields")[1]["runs"] + \
        cli_json("hook", "history", "go-fields")[1]["runs"]
    assert len(runs) == 5
    assert {(r["event_id"], r["run_id"]) for r in runs} == {(None, None)}
    assert "test task.failed" in cli("hook", "history", "fields").stdout
    [event] = cli_json("events", "list", "--type", "go.tested")[1]["events"]
    assert event["run_id"] is None and event["data"] == {"id": 0}
