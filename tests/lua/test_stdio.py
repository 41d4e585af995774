"""os.execute, io.write, io.stdout and io.stderr go through the run: scrubbed log lines of their
task (and its history), never raw bytes on the terminal or inside `-o json`."""

from __future__ import annotations

import json

from tests.conftest import cli, cli_json, tasks_by_name

KEY = "AKIAIOSFODNN7EXAMPLE"


def test_standard_output_becomes_scrubbed_log_lines_and_json_stays_valid(workflow_file, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    path = workflow_file(f'''
        task("w"):workdir("{work}"):env({{GREETING = "hi"}}):command(function()
            io.write("key {KEY}\\n")
            io.stdout:write("out ", 1, "\\n")
            io.stderr:write("err line\\n")
            local ok, what, code = os.execute("echo $GREETING from $(pwd); echo to-err >&2; exit 3")
            return ok == nil and what == "exit" and code == 3, tostring(os.execute())
        end):build()
    ''')
    proc = cli("run", "-f", path, "-o", "json")
    doc = json.loads(proc.stdout)  # nothing but the document on stdout
    t = tasks_by_name(doc)["w"]
    assert (t["status"], t["message"]) == ("success", "true"), t
    assert KEY not in proc.stdout + proc.stderr
    for line in ("[w] INFO: key [REDACTED:aws_access_key:1]", "[w] INFO: out 1",
                 "[w] WARN: err line", f"[w] INFO: hi from {work}", "[w] WARN: to-err"):
        assert line in proc.stderr, proc.stderr


def test_io_output_to_a_file_still_writes_the_file(workflow_file, tmp_path):
    target = tmp_path / "out.txt"
    path = workflow_file(f'''
        task("f"):command(function()
            io.output("{target}"); io.write("to the file\\n"); io.close(); io.output(io.stdout)
            return true
        end):build()
    ''')
    code, doc = cli_json("run", "-f", path)
    assert code == 0, doc
    assert target.read_text() == "to the file\n"


def test_in_the_sandbox_os_execute_needs_exec_and_printing_needs_nothing(workflow_file):
    path = workflow_file('''
        task("p"):command(function() io.write("just words\\n"); return true end):build()
        task("x"):command(function() local ok = os.execute("true"); return ok end):build()
    ''')
    code, doc = cli_json("run", "-f", path, "--sandbox")
    t = tasks_by_name(doc)
    assert t["p"]["status"] == "success"
    assert "os.execute is not allowed in the sandbox (run with --allow exec" in t["x"]["error"]
    code, doc = cli_json("run", "-f", path, "--sandbox", "--allow", "exec")
    assert code == 0, doc
