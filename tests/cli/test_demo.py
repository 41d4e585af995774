"""The demo that README's quick start runs: it must keep working, offline, on the bundled model."""

from __future__ import annotations

from tests.conftest import ROOT, cli, cli_json, tasks_by_name

DEMO = str(ROOT / "examples" / "demo.lua")


def test_the_demo_runs_offline_with_ai(tmp_path):
    code, doc = cli_json("run", "-f", DEMO, cwd=tmp_path, timeout=300)
    tasks = tasks_by_name(doc)
    assert code == 0 and doc["status"] == "success", doc
    assert set(tasks) == {"lint", "unit_tests", "package", "smoke_test", "release_notes",
                          "rollout_plan"}
    assert tasks["smoke_test"]["attempts"] == 2  # the retry the demo shows off
    assert tasks["release_notes"]["outputs"]["notes"].strip()
    assert tasks["rollout_plan"]["outputs"]["strategy"] in ("canary", "blue_green", "rolling")
    history = cli("history", cwd=tmp_path).stdout
    assert doc["run_id"] in history and "success" in history
