"""Hook files of the Go sloth-runner (on_event, registered with `hook add NAME --file FILE
--event TYPE`) and disabled hooks, on real runs: the real CLI, store, Lua and detached
dispatcher (waited on by polling the store, never by sleeping)."""

from __future__ import annotations

import json

from tests.conftest import cli, cli_json
from tests.events.waiting import dispatcher_gone, finished_runs, run_events, wait_for_hook_runs

GO_HOOK = '''
-- Event: task.completed
function on_event()
    state.set("go/" .. event.data.task, event.type .. " " .. event.run_id)
    event.dispatch("go.seen", {task = event.data.task})
    return true
end
'''

QUIET = '''
return {
    name = "quiet",
    event_type = "task.succeeded",
    enabled = false,
    execute = function(event) state.set("quiet/" .. event.run_id, event.task) end,
}
'''


def run(path: str) -> str:
    proc = cli("run", "-f", path, "-o", "json")
    assert proc.returncode == 0, proc.stderr
    return str(json.loads(proc.stdout)["run_id"])


def test_a_go_hook_runs_on_its_event_and_a_disabled_hook_waits(workflow_file, sloth_home):
    go = workflow_file(GO_HOOK, "go.lua")
    assert cli("hook", "add", "go", "--file", go, "--event", "task.completed").returncode == 0
    assert cli("hook", "add", workflow_file(QUIET, "quiet.lua")).returncode == 0
    workflow = workflow_file('task("a"):command("true"):build()')

    first = run(workflow)
    [execution] = wait_for_hook_runs(sloth_home, 1, "go")
    assert execution["status"] == "success", execution
    assert execution["event_type"] == "task.succeeded" and execution["run_id"] == first
    dispatcher_gone(sloth_home, first)
    assert finished_runs(sloth_home, "quiet") == []  # registered disabled: never ran
    assert json.loads(cli("state", "get", "go/a", "-o", "json").stdout) == \
        f"task.succeeded {first}"
    assert [(e["type"], e["source"]) for e in run_events(sloth_home, first)] == [
        ("task.succeeded", "run"), ("go.seen", "hook:go")]

    assert cli("hook", "enable", "quiet").returncode == 0
    second = run(workflow)
    [execution] = wait_for_hook_runs(sloth_home, 1, "quiet")
    assert execution["status"] == "success" and execution["run_id"] == second
    wait_for_hook_runs(sloth_home, 2, "go")
    dispatcher_gone(sloth_home, second)
    assert cli_json("state", "list", "quiet/")[1] == {f"quiet/{second}": "a"}

    assert cli("hook", "disable", "go").returncode == 0
    assert cli("hook", "disable", "quiet").returncode == 0
    third = run(workflow)
    assert run_events(sloth_home, third) == []  # no enabled hook: nothing is recorded
    assert len(finished_runs(sloth_home)) == 3
