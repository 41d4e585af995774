"""`sloth-runner tune` over histories made by real runs of the CLI, and by the store's own
recorder where many runs with known durations are needed."""

from __future__ import annotations

import json
import os
import stat
import time

from sloth_runner.engine.model import AttemptRecord
from sloth_runner.store import Store
from sloth_runner.store.runs import RunRecorder
from tests.conftest import cli, cli_json

HUGE_RSS_KB = 2**36  # 64 TiB: more than any host's memory, so such tasks must run alone

PIPELINE = '''\
-- CI for tune: comments,   odd spacing, and code tune must leave alone
local note = 'task("fake"):timeout("1s"):build()'   -- a string, not a task
--[[ task("commented"):timeout("9s"):build() ]]
task("compile")
    :command("echo compiled")   -- keep this comment
    :build()

task( "fetch" ):retries(2, "fixed"):retry_delay("10ms"):command(function()
    if state.increment("fetch") % 2 == 1 then return false, "upstream 503" end
    return true
end):build()

task("migrate"):depends_on({"compile"}):retries(1, 'fixed'):retry_delay("10ms")
    :timeout( "10m" )
    :command(function()
        if state.increment("migrate") <= 6 then return false, "schema locked" end
        return true
    end)
    :build()
'''


def test_tune_recommends_from_real_runs_and_writes_only_the_builder_calls(workflow_file):
    path = workflow_file(PIPELINE)
    os.chmod(path, 0o640)
    for expected in (1, 1, 1, 0, 0):  # migrate fails both attempts of the first three runs
        assert cli("run", "-f", path).returncode == expected
    code, doc = cli_json("tune", "-f", path, "--diff")
    assert code == 0 and doc["runs"] == 5 and doc["written"] is False
    tasks = {t["name"]: t for t in doc["workflows"][0]["tasks"]}
    compile_, fetch, migrate = tasks["compile"], tasks["fetch"], tasks["migrate"]
    assert compile_["timeout"]["action"] == "set" and compile_["timeout"]["evidence"][
        "successes"] == 5
    assert compile_["timeout"]["recommended_s"] >= compile_["timeout"]["evidence"]["slowest_s"]
    assert compile_["timeout"]["note"].startswith("with a timeout the task runs in a worker")
    assert fetch["retries"]["action"] == "keep" and fetch["retries"]["evidence"] == {
        "runs": 5, "first_failed": 5, "retried": 5, "recovered": 5, "ran_out": 0, "needed": 1,
        "not_retried": 0, "succeeded": 5, "wasted_s": 0.0}
    assert (migrate["retries"]["action"], migrate["retries"]["recommended"]) == ("drop", 0)
    assert migrate["retries"]["evidence"]["retried"] == 3
    assert migrate["timeout"]["action"] == "none"  # 2 successes are too few to size it
    assert "too few successful attempts (2 of the 5 needed)" in migrate["timeout"]["reason"]
    first = compile_["timeout"]["recommended_s"]
    second = fetch["timeout"]["recommended_s"]
    expected = (PIPELINE
                .replace('task("compile")', f'task("compile"):timeout("{first}s")')
                .replace('task( "fetch" )', f'task( "fetch" ):timeout("{second}s")')
                .replace("retries(1, 'fixed')", "retries(0, 'fixed')"))
    assert f'+task("compile"):timeout("{first}s")\n' in doc["diff"]
    assert "-task(\"migrate\"):depends_on({\"compile\"}):retries(1, 'fixed')" in doc["diff"]
    with open(path) as fh:
        assert fh.read() == PIPELINE  # --diff alone changes nothing

    written = cli("tune", "-f", path, "--write")
    assert written.returncode == 0, written.stderr
    assert "changes: 3 made" in written.stdout
    assert "written; the file loads and defines the new values" in written.stdout
    with open(path, newline="") as fh:
        assert fh.read() == expected  # every other byte as it was
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640
    again = cli("tune", "-f", path, "--write")  # the same history: nothing left to change
    assert "changes: none" in again.stdout
    with open(path, newline="") as fh:
        assert fh.read() == expected
    code, run = cli_json("run", "-f", path)
    assert code == 0 and {t["status"] for t in run["workflows"][0]["tasks"]} == {"success"}


