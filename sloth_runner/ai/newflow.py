"""`sloth-runner ai new`: a workflow file from a plain-language request, checked before it is shown.

An attempt is: the model fills the workflow spec (newflow_spec.py) -> the spec's checks -> our
code renders the Lua (newflow_render.py) -> `sloth-runner run -f FILE --dry-run` in a child
process (the loader, the DAG checks and the plan, exactly as the user will run it). What fails
is said to the model, which tries again, up to `attempts` times; the last error is reported.

How the model is held to the spec depends on the provider:

- **local** (llama.cpp in-process, e.g. the bundled SmolLM2-135M): decoding follows a grammar,
  in two calls. The *plan* names the steps (workflow, tasks with names and descriptions); a
  repeated step name, which is how a small model loops, is dropped. The *details* are then
  decoded under a grammar made for that plan: names and descriptions are fixed text, and each
  task's `depends_on` may only list earlier tasks, in order, so an unknown dependency, a cycle
  or a duplicate cannot be written. Arguments of module calls, durations and URLs have their
  forms in the grammar too.
- **OpenAI-compatible servers**: one call with the spec's JSON schema as `response_format`
  (ai/structured.py: `json_schema`, strict; else `json_object` with the schema beside it, as
  llama-cpp-python's server takes it; else JSON described in the prompt). Answers are checked
  all the same.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

from sloth_runner.ai import newflow_render, newflow_spec
from sloth_runner.ai.newflow_spec import MAX_TASKS, Arr, Grammar, Obj, Str, _gbnf_literal
from sloth_runner.ai.structured import Shape
from sloth_runner.errors import SlothError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from sloth_runner.ai.client import AIService

OPERATION = "ai_new"
LOCAL_MAX_TASKS = 8
LOCAL_CONTEXT = 4096
PLAN_TOKENS, DETAIL_TOKENS = 700, 1300
REPEAT_PENALTY = 1.2  # llama.cpp's; small models loop without it
SEED = 7

SYSTEM = ("You are a DevOps engineer. You turn requests into sloth-runner workflow specs, "
          "as JSON.")
EXAMPLE_REQUEST = ("build and test the web app, deploy it, check the site; alert the team if "
                   "anything fails")
EXAMPLE: dict[str, Any] = {
    "workflow": "deploy_web", "description": "Build, test and deploy the web app.",
    "tasks": [
        {"name": "build", "description": "Build the app.", "depends_on": [],
         "trigger_rule": "all_success", "run": {"shell": "make build"}, "retries": 0,
         "timeout": "10m"},
        {"name": "test", "description": "Run the unit tests.", "depends_on": ["build"],
         "trigger_rule": "all_success", "run": {"shell": "make test"}, "retries": 1,
         "timeout": "15m"},
        {"name": "deploy", "description": "Deploy the app to production.",
         "depends_on": ["test"], "trigger_rule": "all_success",
         "run": {"shell": "./deploy.sh production"}, "retries": 2, "timeout": "5m"},
        {"name": "check_site", "description": "Check that the site answers.",
         "depends_on": ["deploy"], "trigger_rule": "all_success",
         "run": {"call": "http.get", "url": "https://example.com/health"}, "retries": 3,
         "timeout": "1m"},
        {"name": "alert_team", "description": "Alert the team if a step failed.",
         "depends_on": ["deploy", "check_site"], "trigger_rule": "one_failed",
         "run": {"call": "notifications.send_alert", "message": "deploy_web failed",
                 "severity": "critical"}, "retries": 0, "timeout": ""},
    ]}


class GenerationFailed(SlothError):
    """No attempt gave a workflow that passed every check; says the last problem."""


class Result:
    """A generated workflow that passed every check: its spec, file text and plan (waves)."""

    def __init__(self, spec: dict[str, Any], lua: str, waves: list[list[str]], attempts: int,
                 provider: str, model: str, notes: list[str]) -> None:
        self.spec, self.lua, self.waves, self.attempts = spec, lua, waves, attempts
        self.provider, self.model, self.notes = provider, model, notes

    def as_dict(self) -> dict[str, Any]:
        return {"workflow": self.spec["workflow"], "description": self.spec["description"],
                "tasks": [{"name": t["name"], "depends_on": t["depends_on"],
                           "trigger_rule": t["trigger_rule"], "run": t["run"],
                           "retries": t["retries"], "timeout": t["timeout"] or None}
                          for t in self.spec["tasks"]],
                "waves": self.waves, "attempts": self.attempts, "provider": self.provider,
                "model": self.model, "notes": self.notes}


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def spec_text(spec: dict[str, Any]) -> str:
    """A spec laid out as the grammar lays it out (one task a line): what the model sees in
    examples and is asked to write."""
    tasks = ",\n".join("  " + dumps(t) for t in spec["tasks"])
    return (f'{{"workflow": {dumps(spec["workflow"])}, "description": '
            f'{dumps(spec["description"])}, "tasks": [\n{tasks}\n]}}')


def reference() -> str:
    """What a spec's fields mean, for the prompt (no placeholders: small models copy them)."""
    return (
        "Each task has: name (snake_case, unique), description (one sentence), depends_on "
        "(names of earlier tasks it waits for; [] for none), trigger_rule (\"all_success\": "
        "when they succeeded; \"one_failed\": only when one of them failed, for alerts and "
        "clean-up; \"all_done\": always), run, retries (0 to 5), timeout (such as \"30s\", "
        "\"10m\", \"2h\", or \"\" for none).\n"
        "run is a bash command, {\"shell\": \"make test\"}, or a call of one of these "
        "functions with its arguments, {\"call\": \"http.get\", \"url\": "
        "\"https://example.com/health\"}:\n" + newflow_spec.prompt_reference())


