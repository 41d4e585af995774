"""`run --sandbox`: no processes, no writes outside the workdir, no network and only harmless
environment variables, unless `--allow` grants them. Real CLI runs; each refusal is checked by
its effect (no file, no request, no value) and by its message, and each grant by the opposite.
"""

from __future__ import annotations

import json
import os

import pytest

from tests.ai.conftest import API_KEY
from tests.conftest import cli, cli_json, tasks_by_name
from tests.http_sink import HttpSink

REFUSED = "is not allowed in the sandbox (run with --allow {} to grant it)"

# running.py must refuse shell-string commands and conditions (see the sandbox work's report):
# until then these tests fail, and they must pass once it does.
@pytest.fixture
def sink():
    s = HttpSink()
    yield s
    s.stop()


@pytest.fixture
def workdir(tmp_path):
    """The directory the CLI runs in: the workdir of tasks that set none."""
    path = tmp_path / "work"
    path.mkdir()
    return path


def run_in(workdir, path: str, *flags: str, env: dict | None = None) -> tuple[int, dict]:
    return cli_json("run", "-f", path, *flags, cwd=workdir, env=env)


# -- exec ---------------------------------------------------------------------------------------
EXEC = '''
task("t"){timeout}:command(function()
    return exec.run("echo x > f").success
end):build()
'''


@pytest.mark.parametrize("timeout", ["", ':timeout("30s")'], ids=["here", "worker"])
def test_exec_run_is_refused_at_the_callers_line(workdir, workflow_file, timeout):
    path = workflow_file(EXEC.format(timeout=timeout))
    code, doc = run_in(workdir, path, "--sandbox")
    assert code == 1
    assert tasks_by_name(doc)["t"]["error"] == f"{path}:3: exec.run " + REFUSED.format("exec")
    assert not (workdir / "f").exists()


@pytest.mark.parametrize("timeout", ["", ':timeout("30s")'], ids=["here", "worker"])
@pytest.mark.parametrize("flags", [("--sandbox", "--allow", "exec"), ()],
                         ids=["granted", "no-sandbox"])
def test_exec_run_runs_when_granted_or_without_the_sandbox(workdir, workflow_file, timeout, flags):
    code, doc = run_in(workdir, workflow_file(EXEC.format(timeout=timeout)), *flags)
    assert code == 0, doc
    assert (workdir / "f").read_text() == "x\n"


def test_git_needs_exec(workdir, workflow_file):
    path = workflow_file('''
        task("t"):command(function() return true, git.current_branch() end):build()
    ''')
    code, doc = run_in(workdir, path, "--sandbox")
    assert code == 1
    assert tasks_by_name(doc)["t"]["error"] == \
        f"{path}:2: git.current_branch (it runs the git program) " + REFUSED.format("exec")
    code, doc = run_in(workdir, path, "--sandbox", "--allow", "exec")
    assert REFUSED.format("exec") not in json.dumps(doc)  # it ran git (no repository here)


def test_os_execute_and_io_popen_need_exec_and_see_only_harmless_variables(workdir,
                                                                          workflow_file):
    path = workflow_file('''
        task("x"):command(function() os.execute("echo x${SLOTH_TEST_VALUE}x > f") end):build()
        task("p"):command(function()
            local h = io.popen("echo popened$SLOTH_TEST_VALUE"); local out = h:read("*a")
            h:close()
            return true, out end):build()
    ''')
    env = {"SLOTH_TEST_VALUE": "-visible"}
    code, doc = run_in(workdir, path, "--sandbox", "--allow", "fs", env=env)
    tasks = tasks_by_name(doc)
    assert code == 1
    assert tasks["x"]["error"] == f"{path}:2: os.execute " + REFUSED.format("exec")
    assert tasks["p"]["error"] == f"{path}:4: io.popen " + REFUSED.format("exec")
    assert not (workdir / "f").exists()
    code, doc = run_in(workdir, path, "--sandbox", "--allow", "fs,exec", env=env)
    tasks = tasks_by_name(doc)
    assert tasks["x"]["status"] == "success" and (workdir / "f").read_text() == "xx\n"
    assert tasks["p"]["status"] == "success" and tasks["p"]["message"] == "popened\n"
    code, doc = run_in(workdir, path, "--sandbox", "--allow", "fs,exec,env", env=env)
    tasks = tasks_by_name(doc)
    assert (workdir / "f").read_text() == "x-visiblex\n"
    assert tasks["p"]["message"] == "popened-visible\n"


SHELL = '''
task("cmd"):command("echo x > f"):build()
task("cond"):run_if("echo y > g"):command(function() return true end):build()
task("slow"):timeout("30s"):command("echo z > h"):build()
'''


