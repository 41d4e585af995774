"""Self-healing tasks through the real CLI: failures a declared action really fixes (a missing
directory, a stale lock file), one it cannot, --no-heal, --dry-run, and the history."""

from __future__ import annotations

import json
import sqlite3

from tests.conftest import cli, cli_json, tasks_by_name

FLOW = '''
local dir = os.getenv("HEAL_DIR")
task("build"):command("ls " .. dir .. "/cache")
  :heal({actions = {
      make_cache = {run = "mkdir -p " .. dir .. "/cache", when = "No such file",
                    description = "creates the cache folder"},
  }})
  :build()
task("deploy"):command("test ! -e " .. dir .. "/deploy.lock || (echo locked >&2; exit 3)")
  :heal{actions = {
      unlock = {run = function(params, failure)
                  log.info("unlocking after: " .. failure.error)
                  return os.remove(dir .. "/deploy.lock") ~= nil, "could not remove it"
                end,
                when = "locked"},
  }}
  :build()
task("hopeless"):command("echo 'disk quota exceeded' >&2; exit 1")
  :heal{actions = {retry_later = {run = "true", when = "quota"}}, max_attempts = 2}
  :build()
'''


def heals(home):
    db = sqlite3.connect(home / "sloth.db")
    db.row_factory = sqlite3.Row
    rows = [dict(r) for r in db.execute("SELECT * FROM heals ORDER BY id")]
    db.close()
    return rows


def test_declared_actions_fix_what_they_can_and_the_history_says_so(workflow_file, tmp_path,
                                                                      sloth_home):
    (tmp_path / "deploy.lock").write_text("stale")
    path = workflow_file(FLOW)
    env = {"HEAL_DIR": str(tmp_path)}
    code, doc = cli_json("run", "-f", path, env=env)
    t = tasks_by_name(doc)
    assert code == 1  # hopeless fails, after its heal rounds
    assert t["build"]["status"] == "success" and t["build"]["attempts"] == 2
    assert (tmp_path / "cache").is_dir()
    assert t["deploy"]["status"] == "success" and not (tmp_path / "deploy.lock").exists()
    assert t["hopeless"]["status"] == "failed" and t["hopeless"]["attempts"] == 3
    rows = {(r["task"], r["round"]): r for r in heals(sloth_home)}
    assert (rows[("build", 1)]["action"], rows[("build", 1)]["method"],
            rows[("build", 1)]["healed"]) == ("make_cache", "rule", 1)
    assert rows[("build", 1)]["reasoning"] == 'the failure mentions "No such file"'
    assert rows[("deploy", 1)]["healed"] == 1
    assert [rows[("hopeless", n)]["healed"] for n in (1, 2)] == [0, 0]
    assert rows[("hopeless", 1)]["error_template"] == "exit code <n>: disk quota exceeded"
    log = cli("history", doc["run_id"], "--task", "deploy").stdout
    assert "unlocking after: exit code 3: locked" in log and "heal: ran 'unlock' (rule" in log

    # --no-heal: nothing runs, nothing is recorded
    (tmp_path / "deploy.lock").write_text("stale")
    code, doc = cli_json("run", "-f", path, "--no-heal", env=env)
    assert tasks_by_name(doc)["deploy"]["status"] == "failed"
    assert (tmp_path / "deploy.lock").exists() and len(heals(sloth_home)) == 4


def test_dry_run_shows_the_actions(workflow_file, tmp_path):
    path = workflow_file(FLOW)
    env = {"HEAL_DIR": str(tmp_path)}
    text = cli("run", "-f", path, "--dry-run", env=env).stdout
    assert "  heal build (up to 1):\n    make_cache: shell: mkdir -p" in text
    assert 'when the failure mentions "No such file" - creates the cache folder' in text
    assert "    unlock: a Lua function; when the failure mentions \"locked\"" in text
    code, doc = cli_json("run", "-f", path, "--dry-run", env=env)
    plan = doc["workflows"][0]["heal"]
    assert plan["hopeless"]["max_attempts"] == 2
    assert plan["build"]["actions"][0]["name"] == "make_cache"
    assert not (tmp_path / "cache").exists()  # a dry run runs nothing


def test_bad_heal_specs_are_load_errors_with_the_line(workflow_file):
    for spec, message in (
            ('{actions = {}}', "`actions`: a table of named actions"),
            ('{actions = {x = 42}}', "action 'x' to be a shell command or a function"),
            ('{actions = {x = "true"}, max_attempts = 0}', "`max_attempts`: a whole number"),
            ('{actions = {none = "true"}}', 'action names that are words (not "none")'),
            ('{actions = {x = {run = "true", if_ = "y"}}}', "`run`, `when` and `description`"),
            ('{action = {x = "true"}}', "only `actions` and `max_attempts`")):
        path = workflow_file(f'task("t"):command("true")\n  :heal({spec}):build()\n')
        proc = cli("list", "-f", path)
        assert proc.returncode == 2, spec
        assert f"{path}:2: task 't': :heal() expects {message}" in proc.stderr, proc.stderr


def test_the_table_form_takes_heal_too(workflow_file, tmp_path):
    path = workflow_file(f'''
        workflow.define("w", {{tasks = {{
            {{name = "t", command = "ls {tmp_path}/made",
              heal = {{actions = {{make = {{run = "mkdir {tmp_path}/made", when = "No such"}}}}}}}},
        }}}})
    ''')
    code, doc = cli_json("run", "-f", path)
    assert code == 0 and tasks_by_name(doc)["t"]["attempts"] == 2
    assert json.loads(cli("run", "-f", path, "--dry-run", "-o", "json").stdout)[
        "workflows"][0]["heal"]["t"]["actions"][0]["when"] == "No such"
