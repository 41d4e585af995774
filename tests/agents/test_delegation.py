"""`:delegate_to` through a real Redis and real agents (Celery workers as subprocesses)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from typing import Any

from tests.conftest import cli, cli_json, gone_or_zombie, poll, tasks_by_name

GO_STYLE = '''
task("prep"):command(function() return true, "prepared", {token = "t-42"} end):build()
task("on_a1"):depends_on("prep"):delegate_to("a1"):command(function(this, params, deps)
    log.info("prep gave " .. deps.prep.token)
    return true, os.getenv("AGENT_COLOR") .. " " .. this:name(), {seen = deps.prep.token}
end):build()
task("on_a2"):delegate_to("a2"):command("echo $AGENT_COLOR"):build()
task("after"):depends_on("on_a1"):command(function(params, deps)
    return true, "a1 saw " .. deps.on_a1.seen
end):build()
'''


def run_meanwhile(path: str, env: dict, started: Any, meanwhile: Any,
                  timeout: float = 60) -> subprocess.CompletedProcess:
    """`run -f path -o json` in the background; once `started()` holds, call `meanwhile()`
    (stop an agent, the broker, the controller…) and wait for the run to end."""
    run = subprocess.Popen([sys.executable, "-m", "sloth_runner", "run", "-f", path, "-o",
                            "json"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True)
    try:
        assert poll(started, 30), "the delegated task never started"
        meanwhile(run)
        out, err = run.communicate(timeout=timeout)
    finally:
        run.kill()
        run.wait()
    return subprocess.CompletedProcess(run.args, run.returncode, out, err)


def test_tasks_run_on_their_agents_with_deps_logs_and_history(agents, workflow_file):
    agents("a1", color="blue")
    agents("a2", color="green")
    path = workflow_file(GO_STYLE)
    proc = cli("run", "-f", path, env=agents.env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "[on_a1] INFO: [a1] prep gave t-42" in proc.stdout  # relayed from the agent
    code, doc = cli_json("run", "-f", path, env=agents.env)
    t = tasks_by_name(doc)
    assert t["on_a1"]["message"] == "blue on_a1"  # the agent's environment, not ours
    assert t["on_a2"]["outputs"]["stdout"] == "green\n"
    assert t["after"]["message"] == "a1 saw t-42"  # outputs came back
    details = json.loads(cli("history", doc["run_id"], "-o", "json", env=agents.env).stdout)
    hosts = {a["task"]: a["host"] for a in details["attempts"]}
    assert (hosts["on_a1"], hosts["on_a2"]) == ("a1", "a2")
    assert hosts["prep"] == os.uname().nodename


def test_an_unknown_agent_fails_at_once_naming_the_agents_up(agents, workflow_file):
    agents("a1")
    path = workflow_file('task("t"):delegate_to("nowhere"):command("true"):build()')
    started = time.monotonic()
    code, doc = cli_json("run", "-f", path, env=agents.env)
    assert time.monotonic() - started < 10
    assert code == 4
    assert tasks_by_name(doc)["t"]["error"] == (
        "task 't' is delegated to agent 'nowhere', which is not up (agents up: a1)")


def test_without_a_broker_a_delegated_task_says_how_to_get_one(workflow_file, monkeypatch):
    monkeypatch.delenv("SLOTH_BROKER_URL", raising=False)
    path = workflow_file('task("t"):delegate_to("a1"):command("true"):build()\n'
                         'task("local"):command("true"):build()')
    code, doc = cli_json("run", "-f", path)
    t = tasks_by_name(doc)
    assert code == 4 and t["local"]["status"] == "success"
    assert "task 't' is delegated to agent 'a1', and broker: no broker: pass --broker" \
        in t["t"]["error"]


def test_a_timeout_kills_the_attempt_and_its_children_on_the_agent(agents, workflow_file,
                                                                   tmp_path):
    agents("a1")
    pidfile = tmp_path / "child.pid"
    path = workflow_file(f'''
        task("slow"):delegate_to("a1"):timeout("1s"):command(
            "sh -c 'echo $$ > {pidfile}; exec sleep 60' & wait"):build()
    ''')
    started = time.monotonic()
    code, doc = cli_json("run", "-f", path, env=agents.env)
    assert tasks_by_name(doc)["slow"]["status"] == "timeout"
    assert time.monotonic() - started < 15
    assert poll(lambda: pidfile.exists() and gone_or_zombie(int(pidfile.read_text())), 10)


def test_an_agent_killed_mid_task_is_reported_lost(agents, workflow_file, tmp_path):
    a1 = agents("a1")
    marker = tmp_path / "started"
    path = workflow_file(f'task("t"):delegate_to("a1"):command('
                         f'"sh -c \'echo $$ > {marker}; exec sleep 60\' & wait"):build()')
    killed: list[float] = []

    def kill_the_agent(run: Any) -> None:
        os.kill(a1.pid, signal.SIGKILL)  # the agent alone: what it started must go with it
        killed.append(time.monotonic())

    out = run_meanwhile(path, agents.env, lambda: marker.exists() and marker.read_text().strip(),
                        kill_the_agent, timeout=30).stdout
    assert time.monotonic() - killed[0] < 15  # heartbeats: lost after 6 s without one
    t = tasks_by_name(json.loads(out))["t"]
    assert t["status"] == "failed" and t["error"].startswith("agent a1 lost: no heartbeat")
    assert poll(lambda: gone_or_zombie(int(marker.read_text())), 10)  # no orphan left there


def test_the_broker_going_away_mid_run_fails_the_task_and_keeps_the_history(
        agents, workflow_file, tmp_path):
    agents("a1")
    marker = tmp_path / "started"
    path = workflow_file(f'''
        task("local"):command("true"):build()
        task("t"):depends_on("local"):delegate_to("a1"):command("touch {marker}; sleep 60")
            :build()
    ''')
    stopped: list[float] = []

    def stop_the_broker(run: Any) -> None:
        agents.redis.stop()
        stopped.append(time.monotonic())

    run = run_meanwhile(path, agents.env, marker.exists, stop_the_broker)
    out, err = run.stdout, run.stderr
    assert time.monotonic() - stopped[0] < 30 and run.returncode == 1, err
    t = tasks_by_name(json.loads(out))
    assert t["local"]["status"] == "success"
    assert t["t"]["status"] == "failed" and "the broker redis://127.0.0.1" in t["t"]["error"]
    assert "is unreachable" in t["t"]["error"]
    code, history = cli_json("history")
    assert code == 0 and history["runs"][0]["tasks"] == {"success": 1, "failed": 1}


def test_executor_celery_spreads_tasks_over_the_pool_agents(agents, workflow_file):
    agents("p1", "--pool", "--concurrency", "2")
    agents("p2", "--pool", "--concurrency", "2")
    agents("solo")  # not in the pool: takes nothing from it
    path = workflow_file('''
        for i = 1, 200 do
            task("t" .. i):command(function() return true, os.getenv("SLOTH_AGENT_NAME") end)
                :build()
        end
        task("pinned"):delegate_to("solo"):command(function()
            return true, os.getenv("SLOTH_AGENT_NAME")
        end):build()
    ''')
    code, doc = cli_json("run", "-f", path, "--executor", "celery", env=agents.env)
    assert code == 0
    t = tasks_by_name(doc)
    assert all(t[f"t{i}"]["status"] == "success" for i in range(1, 201))
    ran_on = {t[f"t{i}"]["message"] for i in range(1, 201)}
    assert ran_on == {"p1", "p2"}  # both pool agents took work; solo took none of it
    assert t["pinned"]["message"] == "solo"
    details = json.loads(cli("history", doc["run_id"], "-o", "json", env=agents.env).stdout)
    assert {a["host"] for a in details["attempts"]} == {"p1", "p2", "solo"}


def test_executor_celery_without_pool_agents_fails_at_once(agents, workflow_file):
    agents("a1")
    path = workflow_file('task("t"):command("true"):build()')
    code, doc = cli_json("run", "-f", path, "--executor", "celery", env=agents.env)
    assert code == 4
    assert tasks_by_name(doc)["t"]["error"] == (
        "task 't': --executor celery needs an agent started with --pool, and none is up "
        "(agents up: a1)")


class RunningAndQueued:
    """A file of two tasks on a1 (one slot), sent at once: one runs a grandchild (its pid in
    a file), the other waits in the queue and would write its own pid file if it ever started."""

    def __init__(self, workflow_file: Any, tmp_path: Any) -> None:
        self.pidfiles = [tmp_path / "one.pid", tmp_path / "two.pid"]
        self.path = workflow_file("\n".join(
            f'task("{name}"):delegate_to("a1"):command('
            f'"sh -c \'echo $$ > {pidfile}; exec sleep 60\' & wait"):build()'
            for name, pidfile in zip(("one", "two"), self.pidfiles, strict=True)))

    def started(self) -> list[int]:
        return [int(p.read_text()) for p in self.pidfiles if p.exists() and p.read_text().strip()]


def handled_by_now(agents: Any) -> bool:
    """Whatever a1's queue held is handled: a command sent after it has run (one slot, FIFO)."""
    return cli("agent", "exec", "a1", "true", "--timeout", "60", env=agents.env).returncode == 0


