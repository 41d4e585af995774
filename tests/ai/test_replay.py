"""A retried task's identical AI requests are answered from its earlier attempt (not sent,
not paid again), over the real CLI and the fault server."""

from __future__ import annotations

from tests.ai.conftest import API_KEY
from tests.conftest import cli_json, tasks_by_name

FLAKY = '''
task("t"):retries(2, "fixed"):retry_delay(0):command(function(this, params)
    local said = ai.complete({{prompt = "plan the deploy", temperature = 0.7{extra}}})
    local again = ai.complete({{prompt = "plan the deploy", temperature = 0.7{extra}}})
    state.increment("tries")
    if state.get("tries") < 3 then return false, "the step after the AI call failed" end
    return true, said.text .. "|" .. tostring(said.replayed) .. "|" .. tostring(again.replayed)
end):build()
'''


def run(server, workflow_file, extra: str = ""):
    server.play()  # forget earlier requests
    path = workflow_file(FLAKY.format(extra=extra))
    return cli_json("run", "-f", path, env={"OPENAI_API_KEY": API_KEY, "SLOTH_AI_MODEL": "m",
                                            "OPENAI_BASE_URL": server.base_url})


def test_a_retry_replays_its_earlier_attempts_answers(server, workflow_file):
    code, doc = run(server, workflow_file)
    assert code == 0, doc
    t = tasks_by_name(doc)["t"]
    assert t["attempts"] == 3 and t["message"] == "reply text|true|true"
    assert len(server.requests) == 2  # the first attempt's two calls; the retries sent none
    _, logs = cli_json("ai", "logs", "-n", "10")
    replayed = [c["replayed"] for c in reversed(logs["calls"])]
    assert replayed == [0, 0, 1, 1, 1, 1]


def test_replay_false_sends_every_time(server, workflow_file):
    code, doc = run(server, workflow_file, ", replay = false")
    assert code == 0, doc
    assert tasks_by_name(doc)["t"]["message"] == "reply text|false|false"
    assert len(server.requests) == 6


def test_run_replay_answers_with_a_finished_runs_answers(server, workflow_file):
    from tests.conftest import cli

    path = workflow_file('''
        task("t"):command(function()
            return true, ai.complete({prompt = "name a release", temperature = 1.0}).text
        end):build()
    ''')
    env = {"OPENAI_API_KEY": API_KEY, "SLOTH_AI_MODEL": "m", "OPENAI_BASE_URL": server.base_url}
    try:
        server.play()
        server.reply = "Aurora"
        code, first = cli_json("run", "-f", path, env=env)
        assert code == 0 and tasks_by_name(first)["t"]["message"] == "Aurora"
        server.reply = "Borealis"  # the model would answer otherwise now
        sent = len(server.requests)
        code, again = cli_json("run", "-f", path, "--replay", first["run_id"][:8], env=env)
        assert code == 0 and tasks_by_name(again)["t"]["message"] == "Aurora"
        assert len(server.requests) == sent  # nothing sent
        code, fresh = cli_json("run", "-f", path, env=env)
        assert tasks_by_name(fresh)["t"]["message"] == "Borealis"
        bad = cli("run", "-f", path, "--replay", "nosuchrun", env=env)
        assert bad.returncode != 0 and "--replay: no run nosuchrun" in bad.stderr
    finally:
        server.reply = "reply text"  # the server is shared by the session's tests
