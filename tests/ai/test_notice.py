"""The bundled-model notice: at most once per SLOTH_RUNNER_HOME per day, never on stdout."""

from __future__ import annotations

import json
import os
import time

from sloth_runner.ai import client
from sloth_runner.ai.client import AIService
from tests.conftest import cli

BUNDLED = "no AI provider configured"


def unconfigured(notices: list[str]) -> AIService:
    return AIService(environ={}, notice=notices.append)


def test_the_bundled_model_notice_shows_once_per_home_per_day():
    notices: list[str] = []
    for _ in range(3):  # three runs, the same day, the same home
        service = unconfigured(notices)
        assert service.settings().source == "bundled"
        service.settings("local")
    assert [n for n in notices if BUNDLED in n] == [notices[0]] and len(notices) == 1
    marker = client.notice_marker("bundled")
    assert marker.startswith(os.environ["SLOTH_RUNNER_HOME"])
    with open(marker, "w") as fh:  # as if the last notice was yesterday
        fh.write(time.strftime("%Y-%m-%d", time.localtime(time.time() - 86400)))
    unconfigured(notices).settings()
    assert len(notices) == 2


def test_the_notice_goes_to_stderr_never_into_the_json_on_stdout(workflow_file):
    path = workflow_file('''
        task("t"):command(function()
            return true, ai.complete({prompt = "Say hi", max_tokens = 2}).provider
        end):build()
    ''')
    first = cli("run", "-f", path, "-o", "json")
    assert first.returncode == 0, first.stderr
    doc = json.loads(first.stdout)  # stdout is the JSON document and nothing else
    assert doc["workflows"][0]["tasks"][0]["message"] == "local"
    assert BUNDLED in first.stderr and BUNDLED not in first.stdout
    second = cli("run", "-f", path, "-o", "json")
    assert second.returncode == 0 and BUNDLED not in second.stderr + second.stdout
