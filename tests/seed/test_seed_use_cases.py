"""The seed's task examples (code generation, log analysis, environment selection, the AI CI/CD
pipeline) run unchanged, offline, on the bundled model.

What they touch outside sloth-runner is real: a git repository with two commits in the working
directory, and `deploy.sh` / `npm` on PATH as small scripts that record how they were called.
The model is tiny, so its decisions are not judged; what is checked is that every decision is
one the workflow allowed and that the workflow acted on exactly that decision, read back from the
AI call log (on the bundled model, each decision's grammar puts the answer on its first line).
Because the bundled model's answers decide which branch a workflow takes, each workflow also runs
against the OpenAI-compatible test server with scripted answers, so every branch is exercised.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from sloth_runner.ai.recommendations import parse_recommendations
from tests.ai.test_lua_ai import env_for
from tests.conftest import cli, tasks_by_name
from tests.seed.test_seed_snippets import HERE, ai_calls, run_snippet
from tests.services.test_integrations import make_repo


def recording_tools(tmp_path: Path) -> dict:
    """deploy.sh and npm that append their arguments to calls.log; env with them on PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("deploy.sh", "npm"):
        script = bin_dir / tool
        script.write_text(f'#!/bin/sh\necho "{tool} $*" >> "{tmp_path}/calls.log"\n')
        script.chmod(0o755)
    return {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}


def calls_log(tmp_path: Path) -> list[str]:
    log = tmp_path / "calls.log"
    return log.read_text().splitlines() if log.exists() else []


def json_run(name: str, tmp_path: Path, env: dict | None = None, cwd=None) -> dict:
    proc = run_snippet(name, tmp_path, env, "-o", "json", cwd=cwd)
    return json.loads(proc.stdout)


def calls_in_order(cwd: Path) -> list[dict]:
    return list(reversed(ai_calls(cwd)))  # the log lists the newest first


def first_line(call: dict) -> str:
    return call["response"].split("\n")[0].strip()


def test_intelligent_code_generation_writes_the_dockerfile(tmp_path):
    (tmp_path / "app.py").write_text("print('hello')\n")
    (tmp_path / "server.js").write_text("console.log(1)\n")
    doc = json_run("intelligent_code_generation", tmp_path)
    outputs = tasks_by_name(doc)["generate_dockerfile"]["outputs"]
    written = (tmp_path / "Dockerfile").read_bytes()
    assert outputs["dockerfile_size"] == len(written)  # the model's text, written as is
    (call,) = ai_calls(tmp_path)
    assert written.decode() == call["response"] or "[REDACTED:" in call["response"]
    assert "Create a Dockerfile for this project with files: " in call["prompt"]
    assert "./app.py" in call["prompt"] and "./server.js" in call["prompt"]


LOG_LINES = ("2026-11-25 10:00:01 ERROR db: connection refused (password=hunter2)\n"
             "2026-11-25 10:00:02 FATAL api: out of memory, pod restarted\n")
ALERT = "ALERT (critical): Critical issue detected: "


def run_log_analysis(tmp_path: Path, env: dict | None = None):
    env = recording_tools(tmp_path) | (env or {})
    tail = tmp_path / "bin" / "tail"  # stands in for /var/log/application.log
    tail.write_text(f"#!/bin/sh\ncat <<'EOF'\n{LOG_LINES}EOF\n")
    tail.chmod(0o755)
    proc = run_snippet("smart_log_analysis", tmp_path, env, "-o", "json")
    return proc, tasks_by_name(json.loads(proc.stdout))["analyze_logs"]["outputs"]


def test_smart_log_analysis_alerts_exactly_when_severity_is_high(tmp_path):
    proc, outputs = run_log_analysis(tmp_path)
    analysis, decision = calls_in_order(tmp_path)
    assert (analysis["operation"], decision["operation"]) == ("complete", "decide")
    assert "FATAL api: out of memory" in analysis["prompt"]
    assert "hunter2" not in analysis["prompt"]  # prompts are scrubbed by default
    # The triage grammar: "<severity>\nIssue: <line>\nActions:\n- <line>..."
    severity, issue = decision["response"].split("\n")[:2]
    assert severity in ("low", "medium", "high", "critical")
    assert outputs["severity"] == severity  # the workflow got the model's answer
    actions = outputs.get("recommendations") or []  # an empty Lua table reads back as {}
    assert isinstance(actions, list) and all(a and a in decision["response"] for a in actions)
    if severity == "high":
        assert ALERT + issue.removeprefix("Issue: ").strip() in proc.stderr
    else:
        assert ALERT not in proc.stderr