def seed(path: str, runs: int, tasks: dict[tuple[str, str], tuple[float, int, float]],
         spread: float = 0.1) -> None:
    """`runs` recorded runs of `path`, each task's attempt lasting its duration x (1 +- spread),
    in a fixed pattern, with its peak RSS (kB) and CPU (cores busy)."""
    store = Store()
    now = time.time() - 3600
    for i in range(runs):
        recorder = RunRecorder(store, f"seed{i:04d}", path, {})
        start = now + i
        factor = 1 + spread * ((i % 5) - 2) / 2  # 1 - spread ... 1 + spread
        for (workflow, task), (seconds, rss, cores) in tasks.items():
            took = seconds * factor
            recorder.attempt_finished(AttemptRecord(workflow, task, 1, "success", start,
                                                    start + took, cpu_s=cores * took,
                                                    max_rss_kb=rss))
        recorder.finish("success", sorted({w for w, _ in tasks}))
    store.close()


WORKFLOWS = '''\
local shared_timeout = "1h"
workflow.define("ci", {
    description = "build and test",   -- keep me
    tasks = {
        {name = "lint", command = "true"},
        {name = "unit", command = "true", timeout = shared_timeout},
        task("package"):depends_on({"lint", "unit"}):command("true"):build(),
    },
})
'''


def test_tune_shows_its_evidence_and_sizes_parallelism_from_recorded_usage(workflow_file):
    path = workflow_file(WORKFLOWS)
    seed(path, 20, {("ci", "lint"): (12.0, HUGE_RSS_KB, 0.0),
                    ("ci", "unit"): (40.0, HUGE_RSS_KB, 0.0),
                    ("ci", "package"): (5.0, 0, 0.0)})
    proc = cli("tune", "-f", path, "--diff")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert out.startswith(f"tune {path}: 20 runs in the last 30d\n")
    assert ("    timeout    none -> 20s (set)        20 successes: median 12.0s, p99 13.2s, "
            "slowest 13.2s; p99 x 1.5 = 19.8s -> 20s\n") in out
    assert "    timeout    1h -> 1m30s (lower)" in out
    assert "    resources  peak RSS 65536.0 GiB, 0 cores busy (its processes)\n" in out
    assert ("  max_parallel_tasks  none (8) -> 1 (lower): 2 tasks can run at once, but only 1 "
            "of the heaviest fit in the host's memory budget together (lint alone peaks above "
            "it)\n") in out
    assert "  critical path       unit -> package: 45.0s by median durations (2 tasks)\n" in out
    assert ("  expected run time   57.0s with max_parallel_tasks 1 (now: 45.0s with 8; "
            "observed median ") in out
    assert ("  left alone: task unit timeout (1h -> 1m30s): `timeout = shared_timeout`: its "
            "value is computed, not a literal\n") in out
    assert "  timeout: p99 of each task's successful attempt durations x 1.5, never below" in out
    assert "note: lint, package would get a timeout for the first time; with a timeout" in out
    added = [line for line in out.splitlines() if line.startswith("+") and line != "+++ b/wf.lua"]
    assert added == ['+    config = {max_parallel_tasks = 1},',
                     '+        {name = "lint", timeout = "20s", command = "true"},',
                     '+        task("package"):timeout("10s"):depends_on({"lint", "unit"})'
                     ':command("true"):build(),']
    assert '+    config = {max_parallel_tasks = 1},\n     tasks = {' in out

    code, doc = cli_json("tune", "-f", path, "--percentile", "50", "--margin", "2")
    assert code == 0 and doc["settings"] == {"percentile": 50.0, "margin": 2.0,
                                             "min_successes": 5}
    (wf,) = doc["workflows"]
    lint = wf["tasks"][0]
    assert lint["timeout"]["evidence"]["percentile_s"] == 12.0
    assert lint["timeout"]["recommended_s"] == 30  # 12 x 2 = 24 -> 30s
    assert lint["resources"] == {"peak_rss_kb": HUGE_RSS_KB, "cpu_cores": 0.0}
    assert wf["max_parallel_tasks"]["evidence"]["memory_limit"] == 1
    assert wf["critical_path"]["tasks"] == ["unit", "package"]
    assert doc["host"]["cores"] >= 1 and doc["host"]["memory_budget_kb"] > 0
    assert set(doc["method"]) == {"timeout", "retries", "max_parallel_tasks", "expected"}
    assert [(c["task"], c["setting"], c["status"]) for c in doc["changes"]] == [
        (None, "max_parallel_tasks", "edit"), ("lint", "timeout", "edit"),
        ("unit", "timeout", "skipped"), ("package", "timeout", "edit")]
    with open(path) as fh:
        assert fh.read() == WORKFLOWS