# -- validation of the rendered file ------------------------------------------------------------
def dry_run(lua: str, filename: str, strict: bool = True) -> tuple[list[str], list[list[str]]]:
    """(problems, waves): the file written to a temporary folder as `filename` and run with
    `sloth-runner run --dry-run --sandbox` in a child process (the sandbox, because the
    model's words must not act while the file loads). Problems name `filename`, not the
    temporary folder; with `strict`, warnings count as problems (a generated file should have
    none)."""
    import shutil

    import sloth_runner

    folder = tempfile.mkdtemp(prefix="sloth-ai-new-")
    try:
        path = os.path.join(folder, os.path.basename(filename) or "workflow.lua")
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(lua)
        root = os.path.dirname(os.path.dirname(os.path.abspath(sloth_runner.__file__)))
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
        try:
            proc = subprocess.run([sys.executable, "-m", "sloth_runner", "run", "-f", path,
                                   "--dry-run", "--sandbox", "-o", "json"], cwd=folder,
                                  env=env, capture_output=True, text=True, timeout=120)
        except subprocess.TimeoutExpired:
            return ["loading the file took longer than 120 s"], []
        out = (proc.stdout + "\n" + proc.stderr).replace(path, filename) \
            .replace(folder + os.sep, "")
        try:
            doc = json.loads(proc.stdout)
        except ValueError:
            doc = {}
        problems = [line.removeprefix("warning: ") for line in proc.stderr.splitlines()
                    if strict and line.startswith("warning: ")]
        if proc.returncode != 0 or doc.get("status") != "dry-run":
            error = str(doc.get("error") or out.strip() or f"exit {proc.returncode}")
            return [error.replace(path, filename)] + problems, []
        waves = [w for wf in doc.get("workflows", []) for w in wf.get("waves", [])]
        return [p.replace(path, filename) for p in problems], waves
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# -- the loop -----------------------------------------------------------------------------------
def generate(service: AIService, request: str, *, filename: str, style: str = "modern",
             attempts: int = 3, progress: Callable[[str], None] | None = None) -> Result:
    """A checked workflow for `request`, or GenerationFailed with the last attempt's problems.
    AIError (no answer at all) is not retried here: the service has its own retries. On the
    local provider the service's context is raised to LOCAL_CONTEXT tokens: the prompt with
    its example, eight tasks and a retry's feedback do not fit in the default 2048."""
    say = progress or (lambda text: None)
    settings = service.settings()
    local = settings.provider == "local"
    if local and settings.context_size < LOCAL_CONTEXT:
        service.configure({"context_size": LOCAL_CONTEXT})
        settings = service.settings()
    provider = service.provider(settings)
    model = provider.default_model()
    notes: list[str] = []
    plan: dict[str, Any] | None = None
    feedback: tuple[str, list[str]] | None = None
    problems: list[str] = []
    for attempt in range(1, attempts + 1):
        say(f"attempt {attempt}/{attempts}: asking {settings.provider} model {model}")
        text, spec, problems = "", None, []
        if local and plan is None:
            plan, dropped = _plan(service, request, attempt)
            if dropped:
                notes.append(f"dropped {dropped} repeated step(s) from the model's plan")
            if plan is None:
                problems = [f"the model's plan was cut off at {PLAN_TOKENS} tokens"]
        if not problems:
            text = _details(service, request, plan, feedback, attempt) if plan is not None \
                else _whole(service, request, feedback, attempt)
            spec, problems = newflow_spec.parse(text)
        if spec is not None:
            problems = newflow_spec.problems(spec)
        if spec is not None and not problems:
            lua = newflow_render.render(spec, style, request, model)
            problems, waves = dry_run(lua, filename)
            if not problems:
                return Result(spec, lua, waves, attempt, settings.provider, model, notes)
        say(f"attempt {attempt} failed: {problems[0]}"
            + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""))
        # an answer that is not a whole spec (cut off, not JSON) is not shown again: it would
        # only fill the context; its problem is said without it
        feedback = (text if spec is not None else "", problems) if text else None
    raise GenerationFailed(f"no valid workflow after {attempts} attempt(s); the last one "
                           "failed: " + "; ".join(problems[:5]))


