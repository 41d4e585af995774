"""Agents (Celery workers, as subprocesses) on a real Redis for the agent tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from tests.conftest import ROOT, cli, poll


def listed(env: dict) -> dict:
    """`agent list -o json` by name ({} when the broker cannot be read)."""
    proc = cli("agent", "list", "-o", "json", env=env)
    return {a["name"]: a for a in json.loads(proc.stdout)["agents"]} if proc.returncode == 0 \
        else {}


@pytest.fixture
def agents(redis_server, tmp_path):
    """`start(name, *agent_start_flags, color=...)`: an agent with its own home and working
    folder, and AGENT_COLOR in its environment (the controller's is never sent), up before it
    returns; `start.output(name)` is what it printed. All are killed (their process groups) at the end of the test."""
    started: list[subprocess.Popen] = []
    env = {**os.environ, "SLOTH_BROKER_URL": redis_server.url, "PYTHONPATH": ROOT}

    def start(name: str, *extra: str, color: str | None = None) -> subprocess.Popen:
        home = tmp_path / f"agent-{name}"
        home.mkdir(exist_ok=True)
        with (tmp_path / f"agent-{name}.log").open("w") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "sloth_runner", "agent", "start", "--name", name, *extra],
                env={**env, "AGENT_COLOR": color or name, "SLOTH_RUNNER_HOME": str(home)},
                cwd=home, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True)
        started.append(proc)
        assert poll(lambda: listed(env).get(name, {}).get("status") == "up", 30), name
        return proc

    start.env = env
    start.output = lambda name: (tmp_path / f"agent-{name}.log").read_text()
    start.redis = redis_server
    yield start
    for proc in started:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(10)
