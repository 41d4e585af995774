"""The workflow spec `sloth-runner ai new` has a model fill, and the checks it must pass.

A model is never asked for Lua: it fills a small JSON document (workflow name, description,
tasks with a shell command or a call of an allow-listed module function, dependencies, retries,
timeouts, trigger rules) and our code writes the Lua (newflow_render.py). Why: a file that does
not load, names a module function that does not exist, or calls one with the wrong arguments
cannot come out of a spec that passed these checks, whatever the model.

The shape is written once, as nodes that give three things: the JSON schema sent to
OpenAI-compatible servers (`response_format`, kept to the subset strict structured outputs
accept: every field required, no extra fields, no length bounds), GBNF for the local model (the
same shape with fixed key order and spacing, bounded strings and lists, so even a 135M model
can only write a document of this shape and stops), and a checker that names the field at
fault, for answers that were not constrained. `problems()` adds what no grammar can say:
unique names, known dependencies, no cycle, durations, URLs and `bash -n` on shell commands.
"""

from __future__ import annotations

import json
import re

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

MAX_TASKS = 20
MAX_DEPS = MAX_TASKS - 1  # every other task
MAX_RETRIES = 5
NAME_RE = re.compile(r"[a-z][a-z0-9_]{0,39}")
TIMEOUT_RE = re.compile(r"([1-9][0-9]{0,3}(s|m|h))?")
WINDOW_RE = re.compile(r"[1-9][0-9]{0,2}(h|d)")
TRIGGER_RULES = ("all_success", "one_failed", "all_done", "none_failed")
SEVERITIES = ("info", "warning", "error", "critical")
# JSON string content, bounded: what a model may put between the quotes.
CHAR = '([^"\\\\\\x7F\\x00-\\x1F] | "\\\\" (["\\\\/bfnrt] | "u" [0-9a-fA-F]{4}))'


class Grammar:
    """GBNF rules collected while nodes describe themselves; one rule per distinct body."""

    def __init__(self) -> None:
        self.rules: dict[str, str] = {}
        self.names: dict[str, str] = {}

    def rule(self, hint: str, body: str) -> str:
        known = self.names.get(body)
        if known is not None:
            return known
        name = re.sub(r"[^a-z0-9]+", "-", hint.lower()).strip("-") or "r"
        base, n = name, 1
        while name in self.rules:
            n += 1
            name = f"{base}{n}"
        self.rules[name] = body
        self.names[body] = name
        return name

    def text(self, root: str) -> str:
        lines = [f"root ::= {root}"] + [f"{k} ::= {v}" for k, v in self.rules.items()]
        return "\n".join(lines) + "\n"