def test_shell_string_commands_and_conditions_are_refused_when_they_run(workdir, workflow_file):
    path = workflow_file(SHELL)
    listing = cli("list", "-f", path, "--sandbox", cwd=workdir)
    assert listing.returncode == 0, listing.stderr  # loading is fine; running is refused
    code, doc = run_in(workdir, path, "--sandbox")
    tasks = tasks_by_name(doc)
    assert code == 1
    assert tasks["cmd"]["error"] == \
        f"{path}:2: the shell command of task 'cmd' " + REFUSED.format("exec")
    assert tasks["cond"]["error"] == \
        f"run_if: {path}:3: the shell run_if of task 'cond' " + REFUSED.format("exec")
    assert tasks["slow"]["error"] == \
        f"{path}:4: the shell command of task 'slow' " + REFUSED.format("exec")
    assert sorted(os.listdir(workdir)) == []


def test_list_loads_shell_string_tasks_under_the_sandbox(workdir, workflow_file):
    listing = cli("list", "-f", workflow_file(SHELL), "--sandbox", cwd=workdir)
    assert listing.returncode == 0, listing.stderr
    assert "cmd" in listing.stdout and not os.listdir(workdir)


@pytest.mark.parametrize("flags", [("--sandbox", "--allow", "exec"), ()],
                         ids=["granted", "no-sandbox"])
def test_shell_string_tasks_run_when_granted(workdir, workflow_file, flags):
    code, doc = run_in(workdir, workflow_file(SHELL), *flags)
    assert code == 0, doc
    assert sorted(os.listdir(workdir)) == ["f", "g", "h"]


# -- fs -----------------------------------------------------------------------------------------
def fs_workflow(outside) -> str:
    return f'''
task("rel"):command(function() return fs.write("../outside.txt", "x") end):build()
task("abs"):command(function() return fs.write({str(outside / "abs.txt")!r}, "x") end):build()
task("link"):command(function() return fs.write("escape/through-link.txt", "x") end):build()
task("mkdir"):command(function() return fs.mkdir({str(outside / "made")!r}) end):build()
task("rm"):command(function() return fs.rm({str(outside / "keep.txt")!r}) end):build()
task("inside"):command(function()
    fs.mkdir("sub"); fs.write("sub/inside.txt", "in"); fs.write("escape-free.txt", "x")
    fs.rm("escape-free.txt")
    return fs.read("sub/inside.txt") == "in" and fs.exists("../wf.lua") and #fs.ls("..") > 0
end):build()
task("worker"):timeout("30s"):command(function()
    return fs.write("../worker.txt", "x")
end):build()
'''


def written(outside) -> list[str]:
    """What a workflow created in `outside`, beside what the test and the run put there."""
    return sorted(set(os.listdir(outside)) - {"keep.txt", "wf.lua", "work", "sloth-home"})


@pytest.fixture
def outside(tmp_path, workdir):
    """Files and a symlink that a sandboxed workflow in `workdir` must not write through."""
    (tmp_path / "keep.txt").write_text("keep")
    (workdir / "escape").symlink_to(tmp_path)
    return tmp_path


def test_writes_outside_the_workdir_are_refused(workdir, outside, workflow_file):
    path = workflow_file(fs_workflow(outside))
    code, doc = run_in(workdir, path, "--sandbox")
    tasks = tasks_by_name(doc)
    assert code == 1
    real_work = os.path.realpath(workdir)
    real_out = os.path.realpath(outside)
    for name, line, call, target in [
            ("rel", 2, "write", "outside.txt"), ("abs", 3, "write", "abs.txt"),
            ("link", 4, "write", "through-link.txt"), ("mkdir", 5, "mkdir", "made"),
            ("rm", 6, "rm", "keep.txt"), ("worker", 12, "write", "worker.txt")]:
        assert tasks[name]["error"] == (
            f"{path}:{line}: fs.{call} of {real_out}/{target} (outside the workdir "
            f"{real_work}) " + REFUSED.format("fs")), name
    assert tasks["inside"]["status"] == "success", tasks["inside"]
    assert written(outside) == []
    assert (workdir / "sub" / "inside.txt").read_text() == "in"


@pytest.mark.parametrize("flags", [("--sandbox", "--allow", "fs"), ()],
                         ids=["granted", "no-sandbox"])
def test_writes_anywhere_when_granted_or_without_the_sandbox(workdir, outside, workflow_file,
                                                              flags):
    code, doc = run_in(workdir, workflow_file(fs_workflow(outside)), *flags)
    assert code == 0, tasks_by_name(doc)
    assert written(outside) == ["abs.txt", "made", "outside.txt", "through-link.txt",
                                "worker.txt"]
    assert not (outside / "keep.txt").exists()


