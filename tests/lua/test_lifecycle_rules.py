"""Task lifecycle rules as a Lua file sees them: deadlines in history, retry delays, trigger
rules, up-to-date checks, load-time checks, odd bytes and the spool folder."""

from __future__ import annotations

import json
import os
import time

import pytest

from tests.conftest import cli, cli_json, tasks_by_name

FFFD = "\ufffd"


def history(run_id: str) -> list[dict]:
    code, doc = cli_json("history", run_id)
    assert code == 0
    return doc["attempts"]


def run_summary(run_id: str) -> dict:
    _, doc = cli_json("history")
    (run,) = [r for r in doc["runs"] if r["run_id"] == run_id]
    return run


# -- the workflow deadline ------------------------------------------------------------------------

def test_an_attempt_stopped_by_the_workflow_deadline_is_a_final_row_and_counted(workflow_file):
    path = workflow_file('''
        workflow.define("w", {config = {timeout = "0.4s"}, tasks = {
            task("slow"):retries(2, "fixed"):retry_delay(0):command(function()
                exec.run("sleep 5")
                return true
            end):build(),
            task("after"):depends_on("slow"):command("true"):build(),
            task("quick"):command("true"):build(),
        }})
    ''')
    code, doc = cli_json("run", "-f", path)
    assert code == 1
    t = tasks_by_name(doc)
    assert (t["slow"]["status"], t["slow"]["attempts"], t["slow"]["error"]) == \
        ("timeout", 1, "workflow timed out")
    assert t["slow"]["duration_s"] < 2  # stopped at the deadline, not after the sleep
    rows = {(a["task"], a["attempt"]): a for a in history(doc["run_id"])}
    # the deadline ends the task for good: its one attempt is final, no retry follows
    assert sorted(rows) == [("after", 0), ("quick", 1), ("slow", 1)]
    slow = rows[("slow", 1)]
    assert (slow["status"], slow["final"], slow["error"]) == ("timeout", 1, "workflow timed out")
    assert (rows[("after", 0)]["status"], rows[("after", 0)]["final"]) == ("skipped", 1)
    summary = run_summary(doc["run_id"])
    assert summary["status"] == "failed"
    assert summary["tasks"] == {"timeout": 1, "skipped": 1, "success": 1}


def test_a_retry_wait_does_not_outlive_the_workflow_deadline(run_lua):
    started = time.monotonic()
    res, rec = run_lua('''
        workflow.define("w", {config = {timeout = "0.2s"}, tasks = {
            task("flaky"):retries(3, "fixed"):retry_delay("2s"):command(function()
                return false, "not yet"
            end):build(),
        }})
    ''')
    elapsed = time.monotonic() - started
    assert res["flaky"].status in ("failed", "timeout")
    assert elapsed < 0.9, f"a 0.2 s workflow ran {elapsed:.2f} s (waiting to retry)"


# -- retry_delay(0) and zero timeouts -------------------------------------------------------------

@pytest.mark.parametrize("delay", ["0", '"0s"', '"0ms"'])
@pytest.mark.parametrize("strategy", ["exponential", "linear", "fixed"])
def test_retry_delay_zero_means_no_wait(run_lua, delay, strategy):
    res, rec = run_lua(f'''
        local n = 0
        task("flaky"):retries(2, "{strategy}"):retry_delay({delay}):command(function()
            n = n + 1
            return false, "attempt " .. n
        end):build()
    ''')
    assert res["flaky"].status == "failed" and res["flaky"].attempts == 3
    assert [(a.attempt, a.message) for a in rec.attempts] == \
        [(1, "attempt 1"), (2, "attempt 2"), (3, "attempt 3")]
    span = rec.attempts[-1].ended_at - rec.attempts[0].started_at
    assert span < 0.3, f"3 attempts with no delay took {span:.2f} s"


@pytest.mark.parametrize("timeout", ["0", '"0s"', '"0ms"'])
def test_a_zero_timeout_is_a_load_error_naming_file_and_line(workflow_file, timeout):
    path = workflow_file(f'''
        task("fine"):command("true"):build()
        task("zero")
            :timeout({timeout})
            :command("true")
            :build()
    ''')
    proc = cli("run", "-f", path)
    assert proc.returncode == 2, proc.stderr
    assert f"{path}:3: task 'zero': :timeout() must be longer than 0" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert cli_json("history")[1]["runs"] == []  # nothing ran


