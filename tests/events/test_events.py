"""The pieces of events and hooks in-process: type matching, the store, the Lua port, hook
file declarations, the run's listener. Real SQLite and real Lua; no dispatcher is started."""

from __future__ import annotations

import json
import time

import pytest

from sloth_runner.engine.model import AttemptRecord, TaskResult, Workflow, WorkflowResult
from sloth_runner.errors import DefinitionError, LuaScriptError
from sloth_runner.events import TypeMatcher, run_listener
from sloth_runner.events import recorder as recorder_module
from sloth_runner.events.hooks import (
    HookHost,
    HookOutput,
    full_paths,
    load_hook,
    run_hook,
    subscriptions,
)
from sloth_runner.events.recorder import RunEvents
from sloth_runner.lua.events_module import EventPort, is_event_type
from sloth_runner.store import Store
from sloth_runner.store import events as store_events


@pytest.fixture
def no_dispatcher(monkeypatch):
    started: list[str] = []
    monkeypatch.setattr(recorder_module, "start_dispatcher",
                        lambda run_id, stack, reap: started.append(run_id))
    return started


def test_type_matcher():
    m = TypeMatcher(["task.failed", "deploy.*"])
    assert m("task.failed") and m("deploy.done") and m("deploy.x.y")
    assert not m("task.succeeded") and not m("deployed") and not m("workflow.failed")
    assert TypeMatcher(["*"])("anything.at.all")
    assert not TypeMatcher([])("task.failed")


def test_event_type_names():
    for good in ("task.failed", "deploy", "a-b_c:d.e", "_x", "x" * 100):
        assert is_event_type(good), good
    for bad in ("", ".x", "-x", "has space", "x" * 101, "naïve", None, 3, "a/b"):
        assert not is_event_type(bad), bad


def test_hooks_in_the_store():
    store = Store()
    assert store_events.add_hook(store, "a", "/h/a.lua", ["task.failed"], None, "", 30, False)
    assert not store_events.add_hook(store, "a", "/h/b.lua", ["x"], None, "", 30, False)
    assert store_events.add_hook(store, "a", "/h/b.lua", ["x", "y"], "prod", "d", 5, True)
    assert store_events.get_hook(store, "a") | {"added_at": 0} == {
        "name": "a", "file": "/h/b.lua", "event_types": ["x", "y"], "stack": "prod",
        "description": "d", "timeout_s": 5, "enabled": True, "added_at": 0}
    assert [h["name"] for h in store_events.applicable_hooks(store, "prod")] == ["a"]
    assert store_events.applicable_hooks(store, None) == []
    assert store_events.applicable_hooks(store, "dev") == []
    row = store_events.hook_run_started(store, "a", {"id": 7, "type": "x", "run_id": "r"}, 1.0)
    [listed] = store_events.list_hooks(store)
    assert listed["runs"] == 1 and listed["last_status"] == "running"
    store_events.hook_run_finished(store, row, "error", 0.5, "boom", "x" * 70000)
    [run] = store_events.hook_history(store, "a")
    assert (run["status"], run["error"], run["event_id"], run["run_id"]) == ("error", "boom", 7,
                                                                             "r")
    assert len(run["output"]) == store_events.OUTPUT_CAP + 1  # its tail, marked
    assert store_events.remove_hook(store, "a") and not store_events.remove_hook(store, "a")
    assert store_events.hook_history(store, "a") != []