def test_a_tasks_workdir_is_its_writable_directory(tmp_path, workdir, workflow_file):
    own = tmp_path / "own"
    own.mkdir()
    path = workflow_file(f'''
        task("t"):workdir({str(own)!r}):command(function()
            fs.write({str(own / "mine.txt")!r}, "x")
            return fs.write({str(workdir / "cwd.txt")!r}, "x")
        end):build()
    ''')
    code, doc = run_in(workdir, path, "--sandbox")
    assert code == 1
    assert "fs.write of " + os.path.realpath(workdir / "cwd.txt") in \
        tasks_by_name(doc)["t"]["error"]
    assert (own / "mine.txt").exists() and not (workdir / "cwd.txt").exists()


def test_io_needs_fs(workdir, workflow_file):
    path = workflow_file('''
        task("t"):command(function()
            local f = io.open("../io.txt", "w"); f:write("x"); f:close()
            return true
        end):build()
    ''')
    code, doc = run_in(workdir, path, "--sandbox")
    assert code == 1 and tasks_by_name(doc)["t"]["error"] == \
        f"{path}:3: io.open " + REFUSED.format("fs")
    assert not (workdir.parent / "io.txt").exists()
    code, doc = run_in(workdir, path, "--sandbox", "--allow", "fs")
    assert code == 0 and (workdir.parent / "io.txt").exists()


# -- env ----------------------------------------------------------------------------------------
ENV = '''
task("lua"):command(function()
    return true, "", {key = os.getenv("OPENAI_API_KEY"), home = os.getenv("HOME")}
end):build()
task("worker"):timeout("30s"):command(function()
    return true, "", {key = os.getenv("OPENAI_API_KEY")}
end):build()
task("exec"):env({FROM_TASK = "t"}):command(function()
    local r = exec.run("echo \\"$OPENAI_API_KEY|$FROM_TASK|$FROM_CALL|$HOME\\"",
                       {env = {FROM_CALL = "c"}})
    return r.success, (r.stdout:gsub("\\n$", ""))
end):build()
task("argv"):timeout("30s"):command(function()
    local r = exec.run({"sh", "-c", "echo \\"$OPENAI_API_KEY\\""})
    return r.success, (r.stdout:gsub("\\n$", ""))
end):build()
'''
SECRET = "sk-test-not-a-real-key-0123456789"


def test_environment_variables_beyond_the_allow_list_are_hidden(workdir, workflow_file):
    path = workflow_file(ENV)
    proc = cli("run", "-f", path, "--sandbox", "--allow", "exec", "-o", "json", cwd=workdir,
               env={"OPENAI_API_KEY": SECRET})
    tasks = tasks_by_name(json.loads(proc.stdout))
    assert proc.returncode == 0, proc.stdout
    assert tasks["lua"]["outputs"] == {"home": os.environ["HOME"]}  # key: nil
    assert tasks["worker"]["outputs"] in (None, {}, [])
    assert tasks["exec"]["message"] == f"|t|c|{os.environ['HOME']}"
    assert tasks["argv"]["message"] == ""
    assert SECRET not in proc.stdout + proc.stderr
    assert ('os.getenv("OPENAI_API_KEY") is nil: reading it ' + REFUSED.format("env")) \
        in proc.stderr


@pytest.mark.parametrize("flags", [("--sandbox", "--allow", "exec,env"), ()],
                         ids=["granted", "no-sandbox"])
def test_environment_is_visible_when_granted(workdir, workflow_file, flags):
    path = workflow_file(ENV)
    code, doc = run_in(workdir, path, *flags, env={"OPENAI_API_KEY": "visible"})
    tasks = tasks_by_name(doc)
    assert code == 0, doc
    # every task saw the key; being a credential's variable, it is shown as its placeholder
    seen = "[REDACTED:api_key:1]"
    assert tasks["lua"]["outputs"]["key"] == tasks["worker"]["outputs"]["key"] == seen
    assert tasks["exec"]["message"] == f"{seen}|t|c|{os.environ['HOME']}"
    assert tasks["argv"]["message"] == seen
    assert "visible" not in json.dumps(doc)


def test_shell_string_tasks_get_only_the_allowed_environment(workdir, workflow_file):
    path = workflow_file('''
        task("a"):env({FROM_TASK = "t"}):command("echo \\"$OPENAI_API_KEY|$FROM_TASK\\""):build()
        task("b"):timeout("30s"):command("echo \\"$OPENAI_API_KEY\\""):build()
    ''')
    code, doc = run_in(workdir, path, "--sandbox", "--allow", "exec",
                       env={"OPENAI_API_KEY": "hidden"})
    tasks = tasks_by_name(doc)
    assert code == 0, doc
    assert tasks["a"]["outputs"]["stdout"] == "|t\n" and tasks["b"]["outputs"]["stdout"] == "\n"


