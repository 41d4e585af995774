"""An alert's severity decides the level of the log line that shows it when no webhook is set."""

from __future__ import annotations

import pytest

from sloth_runner.services.notify import SEVERITY_LEVELS, log_level_for
from tests.conftest import cli


@pytest.mark.parametrize(("severity", "level"), [
    ("info", "info"), ("warning", "warn"), ("warn", "warn"), ("error", "error"),
    ("critical", "error"), ("CRITICAL", "error"), ("Warning", "warn"),
])
def test_log_level_follows_the_severity(severity, level):
    assert log_level_for(severity) == level


@pytest.mark.parametrize("severity", ["fatal", "", "debug", "high", None, 3])
def test_an_unknown_severity_is_refused_naming_the_allowed_ones(severity):
    with pytest.raises(ValueError) as info:
        log_level_for(severity)
    assert str(info.value) == (f"notifications.send_alert: unknown severity {severity!r} "
                               "(allowed: info, warning, warn, error, critical)")
    assert list(SEVERITY_LEVELS) == ["info", "warning", "warn", "error", "critical"]


def test_a_workflow_alert_is_logged_at_its_severity_level(workflow_file):
    path = workflow_file('''
        task("t"):command(function()
            notifications.send_alert("disk at 70%", {severity = "info"})
            notifications.send_alert("disk at 85%", {severity = "warning"})
            notifications.send_alert("disk full")
            return true
        end):build()
        task("bad"):command(function()
            notifications.send_alert("x", {severity = "fatal"})
            return true
        end):build()
    ''')
    proc = cli("run", "-f", path, env={"SLOTH_ALERT_WEBHOOK": ""})
    out = proc.stdout + proc.stderr
    assert "[t] INFO: ALERT (info): disk at 70%" in out
    assert "[t] WARN: ALERT (warning): disk at 85%" in out
    assert "[t] ERROR: ALERT (critical): disk full" in out
    assert proc.returncode == 1
    assert "unknown severity 'fatal' (allowed: info, warning, warn, error, critical)" in out