def _gbnf_literal(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


class Node:
    """One value of the spec: its JSON schema, its GBNF, and its check."""

    def schema(self, bounded: bool = False) -> dict[str, Any]:
        raise NotImplementedError

    def gbnf(self, g: Grammar, hint: str) -> str:
        raise NotImplementedError

    def check(self, value: Any, where: str) -> list[str]:
        raise NotImplementedError


class Str(Node):
    """A string of at most `limit` characters; `pattern` (a regex, also sent in the schema)
    and `chars` (its GBNF, bounded) when the string has a form, e.g. a name."""

    def __init__(self, limit: int, pattern: re.Pattern[str] | None = None, chars: str = "",
                 what: str = "", minimum: int = 1, label: str = "",
                 rules: dict[str, str] | None = None) -> None:
        self.limit, self.pattern, self.chars, self.what = limit, pattern, chars, what
        self.minimum, self.label, self.rules = minimum, label, rules or {}

    def schema(self, bounded: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "string"}
        if self.pattern is not None:
            out["pattern"] = f"^{self.pattern.pattern}$"
        if bounded:
            out["maxLength"] = self.limit
        return out

    def gbnf(self, g: Grammar, hint: str) -> str:
        body = self.chars or f"{CHAR}{{{self.minimum},{self.limit}}}"
        g.rules.update(self.rules)
        return g.rule(self.label or hint, f'"\\"" {body} "\\""')

    def check(self, value: Any, where: str) -> list[str]:
        if not isinstance(value, str):
            return [f"{where}: must be a string, got {_kind(value)}"]
        if len(value) < self.minimum:
            return [f"{where}: must not be empty"]
        if len(value) > self.limit:
            return [f"{where}: at most {self.limit} characters (got {len(value)})"]
        if self.pattern is not None and not self.pattern.fullmatch(value):
            return [f"{where}: {json.dumps(value)} is not {self.what}"]
        return []


class Enum(Node):
    def __init__(self, values: tuple[str, ...]) -> None:
        self.values = values

    def schema(self, bounded: bool = False) -> dict[str, Any]:
        return {"type": "string", "enum": list(self.values)}

    def gbnf(self, g: Grammar, hint: str) -> str:
        return g.rule(hint, " | ".join(_gbnf_literal(json.dumps(v)) for v in self.values))

    def check(self, value: Any, where: str) -> list[str]:
        if value not in self.values:
            return [f"{where}: must be one of {', '.join(self.values)} (got "
                    f"{json.dumps(value)})"]
        return []


class Int(Node):
    def __init__(self, low: int, high: int) -> None:
        self.low, self.high = low, high

    def schema(self, bounded: bool = False) -> dict[str, Any]:
        return {"type": "integer", "minimum": self.low, "maximum": self.high}

    def gbnf(self, g: Grammar, hint: str) -> str:
        return g.rule(hint, " | ".join(f'"{n}"' for n in range(self.low, self.high + 1)))

    def check(self, value: Any, where: str) -> list[str]:
        if isinstance(value, bool) or not isinstance(value, int) or \
                not self.low <= value <= self.high:
            return [f"{where}: must be a whole number from {self.low} to {self.high} (got "
                    f"{json.dumps(value)})"]
        return []


class Bool(Node):
    def schema(self, bounded: bool = False) -> dict[str, Any]:
        return {"type": "boolean"}

    def gbnf(self, g: Grammar, hint: str) -> str:
        return g.rule("bool", '"true" | "false"')

    def check(self, value: Any, where: str) -> list[str]:
        return [] if isinstance(value, bool) else [f"{where}: must be true or false"]


class Arr(Node):
    def __init__(self, item: Node, low: int, high: int, sep: str = ", ",
                 open_: str = "[", close: str = "]") -> None:
        self.item, self.low, self.high = item, low, high
        self.sep, self.open, self.close = sep, open_, close

    def schema(self, bounded: bool = False) -> dict[str, Any]:
        return {"type": "array", "items": self.item.schema(bounded), "minItems": self.low,
                "maxItems": self.high}

    def gbnf(self, g: Grammar, hint: str) -> str:
        item = self.item.gbnf(g, f"{hint}-item")
        more = f"({_gbnf_literal(self.sep)} {item}){{{max(0, self.low - 1)},{self.high - 1}}}"
        inner = f"{item} {more}"
        if self.low == 0:
            inner = f"({inner})?"
        return g.rule(hint, f"{_gbnf_literal(self.open)} {inner} {_gbnf_literal(self.close)}")

    def check(self, value: Any, where: str) -> list[str]:
        if not isinstance(value, list):
            return [f"{where}: must be a list, got {_kind(value)}"]
        if not self.low <= len(value) <= self.high:
            return [f"{where}: must have {self.low} to {self.high} items (got {len(value)})"]
        out: list[str] = []
        for i, item in enumerate(value):
            out += self.item.check(item, f"{where}[{i}]")
        return out


class Obj(Node):
    """An object whose fields are all required, in this order, and nothing else."""

    def __init__(self, fields: list[tuple[str, Node]], sep: str = ", ", open_: str = "{",
                 close: str = "}") -> None:
        self.fields, self.sep, self.open, self.close = fields, sep, open_, close

    def schema(self, bounded: bool = False) -> dict[str, Any]:
        return {"type": "object", "properties": {k: n.schema(bounded) for k, n in self.fields},
                "required": [k for k, _ in self.fields], "additionalProperties": False}

    def gbnf(self, g: Grammar, hint: str) -> str:
        parts = []
        for i, (key, node) in enumerate(self.fields):
            head = (self.open if i == 0 else self.sep) + json.dumps(key) + ": "
            parts.append(f"{_gbnf_literal(head)} {node.gbnf(g, key)}")
        parts.append(_gbnf_literal(self.close))
        return g.rule(hint, " ".join(parts))

    def check(self, value: Any, where: str) -> list[str]:
        if not isinstance(value, dict):
            return [f"{where}: must be an object, got {_kind(value)}"]
        names = [k for k, _ in self.fields]
        out = [f"{where}: unknown field {json.dumps(k)} (fields: {', '.join(names)})"
               for k in value if k not in names]
        for key, node in self.fields:
            if key not in value:
                out.append(f"{where}.{key}: missing")
            else:
                out += node.check(value[key], f"{where}.{key}")
        return out


class AnyOf(Node):
    """One of several objects, told apart by the value of their first field (`shell`, or
    `call` naming the function)."""

    def __init__(self, options: list[Obj]) -> None:
        self.options = options

    def schema(self, bounded: bool = False) -> dict[str, Any]:
        return {"anyOf": [o.schema(bounded) for o in self.options]}

    def gbnf(self, g: Grammar, hint: str) -> str:
        return g.rule(hint, " | ".join(o.gbnf(g, f"{hint}-{_tag(o)}") for o in self.options))

    def check(self, value: Any, where: str) -> list[str]:
        if not isinstance(value, dict):
            return [f"{where}: must be an object, got {_kind(value)}"]
        for option in self.options:
            key, node = option.fields[0]
            if key in value and (not isinstance(node, Enum) or value[key] in node.values):
                return option.check(value, where)
        if "call" in value:
            return [f"{where}.call: unknown function {json.dumps(value['call'])}; the functions "
                    f"are: {', '.join(FUNCTIONS)} (or use {{\"shell\": \"...\"}})"]
        return [f"{where}: must be {{\"shell\": \"<command>\"}} or {{\"call\": \"<function>\", "
                "...}}"]


def _tag(option: Obj) -> str:
    key, node = option.fields[0]
    return node.values[0] if isinstance(node, Enum) else key


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean",
            type(None): "null"}.get(type(value), "a number")


