"""`generate_code`: ask for code, take it out of the fences, syntax-check it, re-ask with the error.

Checkers: bash/sh (`bash -n`), Python (`ast`), Lua (`load` in a throw-away Lua 5.4 state), JSON,
YAML and Dockerfile instructions. A language without a checker gets `valid = nil`: unknown, not
invented. JSON is also generated under a grammar on the local model, so a small model cannot
produce invalid JSON in the first place (providers without grammars are checked and re-asked).
"""

from __future__ import annotations

import re
import subprocess

from sloth_runner.ai.structured import Shape
from sloth_runner.errors import ConfigError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from sloth_runner.ai.protocols import ChatService
    from sloth_runner.ai.types import CallContext

ALIASES = {"sh": "bash", "shell": "bash", "zsh": "bash", "py": "python", "python3": "python",
           "yml": "yaml", "docker": "dockerfile", "containerfile": "dockerfile"}
# A fence line: up to three spaces, then ``` or ~~~ (or longer), then an info string (the
# language) or nothing. CommonMark's rules, which is what models imitate.
FENCE_LINE = re.compile(r"^( {0,3})(`{3,}|~{3,})[ \t]*([^`\n]*?)[ \t]*$")
ONE_LINE = re.compile(r"^[ \t]*(`{3,}|~{3,})[ \t]*(.*?)[ \t]*\1[ \t]*$")
LANGUAGE_TAG = re.compile(r"[A-Za-z][\w+#.-]{0,24}")


def json_grammar(depth: int = 5, members: int = 10, string_chars: int = 160) -> str:
    """JSON (RFC 8259 values) in GBNF, with nesting, container sizes and strings bounded, so a
    small model that keeps nesting has to close its brackets. An answer can still be cut off at
    max_tokens; the checker then catches it and the model is asked again."""
    rules = ["root ::= ws (obj1 | arr1) ws"]
    more = f"{{0,{members - 1}}}"
    for level in range(1, depth + 1):
        child = "scalar" if level == depth else f"(obj{level + 1} | arr{level + 1} | scalar)"
        rules += [
            f'obj{level} ::= "{{" ws (string ws ":" ws {child} ws '
            f'("," ws string ws ":" ws {child} ws){more})? "}}"',
            f'arr{level} ::= "[" ws ({child} ws ("," ws {child} ws){more})? "]"',
        ]
    rules += [
        'scalar ::= string | number | "true" | "false" | "null"',
        'string ::= "\\"" ([^"\\\\\\x7F\\x00-\\x1F] | "\\\\" (["\\\\/bfnrt] | "u" '
        f'[0-9a-fA-F]{{4}})){{0,{string_chars}}} "\\""',
        'number ::= "-"? ("0" | [1-9] [0-9]{0,15}) ("." [0-9]{1,15})? ([eE] [-+]? [0-9]{1,3})?',
        "ws ::= [ \\t\\n]{0,20}",
    ]
    return "\n".join(rules) + "\n"


JSON_GRAMMAR = json_grammar()
GRAMMARS = {"json": JSON_GRAMMAR}
JSON_SHAPE = Shape("json_code")  # servers: response_format json_object (ai/structured.py)
DOCKER_INSTRUCTIONS = {
    "FROM", "RUN", "CMD", "LABEL", "MAINTAINER", "EXPOSE", "ENV", "ADD", "COPY", "ENTRYPOINT",
    "VOLUME", "USER", "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL", "HEALTHCHECK", "SHELL",
}


def generate(service: ChatService, spec: dict[str, Any], ctx: CallContext | None,
             provider: str | None) -> dict[str, Any]:
    spec = dict(spec)
    language = spec.pop("language", None)
    description = spec.pop("description", None)
    if not isinstance(language, str) or not language:
        raise ConfigError("generate_code.language", "must be a language name, e.g. \"bash\"")
    if not isinstance(description, str) or not description:
        raise ConfigError("generate_code.description", "must say what the code should do")
    parameters = spec.pop("parameters", None) or {}
    if not isinstance(parameters, dict):
        raise ConfigError("generate_code.parameters", "must be a table of name = value")
    max_attempts = spec.pop("max_attempts", 3)
    if not isinstance(max_attempts, int) or max_attempts < 1:
        raise ConfigError("generate_code.max_attempts", "must be a whole number >= 1")
    spec.setdefault("temperature", 0.2)
    lang = ALIASES.get(language.lower(), language.lower())
    checker = CHECKERS.get(lang)
    lines = [f"Write {language} code that does this: {description}"]
    if parameters:
        lines.append("Use these parameters:")
        lines += [f"- {k}: {v}" for k, v in sorted(parameters.items())]
    lines.append("Reply with only the code in a single fenced code block, without explanation.")
    messages = [
        {"role": "system", "content": f"You are an expert {language} programmer and DevOps "
                                      "engineer. You answer with code only."},
        {"role": "user", "content": "\n".join(lines)},
    ]
    code, text, errors, valid = "", "", [], None
    attempts = 0
    for attempts in range(1, max_attempts + 1):  # noqa: B007 (the count is returned)
        result = service.chat({**spec, "messages": messages}, ctx, provider=provider,
                              grammar=GRAMMARS.get(lang), operation="generate_code",
                              shape=JSON_SHAPE if lang == "json" else None)
        text = result["text"]
        code = extract_code(text)
        if checker is None:
            errors, valid = [f"no syntax checker for {language}"], None
            break
        problem = checker(code) if code.strip() else "the answer contained no code"
        if problem is None:
            errors, valid = [], True
            break
        errors, valid = [problem], False
        messages = messages + [
            {"role": "assistant", "content": text},
            {"role": "user", "content": f"That code is not valid {language}: {problem}\n"
                                        "Fix it. Reply with only the corrected code in a single "
                                        "fenced code block."},
        ]
    return {"code": code, "language": language, "valid": valid, "errors": errors,
            "attempts": attempts, "text": text}


