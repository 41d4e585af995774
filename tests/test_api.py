"""The public Python API (sloth_runner.load, run, history, run_details) on real files and a real
store, and what importing the package costs."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import sloth_runner
from sloth_runner.errors import LoadError, UsageError
from tests.conftest import cli, cli_json

AWS_KEY = "AKIAQ7RZ2M4XK9TB6WNP"

TWO_WORKFLOWS = '''
fs.write("MARKER", "top-level code ran")
workflow.define("one", {
    description = "first",
    tasks = {
        task("a"):description("the first"):command(function(params)
            return true, "env=" .. tostring(params.env),
                {env = params.env, region = params.region}
        end):build(),
        task("b"):depends_on("a"):command(function(params, deps)
            return true, "from a: " .. deps.a.env, {from_a = deps.a.env}
        end):build(),
        task("extra"):command(function() return true, "extra ran" end):build(),
    },
})
workflow.define("two", {tasks = {task("c"):command(function() return true end):build()}})
'''


@pytest.fixture
def two_workflows(workflow_file, tmp_path):
    marker = tmp_path / "marker.txt"
    return workflow_file(TWO_WORKFLOWS.replace("MARKER", str(marker))), marker


def test_load_returns_plain_data_runs_top_level_code_and_records_no_run(two_workflows):
    path, marker = two_workflows
    plan = sloth_runner.load(path)
    assert json.loads(json.dumps(plan)) == plan  # plain data: nothing Lua, nothing engine
    assert marker.read_text() == "top-level code ran"
    assert [(wf["name"], wf["description"], wf["location"]) for wf in plan] == [
        ("one", "first", f"{path}:3"), ("two", "", f"{path}:16")]
    assert plan[0]["tasks"] == [
        {"name": "a", "depends_on": [], "description": "the first", "location": f"{path}:6"},
        {"name": "b", "depends_on": ["a"], "description": "", "location": f"{path}:10"},
        {"name": "extra", "depends_on": [], "description": "", "location": f"{path}:13"},
    ]
    assert sloth_runner.history() == []


@pytest.mark.parametrize("values_as", ["dict", "yaml_file"])
def test_run_returns_statuses_and_outputs_with_params_winning_over_values(two_workflows,
                                                                            tmp_path, values_as):
    path, _ = two_workflows
    values: dict | str = {"env": "from-values", "region": "eu"}
    if values_as == "yaml_file":
        values = str(tmp_path / "values.yaml")
        (tmp_path / "values.yaml").write_text("env: from-values\nregion: eu\n")
    result = sloth_runner.run(path, params={"env": "prod"}, values=values, workflows=["one"],
                              tasks=["b"])
    assert result.status == "success" and len(result.run_id) >= 8
    (wf,) = result.workflows  # workflow "two" was not chosen
    assert wf.name == "one"
    tasks = {t.name: t for t in wf.tasks}
    assert set(tasks) == {"a", "b"}  # "b" and what it depends on; not "extra"
    assert (tasks["a"].status, tasks["a"].message) == ("success", "env=prod")
    assert tasks["a"].outputs == {"env": "prod", "region": "eu"}
    assert tasks["b"].outputs == {"from_a": "prod"}


def test_run_of_an_unknown_workflow_raises_load_error_as_the_cli_exits_2(two_workflows):
    path, _ = two_workflows
    with pytest.raises(LoadError, match="no workflow named 'nope'"):
        sloth_runner.run(path, workflows=["one", "nope"])
    assert sloth_runner.history() == []


def test_a_file_that_cannot_load_raises_load_error_with_file_and_line(workflow_file):
    path = workflow_file('task("a"):command(function() end):build()\nlocal x = nil + 1\n')
    with pytest.raises(LoadError) as raised:
        sloth_runner.run(path)
    assert str(raised.value).startswith(f"{path}:2: ")
    with pytest.raises(LoadError) as raised:
        sloth_runner.load(path)
    assert str(raised.value).startswith(f"{path}:2: ")


def test_history_and_run_details_see_an_api_run(workflow_file):
    path = workflow_file('''
        task("ok"):command(function() return true, "fine", {n = 1} end):build()
        task("no"):command(function() return false, "refused" end):build()
    ''')
    result = sloth_runner.run(path)
    assert result.status == "failed"
    (latest,) = sloth_runner.history(limit=1)
    assert latest["run_id"] == result.run_id
    assert (latest["file"], latest["status"], latest["tasks"]) == (
        path, "failed", {"success": 1, "failed": 1})
    details = sloth_runner.run_details(result.run_id[:6])
    assert details["run"]["id"] == result.run_id
    assert {a["task"]: (a["status"], a["message"]) for a in details["attempts"]} == {
        "ok": ("success", "fine"), "no": ("failed", "refused")}
    with pytest.raises(UsageError, match="no single run matches 'zzz'"):
        sloth_runner.run_details("zzz")


def test_history_limit_keeps_the_newest_runs(workflow_file):
    path = workflow_file('task("t"):command(function() end):build()')
    ids = [sloth_runner.run(path).run_id for _ in range(3)]
    assert [r["run_id"] for r in sloth_runner.history(limit=2)] == ids[:0:-1]


def _comparable(details: dict) -> dict:
    """A run's record without what differs between any two runs (ids, times, pid)."""
    run = {k: v for k, v in details["run"].items()
           if k not in ("id", "started_at", "ended_at", "pid")}
    attempts = sorted(
        ({k: v for k, v in a.items()
          if k not in ("id", "run_id", "started_at", "ended_at", "duration_s", "cpu_s",
                       "max_rss_kb", "load_1m", "mem_free_mb", "backoff_s")}
         for a in details["attempts"]),
        key=lambda a: (a["task"], a["attempt"]))
    return {"run": run, "attempts": attempts}


