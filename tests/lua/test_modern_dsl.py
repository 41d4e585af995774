"""The Go sloth-runner's "Modern DSL", as its users write it: our own files in its forms."""

from __future__ import annotations

import json
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sloth_runner.errors import DependencyError, LoadError
from tests.conftest import cli, cli_json, task_message_run_elsewhere, tasks_by_name


def test_fluent_workflow_define_builds_and_runs(workflow_file, load):
    path = workflow_file('''
        local build = task("build"):command(function() return true, "built" end):build()
        local test = task("test"):depends_on({build})
            :command(function(p, deps) return true, "after " .. tostring(deps.build ~= nil) end)
            :build()
        workflow.define("ci")
            :description("pipeline")
            :version("2.1")
            :tasks({build, test})
            :config({max_parallel_tasks = 3})
            :on_start(function() return true end)
            :on_complete(function(success, results) end)
            :build()
    ''')
    run, _ = load(path)
    (ci,) = run.workflows
    assert (ci.name, ci.description, ci.max_parallel) == ("ci", "pipeline", 3)
    assert [t.name for t in ci.tasks] == ["build", "test"]
    assert ci.tasks[1].depends_on == ("build",)
    result = run.execute()
    assert [t.status for t in result.workflows[0].tasks] == ["success", "success"]


def test_an_unknown_workflow_builder_method_names_file_and_line(workflow_file, load):
    path = workflow_file('workflow.define("w")\n    :descripton("x")\n')
    with pytest.raises(LoadError) as err:
        load(path)
    assert str(err.value).startswith(f"{path}:2:")
    assert "workflow builder has no method 'descripton'" in str(err.value)


def test_table_form_takes_version_keyed_and_plain_tasks(workflow_file, load):
    path = workflow_file('''
        local built = task("c"):depends_on("b"):command("true"):build()
        workflow.define("w", {
            version = "1.0",
            tasks = {
                a = {command = function() return true end},
                b = {command = "true", depends_on = {"a"}},
                built,
                {name = "d", command = "true", depends_on = {built}},
            },
        })
    ''')
    run, _ = load(path)
    names = {t.name: t.depends_on for t in run.workflows[0].tasks}
    assert names == {"a": (), "b": ("a",), "c": ("b",), "d": ("c",)}
    assert {t.status for t in run.execute().workflows[0].tasks} == {"success"}