def extract_code(text: str) -> str:
    """The code in a model's answer: the first fenced block with something in it (an
    unterminated one runs to the end), else the whole answer less stray fence lines (small
    models often close a fence they never opened, or glue it to the last line)."""
    lines = text.strip("\n").split("\n")
    if len(lines) == 1:
        one = ONE_LINE.match(lines[0])  # ```bash echo hi```
        if one:
            return _drop_language(one.group(2))
    i = _next_fence(lines, 0)
    while i is not None:
        found = FENCE_LINE.match(lines[i])
        assert found is not None
        indent, marker = len(found.group(1)), found.group(2)
        body: list[str] = []
        end: int | None = None
        restart: int | None = None
        for j in range(i + 1, len(lines)):
            fence = FENCE_LINE.match(lines[j])
            if fence and fence.group(2)[0] == marker[0] and len(fence.group(2)) >= len(marker):
                if not fence.group(3):
                    end = j
                    break
                if not any(b.strip() for b in body):  # ```\n```bash: the first one was stray
                    restart = j
                    break
            body.append(_dedent(lines[j], indent))
        if restart is not None:
            i = restart
            continue
        if end is None and body:
            body[-1] = _unglue(body[-1], marker)
        code = "\n".join(body).strip("\n")
        if code.strip():
            return code
        i = _next_fence(lines, (i if end is None else end) + 1)  # empty: look further on
    kept = [line for line in lines if not FENCE_LINE.match(line)]
    if kept:
        kept[-1] = _unglue(kept[-1], "```")
    return "\n".join(kept).strip()


def _next_fence(lines: list[str], start: int) -> int | None:
    return next((i for i in range(start, len(lines)) if FENCE_LINE.match(lines[i])), None)


def _unglue(line: str, marker: str) -> str:
    """`echo hi```` -> `echo hi`: a closing fence glued to the last line of code."""
    stripped = line.rstrip()
    fence = marker[0] * 3
    return stripped[:-3].rstrip() if stripped.endswith(fence) else line


def _dedent(line: str, indent: int) -> str:
    """Remove up to `indent` leading spaces (the opening fence's indentation)."""
    n = 0
    while n < indent and n < len(line) and line[n] == " ":
        n += 1
    return line[n:]


def _drop_language(code: str) -> str:
    first, _, rest = code.partition(" ")
    known = first.lower() in ALIASES or first.lower() in CHECKERS or first.lower() in (
        "go", "rust", "javascript", "js", "typescript", "ts", "ruby", "hcl", "terraform", "sql",
        "powershell", "ps1", "toml", "ini", "make", "makefile", "c", "cpp", "java")
    return rest.strip() if rest and known and LANGUAGE_TAG.fullmatch(first) else code.strip()


def check_bash(code: str) -> str | None:
    try:
        proc = subprocess.run(["bash", "-n"], input=code, capture_output=True, text=True,
                              timeout=10)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"bash -n could not run: {exc}"
    if proc.returncode == 0:
        return None
    return proc.stderr.strip().replace("bash: ", "", 1) or f"bash -n exited {proc.returncode}"


def check_python(code: str) -> str | None:
    import ast

    try:
        ast.parse(code)
    except SyntaxError as exc:
        return f"line {exc.lineno}: {exc.msg}"
    return None


def check_lua(code: str) -> str | None:
    from lupa import lua54

    runtime = lua54.LuaRuntime(register_eval=False, register_builtins=False)
    loaded = runtime.eval("function(src) local f, e = load(src, '=code', 't'); "
                          "if f then return nil end; return e end")(code)
    return None if loaded is None else str(loaded)


def check_json(code: str) -> str | None:
    import json

    try:
        json.loads(code)
    except json.JSONDecodeError as exc:
        return f"line {exc.lineno} column {exc.colno}: {exc.msg}"
    return None


def check_yaml(code: str) -> str | None:
    import yaml

    try:
        yaml.safe_load(code)
    except yaml.YAMLError as exc:
        return str(exc).replace("\n", " ")
    return None


def check_dockerfile(code: str) -> str | None:
    logical: list[tuple[int, str]] = []
    buffer, start = "", 0
    for number, raw in enumerate(code.splitlines(), 1):
        line = raw.strip()
        if not buffer and (not line or line.startswith("#")):
            continue
        if not buffer:
            start = number
        if line.endswith("\\"):
            buffer += line[:-1] + " "
            continue
        logical.append((start, buffer + line))
        buffer = ""
    if buffer:
        logical.append((start, buffer))
    if not logical:
        return "no instructions"
    seen_from = False
    for number, line in logical:
        word = line.split(None, 1)[0].upper()
        if word not in DOCKER_INSTRUCTIONS:
            return f"line {number}: unknown instruction {line.split(None, 1)[0]!r}"
        if word == "FROM":
            seen_from = True
        elif word != "ARG" and not seen_from:
            return f"line {number}: {word} before the first FROM"
    return None


CHECKERS: dict[str, Callable[[str], str | None]] = {
    "bash": check_bash, "python": check_python, "lua": check_lua, "json": check_json,
    "yaml": check_yaml, "dockerfile": check_dockerfile,
}
