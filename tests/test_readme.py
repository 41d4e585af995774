"""README's Lua examples are what a new user copies first: each workflow example must load, and
the hook example must be accepted by `hook add`."""

from __future__ import annotations

import re

import pytest

from tests.conftest import ROOT, cli

BLOCKS = re.findall(r"```lua\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
WORKFLOWS = [b for b in BLOCKS if "task(" in b or "workflow.define" in b]
HOOKS = [b for b in BLOCKS if "execute = function" in b]


def test_the_readme_has_examples_of_both_kinds():
    assert len(WORKFLOWS) >= 6 and len(HOOKS) >= 1


@pytest.mark.parametrize("source", WORKFLOWS, ids=lambda b: b.splitlines()[0][:40])
def test_a_readme_workflow_example_loads(source, tmp_path):
    path = tmp_path / "example.lua"
    path.write_text(source)
    proc = cli("list", "-f", str(path), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == "" or "warning" not in proc.stderr.lower(), proc.stderr


@pytest.mark.parametrize("source", HOOKS, ids=lambda b: b.splitlines()[0][:40])
def test_a_readme_hook_example_is_accepted(source, tmp_path):
    path = tmp_path / "hook.lua"
    path.write_text(source)
    proc = cli("hook", "add", str(path), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