# -- net ----------------------------------------------------------------------------------------
NET = '''
task("alert"):command(function()
    return notifications.send_alert("disk full", {{webhook = {hook!r}}}).sent
end):build()
task("health"):timeout("30s"):command(function()
    return monitoring.get_health({health!r}).status ~= nil
end):build()
task("local"):command(function()
    return notifications.send_alert("only logged").channel == "log"
        and monitoring.get_health().status ~= nil
end):build()
'''


def test_network_calls_are_refused_and_send_nothing(workdir, workflow_file, sink):
    path = workflow_file(NET.format(hook=sink.url("/hook/secret-part"),
                                    health=sink.url("/healthz")))
    code, doc = run_in(workdir, path, "--sandbox", env={"SLOTH_ALERT_WEBHOOK": ""})
    tasks = tasks_by_name(doc)
    assert code == 1
    assert tasks["alert"]["error"] == \
        f"{path}:3: notifications.send_alert to a webhook (127.0.0.1) " + REFUSED.format("net")
    assert tasks["health"]["error"] == \
        f"{path}:6: monitoring.get_health of URLs (127.0.0.1) " + REFUSED.format("net")
    assert tasks["local"]["status"] == "success"  # a log line and host metrics stay local
    assert sink.requests == []


@pytest.mark.parametrize("flags", [("--sandbox", "--allow", "net"), ()],
                         ids=["granted", "no-sandbox"])
def test_network_calls_are_made_when_granted(workdir, workflow_file, sink, flags):
    path = workflow_file(NET.format(hook=sink.url("/hook"), health=sink.url("/healthz")))
    code, doc = run_in(workdir, path, *flags, env={"SLOTH_ALERT_WEBHOOK": ""})
    assert code == 0, doc
    assert sorted(r["path"] for r in sink.requests) == ["/healthz", "/hook"]


def test_aws_needs_net(workdir, workflow_file, sink):
    path = workflow_file('''
        task("t"):command(function()
            aws.configure({region = "us-east-1"})
            return true, "", aws.ec2.get_utilization_metrics("1h")
        end):build()
    ''')
    env = {"AWS_ENDPOINT_URL": sink.url(""), "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing-secret", "AWS_CONFIG_FILE": "/dev/null",
           "AWS_SHARED_CREDENTIALS_FILE": "/dev/null", "AWS_MAX_ATTEMPTS": "1"}
    code, doc = run_in(workdir, path, "--sandbox", env=env)
    assert code == 1
    assert tasks_by_name(doc)["t"]["error"] == \
        f"{path}:4: aws.ec2.get_utilization_metrics " + REFUSED.format("net")
    assert sink.requests == []
    run_in(workdir, path, "--sandbox", "--allow", "net", env=env)
    assert sink.requests  # it reached the (fake) endpoint


AI = '''
task("t"){timeout}:command(function()
    ai.configure({{base_url = {url!r}, api_key = "k"}})
    return true, ai.complete("hello").text
end):build()
'''


@pytest.mark.parametrize("timeout", ["", ':timeout("30s")'], ids=["here", "worker"])
def test_ai_over_http_needs_net(workdir, workflow_file, server, timeout):
    path = workflow_file(AI.format(timeout=timeout, url=server.base_url))
    code, doc = run_in(workdir, path, "--sandbox")
    assert code == 1
    assert tasks_by_name(doc)["t"]["error"] == \
        f"{path}:4: ai.complete through the openai provider (127.0.0.1) " + REFUSED.format("net")
    assert server.requests == []
    code, doc = run_in(workdir, path, "--sandbox", "--allow", "net")
    assert code == 0, doc
    assert tasks_by_name(doc)["t"]["message"] == "reply text" and len(server.requests) == 1


def test_ai_over_http_configured_from_the_environment_needs_net(workdir, workflow_file, server):
    path = workflow_file('task("t"):command(function() return true, ai.complete("hi").text end)'
                         ':build()')
    code, doc = run_in(workdir, path, "--sandbox",
                       env={"OPENAI_API_KEY": API_KEY, "OPENAI_BASE_URL": server.base_url})
    assert code == 1 and REFUSED.format("net") in tasks_by_name(doc)["t"]["error"]
    assert server.requests == []


# -- history --------------------------------------------------------------------------------------
def test_history_records_the_grants(workdir, workflow_file):
    path = workflow_file('task("t"):command(function() return true end):build()')
    assert run_in(workdir, path, "--sandbox", "--allow", "net,exec")[0] == 0
    assert run_in(workdir, path, "--sandbox")[0] == 0
    assert run_in(workdir, path)[0] == 0
    code, doc = cli_json("history")
    assert code == 0
    assert [r["grants"] for r in doc["runs"]] == ["", "sandbox", "sandbox+exec,net"]


def test_allow_without_sandbox_is_a_usage_error(workflow_file):
    proc = cli("run", "-f", workflow_file('task("t"):command("true"):build()'), "--allow", "exec")
    assert proc.returncode == 3 and "--allow only means something with --sandbox" in proc.stderr
