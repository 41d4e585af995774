"""Edges of the DSL a reviewer found accepted silently: workflows with nothing to run, repeated
`:tasks()`, keys that disagree with names, nested imports, unresolved `${values.x}`, and a file
whose only builder was never built. Each is a load error with file:line, or works as written."""

from __future__ import annotations

import pytest

from sloth_runner.errors import DefinitionError, LoadError
from tests.conftest import cli, cli_json, task_message_run_elsewhere, tasks_by_name

# -- a workflow with no tasks ------------------------------------------------------------------


@pytest.mark.parametrize("source", [
    'workflow.define("w")',
    'workflow.define("w"):tasks({})',
    'workflow.define("w", {tasks = {}})',
    'workflow.define("w", {description = "nothing yet"})',
    'workflow.define("w"):description("d"):on_complete(function() end)',
])
def test_a_workflow_without_tasks_is_a_load_error(workflow_file, load, source):
    path = workflow_file("-- header\n" + source + "\n")
    with pytest.raises(DefinitionError) as err:
        load(path)
    assert str(err.value).startswith(f"{path}:2: workflow 'w' has no tasks")


def test_an_empty_workflow_fails_the_cli_with_exit_2(workflow_file):
    path = workflow_file('''
        workflow.define("full", {tasks = {task("a"):command("true"):build()}})
        workflow.define("empty")
    ''')
    proc = cli("run", "-f", path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert f"{path}:3: workflow 'empty' has no tasks" in proc.stderr
    assert "success" not in proc.stdout


# -- :tasks() called more than once ------------------------------------------------------------


def test_repeated_tasks_calls_add_to_the_list(workflow_file):
    path = workflow_file('''
        local a = task("a"):command(function() return true, "ran a" end):build()
        local b = task("b"):depends_on("a"):command(function() return true, "ran b" end):build()
        workflow.define("w"):tasks({a}):description("d"):tasks({b, c = {command = "true"}})
    ''')
    code, doc = cli_json("run", "-f", path)
    assert code == 0, doc
    t = tasks_by_name(doc)
    assert list(t) == ["a", "b", "c"]
    assert (t["a"]["message"], t["b"]["message"]) == ("ran a", "ran b")


def test_a_task_given_in_two_tasks_calls_is_a_duplicate(workflow_file, load):
    path = workflow_file('''
        local a = task("a"):command("true"):build()
        workflow.define("w"):tasks({a}):tasks({a})
    ''')
    with pytest.raises(DefinitionError, match="workflow 'w' defines task 'a' twice"):
        load(path)


# -- a key that disagrees with the task's name ---------------------------------------------------


@pytest.mark.parametrize("entry, named", [
    ('lint = {name = "other", command = "true"}', "other"),
    ('lint = task("lint2"):command("true"):build()', "lint2"),
])
@pytest.mark.parametrize("form", ["table", "fluent"])
def test_a_key_that_is_not_the_tasks_name_is_a_load_error(workflow_file, load, entry, named,
                                                          form):
    wf = (f'workflow.define("w", {{tasks = {{{entry}}}}})' if form == "table"
          else f'workflow.define("w"):tasks({{{entry}}})')
    path = workflow_file("-- header\n" + wf + "\n")
    with pytest.raises(LoadError) as err:
        load(path)
    message = str(err.value)
    assert message.startswith(f"{path}:2: workflow 'w':"), message
    assert "'lint'" in message and f"'{named}'" in message


def test_a_key_equal_to_the_name_or_a_table_without_name_is_fine(workflow_file, load):
    path = workflow_file('''
        workflow.define("w", {tasks = {
            lint = {name = "lint", command = "true"},
            test = task("test"):command("true"):build(),
            fmt = {command = "true"},
        }})
    ''')
    run, _ = load(path)
    assert sorted(t.name for t in run.workflows[0].tasks) == ["fmt", "lint", "test"]


# -- import() from an imported file ------------------------------------------------------------


def test_nested_import_resolves_from_the_importing_file(tmp_path):
    root = tmp_path / "flows"
    (root / "lib" / "sub").mkdir(parents=True)
    (root / "common.lua").write_text('return {v = "root"}')
    (root / "only_at_root.lua").write_text('return {v = "root-only"}')
    (root / "lib" / "common.lua").write_text('return {v = "lib"}')
    (root / "lib" / "sub" / "inner.lua").write_text(
        'local c = import("../common.lua")\n'           # lib/common.lua, beside the importer
        'local tail = import("tail.lua")\n'
        'local r = import("only_at_root.lua")\n'        # not beside it: the workflow's folder
        'local m = require("lib.common")\n'             # module names stay root-relative
        'return {v = c.v .. "|" .. tail.v .. "|" .. r.v .. "|" .. m.v}\n')
    (root / "lib" / "sub" / "tail.lua").write_text('return import("../common.lua")\n')
    (root / "main.lua").write_text(
        'local inner = import("lib/sub/inner.lua")\n'
        'local top = import("common.lua")\n'
        'task("t"):command(function() return true, inner.v .. "|" .. top.v end):build()\n')
    assert task_message_run_elsewhere(tmp_path, root / "main.lua") == "lib|lib|root-only|lib|root"


def test_a_missing_nested_import_names_the_importing_file_and_line(tmp_path):
    root = tmp_path / "flows"
    (root / "lib").mkdir(parents=True)
    (root / "lib" / "inner.lua").write_text('-- a library\nreturn {x = import("../gone.lua")}\n')
    (root / "main.lua").write_text('import("lib/inner.lua")\ntask("t"):command("true"):build()\n')
    proc = cli("run", "-f", str(root / "main.lua"))
    assert proc.returncode == 2
    assert f"{root / 'lib' / 'inner.lua'}:2: import: cannot load ../gone.lua" in proc.stderr
    assert str(root / "lib" / "../gone.lua") in proc.stderr


# -- ${values.x} that no values file sets ----------------------------------------------------------


@pytest.mark.parametrize("source, line, field, ref", [
    ('task("a"):delegate_to("${values.host}"):command("true"):build()', 2,
     "task 'a': :delegate_to()", "${values.host}"),
    ('workflow.define("w", {config = {workdir = "/srv/${values.env}/app"},\n'
     '  tasks = {task("a"):command("true"):build()}})', 2,
     "workflow 'w': config.workdir", "${values.env}"),
    ('workflow.define("w"):delegate_to("${values.hosts.db}")\n'
     '  :tasks({task("a"):command("true"):build()})', 2,
     "workflow 'w': delegate_to", "${values.hosts.db}"),
])
def test_an_unresolved_values_reference_is_a_load_error(workflow_file, tmp_path, source, line,
                                                        field, ref):
    path = workflow_file("-- header\n" + source + "\n")
    proc = cli("run", "-f", path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert f"{path}:{line}: {field}: {ref} is not set" in proc.stderr
    assert "-v values.yaml" in proc.stderr
    (tmp_path / "v.yaml").write_text("other: 1\nhosts: {web: w1}\n")  # given, but not that name
    proc = cli("run", "-f", path, "-v", str(tmp_path / "v.yaml"))
    assert proc.returncode == 2 and f"{field}: {ref} is not set" in proc.stderr


def test_a_resolved_values_reference_reaches_the_task(workflow_file, tmp_path):
    (tmp_path / "srv" / "prod" / "app").mkdir(parents=True)
    (tmp_path / "v.yaml").write_text("env: prod\n")
    path = workflow_file(f'''
        workflow.define("w", {{config = {{workdir = "{tmp_path}/srv/${{values.env}}/app"}},
            tasks = {{task("a"):command("pwd"):build()}}}})
    ''')
    code, doc = cli_json("run", "-f", path, "-v", str(tmp_path / "v.yaml"))
    assert code == 0, doc
    assert tasks_by_name(doc)["a"]["outputs"]["stdout"] == f"{tmp_path}/srv/prod/app\n"


# -- a file whose only builder was never built ---------------------------------------------------


def test_a_file_with_only_an_unbuilt_builder_names_it(workflow_file):
    path = workflow_file('-- header\ntask("a"):command("true")\n')
    proc = cli("run", "-f", path)
    assert proc.returncode == 2
    assert f"{path}:2: task 'a' is never built: end its chain with :build()" in proc.stderr


# -- errors without a position of their own still name file:line --------------------------------


@pytest.mark.parametrize("isolate", ["", ':timeout("30s")'], ids=["in_process", "in_worker"])
def test_error_tables_and_bad_return_values_name_the_file_and_line(run_lua, isolate):
    res, _ = run_lua(f'''
        task("table"){isolate}:command(function()
            local x = 1
            error({{code = 42, msg = "disk full"}})
        end):build()
        task("object"){isolate}:command(function()
            error(setmetatable({{}}, {{__tostring = function() return "custom" end}}))
        end):build()
        task("string"){isolate}:command(function() return "yes" end):build()
        task("number"){isolate}:command(function() return 0 end):build()
    ''')
    assert res["table"].error.endswith('wf.lua:4: disk full (error table {code = 42, '
                                       'msg = "disk full"})') or \
        res["table"].error.endswith('wf.lua:4: disk full (error table {msg = "disk full", '
                                    'code = 42})')
    assert "table: 0x" not in res["table"].error
    assert res["object"].error.endswith("wf.lua:7: custom")
    assert "wf.lua:9: task 'string': a command must return true or false" in res["string"].error
    assert res["string"].error.endswith("it returned a string")
    assert "wf.lua:10: task 'number': a command must return" in res["number"].error
