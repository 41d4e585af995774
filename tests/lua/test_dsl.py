"""The fluent DSL and workflow.define: what they build and how they fail (file:line)."""

from __future__ import annotations

import pytest

from sloth_runner.errors import DefinitionError, DependencyError, LoadError, LuaScriptError


def test_builder_fields_reach_the_engine(workflow_file, load):
    path = workflow_file('''
        task("a")
            :description("first")
            :command(function() return true end)
            :timeout("1m30s")
            :retries(2, "linear")
            :retry_delay("250ms")
            :workdir("/tmp")
            :env({A = "1", B = 2})
            :build()
        task("b"):depends_on("a"):depends_on({"c"}):command("true"):build()
        task("c"):command("true"):run_if("true"):abort_if(function() return false end)
            :on_success(function() end):on_failure(function() end):build()
    ''')
    loaded, _ = load(path)
    (wf,) = loaded.workflows
    a, b, c = wf.tasks
    assert wf.name == "default"
    assert (a.description, a.timeout, a.retries, a.backoff, a.retry_delay) == \
        ("first", 90.0, 2, "linear", 0.25)
    assert (a.workdir, a.env) == ("/tmp", {"A": "1", "B": "2"})
    assert a.location == f"{path}:2"
    assert b.depends_on == ("a", "c")
    assert all(x is not None for x in (c.run_if, c.abort_if, c.on_success, c.on_failure))


def test_workflow_define(workflow_file, load):
    path = workflow_file('''
        workflow.define("ci", {
            description = "pipeline",
            tasks = {
                task("lint"):command("true"):build(),
                task("test"):depends_on({"lint"}):command("true"):build(),
            },
            config = {max_parallel_tasks = 3, timeout = "10m"},
            on_start = function() return true end,
            on_complete = function(ok, results) end,
        })
        task("loose"):command("true"):build()
    ''')
    loaded, _ = load(path)
    (ci,) = loaded.workflows  # a file with workflows runs what they list (as in Go)
    assert (ci.name, ci.description, ci.max_parallel, ci.timeout) == ("ci", "pipeline", 3, 600.0)
    assert [t.name for t in ci.tasks] == ["lint", "test"]
    assert any("built but in no workflow, so not run: 'loose'" in w for w in loaded.warnings)


@pytest.mark.parametrize("source, line, words", [
    ('task("a"):comand(function() end)', 2, "no method 'comand'"),
    ('task("a"):command(42)', 2, ":command() expects a function or a shell command string, got number"),
    ('task("a"):depends_on(5)', 2, ":depends_on() expects a task name, a task, or a list"),
    ('task("a"):depends_on({"x", 3})', 2, ":depends_on() expects task names"),
    ('task("a"):retries(-1)', 2, ":retries() expects a whole number >= 0"),
    ('task("a"):retries(2, "sometimes")', 2, 'got "sometimes"'),
    ('task("a"):timeout(true)', 2, ":timeout() expects a duration"),
    ('task("a"):on_success("echo")', 2, ":on_success() expects a function"),
    ('task("a"):env({A = {}})', 2, ":env() expects string keys"),
    ('task("a"):build()', 2, ":build() needs a :command(...) first"),
    ('task(nil)', 2, "task(name) expects a non-empty string"),
    ('workflow.define("w", {tasks = {task("a"):command("true")}})', 2, "is not built"),
    ('workflow.define("w", {taks = {}})', 2, "unknown field 'taks'"),
    ('workflow.define("w", {config = {max_paralel = 1}})', 2, "config.max_paralel: unknown, did you mean max_parallel_tasks?"),
    ('workflow.define("w", {tasks = {"a"}})', 2, "tasks[1] is not a task"),
])
def test_misuse_names_the_method_and_file_line(workflow_file, load, source, line, words):
    path = workflow_file("-- header\n" + source + "\n")
    with pytest.raises(LoadError) as err:
        load(path)
    assert str(err.value).startswith(f"{path}:{line}:")
    assert words in str(err.value)


def test_syntax_error_has_file_and_line(workflow_file, load):
    path = workflow_file('task("a")\n:command(function() return true end\n:build()\n')
    with pytest.raises(LuaScriptError) as err:
        load(path)
    assert str(err.value).startswith(f"{path}:3:")


def test_bad_duration_is_a_definition_error_with_location(workflow_file, load):
    path = workflow_file('\n\ntask("a"):command("true"):timeout("soon"):build()\n')
    with pytest.raises(DefinitionError, match=rf"{path}:3: task 'a': :timeout\(\): bad duration"):
        load(path)


def test_cycles_and_unknown_dependencies_are_load_errors(workflow_file, load):
    path = workflow_file('''
        task("a"):depends_on("b"):command("true"):build()
        task("b"):depends_on("a"):command("true"):build()
    ''')
    with pytest.raises(DependencyError, match="dependency cycle: a -> b -> a"):
        load(path)
    path = workflow_file('task("a"):depends_on("nope"):command("true"):build()\n', "u.lua")
    with pytest.raises(DependencyError, match="unknown task 'nope'"):
        load(path)


def test_duplicate_workflow_names(workflow_file, load):
    path = workflow_file('''
        workflow.define("w", {tasks = {task("a"):command("true"):build()}})
        workflow.define("w", {tasks = {task("b"):command("true"):build()}})
    ''')
    with pytest.raises(DefinitionError, match="'w' is defined more than once"):
        load(path)


def test_standard_libraries_are_available(workflow_file, load):
    path = workflow_file('''
        local stamp = os.date("%Y") .. os.time() .. tostring(os.getenv("HOME"))
        local f = io.open(os.tmpname(), "w"); f:write("x"); f:close()
        assert(string.format("%d", 3) == "3" and math.floor(2.5) == 2 and utf8.char(65) == "A")
        task("a"):command("true"):build()
    ''')
    loaded, _ = load(path)
    assert loaded.workflows[0].tasks[0].name == "a"


def test_python_is_not_reachable_from_lua(workflow_file, load):
    path = workflow_file('''
        assert(python == nil, "python global must be gone")
        local ok, err = pcall(function() return log.info.__class__ end)
        assert(not ok, "dunder attribute access must fail")
        task("a"):command("true"):build()
    ''')
    load(path)


@pytest.mark.parametrize("snippet", [
    'io.open("/etc/passwd")',
    'os.execute("true")',
    'string.dump(function() end)',
    'load(string.char(27) .. "Lua")()',
    'require("io").open("/etc/passwd")',
    'package.loadlib("x", "y")',
    'debug.getregistry()',
    'dofile("/etc/passwd")',
    'local s = log.info.__self__',
])
def test_sandbox_blocks_escapes(workflow_file, load, snippet):
    path = workflow_file(snippet + '\ntask("a"):command("true"):build()\n')
    with pytest.raises(LuaScriptError):
        load(path, sandbox=True)


def test_sandbox_keeps_the_dsl_and_safe_libraries(workflow_file, load):
    path = workflow_file('''
        local t = {3, 1, 2}; table.sort(t)
        assert(t[1] == 1 and string.upper("x") == "X" and os.time() > 0)
        assert(load("return 1 + 1")() == 2)
        task("a"):command(function() return true end):build()
    ''')
    loaded, _ = load(path, sandbox=True)
    assert loaded.workflows[0].tasks[0].name == "a"