def _fix_messages(feedback: tuple[str, list[str]] | None) -> list[dict[str, str]]:
    """The last answer (when it was a whole spec) and what was wrong with it."""
    if feedback is None:
        return []
    answer, problems = feedback
    listed = "\n".join(f"- {p}" for p in problems[:8])
    if not answer:
        return [{"role": "user", "content": f"Your last answer was not a usable spec:\n{listed}"
                                            "\nReply with the whole JSON spec, nothing else."}]
    return [{"role": "assistant", "content": answer},
            {"role": "user", "content": f"That spec has problems:\n{listed}\nReply with the "
                                        "whole corrected JSON spec, nothing else."}]


def _options(attempt: int, max_tokens: int | None, local: bool) -> dict[str, Any]:
    """Greedy first (the same request gives the same file); later attempts sample a little,
    with a fixed seed, so a repeated mistake is not repeated word for word. Servers get no
    max_tokens: a compatible server refuses a request whose prompt and max_tokens pass its
    context, which we cannot know."""
    options: dict[str, Any] = {"temperature": 0 if attempt == 1 else 0.4}
    if max_tokens is not None:
        options["max_tokens"] = max_tokens
    if attempt > 1:
        options["seed"] = SEED + attempt
    if local:
        options["repeat_penalty"] = REPEAT_PENALTY
    return options


def _call(service: AIService, messages: list[dict[str, str]], options: dict[str, Any],
          grammar: str | None = None, shape: Shape | None = None) -> str:
    from sloth_runner.ai.types import AIRequest

    request = AIRequest(messages, options=options, grammar=grammar)
    request.shape = shape
    return service.call(request, None, OPERATION).text


# -- local: plan, then details under a grammar made for the plan ----------------------------
def plan_node() -> Obj:
    words = r'[^"\\\x7F\x00-\x1F]{1,100}'
    step = Obj([("name", newflow_spec.NAME), ("description", Str(100, chars=words))],
               open_="  {")
    return Obj([("workflow", newflow_spec.NAME), ("description", Str(120, chars=words)),
                ("tasks", Arr(step, 1, LOCAL_MAX_TASKS, sep=",\n", open_="[\n",
                              close="\n]"))])


def _plan(service: AIService, request: str, attempt: int
          ) -> tuple[dict[str, Any] | None, int]:
    """The steps (None: the answer was cut off), and how many repeated ones were dropped."""
    g = Grammar()
    grammar = g.text(plan_node().gbnf(g, "plan"))

    def ask(what: str) -> str:
        return (f"Plan a workflow for this request: {what}\n\nList its steps in the order they "
                "run, each with a short snake_case name and a one-sentence description. Reply "
                "in JSON.")

    example = {"workflow": EXAMPLE["workflow"], "description": EXAMPLE["description"],
               "tasks": [{"name": t["name"], "description": t["description"]}
                         for t in EXAMPLE["tasks"]]}
    messages = [{"role": "system", "content": SYSTEM},
                {"role": "user", "content": ask(EXAMPLE_REQUEST)},
                {"role": "assistant", "content": spec_text(example)},
                {"role": "user", "content": ask(request)}]
    text = _call(service, messages, _options(attempt, PLAN_TOKENS, True), grammar)
    try:
        plan = json.loads(text)  # the grammar's shape, unless cut off at max_tokens
    except ValueError:
        return None, 0
    return unique_steps(plan)