def test_events_in_the_store():
    store = Store()
    store_events.insert_events(store, [
        ("task.failed", 1.0, "run1abc", "wf", "t", None, "run", json.dumps({"e": 1})),
        ("deploy.done", 2.0, "run1abc", None, None, "prod", "lua", "{}"),
        ("echo.x", 3.0, "run1abc", None, None, None, "hook:h", "{}"),
        ("task_failed", 4.0, "run2", "wf", "t", None, "run", "{}"),
    ])
    assert [e["type"] for e in store_events.list_events(store)] == [
        "task_failed", "echo.x", "deploy.done", "task.failed"]
    assert [e["type"] for e in store_events.list_events(store, ["task.*"])] == ["task.failed"]
    assert [e["type"] for e in store_events.list_events(store, ["task_*"])] == ["task_failed"]
    assert [e["id"] for e in store_events.list_events(store, run_id="run1", limit=2)] == [3, 2]
    assert [e["type"] for e in store_events.events_after(store, "run1abc", 0)] == [
        "task.failed", "deploy.done"]  # not what a hook dispatched
    assert store_events.events_after(store, "run1abc", 2) == []
    row = store_events.hook_run_started(store, "h", {"id": 1, "type": "task.failed"}, 1.0)
    store_events.hook_run_finished(store, row, "success", 0.1, None, "out")
    event = store_events.get_event(store, 1)
    assert event["data"] == {"e": 1} and [r["hook"] for r in event["hook_runs"]] == ["h"]
    assert store_events.list_events(store, ["task.failed"])[0]["hooks"] == {"success": 1}
    assert store_events.get_event(store, 99) is None


class Sink:
    def __init__(self):
        self.got = []

    def dispatch(self, kind, data, workflow, task, scrubber, at=None):
        self.got.append((kind, data, workflow, task, at is not None))


def test_event_port_keeps_events_until_a_sink_is_attached():
    port = EventPort()
    port.send("top.level", {"a": 1}, None, None, lambda: None)
    sink = Sink()
    port.attach(sink)
    port.send("in.task", {}, "wf", "t", lambda: None)
    assert sink.got == [("top.level", {"a": 1}, None, None, True), ("in.task", {}, "wf", "t",
                                                                       False)]
    closed = EventPort()
    closed.send("x", {}, None, None, lambda: None)
    closed.attach(None)  # nothing listens: drop, and keep nothing from now on
    closed.send("y", {}, None, None, lambda: None)
    assert closed.pending == [] and closed.sink is None


def declare(workflow_file, source: str, name: str = "hook.lua"):
    path = workflow_file(source, name)
    return path, load_hook(path, HookHost(Store()).services(HookOutput(), None, None))[0]


def test_a_hook_declaration(workflow_file):
    path, spec = declare(workflow_file, '''
        return {
            name = "n", event_types = {"task.failed", "task.*", "task.failed"}, stack = "prod",
            timeout = "1m30s", description = "d", execute = function(event) end,
        }''')
    assert (spec.name, spec.event_types, spec.stack, spec.timeout_s, spec.description) == (
        "n", ["task.failed", "task.*"], "prod", 90.0, "d")
    _, spec = declare(workflow_file, 'return {name = "m", event_type = "*", '
                                     'execute = function() end}')
    assert spec.event_types == ["*"] and spec.timeout_s == 30 and spec.stack is None


def test_declaration_errors_name_the_file_and_line(workflow_file):
    with pytest.raises(LuaScriptError, match=r"hook\.lua:2: .*'}' expected"):
        declare(workflow_file, 'return {\n  name = "x" execute = 1\n}')
    with pytest.raises(DefinitionError, match=r"hook\.lua:3: hook 'x' needs execute"):
        declare(workflow_file, '-- header\nlocal t = {name = "x", event_type = "y"}\nreturn t\n')
    with pytest.raises(DefinitionError, match="event_types must be a list"):
        declare(workflow_file, 'return {name = "x", event_types = "y", execute = print}')
    with pytest.raises(DefinitionError, match="'x.\\*y' is not an event type"):
        declare(workflow_file, 'return {name = "x", event_type = "x.*y", execute = print}')
    with pytest.raises(DefinitionError, match="stack must be a stack name"):
        declare(workflow_file, 'return {name = "x", event_type = "y", stack = "", '
                               'execute = print}')
    with pytest.raises(DefinitionError, match="timeout must be longer than 0"):
        declare(workflow_file, 'return {name = "x", event_type = "y", timeout = 0, '
                               'execute = print}')