# -- the module functions a task may call -------------------------------------------------------
class Arg:
    """One argument of an allow-listed function: its JSON name, its node, and the example
    value the prompt shows, if any."""

    def __init__(self, name: str, node: Node, hint: str = "") -> None:
        self.name, self.node, self.hint = name, node, hint


def _text(limit: int, minimum: int = 1) -> Str:
    return Str(limit, minimum=minimum)


# Patterns use no class escapes such as \s: servers turn patterns into grammars of their own,
# and llama-cpp-python's server crashes on one it cannot parse.
URL_PATH = "A-Za-z0-9._~:/?#@!$&'()*+,;=%-"
URL_RE = re.compile(rf"https?://[A-Za-z0-9.-]+(:[0-9]{{1,5}})?(/[{URL_PATH}]*)?")
URL_CHARS = (f'"http" "s"? "://" [A-Za-z0-9.-]{{1,80}} (":" [0-9]{{1,5}})? '
             f'("/" [{URL_PATH}]{{0,200}})?')
PATH_RE = re.compile(r"[A-Za-z0-9._~/@+,=%: -]{1,200}")
PATH_CHARS = "[A-Za-z0-9._~/@+,=%: -]{1,200}"
PATH = Arg("path", Str(200, PATH_RE, PATH_CHARS, "a path"))
URL = Arg("url", Str(300, URL_RE, URL_CHARS, "an http(s) URL"))
WINDOW = Arg("window", Str(4, WINDOW_RE, '[1-9] [0-9]{0,2} [hd]', "a window like \"7d\" or "
                        "\"12h\""), "\"7d\"")