def test_ctrl_c_on_the_controller_kills_the_remote_attempt(agents, workflow_file, tmp_path):
    agents("a1")
    files = RunningAndQueued(workflow_file, tmp_path)
    run = run_meanwhile(files.path, agents.env, files.started,
                        lambda proc: proc.send_signal(signal.SIGINT), timeout=30)
    assert run.returncode == 130
    statuses = {t["status"] for t in tasks_by_name(json.loads(run.stdout)).values()}
    assert statuses == {"interrupted"}
    # the agent was told at once, and killed the attempt's whole tree
    assert poll(lambda: gone_or_zombie(files.started()[0]), 10)
    assert handled_by_now(agents) and len(files.started()) == 1  # the queued one never started


def test_a_killed_controller_s_attempts_are_stopped_and_its_queued_ones_never_start(
        agents, workflow_file, tmp_path):
    agents("a1")
    files = RunningAndQueued(workflow_file, tmp_path)
    run_meanwhile(files.path, agents.env, files.started, lambda proc: proc.kill(), timeout=30)
    # its key expires CONTROLLER_TTL_S (10 s) after its last refresh; the agent notices
    assert poll(lambda: gone_or_zombie(files.started()[0]), 20)
    assert handled_by_now(agents) and len(files.started()) == 1


def test_agent_stop_lets_the_running_attempt_finish(agents, workflow_file, tmp_path):
    a1 = agents("a1")
    marker = tmp_path / "started"
    path = workflow_file(f'task("t"):delegate_to("a1"):command("touch {marker}; sleep 2; '
                         f'echo done"):build()')
    def stop_the_agent(run: Any) -> None:
        assert cli("agent", "stop", "a1", env=agents.env).returncode == 0

    out = run_meanwhile(path, agents.env, marker.exists, stop_the_agent).stdout
    t = tasks_by_name(json.loads(out))["t"]
    assert t["status"] == "success" and t["outputs"]["stdout"] == "done\n"
    assert a1.wait(30) == 0  # and then it stopped
    assert "agent a1: stopping once its 1 running attempt(s) end" in agents.output("a1")