@pytest.mark.parametrize("severity", ["high", "critical", "low"])
def test_smart_log_analysis_alerts_on_a_high_answer_only(tmp_path, server, severity):
    server.play("text:The api pod ran out of memory and the database refused connections.",
                f"text:{severity}\nIssue: the api pod runs out of memory\nActions:\n"
                "- raise the memory limit\n- add a replica\n")
    proc, outputs = run_log_analysis(tmp_path, env_for(server))
    assert outputs == {
        "analysis": "The api pod ran out of memory and the database refused connections.",
        "severity": severity, "recommendations": ["raise the memory limit", "add a replica"]}
    alerted = ALERT + "the api pod runs out of memory" in proc.stderr
    assert alerted == (severity == "high")  # the snippet alerts on "high" and nothing else
    assert "hunter2" not in json.dumps(server.requests)


def test_smart_deploy_runs_the_environment_the_model_chose(tmp_path):
    proc = run_snippet("intelligent_environment_selection", tmp_path, recording_tools(tmp_path))
    chosen = re.search(r"AI recommends deployment to: (\w+)", proc.stdout).group(1)
    (decision,) = [c for c in ai_calls(tmp_path) if c["operation"] == "decide"]
    assert first_line(decision) in ("staging", "production", "canary")
    assert chosen == first_line(decision)  # the model's answer, not a fallback
    assert calls_log(tmp_path) == [f"deploy.sh {chosen}"]
    assert "current_load" in decision["prompt"] and "minimize_risk" in decision["prompt"]


@pytest.mark.parametrize("environment", ["canary", "production"])
def test_smart_deploy_deploys_where_the_answer_says(tmp_path, server, environment):
    server.play(f"text:{environment}\nThe load is low and the tests passed.")
    env = recording_tools(tmp_path) | env_for(server)
    proc = run_snippet("intelligent_environment_selection", tmp_path, env)
    assert f"AI recommends deployment to: {environment}" in proc.stdout
    assert "Reasoning: The load is low and the tests passed." in proc.stdout
    assert calls_log(tmp_path) == [f"deploy.sh {environment}"]


TESTS = ("unit", "integration", "e2e", "performance")


def git_repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    make_repo(repo)
    return repo


def test_ai_cicd_pipeline_reviews_the_diff_selects_tests_and_deploys(tmp_path):
    repo = git_repo(tmp_path)
    doc = json_run("ai_cicd_pipeline", tmp_path, recording_tools(tmp_path), cwd=repo)
    tasks = tasks_by_name(doc)
    review, *decisions = calls_in_order(repo)
    assert review["operation"] == "complete"
    assert "+print('v2')" in review["prompt"]  # git.get_diff("HEAD~1", "HEAD") reached the model
    if "critical" in review["response"].lower():  # the snippet's rule for a failed review
        assert tasks["ai_code_review"]["status"] == "failed"
        assert tasks["ai_code_review"]["message"] == "Critical issues found in code review"
        assert tasks["ai_deployment"]["status"] == "skipped" and calls_log(tmp_path) == []
        assert decisions == []
        return
    assert doc["status"] == "success"
    test_plan, strategy = decisions
    assert (test_plan["operation"], strategy["operation"]) == ("decide", "decide")
    chosen = first_line(test_plan).split(", ")
    assert chosen and set(chosen) <= set(TESTS)
    calls = calls_log(tmp_path)
    assert calls == [f"npm run test:{t}" for t in TESTS if t in chosen] + [
        f"deploy.sh --strategy={first_line(strategy)}"]
    assert first_line(strategy) in ("blue_green", "canary", "rolling", "immediate")
    assert tasks["ai_deployment"]["outputs"]["stdout"] == ""  # the stub writes to calls.log


def test_ai_cicd_pipeline_runs_the_chosen_tests_and_strategy(tmp_path, server):
    repo = git_repo(tmp_path)
    server.play("text:The change is small and safe.", "text:e2e, unit\nThe diff touches both.",
                "text:canary\nA medium risk change.")
    env = recording_tools(tmp_path) | env_for(server)
    doc = json_run("ai_cicd_pipeline", tmp_path, env, cwd=repo)
    assert doc["status"] == "success"
    # Tests run in the order the workflow listed them; the deployment follows the answer.
    assert calls_log(tmp_path) == ["npm run test:unit", "npm run test:e2e",
                                   "deploy.sh --strategy=canary"]
    assert len(server.requests) == 3


