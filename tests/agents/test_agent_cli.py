"""`sloth-runner agent …` against a real Redis on 127.0.0.1, with real agents (Celery workers)
as subprocesses."""

from __future__ import annotations

import os
import signal

import pytest

from sloth_runner.agents import broker
from sloth_runner.errors import ConfigError
from tests.agents.conftest import listed
from tests.conftest import cli, gone_or_zombie, poll


def test_broker_urls_are_checked_and_never_shown_with_their_password(monkeypatch, tmp_path):
    assert broker.mask("redis://:s3cret@10.0.0.5:6379/0") == "redis://:***@10.0.0.5:6379/0"
    assert broker.mask("rediss://ops:tok@redis.example.com/1") == \
        "rediss://ops:***@redis.example.com/1"
    broker.check("redis://127.0.0.1:6379/0")  # loopback: no password needed
    broker.check("redis://:pw@10.0.0.5/0")
    broker.check("redis://10.0.0.5/0", insecure=True)
    with pytest.raises(ConfigError, match="has no password, and whoever can write"):
        broker.check("redis://10.0.0.5:6379/0")
    with pytest.raises(ConfigError, match="only Redis brokers"):
        broker.check("amqp://guest:guest@localhost//")
    monkeypatch.delenv("SLOTH_BROKER_URL", raising=False)
    proc = cli("agent", "list")
    assert proc.returncode == 3 and "no broker: pass --broker" in proc.stderr
    proc = cli("agent", "list", "--broker", "redis://:hunter2@10.9.8.7:1/0")
    assert "hunter2" not in proc.stdout + proc.stderr and proc.returncode != 0
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "agents.yaml").write_text("broker: redis://10.1.1.1:6379/0\n")
    proc = cli("agent", "list", env={"SLOTH_RUNNER_HOME": str(tmp_path / "home")})
    assert proc.returncode == 3 and "broker in agents.yaml: redis://10.1.1.1" in proc.stderr


def test_start_list_exec_and_stop(agents, tmp_path):
    a1 = agents("a1", "--concurrency", "2")
    agents("a2", "--pool")
    env = agents.env
    found = listed(env)
    assert (found["a1"]["slots"], found["a1"]["pool"], found["a2"]["pool"]) == (2, False, True)
    text = cli("agent", "list", env=env).stdout
    assert text.splitlines()[0].split()[:4] == ["NAME", "HOST", "ADDRESS", "VERSION"]
    assert " up" in text

    proc = cli("agent", "exec", "a1", "echo one; echo two >&2; echo $SLOTH_AGENT_NAME; exit 3",
               env=env)
    assert proc.returncode == 3
    assert proc.stdout == "one\ntwo\na1\n"  # its output, streamed, and it ran on a1

    pidfile = tmp_path / "grandchild.pid"
    proc = cli("agent", "exec", "a2", f"sh -c 'echo $$ > {pidfile}; exec sleep 60' & wait",
               "--timeout", "1", env=env)
    assert proc.returncode != 0 and "killed after 1s" in proc.stderr
    assert poll(lambda: pidfile.exists() and gone_or_zombie(int(pidfile.read_text())), 10)

    proc = cli("agent", "exec", "nobody", "true", env=env)
    assert proc.returncode == 3
    assert "agent 'nobody' is not up (agents up: a1, a2)" in proc.stderr

    assert cli("agent", "stop", "a1", env=env).returncode == 0
    a1.wait(30)
    assert listed(env)["a1"]["status"] == "stopped"


def test_a_killed_agent_is_reported_lost(agents):
    a3 = agents("a3")
    os.killpg(a3.pid, signal.SIGKILL)
    a3.wait(10)
    # its last heartbeat ages past LOST_AFTER_S (6 s): bounded, not a wait on a queue
    assert poll(lambda: listed(agents.env)["a3"]["status"] == "lost", 15)
