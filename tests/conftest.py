"""Every test gets its own SLOTH_RUNNER_HOME and a clean environment; helpers run the real CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from sloth_runner.engine.events import Listener
from sloth_runner.running import Run

ROOT = Path(__file__).resolve().parent.parent
# Every subprocess a test starts (python -m sloth_runner, python -c ...) imports the code of
# this checkout, even when the installed package is another one (an editable install of
# another clone, say).
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))


@pytest.fixture(autouse=True)
def sloth_home(tmp_path, monkeypatch):
    home = tmp_path / "sloth-home"
    monkeypatch.setenv("SLOTH_RUNNER_HOME", str(home))
    for var in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "SLOTH_AI_PROVIDER", "SLOTH_AI_MODEL",
                "SLOTH_AI_TIMEOUT", "SLOTH_AI_RETRIES"):
        monkeypatch.delenv(var, raising=False)
    for var in [v for v in os.environ if v.startswith("OTEL_")]:  # a developer's collector
        monkeypatch.delenv(var)
    return home


@pytest.fixture
def workflow_file(tmp_path):
    """Write Lua source (dedented) to a file and return its path as a string."""

    def write(source: str, name: str = "wf.lua") -> str:
        path = tmp_path / name
        path.write_text(textwrap.dedent(source))
        return str(path)

    return write


class Recorder(Listener):
    def __init__(self) -> None:
        self.logs: list[tuple[str, str, str | None]] = []
        self.attempts = []

    def log(self, level, message, workflow, task):
        self.logs.append((level, message, task))

    def attempt_finished(self, record):
        self.attempts.append(record)


@pytest.fixture
def load():
    """Load a workflow file the way the CLI does (a Run); returns (Run, Recorder). The Run's
    `workflows` are the engine objects; its `execute()` runs them."""
    runs: list[Run] = []

    def _load(path: str, sandbox: bool = False, **options):
        recorder = Recorder()
        run = Run(path, listener=recorder, sandbox=sandbox, **options)
        runs.append(run)
        run.load()
        return run, recorder

    yield _load
    for run in runs:
        run.close()


def cli(*args: str, cwd: str | Path | None = None, env: dict | None = None,
        timeout: float = 60) -> subprocess.CompletedProcess:
    """Run the real command in a subprocess (python -m sloth_runner)."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "sloth_runner", *args], capture_output=True,
                          text=True, cwd=cwd, env=full_env, timeout=timeout)


def cli_json(*args: str, **kwargs) -> tuple[int, dict]:
    proc = cli(*args, "-o", "json", **kwargs)
    return proc.returncode, json.loads(proc.stdout)


def task_message_run_elsewhere(tmp_path: Path, path: Path, task: str = "t") -> str:
    """Run `path` from another directory (as cron runs jobs) and return `task`'s message,
    after checking the run succeeded: paths in the file must not depend on the cwd."""
    elsewhere = tmp_path / "cron"
    elsewhere.mkdir(exist_ok=True)
    code, doc = cli_json("run", "-f", str(path), cwd=elsewhere)
    assert code == 0, doc
    return tasks_by_name(doc)[task]["message"]


def tasks_by_name(document: dict, workflow: int = 0) -> dict[str, dict]:
    return {t["name"]: t for t in document["workflows"][workflow]["tasks"]}


def poll(condition, timeout: float) -> bool:
    """True as soon as `condition()` holds; False if it still does not after `timeout` s."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def gone_or_zombie(pid: int) -> bool:
    """The process has ended (a zombie has ended too: only its parent has not reaped it)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def serving(make):
    """Body of a session fixture for a test server: start it, hand it out, stop it."""
    server = make()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_session():
    from tests.redis_server import RedisServer

    server = RedisServer()
    yield server
    server.close()


@pytest.fixture
def redis_server(redis_session):
    """A real Redis on 127.0.0.1, emptied, running (a test may have stopped it)."""
    if redis_session.proc is None:
        redis_session.start()
    redis_session.flush()
    return redis_session


@pytest.fixture(scope="session")
def aws_server_session():
    from tests.aws_server import AWSServer

    yield from serving(AWSServer)


@pytest.fixture
def aws_server(aws_server_session, monkeypatch):
    """moto on 127.0.0.1, emptied, with boto3 in this process and in subprocesses pointed at it."""
    aws_server_session.reset()
    for key in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_REGION"):
        monkeypatch.delenv(key, raising=False)
    for key, value in aws_server_session.env.items():
        monkeypatch.setenv(key, value)
    return aws_server_session


@pytest.fixture(scope="session")
def fault_server():
    from tests.ai.fault_server import FaultServer

    yield from serving(FaultServer)


@pytest.fixture
def server(fault_server):
    """The fault-injecting OpenAI-compatible server, its script and reply reset."""
    fault_server.play()
    fault_server.reply = "reply text"
    return fault_server



def pytest_sessionfinish(session, exitstatus):
    # llama_cpp opens /dev/null twice at import and never closes it; tests that load the model
    # in-process would otherwise end with ResourceWarnings printed at interpreter shutdown.
    utils = sys.modules.get("llama_cpp._utils")
    for name in ("outnull_file", "errnull_file"):
        handle = getattr(utils, name, None)
        if handle is not None:
            handle.close()
