"""What comes back from an agent besides the outcome (its AI calls), and the agent's warm
attempt processes: reused between attempts, replaced after one is killed."""

from __future__ import annotations

import json
import sqlite3
import sys

from tests.conftest import cli, cli_json, tasks_by_name

ASK = '''
task("ask"):delegate_to("a1"):command(function(this, params)
    local r = ai.complete({prompt = "Say hello.", max_tokens = 6})
    ai.decide({options = {"restart", "wait"}, error = "disk full"})
    return true, r.model
end):build()
'''


def test_ai_calls_on_an_agent_are_recorded_in_the_controllers_history(agents, workflow_file,
                                                                     sloth_home, tmp_path):
    agents("a1")  # no AI settings: the agent answers with its own bundled model
    path = workflow_file(ASK)
    # the controller's key is never sent: were it used, the call would fail (no such server)
    env = {**agents.env, "OPENAI_API_KEY": "sk-controller-only-0123456789abcdef",
           "OPENAI_BASE_URL": "http://127.0.0.1:9/v1"}
    code, doc = cli_json("run", "-f", path, env=env)
    assert code == 0, doc
    assert tasks_by_name(doc)["ask"]["message"]  # the agent's model answered
    with sqlite3.connect(sloth_home / "sloth.db") as db:
        rows = db.execute("SELECT run_id, workflow, task, provider, status, prompt_tokens,"
                          " completion_tokens, operation FROM ai_calls").fetchall()
        decided = db.execute("SELECT run_id, task, options_json FROM decisions").fetchall()
    assert decided == [(doc["run_id"], "ask", '["restart", "wait"]')]  # what it chose, too
    assert {r[7] for r in rows} == {"complete", "decide"}
    for run_id, _, task, provider, status, prompt_tokens, completion_tokens, _ in rows:
        assert (run_id, task, provider, status) == (doc["run_id"], "ask", "local", "ok")
        assert prompt_tokens > 0 and completion_tokens > 0
    usage = json.loads(cli("ai", "usage", "-o", "json", env=env).stdout)
    assert usage["calls_today"] == len(rows)  # `ai usage` counts delegated work
    assert usage["tokens_today"] == sum(r[5] + r[6] for r in rows)
    with sqlite3.connect(tmp_path / "agent-a1" / "sloth.db") as db:  # not twice
        assert db.execute("SELECT count(*) FROM ai_calls").fetchone()[0] == 0
        assert db.execute("SELECT count(*) FROM decisions").fetchone()[0] == 0


def test_a_timed_out_attempt_is_retried_on_a_fresh_process_and_the_next_task_reuses_it(
        agents, workflow_file, tmp_path):
    agents("a1")
    marker = tmp_path / "first-attempt"
    path = workflow_file(f'''
        task("slow_once"):delegate_to("a1"):timeout("2s"):retries(1)
            :command(function(this, params)
                local f = io.open("{marker}", "r")
                if f then f:close(); return true, "second attempt" end
                exec.run("touch {marker}")
                exec.run("sleep 30")
                return true, "never"
            end):build()
        task("then"):depends_on("slow_once"):delegate_to("a1")
            :command(function() return true, "pid " .. exec.run("echo $PPID").stdout end)
            :build()
        task("again"):depends_on("then"):delegate_to("a1")
            :command(function() return true, "pid " .. exec.run("echo $PPID").stdout end)
            :build()
    ''')
    code, doc = cli_json("run", "-f", path, env=agents.env)
    assert code == 0, doc
    t = tasks_by_name(doc)
    assert t["slow_once"]["attempts"] == 2 and t["slow_once"]["message"] == "second attempt"
    assert t["then"]["message"] == t["again"]["message"]  # one warm process served both


def test_the_sandbox_holds_on_the_agent(agents, workflow_file):
    agents("a1")
    path = workflow_file('''
        task("t"):delegate_to("a1"):command(function() exec.run("true"); return true end)
            :build()
    ''')
    code, doc = cli_json("run", "-f", path, "--sandbox", env=agents.env)
    assert code == 1
    assert "exec.run is not allowed in the sandbox (run with --allow exec" in \
        tasks_by_name(doc)["t"]["error"]
    code, doc = cli_json("run", "-f", path, "--sandbox", "--allow", "exec", env=agents.env)
    assert code == 0, doc


def test_files_gone_from_the_broker_are_stored_again(agents, workflow_file):
    agents("a1")
    agents("a2")
    wipe = (f"{sys.executable} -c \"import os, redis; c = redis.Redis.from_url("
            "os.environ['SLOTH_BROKER_URL']); keys = c.keys('sloth:files:*'); "
            "print(c.delete(*keys))\"")
    path = workflow_file(f'''
        task("first"):delegate_to("a1"):command(function() return true end):build()
        task("wipe"):depends_on("first"):command([[{wipe}]]):build()
        task("second"):depends_on("wipe"):delegate_to("a2")
            :command(function() return true, "ran" end):build()
    ''')
    code, doc = cli_json("run", "-f", path, env=agents.env)
    assert code == 0, doc
    t = tasks_by_name(doc)
    assert t["wipe"]["outputs"]["stdout"] == "1\n"  # the run's files were gone
    assert t["second"]["message"] == "ran"  # and a2, which had not loaded them, got them again