def test_a_zero_timeout_in_a_plain_task_table_is_a_load_error(workflow_file):
    path = workflow_file('''
        workflow.define("w", {tasks = {
            {name = "zero", command = "true", timeout = "0s"},
        }})
    ''')
    proc = cli("run", "-f", path)
    assert proc.returncode == 2
    # a table's position is that of the workflow.define call holding it
    assert f"{path}:2: task 'zero': :timeout() must be longer than 0" in proc.stderr


# -- outputs of shell-string tasks ----------------------------------------------------------------

def test_dependents_of_a_shell_string_task_get_its_stdout_and_exit_code(run_lua):
    res, _ = run_lua('''
        task("a"):command("printf 'hello'; echo warn >&2"):build()
        task("b"):depends_on("a"):command(function(p, deps)
            return true, deps.a.stdout .. "|" .. math.tointeger(deps.a.exit_code) .. "|"
                .. deps.a.stderr
        end):build()
        task("bad"):command("echo broken >&2; exit 3"):build()
        task("look"):depends_on("bad"):trigger_rule("all_done"):command(function(p, deps)
            return true, deps.bad.status .. "|" .. math.tointeger(deps.bad.exit_code) .. "|"
                .. deps.bad.error
        end):build()
    ''')
    assert res["a"].status == "success"
    assert res["b"].message == "hello|0|warn\n"
    assert res["bad"].status == "failed"
    assert res["look"].message == "failed|3|exit code 3"


# -- trigger rules --------------------------------------------------------------------------------

# which dependency sets make a dependent run, per rule (ok: succeeded, bad: failed,
# skp: skipped by its run_if)
COMBOS = {"ok": ["ok"], "bad": ["bad"], "okbad": ["ok", "bad"], "skp": ["skp"],
          "okskp": ["ok", "skp"]}
RUNS = {
    "all_success": {"ok"},
    "all_done": {"ok", "bad", "okbad", "skp", "okskp"},
    "one_failed": {"bad", "okbad"},
    "none_failed": {"ok", "skp", "okskp"},
}


def _lua_list(names):
    return "{" + ", ".join(f'"{n}"' for n in names) + "}"


def test_every_trigger_rule_in_builders_and_in_plain_task_tables(run_lua):
    report = '''function(p, deps)
        local seen = {}
        for name, d in pairs(deps) do seen[#seen + 1] = name .. "=" .. tostring(d.status) end
        table.sort(seen)
        return true, table.concat(seen, ",")
    end'''
    built, tables = [], []
    for rule in RUNS:
        for combo, deps in COMBOS.items():
            built.append(f'task("b_{rule}_{combo}"):depends_on({_lua_list("b_" + d for d in deps)})'
                         f':trigger_rule("{rule}"):command(REPORT):build()')
            tables.append(f'{{name = "t_{rule}_{combo}", depends_on = '
                          f'{_lua_list("t_" + d for d in deps)}, trigger_rule = "{rule}", '
                          f'command = REPORT}}')
    source = f'''
        REPORT = {report}
        workflow.define("built", {{tasks = {{
            task("b_ok"):command(function() return true end):build(),
            task("b_bad"):command(function() return false, "no" end):build(),
            task("b_skp"):run_if(function() return false end):command("true"):build(),
            {", ".join(built)}
        }}}})
        workflow.define("tables", {{tasks = {{
            {{name = "t_ok", command = function() return true end}},
            {{name = "t_bad", command = "exit 1"}},
            {{name = "t_skp", run_if = "false", command = "true"}},
            {", ".join(tables)}
        }}}})
    '''
    res, _ = run_lua(source)
    status = {"ok": "success", "bad": "failed", "skp": "skipped"}
    for prefix in ("b", "t"):
        for rule, runs in RUNS.items():
            for combo, deps in COMBOS.items():
                r = res[f"{prefix}_{rule}_{combo}"]
                if combo not in runs:
                    assert r.status == "skipped" and r.attempts == 0, r
                    continue
                assert r.status == "success", r
                if rule == "all_success":  # the default rule hands over outputs only
                    expected = ",".join(f"{prefix}_{d}=nil" for d in sorted(deps))
                else:
                    expected = ",".join(f"{prefix}_{d}={status[d]}" for d in sorted(deps))
                assert r.message == expected, (rule, combo)
        # skips say why
        assert res[f"{prefix}_all_success_okbad"].message == f"dependency '{prefix}_bad' failed"
        assert res[f"{prefix}_all_success_skp"].message == \
            f"dependency '{prefix}_skp' was skipped"
        for combo in ("ok", "skp", "okskp"):
            assert res[f"{prefix}_one_failed_{combo}"].message == \
                "trigger rule one_failed: no dependency failed"
        for combo in ("bad", "okbad"):
            assert res[f"{prefix}_none_failed_{combo}"].message == \
                f"trigger rule none_failed: dependency '{prefix}_bad' failed"


