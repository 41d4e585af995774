"""`require("ai")`: the Lua face of the run's AI service (sloth_runner.ai.AIService, reached
through an AIGateway, directly or from a worker process).

The Lua table is built when the runtime starts (a few Lua functions, no AI imports): building it
inside `require` would mean Python creating Lua objects while a task coroutine runs, which lupa
gets wrong. The AIService, and everything heavy behind it, is created on the first call.

complete/chat/generate_code are blocking ops: inside a task they yield to the scheduler, so
several tasks can wait on the model at once. `ai.openai.*` is the same as `ai.*` (it uses the
resolved provider, which is the bundled local model when nothing is configured); `ai["local"].*`
forces the local provider (`ai.local` is a Lua syntax error: `local` is a keyword).

`ai.record_outcome(decision, correct)` stores whether a decision was right, for the calibration
of its model's confidence (sloth_runner.ai.calibration). It writes through this process's own
database connection, the one `state` uses, so it works alike in the main process and in workers
and never loads the AI stack.
"""

from __future__ import annotations

from sloth_runner.engine.model import Blocking
from sloth_runner.lua.convert import lua_type, to_python, type_name
from sloth_runner.lua.runtime import BlockingOp, LuaRuntime

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from sloth_runner.engine.model import TaskContext
    from sloth_runner.lua.services import Services


class AIGateway:
    """The run's AI service as the Lua module sees it. `call(method, args, on_token)` reaches
    the one AIService of the run (calls.py): directly in the main process, over the socket
    from a worker. So a run has one scrubber, one budget, one rate limiter, one loaded model."""

    def __init__(self, call: Callable[[str, dict[str, Any], Any], Any]) -> None:
        self._call = call

    @staticmethod
    def _where(ctx: TaskContext | None) -> dict[str, Any]:
        return {"workflow": ctx.workflow, "task": ctx.task, "deadline": ctx.deadline,
                "attempt": ctx.attempt} if ctx else {}

    def request(self, kind: str, spec: Any, ctx: TaskContext | None = None,
                on_token: Any = None, provider: str | None = None) -> Any:
        """complete, chat, decide or generate_code, as AIService.request."""
        return self._call(kind, {"spec": spec, "provider": provider, **self._where(ctx)},
                          on_token if kind in ("complete", "chat") else None)

    def configure(self, values: dict[str, Any]) -> None:
        self._call("configure", {"values": values}, None)

    def sanitize(self, text: str, options: dict[str, Any]) -> Any:
        return self._call("sanitize", {"text": text, "options": options}, None)

    def restore(self, text: str) -> str:
        return str(self._call("restore", {"text": text}, None))

    def usage_stats(self) -> Any:
        return self._call("usage_stats", {}, None)

    def analyze_patterns(self, spec: dict[str, Any]) -> Any:
        return self._call("analyze_patterns", {"spec": spec}, None)

    def predict_failure(self, task: str, options: dict[str, Any]) -> Any:
        return self._call("predict_failure", {"task": task, "options": options}, None)