def test_an_api_run_is_recorded_in_history_exactly_like_a_cli_run(workflow_file):
    path = workflow_file('''
        local n = 0
        task("flaky"):retries(1, "fixed"):retry_delay(0):command(function(params)
            n = n + 1
            return n > 1, "attempt " .. n, {token = params.token}
        end):build()
        task("no"):command(function() error("refused") end):build()
        task("later"):depends_on("no"):command(function() end):build()
    ''')
    api = sloth_runner.run(path, params={"token": AWS_KEY})
    proc = cli("run", "-f", path, "--param", f"token={AWS_KEY}")
    assert (api.status, proc.returncode) == ("failed", 1)
    code, listing = cli_json("history")
    assert code == 0
    cli_entry, api_entry = listing["runs"]
    assert api_entry["run_id"] == api.run_id
    drop = ("run_id", "started_at", "ended_at", "duration_s")
    assert {k: v for k, v in api_entry.items() if k not in drop} == \
        {k: v for k, v in cli_entry.items() if k not in drop}
    from_api = _comparable(sloth_runner.run_details(api.run_id))
    from_cli = _comparable(sloth_runner.run_details(cli_entry["run_id"]))
    assert from_api == from_cli
    assert AWS_KEY not in json.dumps(from_api)  # the param is scrubbed on both paths
    assert [(a["task"], a["attempt"], a["status"]) for a in from_api["attempts"]] == [
        ("flaky", 1, "failed"), ("flaky", 2, "success"), ("later", 0, "skipped"),
        ("no", 1, "failed")]


def test_importing_the_package_imports_no_lua_rich_sqlite_or_ai_stack():
    heavy = ("lupa", "rich", "sqlite3", "_sqlite3", "openai", "llama_cpp", "tiktoken", "httpx",
             "yaml", "sloth_runner.ai", "sloth_runner.lua", "sloth_runner.store")
    code = f'''
import json, sys
heavy = {heavy!r}
def loaded():
    return sorted(m for m in sys.modules if any(m == h or m.startswith(h + ".") for h in heavy))
import sloth_runner
before = loaded()
sloth_runner.history()  # the check can see a heavy import: this one needs sqlite3
print(json.dumps([before, loaded()]))
'''
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=30)
    assert proc.returncode == 0, proc.stderr
    before, after = json.loads(proc.stdout)
    assert before == []
    assert "sqlite3" in after
