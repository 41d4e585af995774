"""`sloth-runner analyze` over a real history written by real runs."""

from __future__ import annotations

from tests.conftest import cli, cli_json

FLAKY = '''
    task("fetch"):retries(2, "fixed"):retry_delay("10ms"):command(function()
        if state.increment("n") % 2 == 1 then return false, "upstream 503" end
        return true
    end):build()
    task("migrate"):retries(1, "fixed"):retry_delay("10ms"):command("exit 1"):build()
'''


def test_analyze_reads_retry_advice_and_failures_from_history(workflow_file):
    path = workflow_file(FLAKY)
    for _ in range(4):
        assert cli("run", "-f", path).returncode == 1
    code, doc = cli_json("analyze", "--type", "retry_advice", "--type", "failure_correlation")
    assert code == 0 and doc["attempts"] == 16  # 4 runs x (2 fetch + 2 migrate attempts)
    by = {(p["type"], p.get("task")): p for p in doc["patterns"]}
    assert by[("retry_advice", "default/fetch")]["description"] == (
        "default/fetch: retries recovered 4 of 4 retried failures (needing up to 1 retry)")
    assert by[("retry_advice", "default/migrate")]["recommendation"].startswith(
        "drop its :retries()")
    assert by[("failure_correlation", "default/migrate")]["evidence"]["failures"] == 4
    assert {p["type"] for p in doc["patterns"]} == {"retry_advice", "failure_correlation"}
    text = cli("analyze", "--min-confidence", "0.5").stdout
    assert "retry_advice         default/fetch: retries recovered 4 of 4" in text
    assert "-> keep :retries(1)" in text


def test_analyze_with_no_history_and_bad_flags():
    assert cli("analyze").stdout == "no task attempts recorded in the last 30d\n"
    bad = cli("analyze", "--since", "fortnight")
    assert bad.returncode == 3 and "--since: bad duration 'fortnight'" in bad.stderr
    assert cli("analyze", "--type", "vibes").returncode == 3