def build_ai_module(rt: LuaRuntime, get_service: Callable[[], AIGateway],
                    services: Services) -> Any:
    def op(kind: str, provider: str | None) -> BlockingOp:
        def prepare(ctx: TaskContext | None, spec: Any = None) -> Any:
            on_token = None
            if lua_type(spec) == "table":
                on_token = spec["on_token"]
                if on_token is not None and lua_type(on_token) != "function":
                    raise TypeError("on_token must be a function")
            value = to_python(spec)
            if isinstance(value, dict):
                value.pop("on_token", None)
            if kind != "complete" and not isinstance(value, dict):
                raise TypeError(f"ai.{kind} expects a table of options")
            call = ctx  # who calls, and by when it must be done
            streaming = on_token is not None or (isinstance(value, dict) and value.get("stream"))
            workflow, task = (ctx.workflow, ctx.task) if ctx else (None, None)

            def run(emit: Callable[[str], None] | None = None) -> Any:
                return get_service().request(kind, value, call, emit, provider)

            if not streaming or kind in ("generate_code", "decide"):
                return lambda: run(None)

            def progress(token: str | None) -> None:  # on the Lua thread, while the call runs
                services.listener.stream(workflow, task, token)
                if token is not None and on_token is not None:
                    rt.call_plain(on_token, token)

            def run_streaming(emit: Callable[[str | None], None]) -> Any:
                try:
                    return run(emit)
                finally:
                    emit(None)  # end of stream: the reporter ends the line

            return Blocking(run_streaming, progress)

        def finish(ctx: TaskContext | None, result: dict[str, Any]) -> Any:
            return rt.table(result)

        return BlockingOp(prepare, finish)

    def configure(options: Any) -> bool:
        value = to_python(options)
        if not isinstance(value, dict):
            raise TypeError("ai.configure expects a table of settings")
        get_service().configure(value)
        return True

    def sanitize_data(text: Any, options: Any = None) -> tuple:
        """(scrubbed text, findings {type, start, finish}): positions 1-based and inclusive,
        like string.sub; the secrets themselves are never returned."""
        if not isinstance(text, str):
            got = type_name(text)
            raise TypeError(f"ai.sanitize_data expects a string, got {got}")
        opts = to_python(options) if options is not None else {}
        if not isinstance(opts, dict):
            raise TypeError("ai.sanitize_data options must be a table")
        unknown = set(opts) - {"remove_patterns", "detectors", "allow", "replacement"}
        if unknown:
            raise ValueError(f"ai.sanitize_data: unknown option '{sorted(unknown)[0]}' (options: "
                             "remove_patterns, detectors, allow, replacement)")
        clean, findings = get_service().sanitize(text, opts)
        return (clean, rt.table(findings))

    def restore(text: Any) -> str:
        if not isinstance(text, str):
            raise TypeError("ai.restore expects a string")
        return get_service().restore(text)

    def usage_stats() -> Any:
        return rt.table(get_service().usage_stats())

    def analyze_patterns(spec: Any = None) -> Any:
        value = to_python(spec) if spec is not None else {}
        if not isinstance(value, dict):
            raise TypeError("ai.analyze_patterns expects a table of options")
        return rt.table(get_service().analyze_patterns(value))

    def predict_failure(task: Any, options: Any = None) -> Any:
        if not isinstance(task, str):
            raise TypeError(f"ai.predict_failure expects a task name, got {type_name(task)}")
        opts = to_python(options) if options is not None else {}
        if not isinstance(opts, dict):
            raise TypeError("ai.predict_failure options must be a table: {workflow, host, "
                            "params}")
        opts.setdefault("params", services.params)  # in a run: this run's parameters
        return rt.table(get_service().predict_failure(task, opts))

    def parse_recommendations(text: Any, options: Any = None) -> Any:
        from sloth_runner.ai.recommendations import parse_recommendations as parse

        if not isinstance(text, str):
            raise TypeError("ai.parse_recommendations expects the model's text (a string)")
        opts = to_python(options) if options is not None else {}
        resources = opts.get("resources", []) if isinstance(opts, dict) else None
        if not isinstance(resources, list) or not all(isinstance(r, str) for r in resources):
            raise TypeError("ai.parse_recommendations options: {resources = {\"orders-db\", ...}}")
        return rt.table(parse(text, resources))

    def record_outcome(decision: Any, correct: Any = None) -> Any:
        from sloth_runner.ai.calibration import record_outcome as record

        if lua_type(decision) != "table":
            raise TypeError(f"ai.record_outcome expects the table ai.decide returned, got "
                            f"{type_name(decision)}")
        return rt.table(record(services.state().store, to_python(decision), correct))

    def calls(provider: str | None, names: tuple[str, ...]) -> dict[str, Any]:
        suffix = provider or "default"
        return {name: rt.blocking(f"ai.{name}.{suffix}", op(name, provider)) for name in names}

    everything = ("complete", "chat", "generate_code", "decide")
    members: dict[str, Any] = calls(None, everything)
    members["openai"] = rt.lua.table_from(members)
    members["local"] = rt.lua.table_from(calls("local", everything))
    members["configure"] = rt.wrap(configure)
    members["sanitize_data"] = rt.wrap(sanitize_data)
    members["restore"] = rt.wrap(restore)
    members["get_usage_stats"] = rt.wrap(usage_stats)
    members["analyze_patterns"] = rt.wrap(analyze_patterns)
    members["predict_failure"] = rt.wrap(predict_failure)
    members["parse_recommendations"] = rt.wrap(parse_recommendations)
    members["record_outcome"] = rt.wrap(record_outcome)
    return rt.install("ai", members)