# name -> (arguments, what it does, for the prompt). The Lua each becomes is in
# newflow_render.BODIES; tests/ai/test_ai_new.py checks both lists against the real module
# tables and runs every body.
FUNCTIONS: dict[str, tuple[tuple[Arg, ...], str]] = {
    "fs.write": ((PATH, Arg("content", _text(1000, 0))), "write a text file"),
    "fs.mkdir": ((PATH,), "create a directory (and its parents)"),
    "fs.rm": ((PATH, Arg("recursive", Bool())), "remove a file or directory"),
    "fs.exists": ((PATH,), "fail unless the file exists"),
    "log.info": ((Arg("message", _text(300)),), "log a message"),
    "state.set": ((Arg("key", _text(100)), Arg("value", _text(300, 0))),
                  "remember a value for later runs"),
    "state.increment": ((Arg("key", _text(100)),), "add 1 to a counter kept between runs"),
    "http.get": ((URL,), "GET a URL; fail unless the answer is 2xx"),
    "http.post": ((URL, Arg("body", _text(1000, 0))), "POST a body; fail unless 2xx"),
    "http.download": ((URL, PATH), "download a URL to a file"),
    "monitoring.get_health": ((URL,), "fail unless the URL answers 2xx/3xx; log host health"),
    "monitoring.get_load_metrics": ((), "log this host's load, memory and disk use"),
    "notifications.send_alert": ((Arg("message", _text(300)),
                                  Arg("severity", Enum(SEVERITIES))),
                                 "send an alert to the chat webhook (SLOTH_ALERT_WEBHOOK)"),
    "git.clone": ((URL, Arg("dir", PATH.node)), "clone a git repository"),
    "git.pull": ((Arg("dir", PATH.node),), "pull a git working copy"),
    "ai.complete": ((Arg("prompt", _text(500)),), "ask the AI model; log its answer"),
    "aws.ec2.get_utilization_metrics": ((WINDOW,), "log EC2 CPU use over a window"),
    "aws.billing.get_costs": ((WINDOW,), "log AWS costs over a window"),
}


def action_node() -> AnyOf:
    from sloth_runner.ai import newflow_shell

    # Any string for the schema; on the local model, the bash subset that passes `bash -n`.
    shell = Str(600, chars="sh", label="shell", rules=newflow_shell.rules())
    options = [Obj([("shell", shell)])]
    for name, (args, _) in FUNCTIONS.items():
        options.append(Obj([("call", Enum((name,)))] + [(a.name, a.node) for a in args]))
    return AnyOf(options)


NAME = Str(40, NAME_RE, "[a-z] [a-z0-9_]{0,39}", "a snake_case name", label="name")
TIMEOUT = Str(5, TIMEOUT_RE, "([1-9] [0-9]{0,3} [smh])?", "a duration like \"30s\", \"10m\" or "
              "\"2h\" (or \"\" for none)", minimum=0, label="timeout")
RETRIES = Int(0, MAX_RETRIES)
RULE = Enum(TRIGGER_RULES)


def task_node() -> Obj:
    return Obj([
        ("name", NAME),
        ("description", _text(160)),
        ("depends_on", Arr(NAME, 0, MAX_DEPS)),
        ("trigger_rule", RULE),
        ("run", action_node()),
        ("retries", RETRIES),
        ("timeout", TIMEOUT),
    ], open_="  {")


def spec_node() -> Obj:
    return Obj([
        ("workflow", NAME),
        ("description", _text(200)),
        ("tasks", Arr(task_node(), 1, MAX_TASKS, sep=",\n", open_="[\n", close="\n]")),
    ])


def json_schema(bounded: bool = False) -> dict[str, Any]:
    """The spec's JSON schema, for `response_format`: as strict structured outputs take it,
    or `bounded` (strings with maxLength, which OpenAI's strict mode refuses but servers that
    make a grammar of the schema honour, so a small model cannot ramble inside a string)."""
    return spec_node().schema(bounded)