def test_an_all_done_cleanup_runs_after_a_failure_and_sees_its_status(run_lua):
    res, rec = run_lua('''
        task("deploy"):command(function()
            exec.run("sleep 0.1")
            error("deploy broke")
        end):build()
        task("cleanup"):depends_on("deploy"):trigger_rule("all_done"):command(function(p, deps)
            return true, deps.deploy.status .. "|" .. deps.deploy.error
        end):build()
        task("notify"):depends_on("deploy"):command("true"):build()
    ''')
    assert res["deploy"].status == "failed"
    assert res["cleanup"].status == "success"
    status, _, error = res["cleanup"].message.partition("|")
    assert status == "failed" and error.endswith("wf.lua:4: deploy broke")
    assert res["notify"].status == "skipped"
    spans = {a.task: (a.started_at, a.ended_at) for a in rec.attempts}
    assert spans["cleanup"][0] >= spans["deploy"][1]  # after the failure, not alongside it


def test_one_failed_is_skipped_when_nothing_failed_and_names_the_rule(run_lua):
    res, rec = run_lua('''
        task("a"):command("true"):build()
        task("b"):command(function() return true end):build()
        task("alert"):depends_on({"a", "b"}):trigger_rule("one_failed")
            :command(function() return true, "alerted" end):build()
    ''')
    assert res["alert"].status == "skipped" and res["alert"].attempts == 0
    assert res["alert"].message == "trigger rule one_failed: no dependency failed"
    assert [a.task for a in rec.attempts if a.task == "alert"] == ["alert"]  # attempt-0 row


def test_none_failed_runs_past_a_skip_but_not_past_a_failure(run_lua):
    res, _ = run_lua('''
        task("maybe"):run_if(function() return false end):command("true"):build()
        task("ok"):command("true"):build()
        task("timed"):timeout("0.1s"):command("sleep 5"):build()
        task("publish"):depends_on({"maybe", "ok"}):trigger_rule("none_failed")
            :command(function(p, deps) return true, deps.maybe.status end):build()
        task("never"):depends_on({"ok", "timed"}):trigger_rule("none_failed")
            :command("true"):build()
    ''')
    assert res["maybe"].status == "skipped"
    assert (res["publish"].status, res["publish"].message) == ("success", "skipped")
    assert res["timed"].status == "timeout"
    assert res["never"].status == "skipped"
    assert res["never"].message == "trigger rule none_failed: dependency 'timed' failed"


# -- up to date -----------------------------------------------------------------------------------

UP_TO_DATE = '''
    task("compile"):inputs({"src/*.txt"}):outputs({"out/result.txt"})
        :command("mkdir -p out && cat src/*.txt > out/result.txt && echo ran >> runs.log")
        :build()
    task("after"):depends_on("compile"):command(function() return true end):build()
'''


def _compile(path, cwd, *flags) -> str:
    code, doc = cli_json("run", "-f", path, *flags, cwd=cwd)
    assert code == 0, doc
    t = tasks_by_name(doc)
    assert t["after"]["status"] == "success"  # an up-to-date dependency counts as done
    return t["compile"]["status"]


def test_up_to_date_skips_unchanged_inputs_and_reruns_on_changed_content(tmp_path,
                                                                           workflow_file):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.txt").write_text("one\n")
    path = workflow_file(UP_TO_DATE)
    runs = tmp_path / "runs.log"
    assert _compile(path, tmp_path) == "success"
    assert _compile(path, tmp_path) == "up_to_date"
    assert runs.read_text() == "ran\n"  # it really did not run
    before = os.stat(tmp_path / "src" / "a.txt").st_mtime_ns
    os.utime(tmp_path / "src" / "a.txt", ns=(before + 10**9, before + 10**9))
    assert _compile(path, tmp_path) == "up_to_date"  # content, not modification time
    (tmp_path / "src" / "a.txt").write_text("two\n")
    assert _compile(path, tmp_path) == "success"
    assert (tmp_path / "out" / "result.txt").read_text() == "two\n"
    assert runs.read_text() == "ran\nran\n"


