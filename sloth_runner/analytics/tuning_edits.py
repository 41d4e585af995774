"""Turn `tune`'s recommendations into edits of the workflow file's builder calls.

Only the calls involved change. An existing `:timeout("10s")`, `:retries(2, "fixed")`,
`timeout = "10s"` or `max_parallel_tasks = 4` gets its literal argument replaced (quote style
and a retry strategy kept); a missing one is inserted: `:timeout("30s")` right after
`task("name")`, a `timeout = "30s"` field after a task table's `name` field, `max_parallel_tasks`
into the workflow's `config` table (or a `config` field, or a `:config({...})` call, made for it).

A task is found where the loader says it was defined: a fluent chain by the line of its
`task(...)` call; a task table (whose definition line is that of the call that claimed it) by
its literal name, inside its workflow's `workflow.define` when the name is not unique. What
cannot be changed safely is reported and left alone: a value computed at run time
(`:timeout(t)`), a name that is not a literal, a builder continued in another statement, a
task defined in an imported file, one table shared by workflows that need different values.
"""

from __future__ import annotations

import difflib
import os

from sloth_runner.analytics import luaedit
from sloth_runner.analytics.luaedit import NUMBER, STRING, Edit, Source
from sloth_runner.analytics.tuning import duration_text

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

COMMANDS = ("command", "run", "shell")


class Plan:
    """The edits to make, and every wanted change with its fate (`edit` or `skipped`)."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.edits: list[Edit] = []
        self.changes: list[dict[str, Any]] = []

    @property
    def text(self) -> str:
        return luaedit.apply(self.source, self.edits)

    def expected(self) -> dict[tuple[str, str | None, str], float | int]:
        """What the file should define once the edits are made, to check it after writing."""
        return {(c["workflow"], c["task"], c["setting"]): c["value"] for c in self.changes
                if c["status"] == "edit"}


def plan(source: str, path: str, report: dict[str, Any]) -> Plan:
    """The edits that apply `report`'s changes to `source` (the text of `path`)."""
    out = Plan(source)
    try:
        src = Source(source)
    except luaedit.LuaSyntaxError as exc:
        for change in _wanted(report):
            out.changes.append({**change, "status": "skipped",
                                "why": f"the file could not be read as Lua tokens ({exc})"})
        return out
    finder = _Finder(src, path)
    by_site: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for change in _wanted(report):
        site, why = finder.site(change)
        if site is None:
            out.changes.append({**change, "status": "skipped", "why": why})
            continue
        change["line"] = src.tokens[site[1]].line
        by_site.setdefault(site, []).append(change)
    for site, changes in by_site.items():
        kept, copies = _unshared(changes, out)
        if kept:
            out.edits.extend(_edits(src, site, kept))
            out.changes.extend(kept)
        for copy, original in copies:  # another workflow's use of the same definition
            out.changes.append({**copy, "status": original["status"],
                                "why": original.get("why")})
    out.changes.sort(key=lambda c: (c.get("line") or 0, c["setting"]))
    return out


def unified_diff(old: str, new: str, path: str) -> str:
    """`diff -u` of the two texts, named as git names them (a/ and b/)."""
    name = os.path.basename(path)
    lines = difflib.unified_diff(_lines(old), _lines(new), f"a/{name}", f"b/{name}")
    return "".join(lines)


def _lines(text: str) -> list[str]:
    """Lines as Lua and diff count them: ended by \\n only (str.splitlines would also split
    at a form feed or U+2028 inside a string literal)."""
    lines = [line + "\n" for line in text.split("\n")]
    lines[-1] = lines[-1][:-1]
    if not lines[-1]:
        lines.pop()
    elif lines:
        lines[-1] += "\n\\ No newline at end of file\n"
    return lines


