"""The sandbox as Lua sees it, in this process: what the runtime's set-up takes away and the
module installer gives back per grant, the environment filter, and the fs workdir rule on real
paths (`..`, symlinks). The CLI tests (tests/cli/test_sandbox.py) cover every route end to end.
"""

from __future__ import annotations

import os

import pytest

from sloth_runner.errors import LuaScriptError
from sloth_runner.grants import SAFE_ENV, Grants, NotGranted

REFUSED = "is not allowed in the sandbox (run with --allow {} to grant it)"


def test_grants_word_refusals_and_describe_themselves(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "secret")
    monkeypatch.setenv("HOME", "/home/x")
    open_run, sandbox = Grants(), Grants(True, ("exec",))
    assert open_run.refusal("net", "x") is None and open_run.process_env() is None
    assert open_run.describe() == "" and Grants(True).describe() == "sandbox"
    assert Grants(True, ("net", "exec")).describe() == "sandbox+exec,net"
    assert sandbox.refusal("net", "ai.complete") == "ai.complete " + REFUSED.format("net")
    with pytest.raises(NotGranted, match="--allow env"):
        sandbox.require("env", "x")
    env = sandbox.process_env()
    assert env is not None and env["HOME"] == "/home/x"
    assert "OPENAI_API_KEY" not in env and set(env) <= SAFE_ENV
    assert Grants(True, ("env",)).process_env() is None


def test_the_hand_over_is_gone_before_user_code_runs(run_lua):
    res, _ = run_lua('''
        assert(__sloth_kept == nil and python == nil and io ~= nil)  -- io: fs is granted
        task("t"):command(function() return __sloth_kept == nil end):build()
    ''', sandbox=True, grants=("exec", "fs", "net", "env"))
    assert res["t"].status == "success"


def test_io_and_os_file_functions_need_fs(run_lua, tmp_path):
    target = tmp_path / "by-io.txt"
    source = f'''
        task("io"):command(function()
            local f = io.open({str(target)!r}, "w"); f:write("x"); f:close()
            return true
        end):build()
        task("remove"):command(function() return os.remove({str(tmp_path / "no")!r}) == nil end)
            :build()
    '''
    res, _ = run_lua(source, sandbox=True)
    assert res["io"].error.endswith(":3: io.open " + REFUSED.format("fs"))
    assert res["remove"].error.endswith(":6: os.remove " + REFUSED.format("fs"))
    assert not target.exists()
    res, _ = run_lua(source, sandbox=True, grants=("fs",))
    assert res["io"].status == "success" and target.read_text() == "x"
    assert res["remove"].status == "success"  # the real os.remove: nil for a missing file


def test_exec_at_top_level_is_refused_at_load(workflow_file, load, tmp_path):
    path = workflow_file(f'exec.run("touch {tmp_path / "made"}")\n')
    with pytest.raises(LuaScriptError) as caught:
        load(path, sandbox=True)
    assert str(caught.value) == f"{path}:1: exec.run " + REFUSED.format("exec")
    assert not (tmp_path / "made").exists()


def test_getenv_shows_only_the_allow_list(run_lua, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "secret")
    monkeypatch.setenv("HOME", "/home/x")
    source = '''
        task("t"):command(function()
            local a, b = os.getenv("OPENAI_API_KEY"), os.getenv("OPENAI_API_KEY")
            return true, "", {key = a, again = b, home = os.getenv("HOME"),
                              unset = os.getenv("SURELY_NOT_SET_ANYWHERE"),
                              bad = (pcall(os.getenv, {}))}
        end):build()
    '''
    res, rec = run_lua(source, sandbox=True, grants=("exec",))
    assert res["t"].outputs == {"home": "/home/x", "bad": False}
    warnings = [m for level, m, _ in rec.logs if level == "warn"]
    assert warnings == ['os.getenv("OPENAI_API_KEY") is nil: reading it ' + REFUSED.format("env")]
    res, _ = run_lua(source, sandbox=True, grants=("env",))
    assert res["t"].outputs == {"key": "secret", "again": "secret", "home": "/home/x",
                                "bad": False}


@pytest.fixture
def tree(tmp_path, monkeypatch):
    """work/ (the current directory) with links out of it, and outside/ beside it."""
    work, outside = tmp_path / "work", tmp_path / "outside"
    work.mkdir()
    outside.mkdir()
    (outside / "target.txt").write_text("keep")
    (work / "out-dir").symlink_to(outside)
    (work / "out-file").symlink_to(outside / "target.txt")
    (work / "dangling").symlink_to(outside / "new.txt")
    (work / "in-dir").mkdir()
    monkeypatch.chdir(work)
    return work, outside


@pytest.mark.parametrize("call", [
    'fs.write("../x.txt", "x")',
    'fs.write("in-dir/../../x.txt", "x")',
    'fs.write("out-dir/x.txt", "x")',
    'fs.write("out-file", "changed")',
    'fs.write("dangling", "x")',
    'fs.write("in-dir/../out-dir/x.txt", "x")',
    'fs.mkdir("out-dir/sub")',
    'fs.rm("out-dir/target.txt")',
    'fs.rm("out-dir/", {recursive = true})',
    'fs.rm(".", {recursive = true})',
])
def test_writes_that_leave_the_workdir_are_refused(run_lua, tree, call):
    work, outside = tree
    res, _ = run_lua(f'task("t"):command(function() {call}; return true end):build()',
                     sandbox=True)
    assert res["t"].error.endswith(REFUSED.format("fs")), res["t"].error
    assert sorted(os.listdir(outside)) == ["target.txt"]
    assert (outside / "target.txt").read_text() == "keep" and (work / "out-dir").is_symlink()


def test_writes_inside_the_workdir_are_allowed(run_lua, tree):
    work, outside = tree
    res, _ = run_lua('''
        task("t"):command(function()
            fs.mkdir("a/b"); fs.write("a/b/c.txt", "c"); fs.write("a/b/c.txt", "d", true)
            fs.write("in-dir/../top.txt", "t"); fs.mkdir(".")
            fs.rm("out-file"); fs.rm("dangling")  -- a link is removed, not what it points to
            return true, fs.read("a/b/c.txt")
        end):build()
    ''', sandbox=True)
    assert res["t"].status == "success" and res["t"].message == "cd"
    assert (work / "top.txt").exists() and not (work / "out-file").is_symlink()
    assert (outside / "target.txt").read_text() == "keep"


def test_fs_grants_writes_anywhere(run_lua, tree):
    _, outside = tree
    res, _ = run_lua('task("t"):command(function() return fs.write("out-dir/x.txt", "x") end)'
                     ':build()', sandbox=True, grants=("fs",))
    assert res["t"].status == "success" and (outside / "x.txt").exists()


def test_reading_stays_allowed(run_lua, tree):
    res, _ = run_lua('''
        task("t"):command(function()
            return fs.exists("out-file") and fs.read("out-dir/target.txt") == "keep"
                and fs.exists("../wf.lua")
        end):build()
    ''', sandbox=True)
    assert res["t"].status == "success"
