"""Which files beside a workflow travel to agents (agents/delegate.py: workflow_files)."""

from __future__ import annotations

from sloth_runner.agents.delegate import MAX_FILES, workflow_files


def test_lua_files_go_first_and_what_is_left_out_is_counted(tmp_path):
    (tmp_path / "data").mkdir()
    for i in range(MAX_FILES + 10):  # sorts before lib/: would push the Lua out
        (tmp_path / "data" / f"{i:04}.json").write_text("{}")
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "helper.lua").write_text("return {}")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "config.json").write_text("{}")
    (tmp_path / "notes.txt").write_text("not a source")
    entry = tmp_path / "wf.lua"
    entry.write_text('import("lib/helper.lua")')
    name, files, left_out = workflow_files(str(entry))
    assert name == "wf.lua" and files["wf.lua"] == 'import("lib/helper.lua")'
    assert "lib/helper.lua" in files and len(files) == MAX_FILES
    assert left_out == 12  # 210 json + helper + entry, 200 sent
    assert not any(rel.startswith(".git") or rel == "notes.txt" for rel in files)
