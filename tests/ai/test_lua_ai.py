"""`require("ai")` from Lua workflows, through the real CLI, against the fault server."""

from __future__ import annotations

import json

from tests.ai.conftest import API_KEY
from tests.conftest import cli, cli_json, tasks_by_name


def env_for(server):
    return {"OPENAI_API_KEY": API_KEY, "OPENAI_BASE_URL": server.base_url}


def test_calls_return_the_documented_shapes(server, workflow_file):
    server.reply = "use multi-stage builds"
    path = workflow_file('''
        task("t"):command(function()
            local ai = require("ai")
            local c = ai.complete("Explain CI/CD best practices")
            local o = ai.openai.chat({messages = {{role = "user", content = "hi"}}, model = "gpt-4",
                                      max_tokens = 30})
            return true, c.text, {
                text = c.text, total = c.usage.total_tokens, provider = c.provider,
                model = o.model, role = o.message.role, content = o.message.content,
                cached = c.cached, has_latency = c.latency_ms > 0, confidence = c.confidence,
            }
        end):build()
    ''')
    code, doc = cli_json("run", "-f", path, env=env_for(server))
    out = tasks_by_name(doc)["t"]["outputs"]
    assert code == 0
    assert out == {"text": "use multi-stage builds", "total": 14, "provider": "openai",
                   "model": "gpt-4", "role": "assistant", "content": "use multi-stage builds",
                   "cached": False, "has_latency": True}  # confidence nil: no log-probs asked


def test_failures_fail_the_task_with_a_clear_message(server, workflow_file):
    server.play("status:401")
    path = workflow_file('''
        task("t"):command(function()
            local r = ai.complete({prompt = "hi", model = "gpt-4o"})
            return true
        end):build()
    ''')
    proc = cli("run", "-f", path, "-o", "json", env=env_for(server))
    doc = json.loads(proc.stdout)
    error = tasks_by_name(doc)["t"]["error"]
    assert proc.returncode == 1
    assert error.startswith(f"{path}:3: AI call to openai model gpt-4o failed (HTTP 401)")
    assert "check the API key" in error
    assert API_KEY not in proc.stdout + proc.stderr


def test_concurrent_tasks_wait_on_the_model_together(server, workflow_file):
    server.play("slow:0.6", "slow:0.6", "slow:0.6", "slow:0.6")
    path = workflow_file('''
        for i = 1, 4 do
            task("ask" .. i):command(function()
                return true, ai.complete("question " .. i).text
            end):build()
        end
    ''')
    code, doc = cli_json("run", "-f", path, "--max-parallel", "4", env=env_for(server))
    assert code == 0 and len(server.requests) == 4
    arrivals = [r["at"] for r in server.requests]
    # all four were asked before the first 0.6 s answer came back: they waited together
    assert max(arrivals) - min(arrivals) < 0.6


def test_streaming_reaches_on_token_and_the_terminal(server, workflow_file):
    server.reply = "alpha beta gamma"
    path = workflow_file('''
        task("t"):command(function()
            local seen = {}
            local r = ai.complete({prompt = "x", on_token = function(t) seen[#seen + 1] = t end})
            return true, table.concat(seen, "|")
        end):build()
    ''')
    proc = cli("run", "-f", path, env=env_for(server))
    assert proc.returncode == 0
    assert "[t] alpha beta gamma\n" in proc.stdout          # shown as it came
    assert "ok      t" in proc.stdout and "alpha |beta |gamma" in proc.stdout


def test_configure_errors_point_at_the_line(server, workflow_file):
    path = workflow_file('local ai = require("ai")\nai.configure({provider = "skynet"})\n')
    proc = cli("run", "-f", path, env=env_for(server))
    assert proc.returncode == 2
    assert f"{path}:2: ai.configure.provider: must be one of openai, local" in proc.stderr


def test_generate_code_from_lua(server, workflow_file):
    server.play("text:```bash\npg_dump myapp_db > /backups/db.sql\n```")
    path = workflow_file('''
        task("t"):command(function()
            local code = ai.openai.generate_code({language = "bash",
                description = "Script to backup PostgreSQL database",
                parameters = {database_name = "myapp_db", backup_location = "/backups/"}})
            return code.valid, code.code, {attempts = code.attempts, language = code.language}
        end):build()
    ''')
    code, doc = cli_json("run", "-f", path, env=env_for(server))
    t = tasks_by_name(doc)["t"]
    assert code == 0 and t["message"] == "pg_dump myapp_db > /backups/db.sql"
    assert t["outputs"] == {"attempts": 1, "language": "bash"}


def test_usage_and_logs_commands(server, workflow_file):
    path = workflow_file('task("t"):command(function() ai.complete("hi"); return true end):build()')
    cli("run", "-f", path, env=env_for(server))
    _, usage = cli_json("ai", "usage", "--since", "7d")
    assert usage["calls_today"] == 1 and usage["by_workflow"]["default"]["calls"] == 1
    _, logs = cli_json("ai", "logs", "-n", "5")
    (call,) = logs["calls"]
    assert (call["task"], call["status"], call["prompt"]) == ("t", "ok", "user: hi")
    text = cli("ai", "usage").stdout
    assert "today: 1 calls, 13 tokens" in text
    assert cli("ai", "usage", "--since", "soon").returncode == 3


def test_encrypt_and_decrypt_config(tmp_path):
    plain = tmp_path / "ai.yaml"
    plain.write_text("api_key: sk-secret-value\nmodel: gpt-4o\n")
    proc = cli("ai", "encrypt-config", str(plain), "-o", str(tmp_path / "enc.yaml"))
    assert proc.returncode == 0
    key = proc.stderr.strip().splitlines()[-1]  # a new key, printed once
    assert b"sk-secret" not in (tmp_path / "enc.yaml").read_bytes()
    proc = cli("ai", "decrypt-config", str(tmp_path / "enc.yaml"), "-o", str(tmp_path / "out.yaml"),
               env={"CONFIG_ENCRYPTION_KEY": key})
    assert proc.returncode == 0 and (tmp_path / "out.yaml").read_text() == plain.read_text()
    proc = cli("ai", "decrypt-config", str(tmp_path / "enc.yaml"), "-o", str(tmp_path / "x"),
               env={"CONFIG_ENCRYPTION_KEY": "wrong"})
    assert proc.returncode == 3 and "not a Fernet key" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_backtracking_remove_pattern_fails_the_task_naming_the_pattern(workflow_file):
    path = workflow_file('''
        task("t"):command(function()
            local clean = ai.sanitize_data(string.rep("a", 40) .. "!",
                                           {remove_patterns = {"(a|aa)+$"}})
            return true, clean
        end):build()
    ''')
    code, doc = cli_json("run", "-f", path)
    t = tasks_by_name(doc)["t"]
    assert code == 1 and t["status"] == "failed"
    assert t["error"].startswith(f"{path}:3: remove_patterns: pattern '(a|aa)+$' ran longer "
                                 "than 1s")
    assert t["duration_s"] < 3  # stopped, not left to backtrack for minutes
