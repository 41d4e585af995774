"""The Lua source editor behind `tune --write`: tokens, shapes, and edits that leave every
other byte alone. Files are loaded by the real loader (their tasks' file:line included), the
recommendations come from synthetic attempts, and the edits are checked on the whole text."""

from __future__ import annotations

import pytest

from sloth_runner.analytics import luaedit, tuning, tuning_edits

HOST = {"cores": 64.0, "memory_kb": 2**40, "memory_budget_kb": 2**39, "notes": []}


def attempts(workflow: str, task: str, seconds: float, runs: int = 10, **extra) -> list[dict]:
    return [{"run_id": f"r{i}", "workflow": workflow, "task": task, "attempt": 1, "final": 1,
             "status": "success", "started_at": 1000.0 * i, "ended_at": 1000.0 * i + seconds,
             "duration_s": seconds, "exit_code": 0, "error": None, "cpu_s": 0.0,
             "max_rss_kb": 0, **extra} for i in range(runs)]


def tuned(load, path: str, history: list[dict]) -> tuning_edits.Plan:
    run, _ = load(path)
    report = tuning.tune(run.workflows, history, HOST)
    with open(path, encoding="utf-8", newline="") as fh:
        return tuning_edits.plan(fh.read(), path, report)


def test_tokens_skip_strings_comments_and_long_brackets():
    src = luaedit.Source(
        '#!/usr/bin/env sloth-runner\n'
        '-- task("a"):timeout("1s")\n'
        'local s = "task(\\"b\\")" .. [==[ task("c") ]] ]==] .. \'\\65\\x42\\u{263A}\\z\n   d\'\n'
        '--[[ task("d")\n]] task "e" :timeout"5s":build()\n'
        'local n = 0x1p4 + .5 + 3e-2\n')
    chains = src.chains("task")
    assert [(c.name, [call.method for call in c.calls]) for c in chains] == [
        ("e", ["timeout", "build"])]
    strings = [t.value for t in src.tokens if t.kind == luaedit.STRING]
    assert strings[:3] == ['task("b")', ' task("c") ]] ', "AB\u263ad"]
    assert [t.text for t in src.tokens if t.kind == luaedit.NUMBER] == ["0x1p4", ".5", "3e-2"]


def test_table_fields_split_outside_brackets_and_function_bodies():
    src = luaedit.Source('x = {name = "a", command = function() local p, q = 1, 2; '
                         'for i = 1, 2 do end end, ["timeout"] = "5s"; 7}')
    (table, *_) = src.tables.values()
    assert [(f.key, luaedit.describe(src, f.value_start, f.value_end)) for f in table.fields] == [
        ("name", '"a"'),
        ("command", "function() local p, q = 1, 2; for i = 1, 2 do end end"),
        ("timeout", '"5s"'), (None, "7")]


def test_unbalanced_text_is_an_error_not_a_guess():
    with pytest.raises(luaedit.LuaSyntaxError, match="line 2"):
        luaedit.Source('x = 1\ny = "open\n')


FLUENT = '''\
-- build things;  keep   this spacing
local t = "5m"
task("compile")   -- compile it
    :command("true")
    :build()
task("link"):depends_on("compile"):timeout( '10s' ):retries(3, "fixed"):command("true"):build()
task("pack"):timeout"20s":command("true"):build()
task("ship"):timeout(t):command("true"):build()
for _, n in ipairs({"gen1"}) do task(n):command("true"):build() end
'''


def test_fluent_chains_replace_literals_and_insert_missing_calls(load, tmp_path):
    path = tmp_path / "wf.lua"
    path.write_text(FLUENT)
    history = (attempts("default", "compile", 2.0) + attempts("default", "link", 40.0)
               + attempts("default", "pack", 0.3) + attempts("default", "ship", 1.0)
               + attempts("default", "gen1", 1.0))
    plan = tuned(load, str(path), history)
    assert plan.text == (FLUENT
                         .replace('task("compile")', 'task("compile"):timeout("3s")')
                         .replace("timeout( '10s' )", "timeout( '1m' )")
                         .replace('timeout"20s"', 'timeout"1s"'))
    left = {c["task"]: c["why"] for c in plan.changes if c["status"] == "skipped"}
    assert left == {"ship": "`:timeout(t)`: its value is computed, not a literal",
                    "gen1": "its name is computed at line 9 (task(...) of no literal)"}
    assert plan.expected() == {("default", "compile", "timeout"): 3,
                               ("default", "link", "timeout"): 60,
                               ("default", "pack", "timeout"): 1}


