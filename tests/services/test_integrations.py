import json
import os
import subprocess

import pytest

from sloth_runner.errors import IntegrationError
from sloth_runner.services import git, hostmetrics, notify
from tests.http_sink import HttpSink


@pytest.fixture
def sink():
    s = HttpSink()
    yield s
    s.stop()


def make_repo(path):
    def run(*args):
        subprocess.run(["git", *args], cwd=path, check=True, capture_output=True,
                       env={**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@x",
                            "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@x"})

    run("init", "-q", "-b", "main")
    (path / "app.py").write_text("print('v1')\n")
    (path / "README").write_text("hello\n")
    run("add", ".")
    run("commit", "-qm", "first")
    (path / "app.py").write_text("print('v2')\n")
    (path / "new.txt").write_text("x\n")
    run("add", ".")
    run("commit", "-qm", "second")
    return run


def test_git_diff_and_changed_files_of_a_real_repository(tmp_path):
    make_repo(tmp_path)
    d = git.diff("HEAD~1", "HEAD", cwd=str(tmp_path))
    assert "-print('v1')" in d and "+print('v2')" in d and "new.txt" in d
    assert git.changed_files(cwd=str(tmp_path)) == ["app.py", "new.txt"]
    assert git.current_branch(cwd=str(tmp_path)) == "main"
    assert len(git.head_commit(cwd=str(tmp_path))) == 40


def test_git_errors_say_what_failed_and_hint_at_shallow_clones(tmp_path, monkeypatch):
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))  # tmp may sit in a repo
    with pytest.raises(IntegrationError, match=r"git diff HEAD~1 HEAD failed: .*not a git repository"):
        git.diff(cwd=str(tmp_path))
    make_repo(tmp_path)
    with pytest.raises(IntegrationError, match=r"bad revision 'HEAD~5'.*shallow clone"):
        git.changed_files("HEAD~5", cwd=str(tmp_path))
    with pytest.raises(IntegrationError, match="is not a revision"):
        git.diff("--output=/tmp/x", cwd=str(tmp_path))


def test_load_metrics_read_the_kernel_counters():
    m = hostmetrics.load_metrics()
    assert m["cpu_count"] == os.cpu_count()
    assert abs(m["load_1m"] - os.getloadavg()[0]) < 2
    assert 0 < m["memory_used_percent"] < 100
    assert 0 <= m.get("disk_used_percent", 0) <= 100  # some container roots report no blocks
    with open("/proc/meminfo") as f:
        total_kb = int(f.readline().split()[1])
    assert m["memory_total_mb"] == round(total_kb / 1024)


def test_health_is_the_worst_of_host_and_http_checks(sink):
    sink.statuses["/down"] = 503
    up = hostmetrics.health([sink.url("/up?token=s3cret")])
    http = up["checks"][-1]
    assert http["status"] == "healthy" and http["http_status"] == 200
    assert "s3cret" not in json.dumps(up)  # query strings may hold secrets
    down = hostmetrics.health([sink.url("/up"), sink.url("/down")])
    assert down["status"] == "unhealthy" and down["healthy"] is False
    assert [c["http_status"] for c in down["checks"][-2:]] == [200, 503]
    sink.stop()
    gone = hostmetrics.health([sink.url("/up")], timeout=1)
    assert gone["checks"][-1]["status"] == "unhealthy"
    assert gone["checks"][-1]["detail"].startswith("no answer")


def test_alert_webhook_gets_the_text_and_failures_hide_the_url(sink):
    result = notify.post_alert(sink.url("/hooks/T000/B000/XXXX"), "disk full")
    assert result == {"sent": True, "channel": "webhook", "http_status": 200,
                      "destination": "127.0.0.1"}
    assert json.loads(sink.requests[0]["body"]) == {"text": "disk full"}
    sink.statuses["/hooks/T000/B000/XXXX"] = 404
    with pytest.raises(IntegrationError, match="answered HTTP 404") as err:
        notify.post_alert(sink.url("/hooks/T000/B000/XXXX"), "disk full")
    assert "XXXX" not in str(err.value)
