"""A home filled by real runs (successes, retries, failures, a secret in an output, an output
past the in-memory cap, an AI call on the bundled model), and the dashboard over it: in-process
(Starlette's TestClient) and as a real `sloth-runner ui` server on 127.0.0.1."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from tests.conftest import ROOT, cli, poll

SECRET = "hunter2-SECRET-value-0123456789"

FILES = {
    "ok.lua": f'''
        task("fetch"):command(function() return true, "fetched" end):build()
        task("build"):depends_on("fetch"):command("echo building; echo password={SECRET}")
            :build()
        task("ship"):depends_on("build"):command(function() return true, "shipped" end):build()
    ''',
    "flaky.lua": '''
        task("flaky"):retries(2, "fixed"):retry_delay(0):command(function()
            local f = io.open(os.getenv("MARKER"), "r")
            if f then f:close(); return true, "second time lucky" end
            io.open(os.getenv("MARKER"), "w"):close()
            return false, "first try fails"
        end):build()
        task("broken"):command("echo about to fail >&2; exit 3"):build()
        task("after_broken"):depends_on("broken"):command("true"):build()
    ''',
    "ai.lua": '''
        ai.configure({log_prompts = true})
        task("ask"):command(function()
            local r = ai.complete({prompt = "Say hello.", max_tokens = 6})
            local d = ai.decide({options = {"restart", "wait"}, error = "disk full"})
            return true, "asked"
        end):build()
    ''',
    "big.lua": '''
        task("loud"):command("head -c 1500000 /dev/zero | tr '\\\\0' 'x'; echo; echo the end")
            :build()
    ''',
}


@pytest.fixture(scope="module")
def filled_home(tmp_path_factory):
    """(home, {file name: its path}) after one run of each file."""
    base = tmp_path_factory.mktemp("ui")
    home, files = base / "home", {}
    env = {**os.environ, "SLOTH_RUNNER_HOME": str(home), "MARKER": str(base / "marker")}
    for var in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "SLOTH_AI_PROVIDER", "SLOTH_AI_MODEL"):
        env.pop(var, None)
    for name, source in FILES.items():
        path = base / name
        path.write_text(textwrap.dedent(source))
        files[name] = str(path)
        proc = cli("run", "-f", str(path), env=env)
        assert proc.returncode in (0, 1), proc.stdout + proc.stderr
    return home, files


@pytest.fixture
def home(filled_home, monkeypatch):
    """The filled home, as this test's home."""
    monkeypatch.setenv("SLOTH_RUNNER_HOME", str(filled_home[0]))
    return filled_home[0]


@pytest.fixture
def client(home):
    from starlette.testclient import TestClient

    from sloth_runner.ui.app import Settings, make_app

    with TestClient(make_app(Settings()), base_url="http://127.0.0.1") as c:
        yield c


class UIServer:
    """`sloth-runner ui` as a subprocess on a free port of 127.0.0.1; stopped at the end."""

    def __init__(self, home: str, *flags: str, command: str = "ui") -> None:
        from tests.ai.llama_server import free_port

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "SLOTH_RUNNER_HOME": str(home), "PYTHONPATH": ROOT}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "sloth_runner", command, "--port", str(self.port), *flags],
            env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            start_new_session=True)
        self.first_line = self.proc.stdout.readline() if self.proc.stdout else ""
        assert poll(self.answers, 20), self.first_line

    def answers(self) -> bool:
        import urllib.request

        try:
            with urllib.request.urlopen(self.url + "/static/app.css", timeout=1) as r:
                return r.status == 200
        except OSError:
            return False

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        if self.proc.stdout:
            self.proc.stdout.close()


@pytest.fixture
def ui_server(home):
    server = UIServer(str(home))
    yield server
    server.stop()
