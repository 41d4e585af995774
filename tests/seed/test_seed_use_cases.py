"""The seed's task examples (code generation, log analysis, environment selection, the AI CI/CD
pipeline) run unchanged, offline, on the bundled model.

What they touch outside sloth-runner is real: a git repository with two commits in the working
directory, and `deploy.sh` / `npm` on PATH as small scripts that record how they were called.
The model is tiny, so its decisions are not judged; what is checked is that every decision is
one the workflow allowed and that the workflow acted on exactly that decision.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

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


def test_intelligent_code_generation_writes_the_dockerfile(tmp_path):
    (tmp_path / "app.py").write_text("print('hello')\n")
    (tmp_path / "server.js").write_text("console.log(1)\n")
    doc = json_run("intelligent_code_generation", tmp_path)
    outputs = tasks_by_name(doc)["generate_dockerfile"]["outputs"]
    written = (tmp_path / "Dockerfile").read_bytes()
    assert outputs["dockerfile_size"] == len(written)  # the model's text, written as is
    (call,) = ai_calls(tmp_path)
    assert "Create a Dockerfile for this project with files: " in call["prompt"]
    assert "./app.py" in call["prompt"] and "./server.js" in call["prompt"]


def test_smart_log_analysis_alerts_exactly_when_severity_is_high(tmp_path):
    env = recording_tools(tmp_path)
    tail = tmp_path / "bin" / "tail"  # stands in for /var/log/application.log
    tail.write_text("#!/bin/sh\ncat <<'EOF'\n"
                    "2026-11-25 10:00:01 ERROR db: connection refused (password=hunter2)\n"
                    "2026-11-25 10:00:02 FATAL api: out of memory, pod restarted\nEOF\n")
    tail.chmod(0o755)
    proc = run_snippet("smart_log_analysis", tmp_path, env, "-o", "json")
    outputs = tasks_by_name(json.loads(proc.stdout))["analyze_logs"]["outputs"]
    assert outputs["severity"] in ("low", "medium", "high", "critical")
    actions = outputs.get("recommendations") or []  # an empty Lua table reads back as {}
    assert isinstance(actions, list) and all(isinstance(a, str) and a for a in actions)
    assert ("ALERT (critical): Critical issue detected: " in proc.stderr) == \
        (outputs["severity"] == "high")
    calls = {c["operation"]: c for c in ai_calls(tmp_path)}
    assert sorted(calls) == ["complete", "decide"]  # the analysis, then the decision
    assert "FATAL api: out of memory" in calls["complete"]["prompt"]
    assert "hunter2" not in calls["complete"]["prompt"]  # prompts are scrubbed by default


def test_smart_deploy_runs_the_environment_the_model_chose(tmp_path):
    proc = run_snippet("intelligent_environment_selection", tmp_path, recording_tools(tmp_path))
    chosen = re.search(r"AI recommends deployment to: (\w+)", proc.stdout).group(1)
    assert chosen in ("staging", "production", "canary")
    assert calls_log(tmp_path) == [f"deploy.sh {chosen}"]
    (decision,) = [c for c in ai_calls(tmp_path) if c["operation"] == "decide"]
    assert "current_load" in decision["prompt"] and "minimize_risk" in decision["prompt"]


def test_ai_cicd_pipeline_reviews_the_diff_selects_tests_and_deploys(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    make_repo(repo)
    doc = json_run("ai_cicd_pipeline", tmp_path, recording_tools(tmp_path), cwd=repo)
    tasks = tasks_by_name(doc)
    review_prompt = next(c["prompt"] for c in ai_calls(repo) if c["operation"] == "complete")
    assert "+print('v2')" in review_prompt  # git.get_diff("HEAD~1", "HEAD") reached the model
    if tasks["ai_code_review"]["status"] == "failed":  # the model said "critical"
        assert tasks["ai_code_review"]["message"] == "Critical issues found in code review"
        assert tasks["ai_deployment"]["status"] == "skipped" and calls_log(tmp_path) == []
        return
    assert doc["status"] == "success"
    calls = calls_log(tmp_path)
    tests_run = [c.split("test:")[1] for c in calls if c.startswith("npm run test:")]
    assert tests_run and set(tests_run) <= {"unit", "integration", "e2e", "performance"}
    deploys = [c for c in calls if c.startswith("deploy.sh")]
    assert len(deploys) == 1
    strategy = deploys[0].split("--strategy=")[1]
    assert strategy in ("blue_green", "canary", "rolling", "immediate")
    assert tasks["ai_deployment"]["outputs"]["stdout"] == ""  # the stub writes to calls.log


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
    prompt = ai_calls(tmp_path)[0]["prompt"]
    assert iid in prompt and "orders-db" in prompt and "Amazon EC2" in prompt
    if task["status"] == "failed":
        # The tiny model (sampled, not greedy) named a confident scale-down the example then
        # tried to apply, to a resource AWS doesn't have: the failure must say so.
        assert "ai_infrastructure_management.lua:" in task["error"], task
        assert "aws" in task["error"], task  # from aws.ec2.modify_instance, with its line
        return
    assert task["status"] == "success", task
    recs = task["outputs"].get("recommendations") or []
    acted = [r for r in recs if r["type"] == "scale_down" and r["confidence"] > 0.8]
    expected = acted[-1]["new_size"] if acted and acted[-1]["resource"] == iid else "m5.xlarge"
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
