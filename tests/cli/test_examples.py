"""examples/code_review.lua on a real repository, offline, on the bundled model."""

from __future__ import annotations

from tests.conftest import ROOT, cli, cli_json, tasks_by_name
from tests.services.test_integrations import make_repo

EXAMPLE = str(ROOT / "examples" / "code_review.lua")


def test_code_review_example_reviews_triages_and_alerts_consistently(tmp_path):
    run_git = make_repo(tmp_path)
    (tmp_path / "config.py").write_text('DB_PASSWORD = "hunter2-prod"\n')
    run_git("add", ".")
    run_git("commit", "-qm", "third")
    code, doc = cli_json("run", "-f", EXAMPLE, cwd=tmp_path, timeout=300,
                         env={"SLOTH_ALERT_WEBHOOK": ""})
    tasks = tasks_by_name(doc)
    assert code == 0, doc
    assert tasks["collect"]["outputs"]["files"] == ["config.py"]
    severity = tasks["review"]["outputs"]["severity"]
    assert severity in ("low", "medium", "high", "critical")
    serious = severity in ("high", "critical")
    assert tasks["alert"]["status"] == ("success" if serious else "skipped")
    calls = cli("ai", "logs", "-o", "json", cwd=tmp_path).stdout
    assert "config.py" in calls and "hunter2-prod" not in calls  # the diff was scrubbed
