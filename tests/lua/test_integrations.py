"""git, monitoring and notifications as a workflow sees them, through the real CLI."""

from __future__ import annotations

import json

import pytest

from tests.conftest import cli, cli_json, tasks_by_name
from tests.http_sink import HttpSink
from tests.services.test_integrations import make_repo


@pytest.fixture
def sink():
    s = HttpSink()
    yield s
    s.stop()


WORKFLOW = '''
    task("review"):workdir(%r):command(function()
        local git = require("git")
        local files = git.get_changed_files()
        local diff = git.get_diff("HEAD~1", "HEAD")
        local load = monitoring.get_load_metrics()
        local health = monitoring.get_health(%r)
        local alert = notifications.send_alert("deploy blocked: password=hunter2 in " .. files[1])
        return true, "reviewed", {
            files = files, has_v2 = diff:find("v2", 1, true) ~= nil, branch = git.current_branch(),
            cpus = load.cpu_count, health = health.status, sent = alert.sent,
            channel = alert.channel,
        }
    end):build()
'''


def test_a_workflow_reads_git_checks_health_and_alerts_a_webhook(tmp_path, workflow_file, sink):
    repo = tmp_path / "repo"
    repo.mkdir()
    make_repo(repo)
    path = workflow_file(WORKFLOW % (str(repo), sink.url("/healthz")))
    hook = sink.url("/hooks/T1/B2/secretpart")
    code, doc = cli_json("run", "-f", path, env={"SLOTH_ALERT_WEBHOOK": hook})
    out = tasks_by_name(doc)["review"]["outputs"]
    assert code == 0, doc
    assert out["files"] == ["app.py", "new.txt"] and out["has_v2"] is True
    assert out["branch"] == "main" and out["cpus"] >= 1
    assert out["sent"] is True and out["channel"] == "webhook"
    posted = [r for r in sink.requests if r["method"] == "POST"]
    text = json.loads(posted[0]["body"])["text"]
    assert text.startswith("[sloth-runner] CRITICAL in default/review: deploy blocked: password=")
    assert "hunter2" not in text and "[REDACTED:" in text  # alerts leave the machine: scrubbed
    assert any(r["path"] == "/healthz" for r in sink.requests)


def test_without_a_webhook_the_alert_goes_to_the_run_output(tmp_path, workflow_file, sink):
    repo = tmp_path / "repo"
    repo.mkdir()
    make_repo(repo)
    path = workflow_file(WORKFLOW % (str(repo), sink.url("/healthz")))
    proc = cli("run", "-f", path, env={"SLOTH_ALERT_WEBHOOK": ""})
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout + proc.stderr
    assert "ALERT (critical): deploy blocked: password=[REDACTED:" in out
    assert "hunter2" not in out


def test_integration_failures_fail_the_task_with_file_line(tmp_path, workflow_file, sink):
    sink.statuses["/hook"] = 500
    path = workflow_file(f'''
        task("g"):workdir({str(tmp_path)!r}):command(function()
            return true, git.get_diff()
        end):build()
        task("n"):command(function()
            notifications.send_alert("x")
            return true
        end):build()
    ''')
    code, doc = cli_json("run", "-f", path, env={"SLOTH_ALERT_WEBHOOK": sink.url("/hook"),
                                                 "GIT_CEILING_DIRECTORIES": str(tmp_path.parent)})
    tasks = tasks_by_name(doc)
    assert code == 1
    assert tasks["g"]["error"].startswith(f"{path}:3: git diff HEAD~1 HEAD failed: ")
    assert tasks["n"]["error"] == (f"{path}:6: notifications: the alert webhook at 127.0.0.1 "
                                   "answered HTTP 500; the alert was not delivered")