def test_a_go_style_file_declares_nothing_and_enabled_is_read(workflow_file):
    _, spec = declare(workflow_file, 'function on_event() return true end')
    assert spec.on_event and spec.name is None and spec.event_types == []
    _, spec = declare(workflow_file, 'return {name = "e", event_type = "x", enabled = false, '
                                     'execute = print}')
    assert spec.enabled is False and not spec.on_event
    _, spec = declare(workflow_file, 'return {name = "e", event_type = "x", execute = print}')
    assert spec.enabled is None  # not said: the store decides (enabled, or as it was)
    with pytest.raises(DefinitionError, match="return a table like .*, or define function "
                                              "on_event"):
        declare(workflow_file, 'local on_event = function() end')  # not a global


def test_go_event_names_and_types_that_never_fire():
    types, notes, warnings = subscriptions([
        "task.completed", "task.succeeded", "task.timeout", "task.retrying", "task.cancelled",
        "workflow.cancelled", "agent.*", "system.error", "workflow.paused", "task.nothing",
        "deploy.done", "task.*", "agent", "*"])
    assert types == ["task.succeeded", "task.timed_out", "task.retried", "task.failed",
                     "workflow.failed", "agent.*", "system.error", "workflow.paused",
                     "task.nothing", "deploy.done", "task.*", "agent", "*"]
    assert len(notes) == 5 and all("the Go sloth-runner's name" in n for n in notes)
    assert [w.split("'")[1] for w in warnings] == ["agent.*", "system.error", "workflow.paused",
                                                   "task.nothing"]
    assert "there are no agents yet" in warnings[0] and "never fires" in warnings[0]


def test_on_event_runs_with_the_global_event(workflow_file):
    path = workflow_file('''
        function on_event(given)
            if event.data.veto then return false end
            print(event.type, event.task.task_name, event.agent.name, event.timestamp,
                  given == event, type(event.dispatch))
        end''', "go.lua")
    hook = {"name": "go", "file": path, "timeout_s": 5}
    event = {"id": 1, "type": "task.succeeded", "at": 1700000000.75, "run_id": None,
             "workflow": None, "task": "t", "stack": None, "source": "test",
             "data": {"task": {"task_name": "build"}, "agent": {"name": "a1"}}}
    result = run_hook(HookHost(Store()), hook, event, time.monotonic() + 5)
    assert result.status == "success", result.error  # nil is success, as in the Go project
    assert result.output == "task.succeeded build a1 1700000000 true function"
    event["data"] = {"veto": True}
    result = run_hook(HookHost(Store()), hook, event, time.monotonic() + 5)
    assert (result.status, result.error) == ("failed", "on_event returned false")


def test_long_paths_are_given_back_whole():
    path = "/very/long/" + "d" * 80 + "/hook.lua"
    assert full_paths('...' + path[-40:] + ':3: boom', path) == f"{path}:3: boom"
    assert full_paths("plain: boom", path) == "plain: boom"


def test_run_hook_gives_execute_the_event_and_captures_output(workflow_file):
    path = workflow_file('''
        return {
            name = "h", event_type = "deploy.done",
            execute = function(event)
                print(event.type, event.run_id, event.data.service, event.workflow)
                log.warn("careful: password=hunter2supersecret")
                return true
            end,
        }''', "h.lua")
    store = Store()
    hook = {"name": "h", "file": path, "timeout_s": 5}
    event = {"id": 3, "type": "deploy.done", "at": time.time(), "run_id": "r1",
             "workflow": "wf", "task": None, "stack": None, "source": "lua",
             "data": {"service": "api"}}
    result = run_hook(HookHost(store), hook, event, time.monotonic() + 5)
    assert result.status == "success", result.error
    assert result.output.splitlines()[0] == "deploy.done r1 api wf"
    assert "hunter2supersecret" not in result.output and "[REDACTED:" in result.output

    renamed = dict(hook, name="other")
    result = run_hook(HookHost(store), renamed, event, time.monotonic() + 5)
    assert result.status == "error" and "now declares hook 'h', not 'other'" in result.error
    gone = dict(hook, file=path + ".gone")
    result = run_hook(HookHost(store), gone, event, time.monotonic() + 5)
    assert result.status == "error" and "no such hook file" in result.error


