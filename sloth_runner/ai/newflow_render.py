"""Lua from a checked workflow spec (newflow_spec.py), in the Modern DSL or the table form.

Everything a model wrote reaches the file as a Lua string literal made here (`lua_string`), never
as code: the only code in the file is ours, one body per allow-listed module function
(`BODIES`), so the file's module calls exist and take the arguments they are given. The file
loads whatever the strings hold; what the shell commands do is for the user to read before
running it, which is why the command shows the file first.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

STYLES = ("modern", "table")
LUA_KEYWORDS = frozenset(
    "and break do else elseif end false for function goto if in local nil not or repeat "
    "return then true until while".split())
# Globals a generated file's code uses or a user would expect to keep: a task named like one
# of them gets a local variable with a suffix, so the module stays reachable in later bodies.
# tests/ai/test_ai_new.py checks this covers every global of a real runtime.
RESERVED = LUA_KEYWORDS | frozenset(
    "ai assert aws collectgarbage coroutine debug dofile error event exec fs getmetatable git "
    "goroutine http import io ipairs json load loadfile log math monitoring net next "
    "notifications os package pairs params pcall print rawequal rawget rawlen rawset require "
    "select setmetatable state string table task this tonumber tostring type utf8 values "
    "warn workflow xpcall yaml _G _VERSION".split())


def lua_string(text: str) -> str:
    """`text` as a Lua string literal: double-quoted, with every byte that could end it or
    confuse a reader escaped (quotes, backslashes, control characters)."""
    out = ['"']
    for ch in text:
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 32 or ord(ch) == 127:
            out.append(f"\\{ord(ch):03d}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def shell_literal(command: str) -> str:
    """A shell command as a string literal: a long bracket for a multi-line script (it reads
    as the script itself), else a quoted string."""
    if "\n" in command and not any(ord(c) < 32 and c not in "\n\t" for c in command) \
            and not command.endswith("]"):
        level = 0
        while f"]{'=' * level}]" in command:
            level += 1
        eq = "=" * level
        return f"[{eq}[\n{command}]{eq}]"
    return lua_string(command)


def _comment(text: str) -> str:
    """Text for a `--` comment: one line, no control characters."""
    return " ".join("".join(c if c.isprintable() else " " for c in text).split())


q = lua_string

# The Lua for each allow-listed module function: lines of a task function's body, which
# returns `true|false, message [, outputs]` as the README's command functions do.
BODIES: dict[str, Callable[[dict[str, Any]], list[str]]] = {
    "fs.write": lambda a: [f"fs.write({q(a['path'])}, {q(a['content'])})",
                          f"return true, {q('wrote ' + a['path'])}"],
    "fs.mkdir": lambda a: [f"fs.mkdir({q(a['path'])})",
                          f"return true, {q('created ' + a['path'])}"],
    "fs.rm": lambda a: [f"fs.rm({q(a['path'])}"
                        + (", {recursive = true})" if a["recursive"] else ")"),
                        f"return true, {q('removed ' + a['path'])}"],
    "fs.exists": lambda a: [f"if not fs.exists({q(a['path'])}) then",
                            f"    return false, {q(a['path'] + ' does not exist')}",
                            "end",
                            f"return true, {q(a['path'] + ' exists')}"],
    "log.info": lambda a: [f"log.info({q(a['message'])})", "return true"],
    "state.set": lambda a: [f"state.set({q(a['key'])}, {q(a['value'])})",
                           f"return true, {q('set ' + a['key'])}"],
    "state.increment": lambda a: [f"local n = state.increment({q(a['key'])})",
                                 f"return true, {q(a['key'] + ' = ')} .. n, {{count = n}}"],
    "http.get": lambda a: [f"local r = http.get({q(a['url'])})",
                          "if not r.ok then",
                          f"    return false, {q('GET ' + a['url'] + ': HTTP ')} .. r.status",
                          "end",
                          "return true, \"HTTP \" .. r.status, {status = r.status}"],
    "http.post": lambda a: [f"local r = http.post({q(a['url'])}, {{body = {q(a['body'])}}})",
                           "if not r.ok then",
                           f"    return false, {q('POST ' + a['url'] + ': HTTP ')} .. r.status",
                           "end",
                           "return true, \"HTTP \" .. r.status, {status = r.status}"],
    "http.download": lambda a: [f"local r = http.download({q(a['url'])}, {q(a['path'])})",
                               f"return r.ok, {q('downloaded to ' + a['path'])}, "
                               "{path = r.path, bytes = r.bytes}"],
    # get_health checks this host too and appends each URL's check last: the task is about
    # the URL, so only that check decides; the host's are logged.
    "monitoring.get_health": lambda a: [
        f"local h = monitoring.get_health({q(a['url'])})",
        "log.table(h.checks, \"health checks\")",
        "local check = h.checks[#h.checks]",
        "if check.status ~= \"healthy\" then",
        f"    return false, {q(a['url'] + ': ')} .. check.detail",
        "end",
        "return true, check.status, {status = check.status}"],
    "monitoring.get_load_metrics": lambda a: [
        "local m = monitoring.get_load_metrics()",
        "log.table(m, \"load\")",
        "return true, string.format(\"load %.2f per CPU\", m.load_per_cpu), m"],
    "notifications.send_alert": lambda a: [
        f"notifications.send_alert({q(a['message'])}, {{severity = {q(a['severity'])}}})",
        "return true, \"alert sent\""],
    "git.clone": lambda a: [f"local repo = git.clone({q(a['url'])}, {q(a['dir'])})",
                           "return true, \"cloned into \" .. repo.path, {path = repo.path}"],
    "git.pull": lambda a: [f"git.pull({q(a['dir'])})",
                          f"return true, {q('pulled ' + a['dir'])}"],
    "ai.complete": lambda a: [f"local answer = ai.complete({q(a['prompt'])})",
                             "log.info(answer.text)",
                             "return true, \"answered\", {text = answer.text}"],
    "aws.ec2.get_utilization_metrics": lambda a: [
        f"local instances = aws.ec2.get_utilization_metrics({q(a['window'])})",
        "log.table(instances, \"EC2 utilization\")",
        "return true, #instances .. \" instances\", {instances = instances}"],
    "aws.billing.get_costs": lambda a: [
        f"local costs = aws.billing.get_costs({q(a['window'])})",
        "log.table(costs, \"AWS costs\")",
        "return true, string.format(\"%.2f %s\", costs.total, costs.currency), costs"],
}


def render(spec: dict[str, Any], style: str, request: str = "", model: str = "") -> str:
    """The workflow file for a spec that passed newflow_spec.problems()."""
    if style not in STYLES:
        raise ValueError(f"style must be one of {', '.join(STYLES)}")
    head = [f"-- {spec['workflow']}: {_comment(spec['description'])}"]
    if request:
        by = f" ({_comment(model)})" if model else ""
        head.append(f"-- Written by `sloth-runner ai new`{by} from: {_comment(request)}")
    head.append("-- Read the commands before running it; `sloth-runner run -f FILE --dry-run` "
                "shows the plan.")
    body = _modern(spec) if style == "modern" else _table(spec)
    return "\n".join(head) + "\n\n" + body


def local_name(name: str, taken: set[str]) -> str:
    base = f"{name}_task" if name in RESERVED else name
    out, n = base, 1
    while out in taken:
        n += 1
        out = f"{base}{n}"
    taken.add(out)
    return out


def _command(run: dict[str, Any], indent: str, params: str) -> str:
    if "shell" in run:
        return shell_literal(run["shell"])
    args = {k: v for k, v in run.items() if k != "call"}
    lines = BODIES[run["call"]](args)
    inner = "".join(f"{indent}    {line}\n" for line in lines)
    return f"function({params})\n{inner}{indent}end"


def _modern(spec: dict[str, Any]) -> str:
    out: list[str] = []
    taken: set[str] = set()
    names = []
    for t in spec["tasks"]:
        var = local_name(t["name"], taken)
        names.append(var)
        lines = [f"local {var} = task({q(t['name'])})"]
        lines += [f"    :{key}({value})" for key, value in
                  _settings(t, _command(t["run"], "    ", "this, params"))]
        lines.append("    :build()")
        out.append("\n".join(lines))
    out.append(f"workflow.define({q(spec['workflow'])})\n"
               f"    :description({q(spec['description'])})\n"
               f"    :tasks({{{', '.join(names)}}})")
    return "\n\n".join(out) + "\n"


def _settings(t: dict[str, Any], command: str) -> list[tuple[str, str]]:
    """A task's settings as (name, Lua value), in the order both styles write them (a builder
    method each in the Modern DSL, a field each in the table form)."""
    out = [("description", q(t["description"]))]
    if t["depends_on"]:
        out.append(("depends_on", "{" + ", ".join(q(d) for d in t["depends_on"]) + "}"))
    if t["trigger_rule"] != "all_success":
        out.append(("trigger_rule", q(t["trigger_rule"])))
    out.append(("command", command))
    if t["retries"]:
        out.append(("retries", str(t["retries"])))
    if t["timeout"]:
        out.append(("timeout", q(t["timeout"])))
    return out


def _table(spec: dict[str, Any]) -> str:
    tasks = []
    for t in spec["tasks"]:
        fields = [f"name = {q(t['name'])}"]
        fields += [f"{key} = {value}" for key, value in
                   _settings(t, _command(t["run"], "            ", "params"))]
        tasks.append("        {\n" + "".join(f"            {f},\n" for f in fields)
                     + "        },\n")
    return (f"workflow.define({q(spec['workflow'])}, {{\n"
            f"    description = {q(spec['description'])},\n"
            "    tasks = {\n" + "".join(tasks) + "    },\n})\n")


def describe(run: dict[str, Any], limit: int = 72) -> str:
    """A task's action in a few words, for the summary: `shell: ...` or a call."""
    import json

    if "shell" in run:
        text = "shell: " + " ".join(run["shell"].split())
    else:
        args = ", ".join(json.dumps(v, ensure_ascii=False) for k, v in run.items()
                         if k != "call")
        text = f"{run['call']}({args})"
    return text if len(text) <= limit else text[:limit - 1] + "…"