def test_ai_cicd_pipeline_stops_on_a_critical_review(tmp_path, server):
    repo = git_repo(tmp_path)
    server.play("text:CRITICAL: the handler builds SQL from user input.")
    env = recording_tools(tmp_path) | env_for(server)
    proc = run_snippet("ai_cicd_pipeline", tmp_path, env, "-o", "json", cwd=repo, check=False)
    assert proc.returncode == 1, proc.stderr
    tasks = tasks_by_name(json.loads(proc.stdout))
    assert tasks["ai_code_review"]["status"] == "failed"
    assert tasks["ai_code_review"]["message"] == "Critical issues found in code review"
    assert tasks["ai_test_selection"]["status"] == "skipped"
    assert tasks["ai_deployment"]["status"] == "skipped"
    assert calls_log(tmp_path) == [] and len(server.requests) == 1


def seed_aws_account(aws_server) -> str:
    """One busy-looking m5.xlarge with a week of low CPU, a database and a month of costs."""
    import boto3

    from tests.services.test_aws import launch, put_cpu

    iid = launch("m5.xlarge", "api")
    put_cpu("AWS/EC2", "InstanceId", iid, [(h, 4.0 + h % 3) for h in range(1, 48)])
    boto3.client("rds").create_db_instance(
        DBInstanceIdentifier="orders-db", DBInstanceClass="db.t3.medium", Engine="postgres",
        MasterUsername="admin", MasterUserPassword="not-a-secret-1", AllocatedStorage=20)
    aws_server.queue_costs([{"ResultsByTime": [{
        "TimePeriod": {"Start": "2026-11-01", "End": "2026-11-02"}, "Total": {},
        "Estimated": False, "Groups": [{"Keys": ["Amazon EC2"], "Metrics": {
            "UnblendedCost": {"Amount": "140.0", "Unit": "USD"}}}]}],
        "DimensionValueAttributes": []}])
    return iid


def instance_type(iid: str) -> str:
    import boto3

    found = boto3.client("ec2").describe_instances(InstanceIds=[iid])
    return found["Reservations"][0]["Instances"][0]["InstanceType"]


def test_ai_infrastructure_optimization_on_the_bundled_model(tmp_path, aws_server):
    iid = seed_aws_account(aws_server)
    proc = cli("run", "-f", str(HERE / "ai_infrastructure_management.lua"), "-o", "json",
               cwd=tmp_path, timeout=300)
    task = tasks_by_name(json.loads(proc.stdout))["ai_infrastructure_optimization"]
    (call,) = ai_calls(tmp_path)
    assert iid in call["prompt"] and "orders-db" in call["prompt"] and "Amazon EC2" in call["prompt"]
    advice = parse_recommendations(call["response"])  # what the workflow parsed, from the log
    acted = [r for r in advice if r["type"] == "scale_down" and (r["confidence"] or 0) > 0.8]
    if task["status"] == "failed":
        # The tiny model (sampled, not greedy) named a confident scale-down the example then
        # tried to apply, to a resource AWS doesn't have: the failure must say so.
        assert acted, (task, advice)  # only confident advice makes the workflow call AWS
        assert "ai_infrastructure_management.lua:" in task["error"], task
        assert "aws" in task["error"], task  # from aws.ec2.modify_instance, with its line
        return
    assert task["status"] == "success", task
    recs = task["outputs"].get("recommendations") or []
    fields = ("type", "resource", "new_size", "confidence")
    assert [tuple(r.get(f) for f in fields) for r in recs] == \
        [tuple(r[f] for f in fields) for r in advice]
    resized = [r for r in acted if r["resource"] == iid]
    expected = resized[-1]["new_size"] if resized else "m5.xlarge"
    assert instance_type(iid) == expected  # resized exactly when the advice said so


def test_ai_infrastructure_optimization_acts_on_confident_advice(tmp_path, aws_server, server):
    # The same unchanged workflow against an OpenAI-compatible server that gives firm advice:
    # the confident scale-down is applied to the instance, the unsure one is not.
    from tests.ai.test_lua_ai import env_for
    from tests.services.test_aws import launch

    iid = seed_aws_account(aws_server)
    other = launch("c5.2xlarge")
    server.play(f"text:1. Scale down {iid} from m5.xlarge to m5.large (confidence: 0.93), "
                f"saving $70/month.\n2. Rightsize {other} to c5.xlarge (confidence 40%).")
    doc = json_run("ai_infrastructure_management", tmp_path, env_for(server))
    recs = tasks_by_name(doc)["ai_infrastructure_optimization"]["outputs"]["recommendations"]
    assert [(r["type"], r["resource"], r["new_size"], r["confidence"]) for r in recs] == [
        ("scale_down", iid, "m5.large", 0.93), ("scale_down", other, "c5.xlarge", 0.4)]
    assert instance_type(iid) == "m5.large" and instance_type(other) == "c5.2xlarge"