def engine_events(listener):
    """The calls a scheduler makes for a small run: one success, one retried failure."""
    wf = Workflow("wf", ())
    listener.workflow_started(wf)
    listener.task_started("wf", "a", 1)
    listener.attempt_finished(AttemptRecord("wf", "a", 1, "success", 1.0, 2.0, exit_code=0))
    listener.task_finished("wf", TaskResult("a", "success", 1, 1.0))
    listener.task_started("wf", "b", 1)
    listener.attempt_finished(AttemptRecord("wf", "b", 1, "failed", 1.0, 2.0, error="no",
                                            final=False))
    listener.task_started("wf", "b", 2)
    listener.attempt_finished(AttemptRecord("wf", "b", 2, "failed", 2.0, 3.0, error="no",
                                            exit_code=3))
    listener.task_finished("wf", TaskResult("b", "failed", 2, 2.0, error="no"))
    listener.idle()
    listener.workflow_finished(WorkflowResult("wf", "failed", [TaskResult("a", "success"),
                                                               TaskResult("b", "failed")]))


def test_the_run_listener_records_what_hooks_subscribe_to(no_dispatcher):
    store = Store()
    everything = RunEvents(store, "r1", None, [json.dumps(["*"])], lambda text: text)
    engine_events(everything)
    rows = store_events.events_after(store, "r1", 0)
    assert [(e["type"], e["task"]) for e in rows] == [
        ("workflow.started", None), ("task.started", "a"), ("task.succeeded", "a"),
        ("task.started", "b"), ("task.retried", "b"), ("task.failed", "b"),
        ("workflow.failed", None)]
    assert rows[2]["data"]["exit_code"] == 0 and rows[5]["data"]["exit_code"] == 3
    assert rows[4]["data"]["attempt"] == 1 and rows[4]["data"]["error"] == "no"
    assert rows[6]["data"]["failed_tasks"] == ["b"]
    assert no_dispatcher == ["r1"]  # started once, before the first write

    some = RunEvents(store, "r2", "prod", [json.dumps(["task.failed"]),
                                           json.dumps(["workflow.completed"])],
                     lambda text: text.replace("secret", "***"))
    engine_events(some)
    some.dispatch("task.failed", {"why": "a secret"}, "wf", "c", lambda: None)
    some.dispatch("not.wanted", {}, None, None, lambda: None)
    some.flush()
    rows = store_events.events_after(store, "r2", 0)
    assert [(e["type"], e["task"], e["stack"], e["source"]) for e in rows] == [
        ("task.failed", "b", "prod", "run"), ("task.failed", "c", "prod", "lua")]
    assert rows[1]["data"] == {"why": "a ***"}


def test_run_listener_costs_a_run_without_hooks_one_query(workflow_file, load, no_dispatcher):
    run, _ = load(workflow_file('event.dispatch("top", {}) task("a"):command("true"):build()'))
    assert run_listener(run) is None
    port = run._services.event_port
    assert port.closed and port.pending == []

    store_events.add_hook(run.store, "h", "/h.lua", ["top"], "prod", "", 30, False)
    assert run_listener(run) is None  # it names another stack
    run2, _ = load(workflow_file('event.dispatch("top", {n = 1}) task("a"):command("true")'
                                 ':build()'), stack="prod")
    listener = run_listener(run2)
    assert isinstance(listener, RunEvents) and listener.stack == "prod"
    listener.flush()  # the top-level event, kept until the listener came
    [event] = store_events.events_after(run2.store, run2.run_id, 0)
    assert (event["type"], event["data"], event["source"]) == ("top", {"n": 1}, "lua")
