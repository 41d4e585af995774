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


def test_analyze_reads_retry_advice_from_a_real_history(workflow_file):
    path = workflow_file(FLAKY)
    runs = 16  # 0 recoveries in 16 is below a 30 % recovery rate with p = 0.003
    for _ in range(runs):
        assert cli("run", "-f", path).returncode == 1
    code, doc = cli_json("analyze", "--type", "retry_advice")
    assert code == 0 and doc["attempts"] == 4 * runs  # 2 fetch + 2 migrate attempts a run
    by = {p["task"]: p for p in doc["patterns"]}
    fetch, migrate = by["default/fetch"], by["default/migrate"]
    assert fetch["description"].startswith(
        f"default/fetch: retries recovered {runs} of {runs} retried failures (needing up to 1)")
    assert fetch["evidence"]["backoff_s"] >= 0.01 * runs  # the recorded waits are counted
    assert migrate["recommendation"].startswith("drop its :retries()")
    assert all(p["confidence"] >= 0.99 and p["evidence"]["q_value"] <= 0.01
               for p in doc["patterns"])
    text = cli("analyze").stdout
    assert "retry_advice         default/fetch: retries recovered" in text
    assert "-> keep :retries(1)" in text


def test_each_attempt_records_what_the_analyses_need(workflow_file, sloth_home):
    import sqlite3

    path = workflow_file(FLAKY)
    code, doc = cli_json("run", "-f", path, "--param", "target=arm64")
    db = sqlite3.connect(sloth_home / "sloth.db")
    db.row_factory = sqlite3.Row
    run = db.execute("SELECT * FROM runs WHERE id = ?", (doc["run_id"],)).fetchone()
    assert len(run["params_hash"]) == 16 and run["git_commit"] is None  # not a git folder
    rows = {(r["task"], r["attempt"]): r for r in
            db.execute("SELECT * FROM attempts WHERE run_id = ?", (doc["run_id"],))}
    first, second = rows[("migrate", 1)], rows[("migrate", 2)]
    assert first["backoff_s"] is None and 0.005 <= second["backoff_s"] < 5
    assert second["error_template"] == "exit code <n>"
    assert first["load_1m"] is not None and first["mem_free_mb"] > 0
    assert rows[("fetch", 1)]["max_rss_kb"] is None  # pure Lua: no child, no memory figure
    db.close()


def test_analyze_with_no_history_and_bad_flags():
    assert cli("analyze").stdout == "no task attempts recorded in the last 30d\n"
    bad = cli("analyze", "--since", "fortnight")
    assert bad.returncode == 3 and "--since: bad duration 'fortnight'" in bad.stderr
    assert cli("analyze", "--type", "vibes").returncode == 3


def test_a_short_healthy_history_has_nothing_to_report(workflow_file):
    """The issue's new user: jitter of milliseconds, the runner's own memory and tiny
    deviations are no trends, no resource patterns and no anomalies."""
    import sloth_runner

    path = workflow_file('''
        task("lua"):command(function() local t = {} for i = 1, 2000 do t[i] = i end end):build()
        task("sh"):command("true"):build()
        task("nap"):command(function() exec.run("sleep 0.0" .. math.random(1, 5)) end):build()
    ''')
    for _ in range(14):
        assert sloth_runner.run(path).status == "success"
    code, doc = cli_json("analyze", "--min-confidence", "0.9")
    assert code == 0 and doc["attempts"] == 42
    assert doc["patterns"] == []
    assert cli("analyze").stdout == "no patterns in 42 attempts over the last 30d\n"