def test_up_to_date_reruns_when_an_output_is_deleted_and_with_force(tmp_path, workflow_file):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.txt").write_text("one\n")
    path = workflow_file(UP_TO_DATE)
    assert _compile(path, tmp_path) == "success"
    (tmp_path / "out" / "result.txt").unlink()
    assert _compile(path, tmp_path) == "success"
    assert (tmp_path / "out" / "result.txt").read_text() == "one\n"
    assert _compile(path, tmp_path) == "up_to_date"
    assert _compile(path, tmp_path, "--force") == "success"
    assert (tmp_path / "runs.log").read_text() == "ran\n" * 3


# -- load-time checks -----------------------------------------------------------------------------

NEVER_BUILT = '''
    task("a"):command("true"):build()
    local forgotten = task("forgotten")
        :command("true")
'''


def test_a_builder_never_built_warns_with_file_and_line_on_stderr_json_mode(workflow_file):
    path = workflow_file(NEVER_BUILT)
    proc = cli("run", "-f", path, "-o", "json")
    assert proc.returncode == 0
    assert f"{path}:3: task 'forgotten' is never built" in proc.stderr
    assert [t["name"] for t in json.loads(proc.stdout)["workflows"][0]["tasks"]] == ["a"]


def test_a_builder_never_built_warns_on_stderr_in_text_mode(workflow_file):
    path = workflow_file(NEVER_BUILT)
    proc = cli("run", "-f", path)
    assert proc.returncode == 0
    assert f"{path}:3: task 'forgotten' is never built" in proc.stderr
    assert "never built" not in proc.stdout


@pytest.mark.parametrize("timeout", ["", ':timeout("5s")'])
def test_os_exit_inside_a_task_fails_that_task_not_the_run(workflow_file, timeout):
    path = workflow_file(f'''
        task("quit"){timeout}:command(function() os.exit(0) end):build()
        task("after"):depends_on("quit"):command("true"):build()
        task("other"):command(function() return true, "still here" end):build()
    ''')
    code, doc = cli_json("run", "-f", path)
    assert code == 1 and doc["status"] == "failed"
    t = tasks_by_name(doc)
    assert t["quit"]["status"] == "failed"
    assert f"{path}:" in t["quit"]["error"] and "os.exit(0) called inside a task" in t["quit"]["error"]
    assert t["after"]["status"] == "skipped"
    assert t["after"]["message"] == "dependency 'quit' failed"
    assert (t["other"]["status"], t["other"]["message"]) == ("success", "still here")


@pytest.mark.parametrize("name", ["bad\\nname", "red\\27[31m", "tab\\there", "nul\\0x"])
def test_a_task_name_with_control_characters_is_a_load_error(workflow_file, name):
    path = workflow_file(f'''
        task("fine"):command("true"):build()
        task("{name}"):command("true"):build()
    ''')
    proc = cli("run", "-f", path)
    assert proc.returncode == 2, proc.stdout
    assert f"{path}:3: task(name): a name cannot contain control characters" in proc.stderr
    assert "\x1b" not in proc.stderr  # the escape is shown quoted, never sent to the terminal


def test_a_task_name_with_a_newline_in_a_plain_task_table_names_file_and_line(workflow_file):
    path = workflow_file('''
        workflow.define("w", {tasks = {
            {name = "x\\ny", command = "true"},
        }})
    ''')
    proc = cli("run", "-f", path)
    assert proc.returncode == 2
    assert "a name cannot contain control characters" in proc.stderr
    assert f"{path}:3:" in proc.stderr or f"{path}:2:" in proc.stderr, proc.stderr


def test_a_workflow_name_with_a_newline_is_a_load_error(workflow_file):
    path = workflow_file('''
        workflow.define("w\\n== workflow fake", {tasks = {task("a"):command("true"):build()}})
    ''')
    proc = cli("run", "-f", path)
    assert proc.returncode == 2 and f"{path}:2:" in proc.stderr


# -- invalid UTF-8 --------------------------------------------------------------------------------