def grammar() -> str:
    """The spec in GBNF, for the local model."""
    g = Grammar()
    root = spec_node().gbnf(g, "spec")
    return g.text(root)


# -- checks beyond the shape --------------------------------------------------------------------
def parse(text: str) -> tuple[dict[str, Any] | None, list[str]]:
    """The spec in a model's answer (the JSON object in it), or why there is none."""
    start, end = text.find("{"), text.rfind("}")
    if start < 0:
        return None, ["the answer holds no JSON object"]
    try:
        value = json.loads(text[start:end + 1] if end > start else text[start:])
    except json.JSONDecodeError as exc:
        return None, [f"the answer is not valid JSON: {exc.msg} at line {exc.lineno} column "
                      f"{exc.colno}"]
    if not isinstance(value, dict):
        return None, ["the answer is not a JSON object"]
    return value, []


def problems(spec: Any) -> list[str]:
    """Everything wrong with a spec, each naming its field; [] when it may be rendered."""
    found = spec_node().check(spec, "spec")
    if found:
        return found
    tasks = spec["tasks"]
    names = [t["name"] for t in tasks]
    seen: set[str] = set()
    for i, name in enumerate(names):
        if name in seen:
            found.append(f"spec.tasks[{i}].name: {name!r} is used by another task (names must "
                         "be unique)")
        seen.add(name)
    for i, t in enumerate(tasks):
        where = f"spec.tasks[{i}]"
        for dep in t["depends_on"]:
            if dep == t["name"]:
                found.append(f"{where}.depends_on: task {dep!r} cannot depend on itself")
            elif dep not in seen:
                found.append(f"{where}.depends_on: no task is named {dep!r} (tasks: "
                             f"{', '.join(names)})")
        if t["trigger_rule"] != "all_success" and not t["depends_on"]:
            found.append(f"{where}.trigger_rule: {t['trigger_rule']!r} needs depends_on (the "
                         "tasks whose outcome it waits for)")
        found += _action_problems(t["run"], f"{where}.run")
    if not found:
        cycle = find_cycle(tasks)
        if cycle:
            found.append("spec.tasks: dependency cycle " + " -> ".join(cycle))
    return found


def _action_problems(run: dict[str, Any], where: str) -> list[str]:
    """A shell command must pass `bash -n`; arguments were checked by their nodes."""
    if "shell" not in run:
        return []
    from sloth_runner.ai.codegen import check_bash

    problem = check_bash(run["shell"]) if run["shell"].strip() else "empty command"
    return [f"{where}.shell: not a valid bash command: {problem}"] if problem else []


def find_cycle(tasks: list[dict[str, Any]]) -> list[str]:
    """A dependency cycle as a list of names (first repeated last), or []. Iterative, so a
    long chain cannot exhaust the stack."""
    deps = {t["name"]: [d for d in t["depends_on"]] for t in tasks}
    state: dict[str, int] = {}
    for start in deps:
        if state.get(start):
            continue
        path: list[str] = []
        stack: list[tuple[str, int]] = [(start, 0)]
        while stack:
            node, i = stack.pop()
            if i == 0:
                state[node] = 1
                path.append(node)
            children = [d for d in deps.get(node, []) if d in deps]
            if i < len(children):
                stack.append((node, i + 1))
                child = children[i]
                if state.get(child) == 1:
                    return path[path.index(child):] + [child]
                if not state.get(child):
                    stack.append((child, 0))
            else:
                state[node] = 2
                path.pop()
    return []


def prompt_reference() -> str:
    """The functions as the prompt lists them: `fs.write {path, content}: write a text file`."""
    lines = []
    for name, (args, what) in FUNCTIONS.items():
        shown = ", ".join(a.name + (f"={a.hint}" if a.hint else "") for a in args)
        lines.append(f"  {name} {{{shown}}}: {what}" if args else f"  {name}: {what}")
    return "\n".join(lines)