TABLES = '''\
local shared = {name = "fmt", command = "true"}\r
workflow.define("ci", {\r
    description = "ci } with; braces",\r
    tasks = {\r
        shared,\r
        {name = "lint",  command = "true"},   -- lint\r
        {\r
            name = "unit",\r
            command = function() local a, b = 1, 2; return a < b end,\r
            timeout = 30,\r
            retries = 2,\r
        },\r
        deploy = {command = "true", depends_on = {"lint", "unit"}},\r
    },\r
})\r
workflow.define("nightly", {config = {}, tasks = {shared, {name = "lint", command = "true"}}})\r
workflow.define("weekly")\r
    :tasks({task("report"):command("true"):build()})\r
'''


def test_table_forms_keep_crlf_layout_and_refuse_shared_conflicts(load, tmp_path):
    path = tmp_path / "wf.lua"
    path.write_bytes(TABLES.encode())
    flaky = [{**a, "status": "failed"} for a in attempts("ci", "unit", 1.0, runs=4)]
    for i, a in enumerate(flaky):
        a["run_id"] = f"u{i}"
    history = (attempts("ci", "fmt", 1.0) + attempts("nightly", "fmt", 25.0)
               + attempts("ci", "lint", 12.0) + attempts("nightly", "lint", 3.0)
               + attempts("ci", "unit", 40.0) + flaky
               + [{**a, "attempt": n, "final": int(n == 3)} for a in flaky for n in (2, 3)]
               + attempts("ci", "deploy", 4.0) + attempts("weekly", "report", 200.0))
    # each of these fills the host's memory budget alone: ci must run one task at a time
    for a in history:
        if a["task"] in ("lint", "unit") and a["workflow"] == "ci":
            a["max_rss_kb"] = 2**39
    plan = tuned(load, str(path), history)
    text = plan.text
    assert "\n" not in text.replace("\r\n", "")  # every line ending is still CRLF
    assert text == (TABLES
                    .replace('    description = "ci } with; braces",\r\n',
                             '    description = "ci } with; braces",\r\n'
                             '    config = {max_parallel_tasks = 1},\r\n')
                    .replace('{name = "lint",  command', '{name = "lint",  timeout = "20s", command')
                    .replace("timeout = 30,", "timeout = 60,")
                    .replace("retries = 2,", "retries = 0,")
                    .replace('deploy = {command', 'deploy = {timeout = "10s", command')
                    .replace('{shared, {name = "lint", command',
                             '{shared, {name = "lint", timeout = "5s", command')
                    .replace('task("report")', 'task("report"):timeout("5m")'))
    left = [(c["workflow"], c["task"], c["why"]) for c in plan.changes
            if c["status"] == "skipped"]
    assert left == [
        ("ci", "fmt", "the same definition serves workflow 'nightly' too, which needs 45s"),
        ("nightly", "fmt", "the same definition serves workflow 'ci' too, which needs 2s")]


def test_config_is_added_where_the_workflow_can_hold_it(load, tmp_path):
    source = ('workflow.define("a")\n    :tasks({task("x"):command("true"):build()})\n'
              'workflow.define("b", {config = {timeout = "1h"}, tasks = {{name = "y", '
              'command = "true"}}})\n'
              'workflow.define("c"):config{max_parallel_tasks = 4}'
              ':tasks({{name = "z", command = "true"}})\n')
    path = tmp_path / "wf.lua"
    path.write_text(source)
    rss = {"max_rss_kb": 2**39}
    history = (attempts("a", "x", 1.0, **rss) + attempts("b", "y", 1.0, **rss)
               + attempts("c", "z", 1.0, **rss))
    # one task each: a limit of 1 changes nothing that runs, so nothing is proposed...
    assert [c for c in tuned(load, str(path), history).changes
            if c["setting"] == "max_parallel_tasks"] == []
    # ...but two heavy tasks that could run together must not
    source = source.replace('task("x"):command("true"):build()',
                            'task("x"):command("true"):build(), task("x2"):command("true")'
                            ':build()')
    source = source.replace('{{name = "y", command = "true"}}',
                            '{{name = "y", command = "true"}, {name = "y2", command = "true"}}')
    source = source.replace('{{name = "z", command = "true"}}',
                            '{{name = "z", command = "true"}, {name = "z2", command = "true"}}')
    path.write_text(source)
    history += (attempts("a", "x2", 1.0, **rss) + attempts("b", "y2", 1.0, **rss)
                + attempts("c", "z2", 1.0, **rss))
    plan = tuned(load, str(path), history)
    assert plan.text == (source
                         .replace('workflow.define("a")', 'workflow.define("a")'
                                  ':config({max_parallel_tasks = 1})')
                         .replace('{config = {timeout', '{config = {max_parallel_tasks = 1, '
                                  'timeout')
                         .replace("max_parallel_tasks = 4", "max_parallel_tasks = 1")
                         .replace('task("x")', 'task("x"):timeout("2s")')
                         .replace('task("x2")', 'task("x2"):timeout("2s")')
                         .replace('{name = "y", command', '{name = "y", timeout = "2s", command')
                         .replace('{name = "y2", command', '{name = "y2", timeout = "2s", command')
                         .replace('{name = "z", command', '{name = "z", timeout = "2s", command')
                         .replace('{name = "z2", command',
                                  '{name = "z2", timeout = "2s", command'))


