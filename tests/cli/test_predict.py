"""`run --predict`, `analyze --predict` and `ai.predict_failure`, through the real command, on
a history with a planted cause (build fails with target=arm64) written into the test's home."""

from __future__ import annotations

import re
import subprocess
import sys
import time

import pytest

from sloth_runner.store import Store
from sloth_runner.store.predictions import for_run
from tests.analytics.histories import history, store_history
from tests.conftest import cli, cli_json

PIPELINE = """
    for _, name in ipairs({"checkout", "fetch", "build", "test", "deploy"}) do
        task(name):command(function() return true, name .. " done" end):build()
    end
"""


@pytest.fixture
def planted():
    """300 runs of the pipeline in which build fails 85 % of the time with target=arm64."""
    store = Store()
    store_history(store, history(5, runs=300, plant=("param",), base=0.02),
                  workflow="default", end_before=time.time())
    store.close()


def test_run_predict_prints_each_tasks_risk_and_records_it(planted, workflow_file):
    path = workflow_file(PIPELINE)
    proc = cli("run", "-f", path, "--param", "target=arm64", "--predict")
    assert proc.returncode == 0, proc.stderr
    head = proc.stdout.splitlines()
    assert head[0].startswith("failure risk (logistic regression on ")
    lines = {line.split()[0]: line for line in head[1:6]}
    assert set(lines) == {f"default/{t}" for t in ("checkout", "fetch", "build", "test",
                                                   "deploy")}
    build = re.match(r"\s*default/build\s+(\d+) %\s+(.*)", lines["default/build"])
    assert build and int(build.group(1)) >= 60
    assert build.group(2).startswith("build failed ") and "with target=arm64" in build.group(2)
    assert int(re.search(r"(\d+) %", lines["default/test"]).group(1)) < 20
    run_id = re.search(r"run ([0-9a-f]+): success", proc.stdout).group(1)
    recorded = {p["task"]: p for p in for_run(Store(), run_id)}
    assert set(recorded) == {"checkout", "fetch", "build", "test", "deploy"}
    assert recorded["build"]["probability"] >= 0.6
    assert recorded["build"]["method"] == "logistic_regression"
    assert "target=arm64" in recorded["build"]["top_factors"][0]["factor"]


def test_run_predict_in_json(planted, workflow_file):
    path = workflow_file(PIPELINE)
    code, doc = cli_json("run", "-f", path, "--param", "target=amd64", "--predict")
    assert code == 0 and doc["status"] == "success"
    by_task = {p["task"]: p for p in doc["predictions"]}
    assert by_task["build"]["probability"] < 0.2
    assert by_task["build"]["n_history"] >= 200
    assert {"factor", "weight", "feature"} <= set(by_task["build"]["top_factors"][0])
    assert for_run(Store(), doc["run_id"])  # recorded too
    code, plain = cli_json("run", "-f", path)
    assert code == 0 and "predictions" not in plain


def test_run_predict_without_history_says_so(workflow_file):
    path = workflow_file(PIPELINE)
    proc = cli("run", "-f", path, "--predict")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("failure risk: none predicted, too little history (too few "
                                  "failures to learn from: 0 failures")
    code, doc = cli_json("run", "-f", path, "--predict")
    assert {p["method"] for p in doc["predictions"]} == {"insufficient_history"}
    assert {p["probability"] for p in doc["predictions"]} == {None}


def test_analyze_predict_shows_the_risks_and_the_models_evaluation(planted):
    code, doc = cli_json("analyze", "--predict")
    assert code == 0
    model = doc["model"]
    assert model["method"] == "logistic_regression" and model["trained_on"] > 1000
    ev = model["evaluation"]
    assert ev["test_runs"] > 0 and ev["test_failures"] > 0
    assert ev["model"]["auroc"] > 0.5 and set(ev) >= {"last_outcome", "failure_rate"}
    assert {p["task"] for p in doc["predictions"]} == {"checkout", "fetch", "build", "test",
                                                       "deploy"}
    proc = cli("analyze", "--predict")
    assert proc.returncode == 0, proc.stderr
    assert "evaluated chronologically: fitted on the oldest" in proc.stdout
    assert re.search(r"^  model\s+0\.\d\d\s+0\.\d{3}\s+\d\.\d\d$", proc.stdout, re.M)
    assert "default/build" in proc.stdout


def test_predict_failure_from_lua(planted, workflow_file):
    path = workflow_file("""
        task("ask"):command(function()
            local r = ai.predict_failure("build", {params = {target = "arm64"}, load = 1})
            local f = r.top_factors[1]
            return true, string.format("%.2f|%s|%d|%s|%.2f", r.probability, r.method,
                                       r.n_history, f.factor, f.weight)
        end):build()
        task("unknown"):command(function()
            local r = ai.predict_failure("biuld")
            return r.probability == nil, r.method .. "|" .. r.reason
        end):build()
        task("bad"):command(function()
            ai.predict_failure("build", {hots = "x"})
            return true
        end):build()
    """)
    code, doc = cli_json("run", "-f", path)
    tasks = {t["name"]: t for t in doc["workflows"][0]["tasks"]}
    probability, method, n, factor, weight = tasks["ask"]["message"].split("|")
    assert float(probability) >= 0.6 and method == "logistic_regression" and int(n) >= 200
    assert "with target=arm64" in factor and float(weight) > 0
    assert tasks["unknown"]["status"] == "success"
    assert tasks["unknown"]["message"].startswith("insufficient_history|no finished runs of "
                                                  "task 'biuld'")
    assert "default/build" in tasks["unknown"]["message"]
    assert tasks["bad"]["status"] != "success"
    assert "predict_failure.hots: unknown option" in tasks["bad"]["error"]


def test_a_run_without_predict_imports_none_of_it(workflow_file):
    path = workflow_file(PIPELINE)
    code = ("import sys\nfrom sloth_runner.cli.main import main\n"
            f"rc = main(['run', '-f', {path!r}, '-o', 'json'])\n"
            "loaded = sorted(m for m in sys.modules if m.startswith(('sloth_runner.analytics',"
            " 'sloth_runner.store.predictions')))\n"
            "print('LOADED', rc, loaded, file=sys.stderr)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "LOADED 0 []" in proc.stderr, proc.stderr
