"""log, state, json, yaml and fs as Lua sees them."""

from __future__ import annotations

import pytest

from sloth_runner.store import Store
from sloth_runner.store.state import StateStore


def test_log_and_print_carry_the_task_name(run_lua):
    _, rec = run_lua('''
        log.info("at load time")
        task("t"):command(function()
            log.info("n =", 3, true, nil)
            log.debug("details"); log.warn("careful"); log.error("bad")
            print("plain", {a = 1})
            return true
        end):build()
    ''')
    assert ("info", "at load time", None) in rec.logs
    assert ("info", "n = 3 true nil", "t") in rec.logs
    assert [lvl for lvl, _, task in rec.logs if task == "t"] == \
        ["info", "debug", "warn", "error", "print"]
    assert ("print", 'plain {"a":1}', "t") in rec.logs


def test_state_roundtrips_lua_types_and_persists(run_lua):
    res, _ = run_lua('''
        task("w"):command(function()
            state.set("deploys", {count = 2, envs = {"staging", "prod"}, ok = true, ratio = 0.5})
            state.set("n", 10)
            state.increment("n", 5)
            state.set("gone", "x"); state.delete("gone")
            return true
        end):build()
        task("r"):depends_on("w"):command(function()
            local d = state.get("deploys")
            return true, "", {
                count = d.count, second = d.envs[2], ok = d.ok, ratio = d.ratio,
                n = state.get("n"), n_type = math.type(state.get("n")),
                gone = state.get("gone", "default"), keys = state.keys(),
            }
        end):build()
    ''')
    assert res["r"].outputs == {"count": 2, "second": "prod", "ok": True, "ratio": 0.5, "n": 15,
                                "n_type": "integer", "gone": "default",
                                "keys": ["deploys", "n"]}
    assert StateStore(Store()).get("deploys")["envs"] == ["staging", "prod"]


def test_state_errors_are_clear(run_lua):
    res, _ = run_lua('''
        task("t"):command(function() state.set("s", "text"); state.increment("s") end):build()
        task("k"):command(function() state.get(42) end):build()
    ''')
    assert "wf.lua:2: state 's' holds a string, not a number" in res["t"].error
    assert "wf.lua:3: state keys are non-empty strings, got number" in res["k"].error


def test_json_and_yaml(run_lua):
    res, _ = run_lua('''
        task("t"):command(function()
            local doc = json.decode('{"a": [1, 2, {"b": null}], "c": "x"}')
            local text = json.encode({list = {1, 2, 3}, map = {k = "v"}})
            local y = yaml.decode("name: app\\nreplicas: 3\\nports: [80, 443]\\n")
            local back = yaml.decode(yaml.encode({x = {1, 2}}))
            local ok, err = pcall(json.decode, "{broken")
            return true, "", {a2 = doc.a[2], c = doc.c, text = text, name = y.name,
                              replicas = y.replicas, port = y.ports[2], x2 = back.x[2],
                              err = err}
        end):build()
    ''')
    out = res["t"].outputs
    assert (out["a2"], out["c"], out["name"], out["replicas"], out["port"], out["x2"]) == \
        (2, "x", "app", 3, 443, 2)
    import json

    assert json.loads(out["text"]) == {"list": [1, 2, 3], "map": {"k": "v"}}
    assert "invalid JSON at line 1" in out["err"]


def test_fs(run_lua, tmp_path):
    res, _ = run_lua(f'''
        task("t"):command(function()
            local d = "{tmp_path}/data/sub"
            fs.mkdir(d)
            fs.write(d .. "/a.txt", "one")
            fs.write(d .. "/a.txt", "+two", true)
            local listing = fs.ls(d)
            local text = fs.read(d .. "/a.txt")
            local ok, err = pcall(fs.rm, "{tmp_path}/data")
            fs.rm("{tmp_path}/data", {{recursive = true}})
            return true, "", {{text = text, listing = listing, exists = fs.exists(d), err = err}}
        end):build()
    ''')
    out = res["t"].outputs
    assert out["text"] == "one+two" and out["listing"] == ["a.txt"] and out["exists"] is False
    assert "is a directory" in out["err"]


def test_log_output_is_scrubbed(run_lua):
    _, rec = run_lua('''
        task("t"):command(function()
            log.info("connecting with password=hunter2hunter2 as ops@example.com")
            print("key AKIAIOSFODNN7EXAMPLE")
            return true
        end):build()
    ''')
    messages = [m for _, m, task in rec.logs if task == "t"]
    assert messages == ["connecting with password=[REDACTED:secret_assignment:1] as "
                        "[REDACTED:email:1]", "key [REDACTED:aws_access_key:1]"]


def test_sanitize_data_from_lua(run_lua):
    res, _ = run_lua(r'''
        task("t"):command(function()
            local text = "token=abc123secret and mail ops@example.com"
            local clean, findings = ai.sanitize_data(text, {detectors = {"email"},
                                                            remove_patterns = {"token=\\S+"}})
            local f = findings[2]
            return true, clean, {n = #findings, type = f.type, hidden = text:sub(f.start, f.finish),
                                 back = ai.restore(clean)}
        end):build()
    ''')
    t = res["t"]
    assert t.message == "[REDACTED:custom:1] and mail [REDACTED:email:1]"
    assert t.outputs == {"n": 2, "type": "email", "hidden": "ops@example.com",
                         "back": "token=abc123secret and mail ops@example.com"}


@pytest.mark.parametrize("where", ["", ':timeout("10s")'])  # main process, then a worker
def test_relative_fs_paths_are_relative_to_the_tasks_workdir(run_lua, tmp_path, monkeypatch,
                                                               where):
    (tmp_path / "wd").mkdir()
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    res, _ = run_lua(f'''
        task("w"):workdir("{tmp_path / "wd"}"){where}:command(function()
            fs.write("note.txt", "hi")
            fs.mkdir("sub")
            return fs.exists("note.txt") and fs.read("note.txt") == "hi", table.concat(fs.ls("."), ",")
        end):build()
    ''')
    assert res["w"].status == "success" and res["w"].message == "note.txt,sub"
    assert (tmp_path / "wd" / "note.txt").read_text() == "hi"
    assert not (tmp_path / "elsewhere" / "note.txt").exists()


@pytest.mark.parametrize("where", ["in the main state", "in a worker (:timeout)"])
def test_state_scrubs_credentials_but_keeps_addresses_and_versions(run_lua, where):
    timeout = ':timeout("30s")' if where.startswith("in a worker") else ""
    res, _ = run_lua(f'''
        task("w"){timeout}:command(function()
            state.set("host", {{ip = "10.1.2.3", mail = "ops@example.com", version = "1.2.3.4",
                               key = "AKIAIOSFODNN7EXAMPLE"}})
            state.set("raw", "AKIAIOSFODNN7EXAMPLE", {{scrub = false}})
            local ok, err = pcall(state.set, "fn", function() end)
            return true, err
        end):build()
    ''')
    assert res["w"].status == "success", res["w"].error
    assert "state values are strings, numbers, booleans or tables, got function" in \
        res["w"].message
    saved = StateStore(Store())
    host = saved.get("host")
    assert (host["ip"], host["mail"], host["version"]) == \
        ("10.1.2.3", "ops@example.com", "1.2.3.4")
    assert "AKIA" not in host["key"] and "REDACTED" in host["key"]
    assert saved.get("raw") == "AKIAIOSFODNN7EXAMPLE"
    assert saved.get("fn") is None