def _wanted(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Every recommended change of `report`, in file order."""
    out = []
    for wf in report["workflows"]:
        for t in wf["tasks"]:
            timeout = t["timeout"]
            if timeout["action"] in ("set", "raise", "lower"):
                out.append({"workflow": wf["name"], "task": t["name"], "setting": "timeout",
                            "value": timeout["recommended_s"], "location": t["location"],
                            "from": _shown_timeout(timeout["current_s"]),
                            "to": duration_text(timeout["recommended_s"])})
            retries = t["retries"]
            if retries["action"] in ("add", "drop"):
                out.append({"workflow": wf["name"], "task": t["name"], "setting": "retries",
                            "value": retries["recommended"], "location": t["location"],
                            "from": str(retries["current"]), "to": str(retries["recommended"])})
        par = wf["max_parallel_tasks"]
        if par["action"] in ("raise", "lower"):
            out.append({"workflow": wf["name"], "task": None, "setting": "max_parallel_tasks",
                        "value": par["recommended"], "location": wf["location"],
                        "from": str(par["current"] or "none"), "to": str(par["recommended"])})
    return out


def _shown_timeout(value: float | None) -> str:
    return "none" if value is None else duration_text(value)


def _unshared(changes: list[dict[str, Any]], plan: Plan
              ) -> tuple[list[dict[str, Any]], list[tuple[dict[str, Any], dict[str, Any]]]]:
    """The changes to make at one site, one per setting, and the (copy, original) pairs of
    other workflows sharing the definition and wanting the same. Changes that such workflows
    want differently are skipped, with the reason."""
    keep: list[dict[str, Any]] = []
    copies = []
    for c in changes:
        rivals = [o for o in changes if o["setting"] == c["setting"] and o["value"] != c["value"]]
        original = next((k for k in keep if k["setting"] == c["setting"]), None)
        if rivals:
            plan.changes.append({**c, "status": "skipped", "why": (
                f"the same definition serves workflow '{rivals[0]['workflow']}' too, which "
                f"needs {rivals[0]['to']}")})
        elif original is not None:
            copies.append((c, original))
        else:
            keep.append(c)
    return keep, copies


class _Finder:
    """Where, in the source, each task or workflow of the loaded file is defined."""

    def __init__(self, src: Source, path: str) -> None:
        self.src = src
        self.path = os.path.realpath(path)
        self.chains: dict[str | None, list[luaedit.Chain]] = {}
        for chain in src.chains("task"):
            self.chains.setdefault(chain.name, []).append(chain)
        self.computed = {src.tokens[c.head].line for c in self.chains.get(None, ())}
        self.defines = src.workflow_defines()
        self.tables: dict[str, list[luaedit.Table]] = {}
        for name, table in self._task_tables():
            self.tables.setdefault(name, []).append(table)

    def site(self, change: dict[str, Any]) -> tuple[tuple[Any, ...] | None, str]:
        """(("chain" | "table" | "define", token index, object), "") or (None, why not)."""
        if change["task"] is None:
            return self._workflow_site(change["workflow"])
        file, _, line_text = change["location"].rpartition(":")
        if not file or not line_text.isdigit():
            return None, "its definition has no file:line"
        if os.path.realpath(file) != self.path:
            return None, f"it is defined in {file}, not in this file"
        line, name = int(line_text), change["task"]
        for chain in self.chains.get(name, ()):
            first = self.src.tokens[chain.head].line
            if first <= line <= self.src.tokens[chain.args_close].line:
                if chain.last("build") is None:
                    return None, ("its builder is continued in other statements (no :build() "
                                  f"in the chain at line {first}), where a setting may be "
                                  "overridden")
                return ("chain", chain.head, chain), ""
        # a task table inside another workflow's definition is not this one
        owners = [(t, self._workflow_of(t)) for t in self.tables.get(name, ())]
        tables = [t for t, owner in owners if owner == change["workflow"]] or \
            [t for t, owner in owners if owner is None]
        if line in self.computed and not tables:
            return None, f"its name is computed at line {line} (task(...) of no literal)"
        if len(tables) == 1:
            return ("table", tables[0].open, tables[0]), ""
        if tables:
            return None, (f"task '{name}' is defined by {len(tables)} tables; which one is "
                          "this workflow's cannot be told from the text")
        return None, (f"no literal definition of task '{name}' near line {line} (a name or "
                      "table built at run time?)")

    def _workflow_site(self, name: str) -> tuple[tuple[Any, ...] | None, str]:
        found = [d for d in self.defines if d.name == name]
        if len(found) == 1:
            return ("define", found[0].head, found[0]), ""
        if not found and name == "default":
            return None, ("tasks outside workflow.define form the `default` workflow, which has "
                          "no config to hold it: pass `sloth-runner run --max-parallel N`, or "
                          "define a workflow")
        return None, f"no workflow.define(\"{name}\", ...) with a literal name in this file"

    def _task_tables(self) -> list[tuple[str, luaedit.Table]]:
        """(name, table) of every table constructor that is a task: a literal `name` and a
        command, or a command under a literal key (`tasks = {lint = {command = ...}}`)."""
        src, out = self.src, []
        for table in src.tables.values():
            keys = {f.key for f in table.fields}
            name_field = table.last("name")
            if name_field is not None and keys & set(COMMANDS):
                literal = src.single_literal(name_field.value_start, name_field.value_end,
                                             kinds=(STRING,))
                if literal is not None and literal.value is not None:
                    out.append((literal.value, table))
            for f in table.fields:
                inner = src.table_at(f.value_start, f.value_end) if f.key else None
                if f.key is not None and inner is not None and inner.last("name") is None \
                        and {g.key for g in inner.fields} & set(COMMANDS):
                    out.append((f.key, inner))
        return out

    def _workflow_of(self, table: luaedit.Table) -> str | None:
        """The literal name of the workflow.define whose arguments or chain hold `table`."""
        for d in self.defines:
            spans = [(d.args_open, d.args_close)] + [(c.open, c.close) for c in d.calls]
            if any(lo <= table.open <= hi for lo, hi in spans):
                return d.name
        return None


def _edits(src: Source, site: tuple[Any, ...], changes: list[dict[str, Any]]) -> list[Edit]:
    kind, _, obj = site
    if kind == "chain":
        return _chain_edits(src, obj, changes)
    if kind == "table":
        return _table_edits(src, obj, changes)
    return _define_edits(src, obj, changes)


def _chain_edits(src: Source, chain: luaedit.Chain, changes: list[dict[str, Any]]) -> list[Edit]:
    edits, inserted = [], []
    for c in changes:
        call = chain.last(c["setting"])
        if call is None:
            inserted.append(f":{c['setting']}({_literal(c)})")
            c["status"] = "edit"
            continue
        args = src.args(call.open, call.close)
        edit = _replace(src, args[0] if args else None, c)
        if edit is None:
            c["status"], c["why"] = "skipped", (
                f"`:{c['setting']}{luaedit.describe(src, call.open, call.close + 1)}`: its value "
                "is computed, not a literal")
        else:
            edits.append(edit)
            c["status"] = "edit"
    if inserted:
        end = src.tokens[chain.args_close].end
        edits.append(Edit(end, end, "".join(inserted)))
    return edits


def _table_edits(src: Source, table: luaedit.Table, changes: list[dict[str, Any]]) -> list[Edit]:
    edits, inserted = [], []
    for c in changes:
        field = table.last(c["setting"])
        if field is None:
            inserted.append(f"{c['setting']} = {_literal(c)}")
            c["status"] = "edit"
            continue
        edit = _replace(src, (field.value_start, field.value_end), c)
        if edit is None:
            c["status"], c["why"] = "skipped", (
                f"`{c['setting']} = {luaedit.describe(src, field.value_start, field.value_end)}`"
                ": its value is computed, not a literal")
        else:
            edits.append(edit)
            c["status"] = "edit"
    if inserted:
        name = table.last("name")
        after = table.fields.index(name) + 1 if name is not None else 0
        before = table.fields[after] if after < len(table.fields) else table.fields[0]
        edits.append(luaedit.insert_fields(src, table, ", ".join(inserted), before))
    return edits


def _define_edits(src: Source, define: luaedit.Chain, changes: list[dict[str, Any]]
                  ) -> list[Edit]:
    (c,) = changes  # a workflow has one setting here: max_parallel_tasks
    c["status"] = "edit"
    value = f"max_parallel_tasks = {c['value']}"
    args = src.args(define.args_open, define.args_close)
    if len(args) >= 2:
        definition = src.table_at(*args[1])
        if definition is None:
            return _skip(c, "its definition is not a table literal in workflow.define(...)")
        config_field = definition.last("config")
        if config_field is None:
            before = definition.last("tasks") or \
                (definition.fields[0] if definition.fields else None)
            return [luaedit.insert_fields(src, definition, f"config = {{{value}}}", before)]
        config = src.table_at(config_field.value_start, config_field.value_end)
        if config is None:
            shown = luaedit.describe(src, config_field.value_start, config_field.value_end)
            return _skip(c, f"`config = {shown}` is computed, not a table literal")
    else:
        call = define.last("config")
        if call is None:
            end = src.tokens[define.args_close].end
            return [Edit(end, end, f":config({{{value}}})")]
        (arg, *_) = src.args(call.open, call.close) or [(call.open, call.open)]
        config = src.table_at(*arg)
        if config is None:
            return _skip(c, f"`:config{luaedit.describe(src, call.open, call.close + 1)}` is "
                            "computed, not a table literal")
    field = config.last("max_parallel_tasks")
    if field is None:
        return [luaedit.insert_fields(src, config, value)]
    edit = _replace(src, (field.value_start, field.value_end), c)
    if edit is None:
        return _skip(c, f"`max_parallel_tasks = "
                        f"{luaedit.describe(src, field.value_start, field.value_end)}` is "
                        "computed, not a literal")
    return [edit]


def _skip(change: dict[str, Any], why: str) -> list[Edit]:
    change["status"], change["why"] = "skipped", why
    return []


def _replace(src: Source, span: tuple[int, int] | None, change: dict[str, Any]) -> Edit | None:
    """The edit replacing the literal at `span` with the change's value (None when the span
    is not one literal of the right kind)."""
    if span is None:
        return None
    if change["setting"] == "timeout":
        literal = src.single_literal(*span, kinds=(STRING, NUMBER))
        if literal is None:
            return None
        text = (str(int(change["value"])) if literal.kind == NUMBER
                else luaedit.lua_string(duration_text(change["value"]), literal))
    else:
        literal = src.single_literal(*span, kinds=(NUMBER,))
        if literal is None or not literal.text.isdigit():
            return None
        text = str(change["value"])
    return Edit(literal.start, literal.end, text)


def _literal(change: dict[str, Any]) -> str:
    if change["setting"] == "timeout":
        return luaedit.lua_string(duration_text(change["value"]))
    return str(change["value"])
