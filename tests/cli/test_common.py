"""What every command shares: strict JSON output, --values files, and an unusable home."""

from __future__ import annotations

import io
import json
import os

import pytest

from sloth_runner.cli.common import print_json
from tests.conftest import cli
from tests.services.test_codec import alias_bomb

NAN_OUTPUTS = '''
task("t"):command(function()
    return true, "done", {x = 0/0, y = math.huge, nested = {list = {1, -math.huge, 2.5}}}
end):build()
'''


def strict_loads(text: str):
    """json.loads that refuses NaN, Infinity and -Infinity, as RFC 8259 parsers do."""

    def refuse(name):
        raise ValueError(f"not JSON: {name}")

    return json.loads(text, parse_constant=refuse)


def test_json_output_of_a_run_is_strict_json_with_null_for_non_finite_numbers(workflow_file):
    proc = cli("run", "-f", workflow_file(NAN_OUTPUTS), "-o", "json")
    assert proc.returncode == 0, proc.stderr
    (task,) = strict_loads(proc.stdout)["workflows"][0]["tasks"]
    assert task["outputs"] == {"x": None, "y": None, "nested": {"list": [1, None, 2.5]}}


def test_print_json_replaces_non_finite_floats_everywhere(monkeypatch):
    out = io.StringIO()
    monkeypatch.setattr("sys.stdout", out)
    nan, inf = float("nan"), float("inf")
    print_json({"a": [nan, {"b": (inf, -inf, 1.5)}], nan: 1, inf: 2, -inf: 3, "ok": 0.25})
    assert strict_loads(out.getvalue()) == {
        "a": [None, {"b": [None, None, 1.5]}], "NaN": 1, "Infinity": 2, "-Infinity": 3,
        "ok": 0.25}


def test_a_values_file_nested_too_deeply_is_a_config_error(workflow_file, tmp_path):
    path = workflow_file('task("t"):command("true"):build()')
    block = tmp_path / "deep.yaml"
    block.write_text("".join("  " * i + f"k{i}:\n" for i in range(3000)) + "  " * 3000 + "v\n")
    flow = tmp_path / "deep-flow.yaml"
    flow.write_text("x: " + "[" * 3000 + "]" * 3000 + "\n")
    for values in (block, flow):
        proc = cli("run", "-f", path, "--values", str(values))
        assert proc.returncode == 3, proc.stderr
        assert proc.stderr.startswith(f"error: --values {values}: YAML nested deeper than 64 "
                                      "levels at line "), proc.stderr
        assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr


def test_a_values_file_with_an_alias_bomb_is_a_config_error(workflow_file, tmp_path):
    values = tmp_path / "bomb.yaml"
    values.write_text(alias_bomb())
    proc = cli("run", "-f", workflow_file('task("t"):command("true"):build()'),
               "--values", str(values), timeout=30)
    assert proc.returncode == 3, proc.stderr
    assert proc.stderr.startswith(f"error: --values {values}: YAML aliases expand to more than "
                                  "100,000 nodes"), proc.stderr


def test_a_values_file_with_anchors_still_works(workflow_file, tmp_path):
    values = tmp_path / "values.yaml"
    values.write_text("base: &base {image: nginx, replicas: 2}\nweb:\n  <<: *base\n  replicas: 3\n")
    path = workflow_file('''
        task("t"):command(function(params)
            return true, params.web.image .. " x" .. params.web.replicas
        end):build()
    ''')
    proc = cli("run", "-f", path, "--values", str(values), "-o", "json")
    assert proc.returncode == 0, proc.stderr
    assert strict_loads(proc.stdout)["workflows"][0]["tasks"][0]["message"] == "nginx x3"


@pytest.mark.parametrize("command", [("history",), ("run", "-f", "{wf}")])
def test_a_home_that_is_a_file_is_a_usage_error(command, workflow_file, tmp_path):
    wf = workflow_file('task("t"):command("true"):build()')
    args = [a.format(wf=wf) for a in command]
    not_a_dir = tmp_path / "home-file"
    not_a_dir.write_text("")
    for home, problem in ((not_a_dir, "is a file, not a directory"),
                          (not_a_dir / "sub", "cannot be created: a parent of it is a file")):
        proc = cli(*args, env={"SLOTH_RUNNER_HOME": str(home)})
        assert proc.returncode == 3, proc.stderr
        assert proc.stderr == (f"error: SLOTH_RUNNER_HOME={home} {problem}; point "
                               "SLOTH_RUNNER_HOME at a directory sloth-runner can create or "
                               "write\n")
    assert not_a_dir.read_text() == ""


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write to any directory")
def test_a_home_that_is_not_writable_is_a_usage_error(tmp_path):
    home = tmp_path / "locked"
    home.mkdir(mode=0o500)
    try:
        proc = cli("history", env={"SLOTH_RUNNER_HOME": str(home)})
    finally:
        home.chmod(0o700)
    assert proc.returncode == 3, proc.stderr
    assert f"SLOTH_RUNNER_HOME={home} is not writable" in proc.stderr