def test_a_built_task_no_workflow_lists_is_not_run_and_named(workflow_file):
    path = workflow_file('''
        task("stray"):command(function() error("must not run") end):build()
        workflow.define("w", {tasks = {task("ok"):command("true"):build()}})
    ''')
    proc = cli("run", "-f", path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "built but in no workflow, so not run: 'stray'" in proc.stderr
    assert "stray" not in proc.stdout


THIS_AND_SEED = '''
task("go_style"):command(function(this, params)
    return true, this:name() .. "|" .. this.name() .. "|" .. params.task_name .. "|"
        .. tostring(this.workdir.get() ~= nil)
end):build()
task("self_style"):command(function(self, params, deps)
    return true, self:name() .. ":" .. tostring(deps.go_style ~= nil)
end):depends_on("go_style"):build()
task("seed_style"):command(function(params, deps)
    return true, params.task_name
end):build()
'''


@pytest.mark.parametrize("where", ["", ':timeout("10s")'])
def test_this_style_and_seed_style_functions_in_one_file(workflow_file, where):
    source = THIS_AND_SEED.replace(":build()", where + ":build()")
    code, doc = cli_json("run", "-f", workflow_file(source))
    assert code == 0, doc
    t = tasks_by_name(doc)
    assert t["go_style"]["message"] == "go_style|go_style|go_style|true"
    assert t["self_style"]["message"] == "self_style:true"
    assert t["seed_style"]["message"] == "seed_style"


def test_this_workdir_methods_work_with_dot_and_colon(workflow_file, tmp_path):
    wd = tmp_path / "work"
    path = workflow_file(f'''
        task("w"):workdir("{wd}"):command(function(this)
            local before = this.workdir.exists()
            this.workdir:create()
            fs.write("f.txt", "x")
            local made = this.workdir:exists() and fs.exists("f.txt")
            this.workdir.recreate()
            return before == false and made and not fs.exists("f.txt"), this.workdir:get()
        end):build()
    ''')
    code, doc = cli_json("run", "-f", path)
    assert code == 0, doc
    assert tasks_by_name(doc)["w"]["message"] == str(wd)
    assert wd.is_dir() and not (wd / "f.txt").exists()


def test_this_workdir_cleanup_never_removes_the_directory_it_runs_in(workflow_file, tmp_path):
    project = tmp_path / "project"
    (project / "keep").mkdir(parents=True)
    (project / "keep" / "file.txt").write_text("precious")
    path = workflow_file('''
        task("fails"):command(function(this) return false, "x" end)
            :on_fail(function(this) this.workdir:cleanup() end):build()
        task("asks"):command(function(this)
            local ok, why = this.workdir.recreate()
            return ok == false, why
        end):build()
    ''')
    code, doc = cli_json("run", "-f", path, cwd=project)
    assert (project / "keep" / "file.txt").read_text() == "precious"
    assert "has no :workdir()" in tasks_by_name(doc)["asks"]["message"]


def test_go_style_hooks_get_this_params_and_what_happened(workflow_file, tmp_path):
    out = tmp_path / "hooks.json"
    path = workflow_file(f'''
        local seen = {{}}
        local function save() fs.write("{out}", json.encode(seen)) end
        task("ok"):command(function() return true, "m", {{v = 1}} end)
            :on_success(function(this, params, output)
                seen.success = this:name() .. ":" .. output.v; save() end)
            :build()
        task("bad"):command(function() return false, "broken" end)
            :on_fail(function(this, params, err)
                seen.fail = err.task_name .. ":" .. err.error; save() end)
            :build()
    ''')
    cli("run", "-f", path, "--max-parallel", "1")
    assert json.loads(out.read_text()) == {"success": "ok:1", "fail": "bad:broken"}


def test_pre_hook_post_hook_and_on_timeout(workflow_file, tmp_path):
    marks = tmp_path / "marks"
    path = workflow_file(f'''
        local tries = 0
        local function mark(s) fs.write("{marks}", s .. "\\n", true) end
        task("gated"):retries(1, "fixed"):retry_delay(0)
            :pre_hook(function(params)
                tries = tries + 1
                mark("pre " .. tries)
                return tries > 1, "not ready"
            end)
            :command(function() mark("command"); return true, "", {{n = 7}} end)
            :post_hook(function(params, output) mark("post " .. output.n); return true end)
            :build()
        task("vetoed"):command(function() return true end)
            :post_hook(function() return false, "output looks wrong" end):build()
        task("slow"):timeout("0.3s"):command(function() while true do end end)
            :on_timeout(function(this, params) mark("timeout " .. this:name()) end):build()
    ''')
    code, doc = cli_json("run", "-f", path, "--max-parallel", "1")
    t = tasks_by_name(doc)
    assert t["gated"]["status"] == "success" and t["gated"]["attempts"] == 2
    assert t["vetoed"]["status"] == "failed"
    assert "post_hook: output looks wrong" in t["vetoed"]["error"]
    assert t["slow"]["status"] == "timeout"
    lines = marks.read_text().splitlines()
    assert lines[:4] == ["pre 1", "pre 2", "command", "post 7"]
    assert "timeout slow" in lines


def test_artifacts_are_handed_to_the_tasks_that_consume_them(workflow_file, tmp_path):
    make, use = tmp_path / "make", tmp_path / "use"
    path = workflow_file(f'''
        task("make"):workdir("{make}"):command("mkdir -p dist && echo v1 > dist/app.txt")
            :artifacts({{"dist/*.txt"}}):build()
        task("change"):depends_on("make"):command("echo v2 > {make}/dist/app.txt"):build()
        task("use"):depends_on("change"):workdir("{use}"):consumes({{"app.txt"}})
            :command("cat app.txt"):build()
        task("orphan"):consumes({{"nothing.txt"}}):command("true"):build()
        task("liar"):workdir("{use}"):artifacts({{"never-made.bin"}}):command("true"):build()
    ''')
    make.mkdir()
    use.mkdir()
    code, doc = cli_json("run", "-f", path, "--max-parallel", "1")
    t = tasks_by_name(doc)
    assert t["use"]["status"] == "success"
    assert t["use"]["outputs"]["stdout"] == "v1\n"  # as it was when its producer succeeded
    assert t["orphan"]["status"] == "error" and "no task before it has left" in t["orphan"]["error"]
    assert t["liar"]["status"] == "failed" and "never-made.bin" in t["liar"]["error"]
    assert code == 1  # liar failed; a failure outranks orphan's error (4 alone)


def test_shell_user_async_and_run_alias(workflow_file):
    user = "nobody" if os.geteuid() == 0 else None
    path = workflow_file(f'''
        task("sh"):shell("echo from a script"):async(true):build()
        task("aliased"):run(function() return true, "run is command" end):build()
        {f'task("as_user"):user("{user}"):command("id -un"):build()' if user else ''}
        task("not_me"):user("root"):command("id -un"):build()
    ''')
    code, doc = cli_json("run", "-f", path)
    t = tasks_by_name(doc)
    assert t["sh"]["outputs"]["stdout"] == "from a script\n"
    assert t["aliased"]["message"] == "run is command"
    if user:
        assert t["as_user"]["outputs"]["stdout"] == "nobody\n"
        assert t["not_me"]["status"] == "success"
    else:
        assert "needs sloth-runner to run as root" in t["not_me"]["error"]


def test_delegate_to_is_a_clear_run_time_error_not_a_load_error(workflow_file, tmp_path):
    (tmp_path / "v.yaml").write_text("hosts: {web: web-01}\n")
    path = workflow_file('''
        task("remote"):delegate_to("${values.hosts.web}"):retries(3)
            :on_failure(function() log.info("on_failure ran") end):command("true"):build()
        task("local"):command("true"):build()
    ''')
    assert cli("list", "-f", path, "-v", str(tmp_path / "v.yaml")).returncode == 0
    code, doc = cli_json("run", "-f", path, "-v", str(tmp_path / "v.yaml"))
    t = tasks_by_name(doc)
    assert code == 4 and t["local"]["status"] == "success"
    assert t["remote"]["status"] == "error" and t["remote"]["attempts"] == 1  # nothing to retry
    assert "task 'remote' is delegated to agent 'web-01'" in t["remote"]["error"]
    assert "agents" in t["remote"]["error"]
    code, doc = cli_json("run", "-f", path, "-v", str(tmp_path / "v.yaml"), "--delegate-to", "db-01")
    assert "delegated to agent 'db-01'" in tasks_by_name(doc)["local"]["error"]


def test_shebang_import_and_require_beside_the_file(tmp_path):
    folder = tmp_path / "flows"
    (folder / "lib").mkdir(parents=True)
    (folder / "lib" / "greet.lua").write_text('return {hi = function(n) return "hi " .. n end}')
    (folder / "shared.lua").write_text('return {version = "3"}')
    (folder / "flow.sloth").write_text(
        '#!/usr/bin/env sloth-runner\n'
        'local greet = require("lib.greet")\n'
        'local shared = import("shared.lua")\n'
        'task("t"):command(function() return true, greet.hi(shared.version) end):build()\n')
    assert task_message_run_elsewhere(tmp_path, folder / "flow.sloth") == "hi 3"


def test_a_file_with_nothing_to_run_is_a_load_error(workflow_file):
    proc = cli("run", "-f", workflow_file("local x = 1\n"))
    assert proc.returncode == 2 and "defines no task and no workflow" in proc.stderr
    hook = workflow_file('return {name = "h", event_type = "task.failed", '
                         'execute = function(e) end}', "hook.lua")
    proc = cli("run", "-f", hook)
    assert proc.returncode == 2 and "sloth-runner hook add" in proc.stderr
    script = workflow_file('log.info("a script")\n', "script.lua")
    assert cli("run", "-f", script).returncode == 0  # top-level code that does something


def test_a_missing_build_is_named_and_hinted(workflow_file, load):
    path = workflow_file('''
        task("a"):command("true")
        task("b"):depends_on("a"):command("true"):build()
    ''')
    with pytest.raises(DependencyError) as err:
        load(path)
    assert "depends on unknown task 'a'" in str(err.value)
    assert f"a task builder 'a' at {path}:2 is never built" in str(err.value)
    proc = cli("run", "-f", workflow_file('task("x"):command("true")\n'
                                          'task("y"):command("true"):build()\n', "w2.lua"))
    assert "w2.lua:1: task 'x' is never built" in proc.stderr


def test_values_files_become_the_values_global_later_wins(workflow_file, tmp_path):
    (tmp_path / "a.yaml").write_text("env: dev\nregion: eu\nlimits: {cpu: 1}\n")
    (tmp_path / "b.yaml").write_text("env: prod\n")
    path = workflow_file('''
        workflow.define("w")
            :config({timeout = "${values.budget}"})
            :tasks({task("t"):command(function(params)
                return true, values.env .. "|" .. values.region .. "|" .. values.limits.cpu
                    .. "|" .. params.env .. "|" .. params.extra
            end):build()})
    ''')
    (tmp_path / "c.yaml").write_text("budget: 2m\n")
    code, doc = cli_json("run", "-f", path, "-v", str(tmp_path / "a.yaml"),
                         "--values", str(tmp_path / "b.yaml"), "-v", str(tmp_path / "c.yaml"),
                         "--param", "extra=x")
    assert code == 0, doc
    assert tasks_by_name(doc)["t"]["message"] == "prod|eu|1|prod|x"


def test_values_is_an_empty_table_without_values_files(workflow_file):
    path = workflow_file('''
        task("t"):command(function() return true, values.host or "localhost" end):build()
    ''')
    code, doc = cli_json("run", "-f", path)
    assert code == 0 and tasks_by_name(doc)["t"]["message"] == "localhost"


def test_go_cli_flags(workflow_file):
    path = workflow_file('''
        workflow.define("deploy", {tasks = {
            task("one"):command("true"):build(),
            task("two"):depends_on("one"):command("true"):build(),
        }})
    ''')
    for style in ("enhanced", "rich", "modern"):
        assert cli("run", "-f", path, "-o", style, "--yes").returncode == 0
    proc = cli("run", "-f", path, "production")  # Go: a stack name where a workflow would be
    assert proc.returncode == 0 and "taken as the stack name" in proc.stderr
    _, hist = cli_json("history")
    assert hist["runs"][0]["stack"] == "production"
    bare = workflow_file('task("t"):command("true"):build()', name="bare.lua")
    proc = cli("run", "-f", bare, "staging")  # a file of tasks only: the name is a stack too
    assert proc.returncode == 0 and "taken as the stack name" in proc.stderr
    assert cli_json("history")[1]["runs"][0]["stack"] == "staging"
    assert "stack production" in cli("history").stdout


def test_interactive_asks_before_each_task(workflow_file):
    import subprocess
    import sys

    path = workflow_file('''
        task("a"):command("true"):build()
        task("b"):depends_on("a"):command("true"):build()
        task("c"):depends_on("b"):command("true"):build()
    ''')
    proc = subprocess.run([sys.executable, "-m", "sloth_runner", "run", "-f", path, "--interactive",
                           "-o", "json"], input="y\ns\n", capture_output=True, text=True,
                          timeout=60)
    t = tasks_by_name(json.loads(proc.stdout))
    assert t["a"]["status"] == "success"
    assert t["b"]["status"] == "skipped" and "skipped at the prompt" in t["b"]["message"]
    assert t["c"]["status"] == "skipped"
    assert proc.stderr.count("run task '") == 2
    proc = subprocess.run([sys.executable, "-m", "sloth_runner", "run", "-f", path, "--interactive",
                           "--yes"], capture_output=True, text=True, timeout=60, input="")
    assert proc.returncode == 0 and "run task" not in proc.stderr


def test_ctrl_c_at_the_interactive_prompt_interrupts_the_run(workflow_file):
    import signal
    import subprocess
    import sys

    path = workflow_file('''
        task("a"):command("true"):build()
        task("b"):depends_on("a"):command("true"):build()
    ''')
    with subprocess.Popen([sys.executable, "-m", "sloth_runner", "run", "-f", path,
                           "--interactive", "-o", "json"], stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        try:
            proc.stdin.write("y\n")  # a runs; the prompt for b waits on an open, silent stdin
            proc.stdin.flush()
            asked = ""
            while asked.count("run task '") < 2:
                char = proc.stderr.read(1)
                assert char, asked
                asked += char
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=20)  # stdin stays open: only the signal can end the prompt
            out, err = proc.stdout.read(), proc.stderr.read()
        finally:
            proc.kill()
    assert proc.returncode == 130, err
    doc = json.loads(out)
    assert doc["status"] == "interrupted"
    t = tasks_by_name(doc)
    assert t["a"]["status"] == "success"
    assert t["b"]["status"] == "skipped" and "interrupted" in t["b"]["message"]


# -- the fluent and the table forms build the same DAG -----------------------------------------

names = st.lists(st.sampled_from("abcdefghij"), min_size=1, max_size=8, unique=True)


@st.composite
def dags(draw):
    order = draw(names)
    edges = {n: sorted(draw(st.sets(st.sampled_from(order[:i]))) if i else [])
             for i, n in enumerate(order)}
    forms = {n: draw(st.sampled_from(["fluent", "table", "keyed", "built_in_table"]))
             for n in order}
    wf_form = draw(st.sampled_from(["fluent", "table"]))
    return order, edges, forms, wf_form


def _source(order, edges, forms, wf_form) -> str:
    lines, entries = [], []
    for n in order:
        deps = ", ".join(f'"{d}"' for d in edges[n])
        if forms[n] in ("fluent", "built_in_table"):
            lines.append(f'local t_{n} = task("{n}"):depends_on({{{deps}}})'
                         f':command("true"):build()')
            entries.append(f"t_{n}")
        elif forms[n] == "table":
            entries.append(f'{{name = "{n}", command = "true", depends_on = {{{deps}}}}}')
        else:
            entries.append(f'{n} = {{command = "true", depends_on = {{{deps}}}}}')
    body = ", ".join(entries)
    if wf_form == "fluent":
        lines.append(f'workflow.define("w"):tasks({{{body}}})')
    else:
        lines.append(f'workflow.define("w", {{tasks = {{{body}}}}})')
    return "\n".join(lines) + "\n"


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(dags())
def test_fluent_and_table_forms_build_the_same_dag(tmp_path_factory, dag):
    from sloth_runner.running import Run

    order, edges, forms, wf_form = dag
    path = tmp_path_factory.mktemp("dag") / "wf.lua"
    path.write_text(_source(order, edges, forms, wf_form))
    with Run(str(path)) as run:
        (wf,) = run.load()
    assert {t.name: sorted(t.depends_on) for t in wf.tasks} == edges


def test_a_go_only_module_is_named_as_such(workflow_file):
    path = workflow_file('''
        task("global"):command(function() pkg.install({"nginx"}) end):build()
        task("required"):command(function() local s = require("systemd") end):build()
        task("typo"):command(function() return lgo.info("x") end):build()
    ''')
    code, doc = cli_json("run", "-f", path)
    t = tasks_by_name(doc)
    note = "is a module of the Go sloth-runner that this version does not have"
    assert t["global"]["error"].endswith(f"(global 'pkg') ('pkg' {note})")
    assert f"module 'systemd' not found ('systemd' {note})" in t["required"]["error"]
    assert t["typo"]["error"].endswith("(global 'lgo')")  # not a Go module: as Lua says it


def test_the_old_task_definitions_syntax_is_named(workflow_file):
    path = workflow_file('''
        TaskDefinitions = {main = {tasks = {{name = "a", command = "true"}}}}
    ''')
    proc = cli("run", "-f", path)
    assert proc.returncode == 2 and "old `TaskDefinitions = {…}` syntax" in proc.stderr


def test_exec_results_and_table_outcomes_as_go_examples_use_them(workflow_file):
    path = workflow_file('''
        task("as_text"):command(function()
            local r = exec.run("echo yes")
            assert(r:match("yes") == "yes" and r.output == "yes\\n")
            return true, "host: " .. r .. "|" .. tostring(r)
        end):build()
        task("table_ok"):command(function() return {success = true, message = "done"} end):build()
        task("table_no"):command(function() return {success = false, error = "broke"} end):build()
        task("kept"):command(function() return exec.run("printf out") end):build()
    ''')
    code, doc = cli_json("run", "-f", path)
    t = tasks_by_name(doc)
    assert t["as_text"]["message"] == "host: yes\n|yes\n"
    assert (t["table_ok"]["status"], t["table_ok"]["message"]) == ("success", "done")
    assert (t["table_no"]["status"], t["table_no"]["error"]) == ("failed", "broke")
    assert t["kept"]["outputs"]["stdout"] == "out" and "output" not in t["kept"]["outputs"]
