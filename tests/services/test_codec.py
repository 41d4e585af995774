"""YAML decoding is bounded: alias bombs, recursive aliases and deep nesting are refused quickly
with a clear error, while ordinary documents with anchors and merge keys still load."""

from __future__ import annotations

import time

import pytest

from sloth_runner.services.codec import MAX_ALIAS_NODES, MAX_DEPTH, yaml_decode
from tests.conftest import cli_json, tasks_by_name


def alias_bomb(levels: int = 9, width: int = 9) -> str:
    """"Billion laughs": each level is a list of `width` aliases to the level below (9**9 nodes)."""
    lines = ["l0: &l0 [" + ", ".join(["lol"] * width) + "]"]
    for n in range(1, levels + 1):
        lines.append(f"l{n}: &l{n} [" + ", ".join([f"*l{n - 1}"] * width) + "]")
    return "\n".join(lines) + "\n"


def nested(depth: int) -> str:
    return "x: " + "[" * depth + "]" * depth + "\n"


COMPOSE = """\
x-defaults: &defaults
  restart: always
  environment: &env {LOG_LEVEL: info}
services:
  web:
    <<: *defaults
    image: nginx
  db:
    <<: *defaults
    image: postgres
    environment: *env
ports: &ports [80, 443]
more_ports: *ports
"""


def test_an_alias_bomb_is_refused_in_well_under_a_second():
    started = time.perf_counter()
    with pytest.raises(ValueError, match=r"aliases expand to more than 100,000 nodes") as info:
        yaml_decode(alias_bomb())
    assert time.perf_counter() - started < 0.5
    assert "at alias *l" in str(info.value) and "line " in str(info.value)


def test_a_document_with_anchors_merge_keys_and_aliases_loads():
    doc = yaml_decode(COMPOSE)
    assert doc["services"]["web"] == {"restart": "always", "environment": {"LOG_LEVEL": "info"},
                                      "image": "nginx"}
    assert doc["services"]["db"]["environment"] == {"LOG_LEVEL": "info"}
    assert doc["more_ports"] == [80, 443]


def test_aliases_may_add_nodes_up_to_the_budget():
    anchor = "base: &b [" + ", ".join(["1"] * 999) + "]\n"  # 1,000 nodes with the list itself
    uses = "\n".join(f"u{i}: *b" for i in range(MAX_ALIAS_NODES // 1000))
    assert len(yaml_decode(anchor + uses)) == 1 + MAX_ALIAS_NODES // 1000
    with pytest.raises(ValueError, match="aliases expand"):
        yaml_decode(anchor + uses + "\none_more: *b\n")


def test_a_recursive_alias_is_refused():
    with pytest.raises(ValueError, match=r"alias \*a at line 1 column 11 refers to a node that "
                                         r"contains it"):
        yaml_decode("a: &a [1, *a]\n")


def test_nesting_is_limited_to_the_depth_a_lua_table_may_have():
    from sloth_runner.lua.convert import MAX_DEPTH as LUA_MAX_DEPTH

    assert MAX_DEPTH == LUA_MAX_DEPTH
    assert yaml_decode(nested(MAX_DEPTH - 1)) is not None  # with the mapping: MAX_DEPTH levels
    for depth in (MAX_DEPTH, 3000):
        with pytest.raises(ValueError, match=rf"nested deeper than {MAX_DEPTH} levels"):
            yaml_decode(nested(depth))
    block = "".join("  " * i + f"k{i}:\n" for i in range(3000)) + "  " * 3000 + "v\n"
    with pytest.raises(ValueError, match=rf"nested deeper than {MAX_DEPTH} levels at line 65"):
        yaml_decode(block)


def test_invalid_yaml_is_still_a_value_error():
    with pytest.raises(ValueError, match="invalid YAML: found undefined alias 'nope'"):
        yaml_decode("a: *nope\n")
    with pytest.raises(ValueError, match="invalid YAML"):
        yaml_decode("a: [1\n")


def test_lua_yaml_decode_refuses_a_bomb_and_the_run_goes_on(workflow_file, tmp_path):
    (tmp_path / "bomb.yaml").write_text(alias_bomb())
    (tmp_path / "compose.yaml").write_text(COMPOSE)
    path = workflow_file(f'''
        local function read(name)
            local fh = assert(io.open("{tmp_path}/" .. name))
            local text = fh:read("a")
            fh:close()
            return text
        end
        task("bomb"):command(function()
            return true, "decoded", {{doc = yaml.decode(read("bomb.yaml"))}}
        end):build()
        task("compose"):command(function()
            local doc = yaml.decode(read("compose.yaml"))
            return true, doc.services.db.image, {{restart = doc.services.db.restart}}
        end):build()
    ''')
    code, doc = cli_json("run", "-f", path, timeout=30)
    tasks = tasks_by_name(doc)
    assert code == 1 and tasks["bomb"]["status"] == "failed"
    assert "aliases expand to more than 100,000 nodes" in tasks["bomb"]["error"]
    assert tasks["bomb"]["error"].startswith(f"{path}:")
    assert tasks["compose"]["status"] == "success"
    assert (tasks["compose"]["message"], tasks["compose"]["outputs"]) == (
        "postgres", {"restart": "always"})