@pytest.mark.parametrize("timeout", ["", ':timeout("5s")'])
def test_outputs_with_invalid_utf8_succeed_and_reach_history_replaced(workflow_file, timeout):
    path = workflow_file(f'''
        task("bytes"){timeout}:command(function()
            return true, "fine", {{out = "x\\255y", ["k\\254"] = {{"\\250"}}}}
        end):build()
    ''')
    code, doc = cli_json("run", "-f", path)
    assert code == 0
    t = tasks_by_name(doc)["bytes"]
    expected = {"out": f"x{FFFD}y", f"k{FFFD}": [FFFD]}
    assert (t["status"], t["outputs"]) == ("success", expected)
    (row,) = history(doc["run_id"])
    assert json.loads(row["outputs_json"]) == expected


@pytest.mark.parametrize("timeout", ["", ':timeout("5s")'])
def test_a_message_with_invalid_utf8_succeeds_and_reaches_history_replaced(workflow_file,
                                                                             timeout):
    path = workflow_file(f'''
        task("bytes"){timeout}:command(function() return true, "bad \\255 byte" end):build()
    ''')
    code, doc = cli_json("run", "-f", path)
    t = tasks_by_name(doc)["bytes"]
    assert (t["status"], t["message"]) == ("success", f"bad {FFFD} byte"), t
    assert code == 0
    (row,) = history(doc["run_id"])
    assert row["message"] == f"bad {FFFD} byte"


def test_an_error_with_invalid_utf8_is_replaced_in_history(workflow_file):
    path = workflow_file('''
        task("bytes"):command(function() error("boom \\255") end):build()
    ''')
    code, doc = cli_json("run", "-f", path)
    assert code == 1
    (row,) = history(doc["run_id"])
    assert row["status"] == "failed" and row["error"] == f"{path}:2: boom {FFFD}"


@pytest.mark.parametrize("timeout", ["", ':timeout("5s")'])
def test_pcall_of_exec_run_with_invalid_utf8_stays_inside_pcall(run_lua, timeout):
    res, _ = run_lua(f'''
        task("p"){timeout}:command(function()
            local ok, r = pcall(exec.run, "echo \\255")
            return true, tostring(ok) .. "|" .. type(r) .. "|" .. (ok and r.stdout or tostring(r))
        end):build()
    ''')
    assert res["p"].status == "success", res["p"]
    assert res["p"].message == f"true|table|{FFFD}\n"


# -- the spool folder -----------------------------------------------------------------------------

def test_small_outputs_leave_no_spool_folder(workflow_file, sloth_home):
    path = workflow_file('''
        task("sh"):command("echo small"):build()
        task("sh_worker"):timeout("5s"):command("echo small; echo err >&2"):build()
        task("lua"):command(function() return exec.run("echo hi") end):build()
        task("lua_worker"):timeout("5s"):command(function() return exec.run("exit 1") end):build()
    ''')
    code, doc = cli_json("run", "-f", path)
    assert code == 1 and tasks_by_name(doc)["sh_worker"]["outputs"]["stderr"] == "err\n"
    spool = sloth_home / "spool"
    assert not spool.exists() or list(spool.iterdir()) == []


def test_large_outputs_stay_in_one_spool_folder_per_run(workflow_file, sloth_home):
    size = (1 << 20) + 4096
    big = f'''
        task("big"):command("head -c {size} /dev/zero | tr '\\\\0' a"):build()
    '''
    # the first run also spools from a worker process (a task with a timeout)
    first = workflow_file(big + f'''
        task("big_worker"):timeout("5s"):command(function()
            return exec.run("head -c {size} /dev/zero | tr '\\\\0' b")
        end):build()
    ''', "first.lua")
    second = workflow_file(big, "second.lua")
    folders = {}
    for path, tasks in ((first, {"big": "a", "big_worker": "b"}), (second, {"big": "a"})):
        code, doc = cli_json("run", "-f", path)
        assert code == 0, doc
        run_id = doc["run_id"]
        folder = sloth_home / "spool" / run_id
        for name, letter in tasks.items():
            outputs = tasks_by_name(doc)[name]["outputs"]
            assert len(outputs["stdout"]) == 1 << 20  # the cap; the rest is on disk
            spooled = outputs["stdout_path"]
            assert os.path.dirname(spooled) == str(folder)
            assert os.path.getsize(spooled) == size
            with open(spooled) as fh:
                assert set(fh.read()) == {letter}
        assert len(list(folder.iterdir())) == len(tasks)  # only the large streams are kept
        folders[run_id] = folder
    assert len(folders) == 2
    assert sorted(p.name for p in (sloth_home / "spool").iterdir()) == sorted(folders)