def unique_steps(plan: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """The plan without steps whose name an earlier step has (a small model that loops
    writes the same step again and again), and how many were dropped."""
    seen: set[str] = set()
    steps = []
    for step in plan["tasks"]:
        if step["name"] not in seen:
            seen.add(step["name"])
            steps.append(step)
    return {**plan, "tasks": steps}, len(plan["tasks"]) - len(steps)


def detail_grammar(plan: dict[str, Any]) -> str:
    """The spec's grammar for this plan: its names and descriptions as fixed text, and
    dependencies limited to earlier tasks, each at most once, in the plan's order (so no
    unknown name, no cycle, no repeat); a task without dependencies runs `all_success`."""
    g = Grammar()
    field = dict(newflow_spec.task_node().fields)
    run = field["run"].gbnf(g, "run")
    retries = field["retries"].gbnf(g, "retries")
    timeout = field["timeout"].gbnf(g, "timeout")
    rule = field["trigger_rule"].gbnf(g, "trigger-rule")
    names = [s["name"] for s in plan["tasks"]]
    literal = [_gbnf_literal(dumps(n)) for n in names]
    alone = _gbnf_literal('[], "trigger_rule": "all_success"')
    items = []
    for i, step in enumerate(plan["tasks"]):
        deps = alone
        if i > 0:
            for j in range(i - 1, -1, -1):  # pick-i-j: name j, then later ones (< i)
                later = " | ".join(f"p{i}-{k}" for k in range(j + 1, i))
                body = literal[j] + (f' (", " ({later}))?' if later else "")
                g.rules[f"p{i}-{j}"] = body
            first = " | ".join(f"p{i}-{j}" for j in range(i))
            deps = (f'({alone} | "[" ({first}) "], \\"trigger_rule\\": " {rule})')
        head = _gbnf_literal(f'  {{"name": {dumps(step["name"])}, "description": '
                             f'{dumps(step["description"])}, "depends_on": ')
        items.append(g.rule(f"task{i}", f'{head} {deps} ", \\"run\\": " {run} '
                                        f'", \\"retries\\": " {retries} '
                                        f'", \\"timeout\\": " {timeout} "}}"'))
    top = _gbnf_literal(f'{{"workflow": {dumps(plan["workflow"])}, "description": '
                        f'{dumps(plan["description"])}, "tasks": [\n')
    sep = ' ",\\n" '
    root = f'{top} {sep.join(items)} "\\n]}}"'
    return g.text(g.rule("spec", root))


def _details(service: AIService, request: str, plan: dict[str, Any],
             feedback: tuple[str, list[str]] | None, attempt: int) -> str:
    def ask(what: str, steps: list[dict[str, Any]]) -> str:
        listed = "\n".join(f"- {s['name']}: {s['description']}" for s in steps)
        return (f"Request: {what}\nSteps:\n{listed}\n\nWrite the workflow spec as JSON: "
                "for each step, its depends_on, trigger_rule, run, retries and timeout.")

    messages = [{"role": "system", "content": SYSTEM + "\n" + reference()},
                {"role": "user", "content": ask(EXAMPLE_REQUEST, EXAMPLE["tasks"])},
                {"role": "assistant", "content": spec_text(EXAMPLE)},
                {"role": "user", "content": ask(request, plan["tasks"])}]
    messages += _fix_messages(feedback)
    return _call(service, messages, _options(attempt, DETAIL_TOKENS, True),
                 detail_grammar(plan))


# -- OpenAI-compatible servers: the whole spec, under response_format where it is taken ------
def shape() -> Shape:
    """The spec's schema, for the server's response_format (ai/structured.py): strict for
    json_schema, with bounded strings for llama-cpp-python's json_object grammar."""
    return Shape("workflow_spec", newflow_spec.json_schema(), newflow_spec.json_schema(True))


def _whole(service: AIService, request: str, feedback: tuple[str, list[str]] | None,
           attempt: int) -> str:
    ask = (f"Request: {request}\n\nWrite a workflow spec for it as JSON: workflow (a "
           f"snake_case name), description (one sentence), tasks (1 to {MAX_TASKS}, in the "
           f"order they run). " + reference() + "\n\nExample, for the request "
           f"\"{EXAMPLE_REQUEST}\":\n{spec_text(EXAMPLE)}\n\nReply with the JSON only.")
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": ask}]
    messages += _fix_messages(feedback)
    return _call(service, messages, _options(attempt, None, False), shape=shape())
