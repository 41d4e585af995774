"""A delegated task is the whole task on its agent: its conditions, end hooks and heal actions
run there too; its events reach the controller's hooks; what comes back names the user's file;
values of any YAML type travel; the agent leaves no copies of the files behind."""

from __future__ import annotations

import glob
import json
import os
import tempfile

from tests.conftest import cli, cli_json, poll, tasks_by_name
from tests.events.waiting import run_events, wait_for_hook_runs

PHASES = '''
task("skipped"):delegate_to("a1")
    :run_if(function() return os.getenv("SLOTH_AGENT_NAME") ~= "a1" end)   -- false there
    :command(function() return true, "ran" end):build()
task("aborts"):delegate_to("a1")
    :abort_if("test \\"$SLOTH_AGENT_NAME\\" = nobody")                     -- false there
    :command(function() error("boom") end)
    :on_fail(function(this, params)
        log.info("on_fail ran on " .. os.getenv("SLOTH_AGENT_NAME"))
        return true
    end):build()
task("timed"):delegate_to("a1"):timeout("1s"):command("sleep 10")
    :on_timeout(function() log.info("on_timeout ran on " .. os.getenv("SLOTH_AGENT_NAME"))
        return true end):build()
'''


def test_conditions_and_end_hooks_run_on_the_agent(agents, workflow_file):
    agents("a1")
    path = workflow_file(PHASES, "phases.lua")
    proc = cli("run", "-f", path, env=agents.env)
    assert "INFO: [a1] on_fail ran on a1" in proc.stdout
    assert "INFO: [a1] on_timeout ran on a1" in proc.stdout
    code, doc = cli_json("run", "-f", path, env=agents.env)
    t = tasks_by_name(doc)
    assert t["skipped"]["status"] == "skipped"
    assert t["skipped"]["message"] == "run_if condition was false"
    assert t["aborts"]["status"] == "failed"
    # file:line of the user's file, not of the agent's temporary copy
    assert t["aborts"]["error"] == f"{path}:7: boom"
    assert t["timed"]["status"] == "timeout"


def test_a_heal_action_runs_on_the_agent(agents, workflow_file, tmp_path):
    agents("a1")
    marker = tmp_path / "healed-on"
    path = workflow_file(f'''
        task("t"):delegate_to("a1")
            :command(function()
                local f = io.open("{marker}")
                if f then f:close(); return true, "healed" end
                return false, "disk full"
            end)
            :heal({{actions = {{
                clean = {{run = "echo $SLOTH_AGENT_NAME > {marker}",
                         description = "free some space"}},
            }}}})
            :build()
    ''')
    code, doc = cli_json("run", "-f", path, env=agents.env)
    assert code == 0, doc
    assert tasks_by_name(doc)["t"]["message"] == "healed"
    assert marker.read_text() == "a1\n"


def test_events_dispatched_on_an_agent_reach_the_controllers_hooks(agents, workflow_file,
                                                                   sloth_home):
    agents("a1")
    hook = workflow_file('return {name = "probe", event_types = {"probe.*", "custom"}, '
                         'execute = function(event) state.set("seen/" .. event.type, '
                         'event.data.x or event.data.name) end}', "hook.lua")
    assert cli("hook", "add", hook, env=agents.env).returncode == 0
    path = workflow_file('''
        task("t"):delegate_to("a1"):command(function()
            event.dispatch("probe.fired", {x = 1})
            event.dispatch_custom("deploy", "done")
            return true
        end):build()
    ''')
    code, doc = cli_json("run", "-f", path, env=agents.env)
    assert code == 0, doc
    events = run_events(sloth_home, doc["run_id"])
    assert [(e["type"], e["task"]) for e in events] == [("probe.fired", "t"), ("custom", "t")]
    wait_for_hook_runs(sloth_home, 2, "probe")


def test_values_of_any_yaml_type_travel_and_no_file_copies_stay_behind(agents, workflow_file,
                                                                       tmp_path):
    a1 = agents("a1")
    values = tmp_path / "values.yaml"
    values.write_text("day: 2024-01-01\nat: 2024-01-01T10:00:00\nn: 3\n")
    path = workflow_file('''
        task("t"):delegate_to("a1"):timeout("20s"):command(function()
            return true, tostring(values.day) .. " " .. values.n
        end):build()
    ''')
    code, doc = cli_json("run", "-f", path, "-v", str(values), env=agents.env)
    assert code == 0, doc
    assert tasks_by_name(doc)["t"]["message"] == "2024-01-01 3"
    mine = os.path.join(tempfile.gettempdir(), f"sloth-agent-{a1.pid}-*")
    assert glob.glob(mine)  # the warm processes' folders, while the agent lives
    assert cli("agent", "stop", "a1", env=agents.env).returncode == 0
    a1.wait(30)
    assert poll(lambda: not glob.glob(mine), 10)


def test_artifacts_of_a_delegated_task_are_refused_clearly(agents, workflow_file):
    agents("a1")
    path = workflow_file('''
        task("t"):delegate_to("a1"):artifacts({"out.txt"})
            :command(function() return true end):build()
    ''')
    code, doc = cli_json("run", "-f", path, env=agents.env)
    assert code == 4
    assert ":artifacts()/:consumes() are not carried to or from agents" in \
        tasks_by_name(doc)["t"]["error"]


def test_a_list_of_hosts_runs_the_task_on_each(agents, workflow_file):
    agents("a1", color="blue")
    agents("a2", color="green")
    path = workflow_file('''
        task("both"):delegate_to({"a1", "a2"}):command(function()
            return true, os.getenv("AGENT_COLOR")
        end):build()
        task("one_fails"):delegate_to({"a1", "a2"}):command(function()
            if os.getenv("AGENT_COLOR") == "green" then return false, "no" end
            return true
        end):build()
    ''')
    code, doc = cli_json("run", "-f", path, env=agents.env)
    t = tasks_by_name(doc)
    assert t["both"]["status"] == "success" and t["both"]["message"] == "ran on 2 hosts"
    assert {h: o["message"] for h, o in t["both"]["outputs"].items()} == \
        {"a1": "blue", "a2": "green"}
    assert t["one_fails"]["status"] == "failed"
    assert t["one_fails"]["message"] == "ran on 2 hosts, failed on a2"


def test_an_agent_is_found_by_its_address_as_go_allows(agents, workflow_file):
    agents("a1", color="blue")
    proc = cli("agent", "list", "-o", "json", env=agents.env)
    address = json.loads(proc.stdout)["agents"][0]["address"]
    path = workflow_file(f'task("t"):delegate_to("{address}:50051"):command("echo $AGENT_COLOR")'
                         ':build()')
    code, doc = cli_json("run", "-f", path, env=agents.env)
    assert code == 0, doc
    assert tasks_by_name(doc)["t"]["outputs"]["stdout"] == "blue\n"