def test_write_restores_the_file_when_it_does_not_define_what_was_written(workflow_file):
    path = workflow_file('''\
        local spec = task("slow"):command("true"):timeout("10s"):build()
        spec.timeout = "5m"  -- changed after the builder: tune cannot see this from the call
    ''')
    with open(path, "rb") as fh:
        original = fh.read()
    seed(path, 6, {("default", "slow"): (1.0, 0, 0.0)})
    proc = cli("tune", "-f", path, "--write")
    assert proc.returncode == 2
    assert "the tuned file does not define what was written (default/slow timeout is 300.0, " \
           "not 2); the original is restored" in proc.stderr
    with open(path, "rb") as fh:
        assert fh.read() == original
    assert [n for n in os.listdir(os.path.dirname(path)) if n.endswith(".tune")] == []


def test_runs_are_matched_by_the_file_they_ran(workflow_file, tmp_path):
    path = workflow_file('task("t"):command("true"):build()\n')
    assert cli("run", "-f", "wf.lua", cwd=tmp_path).returncode == 0
    code, doc = cli_json("tune", "-f", "wf.lua", cwd=tmp_path)
    assert code == 0 and doc["runs"] == 1
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    # runs record the file's real path: found from any directory, by any path to it
    code, doc = cli_json("tune", "-f", path, cwd=elsewhere)
    assert code == 0 and doc["runs"] == 1
    os.symlink(path, elsewhere / "link.lua")
    code, doc = cli_json("tune", "-f", "link.lua", cwd=elsewhere)
    assert code == 0 and doc["runs"] == 1


def test_no_history_bad_files_and_bad_flags(workflow_file, tmp_path):
    path = workflow_file('task("t"):command("true"):build()\n')
    proc = cli("tune", "-f", path)
    assert (proc.returncode, proc.stdout) == (
        0, f"no runs of {path} recorded in the last 30d: nothing to tune\n")
    code, doc = cli_json("tune", "-f", path)
    assert code == 0 and doc["runs"] == 0 and doc["changes"] == []
    bad = workflow_file('task("t"):command("true"):build()\ntask("u"):timeout(:build()\n',
                        name="bad.lua")
    proc = cli("tune", "-f", bad)
    assert proc.returncode == 2 and f"{bad}:2:" in proc.stderr
    code = cli("tune", "-f", bad, "-o", "json")
    assert code.returncode == 2 and json.loads(code.stdout)["status"] == "error"
    missing = cli("tune", "-f", str(tmp_path / "nope.lua"))
    assert missing.returncode == 2 and "nope.lua: no such file" in missing.stderr
    for flags, message in ((["--since", "fortnight"], "--since: bad duration"),
                           (["--percentile", "0"], "--percentile must be above 0"),
                           (["--margin", "0.5"], "--margin must be at least 1"),
                           (["--min-successes", "0"], "--min-successes must be at least 1")):
        proc = cli("tune", "-f", path, *flags)
        assert proc.returncode == 3 and message in proc.stderr, proc.stderr
