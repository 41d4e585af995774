"""`sloth-runner run` as a user runs it: a real subprocess, real files, real exit codes."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

from tests.conftest import cli, cli_json, gone_or_zombie, poll, tasks_by_name

PIPELINE = '''
workflow.define("ci", {
    description = "build and test",
    tasks = {
        task("build"):command(function(params)
            return true, "built " .. params.version, {artifact = "app-" .. params.version}
        end):build(),
        task("test"):depends_on({"build"}):command(function(params, deps)
            return true, "tested " .. deps.build.artifact
        end):build(),
    },
})
'''


def test_success_json_document_shape(workflow_file):
    code, doc = cli_json("run", "-f", workflow_file(PIPELINE), "--param", "version=1.2")
    assert code == 0
    assert set(doc) >= {"run_id", "status", "workflows"} and doc["status"] == "success"
    (wf,) = doc["workflows"]
    assert (wf["name"], wf["status"]) == ("ci", "success")
    t = tasks_by_name(doc)
    assert set(t["build"]) >= {"name", "status", "attempts", "duration_s", "message", "outputs",
                               "error"}
    assert t["build"]["outputs"] == {"artifact": "app-1.2"}
    assert t["test"]["message"] == "tested app-1.2"


def test_failure_exit_code_and_skips(workflow_file):
    code, doc = cli_json("run", "-f", workflow_file('''
        task("a"):command("exit 2"):build()
        task("b"):depends_on("a"):command("true"):build()
        task("c"):command("true"):build()
    '''))
    assert code == 1 and doc["status"] == "failed"
    t = tasks_by_name(doc)
    assert t["a"]["status"] == "failed" and t["a"]["error"] == "exit code 2"
    assert t["b"]["status"] == "skipped" and "'a' failed" in t["b"]["message"]
    assert t["c"]["status"] == "success"


def test_timeout_status_in_json(workflow_file):
    code, doc = cli_json("run", "-f", workflow_file(
        'task("t"):timeout("0.2s"):command("sleep 5"):build()'))
    assert code == 1 and tasks_by_name(doc)["t"]["status"] == "timeout"


def test_load_errors_exit_2_with_file_line_and_no_traceback(workflow_file):
    path = workflow_file('task("a"):command(function() end)\n:bogus()\n')
    proc = cli("run", "-f", path)
    assert proc.returncode == 2
    assert f"{path}:2:" in proc.stderr and "no method 'bogus'" in proc.stderr
    assert "Traceback" not in proc.stderr
    code, doc = cli_json("run", "-f", path)
    assert code == 2 and doc["status"] == "error" and doc["error"].startswith(f"{path}:2:")


def test_cycle_exit_2(workflow_file):
    proc = cli("run", "-f", workflow_file('''
        task("a"):depends_on("b"):command("true"):build()
        task("b"):depends_on("a"):command("true"):build()
    '''))
    assert proc.returncode == 2 and "dependency cycle: a -> b -> a" in proc.stderr


def test_missing_file_and_usage_errors(tmp_path, workflow_file):
    proc = cli("run", "-f", str(tmp_path / "nope.lua"))
    assert proc.returncode == 2 and "no such file" in proc.stderr
    assert cli("run").returncode == 3
    assert cli("run", "-f", workflow_file(PIPELINE), "--max-parallel", "0").returncode == 3
    proc = cli("run", "-f", workflow_file(PIPELINE), "--param", "novalue")
    assert proc.returncode == 3 and "KEY=VALUE" in proc.stderr
    proc = cli("run", "-f", workflow_file(PIPELINE), "--task", "nosuch")
    assert proc.returncode == 3 and "no task named 'nosuch'" in proc.stderr
    proc = cli("bogus-command")
    assert proc.returncode == 3 and "Traceback" not in proc.stderr


def test_debug_shows_the_traceback(tmp_path):
    proc = cli("run", "-f", str(tmp_path / "nope.lua"), "--debug")
    assert proc.returncode == 2 and "Traceback" in proc.stderr


def test_values_file_and_params(workflow_file, tmp_path):
    values = tmp_path / "values.yaml"
    values.write_text("version: '9.9'\nreplicas: 3\n")
    code, doc = cli_json("run", "-f", workflow_file(PIPELINE), "--values", str(values))
    assert code == 0 and tasks_by_name(doc)["build"]["outputs"]["artifact"] == "app-9.9"
    code, doc = cli_json("run", "-f", workflow_file(PIPELINE), "--values", str(values),
                         "--param", "version=cli")
    assert tasks_by_name(doc)["build"]["outputs"]["artifact"] == "app-cli"
    values.write_text("- a list\n")
    proc = cli("run", "-f", workflow_file(PIPELINE), "--values", str(values))
    assert proc.returncode == 3 and "must contain a mapping" in proc.stderr


def test_task_selection_runs_dependencies_only(workflow_file):
    path = workflow_file('''
        task("a"):command("true"):build()
        task("b"):depends_on("a"):command("true"):build()
        task("c"):command("true"):build()
    ''')
    code, doc = cli_json("run", "-f", path, "--task", "b")
    assert code == 0 and sorted(tasks_by_name(doc)) == ["a", "b"]


def test_workflow_selection(workflow_file):
    path = workflow_file('''
        workflow.define("one", {tasks = {task("a"):command("true"):build()}})
        workflow.define("two", {tasks = {task("b"):command("true"):build()}})
    ''')
    code, doc = cli_json("run", "-f", path, "two")
    assert code == 0 and [w["name"] for w in doc["workflows"]] == ["two"]
    proc = cli("run", "-f", path, "twoo")  # a misspelt workflow is not taken as Go's stack name
    assert proc.returncode == 2 and "no workflow named 'twoo' (workflows: one, two)" in proc.stderr
    proc = cli("run", "-f", path, "one", "three")
    assert proc.returncode == 2 and "no workflow named 'three'" in proc.stderr


def test_dry_run_shows_waves_and_runs_nothing(workflow_file, tmp_path):
    marker = tmp_path / "ran"
    path = workflow_file(f'''
        task("a"):command("touch {marker}"):build()
        task("b"):depends_on("a"):command("true"):build()
    ''')
    proc = cli("run", "-f", path, "--dry-run")
    assert proc.returncode == 0 and "wave 1: a" in proc.stdout and "wave 2: b" in proc.stdout
    assert not marker.exists()
    assert cli_json("history")[1]["runs"] == []


def test_text_output_is_plain_when_piped(workflow_file):
    proc = cli("run", "-f", workflow_file(PIPELINE), "--param", "version=1")
    assert proc.returncode == 0
    assert "== workflow ci (2 tasks)" in proc.stdout
    assert "ok      build" in proc.stdout and "\x1b[" not in proc.stdout


def test_logs_go_to_stderr_in_json_mode(workflow_file):
    proc = cli("run", "-f", workflow_file('''
        task("t"):command(function() log.info("hello"); print("raw"); return true end):build()
    '''), "-o", "json")
    json.loads(proc.stdout)
    assert "[t] INFO: hello" in proc.stderr and "[t] raw" in proc.stderr


def test_sandbox_flag(workflow_file):
    proc = cli("run", "-f", workflow_file('io.open("/etc/hostname")\ntask("a"):command("true"):build()'),
               "--sandbox")
    assert proc.returncode == 2 and "wf.lua:1:" in proc.stderr


def test_history_records_runs_and_attempts(workflow_file):
    path = workflow_file('''
        local n = 0
        task("flaky"):retries(1, "fixed"):retry_delay(0):command(function()
            n = n + 1
            return n > 1, "attempt " .. n
        end):build()
    ''')
    code, doc = cli_json("run", "-f", path)
    assert code == 0
    _, hist = cli_json("history")
    (run,) = hist["runs"]
    assert run["run_id"] == doc["run_id"] and run["status"] == "success"
    assert run["tasks"] == {"success": 1}
    _, detail = cli_json("history", doc["run_id"][:6])
    assert [(a["attempt"], a["status"], a["message"]) for a in detail["attempts"]] == \
        [(1, "failed", "attempt 1"), (2, "success", "attempt 2")]
    text = cli("history").stdout
    assert doc["run_id"] in text and "success" in text


def test_state_cli_and_state_survives_runs(workflow_file):
    path = workflow_file('''
        task("count"):command(function()
            local n = state.increment("runs")
            state.set("last", {n = n, tags = {"x", "y"}})
            return true, tostring(n)
        end):build()
    ''')
    cli_json("run", "-f", path)
    code, doc = cli_json("run", "-f", path)
    assert tasks_by_name(doc)["count"]["message"] == "2"
    assert cli("state", "get", "runs").stdout.strip() == "2"
    assert json.loads(cli("state", "get", "last").stdout) == {"n": 2, "tags": ["x", "y"]}
    assert cli("state", "set", "cfg", '{"a": 1}').returncode == 0
    assert cli("state", "set", "name", "plain text").returncode == 0
    _, listing = cli_json("state", "list")
    assert listing == {"cfg": {"a": 1}, "last": {"n": 2, "tags": ["x", "y"]},
                       "name": "plain text", "runs": 2}
    assert cli("state", "delete", "cfg").returncode == 0
    proc = cli("state", "get", "cfg")
    assert proc.returncode == 3 and "no state key 'cfg'" in proc.stderr


def test_list_command(workflow_file):
    proc = cli("list", "-f", workflow_file(PIPELINE))
    assert proc.returncode == 0
    assert "ci - build and test" in proc.stdout and "test  (after build)" in proc.stdout
    code, doc = cli_json("list", "-f", workflow_file(PIPELINE))
    assert doc["workflows"][0]["tasks"][1]["depends_on"] == ["build"]


def test_kill_9_marks_run_interrupted_and_keeps_what_was_committed(workflow_file, sloth_home):
    path = workflow_file('''
        task("quick"):command("true"):build()
        task("slow"):depends_on("quick"):command("sleep 60"):build()
    ''')
    proc = subprocess.Popen([sys.executable, "-m", "sloth_runner", "run", "-f", path],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=dict(os.environ))
    db = sloth_home / "sloth.db"
    deadline = time.monotonic() + 20
    committed = False
    while time.monotonic() < deadline and not committed:
        time.sleep(0.05)
        if db.exists():
            try:
                with sqlite3.connect(db) as c:
                    committed = c.execute("SELECT count(*) FROM attempts WHERE task='quick'"
                                          ).fetchone()[0] == 1
            except sqlite3.OperationalError:
                pass
    assert committed
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    _, hist = cli_json("history")
    (run,) = hist["runs"]
    assert run["status"] == "interrupted" and run["tasks"] == {"success": 1}


def test_sigterm_stops_tasks_and_records_interrupted(workflow_file, tmp_path):
    pidfile = tmp_path / "child.pid"
    path = workflow_file(f'task("slow"):command("echo $$ > {pidfile}; exec sleep 60"):build()')
    proc = subprocess.Popen([sys.executable, "-m", "sloth_runner", "run", "-f", path],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=dict(os.environ))
    # The pid is written by the task's shell, so the task is running (and main() installed
    # the SIGTERM handler before anything ran): no grace sleep is needed.
    assert poll(lambda: pidfile.exists() and pidfile.read_text().strip(), 20)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(15) == 130
    child = int(pidfile.read_text())
    assert poll(lambda: gone_or_zombie(child), 5), "task process survived"
    assert cli_json("history")[1]["runs"][0]["status"] == "interrupted"


def test_heavy_modules_are_not_imported(workflow_file):
    path = workflow_file(PIPELINE)
    code = ("import sys\nfrom sloth_runner.cli.main import main\n"
            f"rc = main(['run', '-f', {path!r}, '--param', 'version=1', '-o', 'json'])\n"
            "heavy = sorted(m for m in ('rich', 'openai', 'llama_cpp', 'httpx', 'yaml',"
            " 'concurrent.futures', 'dataclasses', 'urllib.request', 'http.client', 'boto3',"
            " 'botocore', 'hashlib', 'regex', 'sloth_runner.ai.client',"
            " 'sloth_runner.isolation.pool', 'sloth_runner.freshness', 'socket',"
            " 'sloth_runner.services.aws', 'sloth_runner.services.hostmetrics', 'subprocess',"
            " 'celery', 'redis', 'kombu', 'sloth_runner.agents.delegate', 'starlette',"
            " 'jinja2', 'uvicorn', 'croniter', 'sloth_runner.ui.app', 'opentelemetry',"
            " 'sloth_runner.tracing.tracer')"
            " if m in sys.modules)\n"
            "print('HEAVY', heavy, file=sys.stderr)\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}  # tracing off
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert "HEAVY []" in proc.stderr, proc.stderr


def test_a_parameter_that_is_not_utf8_reaches_lua_as_its_bytes(workflow_file):
    path = workflow_file('''
        task("p"):command(function(p) return true, "len " .. #p.x .. " byte " .. p.x:byte(2) end)
            :build()
        task("q"):command(function() return true end):build()
    ''')
    proc = subprocess.run([sys.executable, "-m", "sloth_runner", "run", "-f", path, "-o", "json",
                           "--param", b"x=a\xffb"], capture_output=True)
    assert proc.returncode == 0, proc.stderr
    tasks = tasks_by_name(json.loads(proc.stdout))
    assert tasks["p"]["message"] == "len 3 byte 255"  # the very bytes, not a replacement
    assert tasks["q"]["status"] == "success"
