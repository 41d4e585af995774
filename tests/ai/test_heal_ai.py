"""Healing chosen by the model (the fault-injecting OpenAI-compatible server answers), then by
what worked before; the choice is constrained to the declared actions, and scrubbed."""

from __future__ import annotations

from tests.ai.test_lua_ai import env_for
from tests.cli.test_heal import heals
from tests.conftest import cli_json, tasks_by_name

FLOW = '''
local dir = os.getenv("HEAL_DIR")
task("build"):command("ls " .. dir .. "/cache")
  :heal({actions = {
      make_cache = {run = "mkdir -p " .. dir .. "/cache", description = "creates the cache"},
      reboot = {run = "touch " .. dir .. "/rebooted", description = "reboots the host"},
  }})
  :build()
'''


def test_the_model_chooses_then_what_worked_is_preferred(server, workflow_file, tmp_path,
                                                         sloth_home):
    env = {**env_for(server), "HEAL_DIR": str(tmp_path)}
    path = workflow_file(FLOW)
    server.reply = "make_cache\nThe cache folder is missing; key AKIAIOSFODNN7EXAMPLE is fine."
    code, doc = cli_json("run", "-f", path, env=env)
    assert code == 0 and tasks_by_name(doc)["build"]["attempts"] == 2
    (first,) = heals(sloth_home)
    assert (first["action"], first["method"], first["healed"]) == ("make_cache", "model", 1)
    assert "cache folder is missing" in first["reasoning"]
    assert "AKIAIOSFODNN7EXAMPLE" not in first["reasoning"]  # scrubbed before it is kept
    (asked,) = [r for r in server.requests if r["path"].endswith("/chat/completions")]
    prompt = str(asked["body"]["messages"])
    assert "make_cache" in prompt and "reboot" in prompt and "No such file" in prompt

    (tmp_path / "cache").rmdir()  # the same failure again: no need to ask
    before = len(server.requests)
    code, doc = cli_json("run", "-f", path, env=env)
    assert code == 0 and len(server.requests) == before
    second = heals(sloth_home)[1]
    assert (second["action"], second["method"]) == ("make_cache", "history")
    assert second["reasoning"] == "'make_cache' healed this error 1 of 1 times before"
    assert not (tmp_path / "rebooted").exists()


def test_an_undeclared_answer_runs_nothing(server, workflow_file, tmp_path, sloth_home):
    env = {**env_for(server), "HEAL_DIR": str(tmp_path)}
    server.reply = "rm_rf_slash\nthat will clean everything"
    code, doc = cli_json("run", "-f", workflow_file(FLOW), env=env)
    assert code == 1 and tasks_by_name(doc)["build"]["attempts"] == 1
    (h,) = heals(sloth_home)
    assert h["action"] is None and h["method"] == "model" and h["healed"] is None
    assert not (tmp_path / "cache").exists() and not (tmp_path / "rebooted").exists()


def test_an_unavailable_model_means_no_action_and_a_clear_reason(server, workflow_file,
                                                                 tmp_path, sloth_home):
    env = {**env_for(server), "HEAL_DIR": str(tmp_path)}
    server.play("error:401:invalid api key")
    code, doc = cli_json("run", "-f", workflow_file(FLOW), env=env)
    assert code == 1 and tasks_by_name(doc)["build"]["status"] == "failed"
    (h,) = heals(sloth_home)
    assert h["action"] is None and h["method"] == "none"
    assert h["reasoning"].startswith("no rule matched and the AI could not decide:")
    assert "401" in h["reasoning"]