def test_what_cannot_be_edited_safely_is_left_alone_with_the_reason(load, tmp_path):
    (tmp_path / "lib.lua").write_text('task("imported"):command("true"):build()\n')
    source = ('import("lib.lua")\n'
              'local b = task("later"):command("true")\n'
              'b:timeout("9s")\n'
              'b:build()\n'
              'task("heavy"):command("true"):build()\n'
              'task("heavy2"):command("true"):build()\n')
    path = tmp_path / "wf.lua"
    path.write_text(source)
    rss = {"max_rss_kb": 2**39}
    history = (attempts("default", "imported", 1.0) + attempts("default", "later", 1.0)
               + attempts("default", "heavy", 1.0, **rss)
               + attempts("default", "heavy2", 1.0, **rss))
    plan = tuned(load, str(path), history)
    left = {(c["task"], c["setting"]): c["why"] for c in plan.changes
            if c["status"] == "skipped"}
    assert left[("imported", "timeout")].startswith(f"it is defined in {tmp_path}/lib.lua")
    assert left[("later", "timeout")].startswith("its builder is continued in other statements")
    assert left[(None, "max_parallel_tasks")].startswith(
        "tasks outside workflow.define form the `default` workflow")
    assert plan.text == source.replace('task("heavy")', 'task("heavy"):timeout("2s")') \
        .replace('task("heavy2")', 'task("heavy2"):timeout("2s")')


def test_insert_fields_follows_the_table_layout():
    src = luaedit.Source('x = {\n\t\ta = 1, -- one\n\t\tb = 2\n}\ny = {}\nz = {a = 1}')
    first, empty, inline = (src.tables[i] for i in sorted(src.tables))
    edits = [luaedit.insert_fields(src, first, "n = 0", first.fields[1]),
             luaedit.insert_fields(src, empty, "n = 0"),
             luaedit.insert_fields(src, inline, "n = 0")]
    assert luaedit.apply(src.text, edits) == (
        'x = {\n\t\ta = 1, -- one\n\t\tn = 0,\n\t\tb = 2\n}\ny = {n = 0}\nz = {n = 0, a = 1}')


def test_unified_diff_marks_a_missing_final_newline():
    diff = tuning_edits.unified_diff("a\nb", "a\nc", "/x/wf.lua")
    assert diff.splitlines()[:2] == ["--- a/wf.lua", "+++ b/wf.lua"]
    assert "-b\n\\ No newline at end of file\n+c\n\\ No newline at end of file\n" in diff


def test_a_table_of_another_workflow_is_not_taken_for_a_computed_name(load, tmp_path):
    source = ('local n = "build"\n'
              'workflow.define("a", {tasks = {task(n):command("true"):build()}})\n'
              'workflow.define("b", {tasks = {{name = "build", command = "true"}}})\n')
    path = tmp_path / "wf.lua"
    path.write_text(source)
    plan = tuned(load, str(path), attempts("a", "build", 1.0) + attempts("b", "build", 20.0))
    assert [(c["workflow"], c["status"], c.get("why")) for c in plan.changes] == [
        ("a", "skipped", "its name is computed at line 2 (task(...) of no literal)"),
        ("b", "edit", None)]
    assert plan.text == source.replace('{name = "build", command',
                                       '{name = "build", timeout = "30s", command')
