"""One run of a workflow file, built in one place: the composition root.

`Run` owns what a run needs: its id, the store (opened on first use), the spool folder, the
scrubber, the AI service, the listener (reporter), the zygote and its worker processes, and the
sandbox grants. The CLI (`run`, `list`), the Python API and the tests all build runs this way;
services receive what they need when they are made, and nothing is patched in afterwards.

Process model (docs/ARCHITECTURE.md): the file is loaded here, and a task runs in this
process's Lua state unless it has a deadline or a memory limit. Such a task runs in a worker
process forked from the loaded file, because only a process can be stopped in the middle of a
long C call; calls that the whole run shares (AI) come back here (calls.py).
"""

from __future__ import annotations

import os
import signal
import sys
import threading

from sloth_runner import paths
from sloth_runner.engine import dag
from sloth_runner.engine.events import Broadcast, Listener, Redacting, map_strings
from sloth_runner.engine.model import Task, Workflow
from sloth_runner.engine.refused import Refused
from sloth_runner.errors import DependencyError, LoadError, LuaScriptError, UsageError
from sloth_runner.grants import KINDS, Grants
from sloth_runner.reporting.output_guard import OutputGuard
from sloth_runner.store.runs import new_run_id

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from sloth_runner.ai.client import AIService
    from sloth_runner.engine.runner import RunResult
    from sloth_runner.engine.scheduler import Scheduler
    from sloth_runner.isolation.pool import WorkerPool
    from sloth_runner.store import Store


_GUARDING: Run | None = None  # the run that owns this process's signal handlers
_REMEMBER_FROM = 1024  # characters: shorter texts are scrubbed again, it costs less than a lookup
# description field -> Task attribute, for the actions and for the fields taken as they are
_ACTIONS = {"command": "action", "run_if": "run_if", "abort_if": "abort_if",
            "on_success": "on_success", "on_failure": "on_failure", "pre_hook": "pre_hook",
            "post_hook": "post_hook", "on_timeout": "on_timeout"}
_ATTEMPT = frozenset(("command", "pre_hook", "post_hook"))  # one attempt, wherever it runs
_PLAIN_FIELDS = frozenset(("description", "timeout", "retries", "backoff", "retry_delay", "env",
                           "trigger_rule", "user"))


class Run:
    """A workflow file on its way to a result. Use as a context manager, or call close()."""

    def __init__(self, path: str, *, params: dict[str, Any] | None = None,
                 listener: Listener | None = None, sandbox: bool = False,
                 grants: tuple[str, ...] | frozenset[str] = (), debug: bool = False,
                 force: bool = False, process_ends: bool = False,
                 values: dict[str, Any] | None = None, stack: str | None = None,
                 delegate_to: str | None = None, gate: Any = None, heal: bool = True,
                 on_agent: bool = False, executor: str = "local") -> None:
        unknown = set(grants) - set(KINDS)
        if unknown:
            raise UsageError(f"--allow: unknown grant '{sorted(unknown)[0]}' (grants: "
                             f"{', '.join(KINDS)})")
        self.path = path
        # --values files become the Lua global `values`, and are params too (params win)
        self.values = values
        self.params = {**(values or {}), **(params or {})}
        self.stack = stack  # Go's stack name: recorded in history, shown by `history`
        self.delegate_to = delegate_to  # --delegate-to: every task goes to that agent
        self.gate = gate  # --interactive: asked before each task (run, skip, abort)
        self.heal = heal  # --no-heal: tasks' :heal{} actions never run
        # on an agent: a delegated task runs here, in the attempt's own process, which the
        # agent kills at the deadline (no worker processes, no delegation)
        self.on_agent = on_agent
        self.executor = executor  # "celery": tasks without an agent go to the pool queue
        self.ai_usage: Callable[[], Any] | None = None  # an agent's: calls go to the controller
        self._healer: Any = None
        self.listener: Listener = OutputGuard(listener, self._output_closed) if listener \
            else Listener()
        self.sandbox = sandbox
        self.grants = Grants(sandbox, tuple(grants))
        self.debug = debug
        self.force = force
        # The CLI's process ends with the run: then close() leaves the database to the OS.
        # Closing the last connection checkpoints the WAL (~0.7 ms of I/O a run); the next
        # sloth-runner to open it does that anyway, and nothing committed depends on it.
        self.process_ends = process_ends
        self.run_id = new_run_id()
        self.spool = paths.spool_dir(self.run_id)  # made by the first output that needs it
        self.workflows: list[Workflow] = []
        self.warnings: list[str] = []
        self._store: Store | None = None
        self._scrubber: Any = None
        self._ai: AIService | None = None
        self._pool: WorkerPool | None = None
        self._isolated: set[int] = set()  # id() of the tasks whose actions run in workers
        self._make_workdirs: list[str] = []  # config.create_workdir_before_run
        self._loaded: Any = None
        self._controller: Any = None
        self._services: Any = None
        self._recorder: Any = None
        self._tracer: Any = None  # OTEL_EXPORTER_OTLP_ENDPOINT: the run as a trace (tracing/)
        self._handlers: dict[str, Callable[..., Any]] | None = None
        self._scrubbed: dict[str, str] = {}  # long texts already scrubbed (see scrub)
        self._guarded: dict[int, Any] = {}
        self._watchdog: Any = None
        self._events: Listener = self._redacting(self.listener)
        self._scheduler: Scheduler | None = None
        self.interrupted: str | None = None

    # -- parts, made on first use ---------------------------------------------------------------
    @property
    def handlers(self) -> dict[str, Callable[..., Any]]:
        """What Lua code may ask of the run (the AI service), by service name."""
        if self._handlers is None:
            from sloth_runner.calls import handlers_for

            self._handlers = handlers_for(self)
        return self._handlers

    @property
    def store(self) -> Store:
        if self._store is None:
            from sloth_runner.store import Store

            self._store = Store()
        return self._store

    @property
    def scrubber(self) -> Any:
        """One per run: log lines, results, history and AI prompts share placeholders."""
        if self._scrubber is None:
            from sloth_runner.scrub import Scrubber
            from sloth_runner.scrub.environment import secret_values

            self._scrubber = Scrubber(known=secret_values(os.environ) + secret_values(
                {k: v for k, v in self.params.items() if isinstance(v, str)}))  # --param password=…
        return self._scrubber

    @property
    def ai(self) -> AIService:
        if self._ai is None:
            from sloth_runner.ai.client import AIService
            from sloth_runner.store.ai_usage import AIUsageStore

            self._ai = AIService(usage=self.ai_usage or (lambda: AIUsageStore(self.store)),
                                 notice=lambda text: self._events.log("warn", text, None, None),
                                 scrubber=self.scrubber, run_id=self.run_id)
            if self._tracer is not None:  # its calls become spans
                self._ai.observers.append(self._tracer.ai_call)
        return self._ai

    def _redacting(self, listener: Listener) -> Listener:
        return Redacting(listener, self.scrub, lambda: self.scrubber.stream())

    def scrub(self, text: str) -> str:
        """`text` without secrets. The same output reaches the reporter, the history and the
        JSON document (an attempt, its task's result, the workflow's): a long text is scrubbed
        once and remembered."""
        if not text:
            return text
        if len(text) < _REMEMBER_FROM:
            return str(self.scrubber.scrub(text)[0])
        clean = self._scrubbed.get(text)
        if clean is None:
            if len(self._scrubbed) >= 64:
                self._scrubbed.clear()
            clean = self._scrubbed[text] = str(self.scrubber.scrub(text)[0])
        return clean

    def redact(self, value: Any) -> Any:
        """`value` with every string scrubbed, for anything printed, returned or stored."""
        return map_strings(value, self.scrub)

    # -- loading ---------------------------------------------------------------------------------
    def load(self) -> list[Workflow]:
        """Load the file and build the engine's workflows; fork the zygote if a task needs
        workers. Top-level code runs now, with its logs and AI calls served as in a task."""
        from sloth_runner.lua.ai_module import AIGateway
        from sloth_runner.lua.loader import load_file, with_build_hint
        from sloth_runner.lua.services import Services

        self._guard()
        state: dict[str, Any] = {}

        def state_store() -> Any:
            if "store" not in state:
                from sloth_runner.store.state import StateStore

                state["store"] = StateStore(self.store)
            return state["store"]

        self._services = Services(
            _Forward(self), state_store, self.spool,
            lambda: AIGateway(lambda method, args, on_token: self.handlers["ai"](
                method, args, on_token)),
            params=self.params, grants=self.grants, scrubber=lambda: self.scrubber,
            values=self.values)
        try:
            self._loaded = load_file(self.path, self._services, sandbox=self.sandbox,
                                     debug=self.debug)
        except LoadError as exc:  # its text may quote a secret (`error("token=...")`)
            clean = self.scrub(str(exc))
            if clean == str(exc):
                raise
            raise type(exc)(clean) from None  # the cause would quote it again
        loaded = self._loaded
        self.warnings = list(loaded.warnings)  # the CLI prints them on stderr
        if not loaded.workflows:
            if loaded.hook_file:
                raise LoadError(f"{self.path} is a hook definition, not a workflow: register it "
                                f"with `sloth-runner hook add {self.path}`")
            if loaded.runtime.lua.globals().TaskDefinitions is not None:
                raise LoadError(f"{self.path} uses the old `TaskDefinitions = {{…}}` syntax, "
                                "which the Go sloth-runner no longer runs either: define tasks "
                                "with task(name)…:build() and workflow.define(name)")
            if loaded.runtime.calls == 0:
                raise LoadError(f"{self.path} defines no task and no workflow, and its "
                                "top-level code calls nothing: there is nothing to run")
        self.workflows = [self._workflow(d) for d in loaded.workflows]
        for wf in self.workflows:
            try:
                dag.validate(wf)
            except DependencyError as exc:
                raise with_build_hint(exc, loaded.unbuilt) from None
        return self.workflows

    def _workers(self) -> WorkerPool:
        """The pool and its zygote. `execute` makes it before the scheduler starts a thread,
        if a chosen task needs workers; `list`, `--dry-run` and in-process runs never fork."""
        if self._pool is None:
            from sloth_runner.isolation.pool import WorkerPool, Zygote
            from sloth_runner.lua.host import zygote_main

            loaded, services = self._loaded, self._services
            self._pool = WorkerPool(Zygote(lambda sock: zygote_main(sock, loaded, services)))
        return self._pool

    def _workflow(self, d: dict[str, Any]) -> Workflow:
        name = d["name"]
        bounded = d.get("timeout") is not None
        defaults = {"workdir": d.get("workdir"),
                    "delegate_to": self.delegate_to or d.get("delegate_to")}
        tasks = tuple(self._task(name, t, bounded, defaults) for t in d["tasks"])
        if d.get("create_workdirs"):
            self._make_workdirs.extend(t.workdir for t in tasks if t.workdir)
        return Workflow(
            name, tasks, description=d.get("description") or "",
            max_parallel=d.get("max_parallel"), timeout=d.get("timeout"),
            location=d.get("where") or "", fail_fast=bool(d.get("fail_fast")),
            on_start=self._hook(name, "on_start") if d.get("on_start") else None,
            on_complete=self._hook(name, "on_complete") if d.get("on_complete") else None)

    def _task(self, workflow: str, d: dict[str, Any], workflow_bounded: bool,
              defaults: dict[str, Any]) -> Task:
        """An engine task from its description (only the fields it set: one pass over them,
        since a 10,000-task file builds 10,000 of these). Its actions run here, or, when a
        deadline or a memory limit must hold whatever the code does, in a worker process."""
        name, where = d["name"], d["where"]
        limit = d.get("memory_limit")
        isolated = (workflow_bounded or "timeout" in d or limit is not None) and not self.on_agent
        task = Task(name, _no_command, tuple(d.get("depends_on", ())), location=where)
        if isolated:
            self._isolated.add(id(task))
        delegated = None if self.on_agent else d.get("delegate_to") or defaults["delegate_to"]
        for key, value in d.items():
            if key in _ACTIONS:
                if not delegated or key not in _ATTEMPT:  # (those run in the agent's attempt)
                    setattr(task, _ACTIONS[key], self._action(
                        workflow, name, key, value.get("shell"), isolated, limit, where,
                        delegated))
            elif key in _PLAIN_FIELDS:
                if value is not None:
                    setattr(task, key, value)
            elif key in ("inputs", "outputs", "artifacts", "consumes"):
                setattr(task, key, tuple(value))
                task.fingerprint = (d.get("command") or {}).get("shell") or ""
            elif key == "heal" and self.heal:
                task.heal = self._heal_of(workflow, name, value, isolated, limit, where,
                                          delegated)
        if delegated or (self.executor == "celery" and not self.on_agent):
            task.action = self._delegated(name, str(delegated) if delegated else None, where,
                                          "command" if not (task.artifacts or task.consumes)
                                          else "artifacts")
            if isinstance(task.action, Refused):  # an error no retry can help
                task.retries = 0
        workdir = d.get("workdir") or defaults["workdir"]
        if workdir:  # relative to where sloth-runner started, once and for all
            task.workdir = os.path.abspath(workdir)
        return task

    def _delegated(self, task: str, agent: str | None, where: str, phase: str = "command"
                   ) -> Any:
        """The action of a task that runs on an agent (agents/delegate.py): its attempt, or
        one of its conditions, end hooks or heal actions (`phase`), there too."""
        from sloth_runner.agents.delegate import Controller, delegated_action

        if self._controller is None:  # what this run's delegated tasks share
            self._controller = Controller(self.path, self.values, self.run_id,
                                          lambda: self._events, lambda: self.store, self.grants,
                                          lambda: self._services)
        return delegated_action(task, agent, where, self._controller, phase)

    def _heal_of(self, workflow: str, task: str, spec: dict[str, Any], isolated: bool,
                 limit: int | None, where: str, delegated: Any) -> Any:
        """A task's :heal{} as the engine's Heal: its actions run like its command (here or in
        its worker), chosen by the run's Healer (healing.py)."""
        from sloth_runner.engine.healing import Heal, HealAction

        if self._healer is None:
            from sloth_runner.healing import Healer

            self._healer = Healer(lambda: self.store, lambda: self.ai,
                                  os.path.realpath(self.path))
        actions = {
            n: HealAction(n, self._action(workflow, task, f"heal:{n}", a.get("shell"), isolated,
                                          limit, where, delegated),
                          when=a.get("when"), description=a.get("description"),
                          shell=a.get("shell"))
            for n, a in spec["actions"].items()}
        return Heal(actions, spec["max_attempts"], self._healer.choose)

    def _action(self, workflow: str, task: str, kind: str, shell: str | None, isolated: bool,
                limit: int | None, where: str, agent: Any = None) -> Any:
        if agent:  # a delegated task's condition, hook or heal action runs on its agent
            return self._delegated(task, str(agent), where, kind)
        if shell is not None:
            refusal = self.grants.refusal("exec", f"the shell {kind} of task '{task}'")
            if refusal is not None:  # refused when it runs: `list --sandbox` still loads
                return Refused(f"{where}: {refusal}")
        if isolated:
            from sloth_runner.isolation.pool import WorkerAction

            return WorkerAction(self._workers, self._forward, lambda: self.handlers, kind, task,
                                shell, limit)
        if shell is not None:
            from sloth_runner.engine.shell import ShellAction

            return ShellAction(shell, self.spool, base_env=self.grants.process_env())
        return self._loaded.actions[(workflow, task, kind)]

    def _hook(self, workflow: str, kind: str) -> Callable[..., Any]:
        """on_start(params) / on_complete(success, results), run like a task's action in this
        process (so Ctrl-C stops a loop in them, as in a task), outside the scheduler."""
        from sloth_runner.engine.lifecycle import run_now
        from sloth_runner.engine.model import TaskContext, TaskInterrupted, TaskResult

        action = self._loaded.actions[(workflow, "", kind)]

        def call(*args: Any) -> Any:
            ctx = TaskContext(workflow, "", self.params, {})
            if kind == "on_complete":
                success, result = args
                ctx.result = TaskResult("", "success" if success else "failed", outputs={
                    t.name: {"status": t.status, "message": t.message, "error": t.error,
                             "outputs": t.outputs} for t in result.tasks})
            try:
                outcome = run_now(action, ctx)
            except TaskInterrupted as exc:  # the run's handler stopped its Lua code
                raise KeyboardInterrupt(str(exc)) from exc
            if outcome.error:
                raise LuaScriptError(outcome.error)
            return None if outcome.success else False

        return call

    def _forward(self, item: tuple) -> None:
        """A worker's log line or streamed text, to this run's listeners."""
        if item[0] == "log":
            self._events.log(*item[1:])
        else:
            self._events.stream(*item[1:])

    def select(self, workflows: list[str] | None = None, tasks: list[str] | None = None
               ) -> list[Workflow]:
        """The workflows named (all, in file order, by default), reduced to `tasks` and what
        they depend on if given: what `run` runs, for the CLI and the Python API alike."""
        chosen = self.workflows
        if workflows:
            known = {wf.name: wf for wf in self.workflows}
            for name in workflows:
                if name not in known:
                    names = ", ".join(known) or "none"
                    raise LoadError(f"{self.path}: no workflow named '{name}' (workflows: "
                                    f"{names})")
            chosen = [known[name] for name in workflows]
        if tasks:
            chosen = dag.select_tasks(chosen, tasks)
        return chosen

    # -- running ---------------------------------------------------------------------------------
    def execute(self, workflows: list[Workflow] | None = None,
                max_parallel: int | None = None) -> RunResult:
        from sloth_runner.engine.runner import run_workflows
        from sloth_runner.store.runs import RunRecorder, recover_interrupted

        chosen = self.workflows if workflows is None else workflows
        store = self.store
        recover_interrupted(store)
        recorder = RunRecorder(store, self.run_id, os.path.realpath(self.path),
                               self.redact(self.params),
                               self.grants.describe(), self.stack, self._context(),
                               {"tasks": [{"workflow": wf.name, "name": t.name,
                                           "depends_on": t.depends_on}
                                          for wf in chosen for t in wf.tasks]})
        from sloth_runner.events import run_listener
        from sloth_runner.run_checks import artifacts_for, freshness_for
        from sloth_runner.tracing import run_tracer

        hooks = run_listener(self)  # stored events and hooks, when any are registered
        self._tracer = run_tracer(self, lambda t: self._events.log("warn", t, None, None), self._ai)
        self._events = self._redacting(Broadcast(self.listener, recorder, hooks, self._tracer))
        self._recorder = recorder
        status, error = "failed", None
        self._guard()
        if any(id(t) in self._isolated for wf in chosen for t in wf.tasks):
            self._workers()  # now, before the scheduler starts any thread
        try:
            for directory in self._make_workdirs:  # config.create_workdir_before_run
                os.makedirs(directory, exist_ok=True)
            result = run_workflows(chosen, run_id=self.run_id, params=self.params,
                                   max_parallel=max_parallel, listener=self._events,
                                   freshness=freshness_for(self, chosen, self.force),
                                   artifacts=artifacts_for(self.spool, chosen),
                                   on_scheduler=self._set_scheduler, gate=self.gate)
            if self.interrupted:  # even after the last task ended: it was asked for
                result.status = "interrupted"
            status = result.status
            error = f"run {self.interrupted}" if self.interrupted else None
            return result
        except KeyboardInterrupt:
            status, error = "interrupted", f"run {self.interrupted or 'interrupted'}"
            raise
        finally:
            if hooks is not None:
                hooks.close()  # its last events are stored before the run's status is final
            recorder.finish(status, [w.name for w in chosen], error)
            if os.path.isdir(self.spool):  # outputs past the cap: scrubbed as the page was
                from sloth_runner.scrub.files import scrub_files_in

                scrub_files_in(self.spool, self.scrubber)
            paths.remove_spool_if_empty(self.spool)
            if self._tracer is not None:  # its last spans are sent (a bounded wait)
                self._tracer.finish(status, error)

    def in_worker(self, task: Task) -> bool:
        """Whether this loaded task's code runs in a worker process (it has a deadline or a
        memory limit): `tune` warns before giving a task its first timeout."""
        return id(task) in self._isolated

    def _context(self) -> Any:
        """What the history records around the run and each attempt (issue 9's analyses):
        host load and memory, the folder's git commit, the error templates, a params hash."""
        from sloth_runner.services import runcontext
        from sloth_runner.store.runs import RunContext

        return RunContext(runcontext.HostSampler(),
                          runcontext.Workspace(os.path.dirname(os.path.abspath(self.path))),
                          runcontext.error_template, runcontext.failure_text,
                          runcontext.params_hash(self.params))

    @property
    def services(self) -> Any:
        """The Lua modules' services of the loaded file (None before `load()`)."""
        return self._services

    def interrupt(self, reason: str) -> None:
        """Stop the run as `interrupted` (a signal, a closed output). Safe in a signal handler."""
        if self.interrupted is None:
            self.interrupted = reason
        if self._loaded is not None:
            self._loaded.runtime.interrupt()  # Lua code running here stops at its next hook
        scheduler = self._scheduler
        if scheduler is not None:
            scheduler.interrupt(reason)
        else:
            raise KeyboardInterrupt(reason)

    def _set_scheduler(self, scheduler: Scheduler | None) -> None:
        self._scheduler = scheduler
        if scheduler is not None and self.interrupted is not None:
            scheduler.interrupt(self.interrupted)

    def _guard(self) -> None:
        """Own SIGINT, SIGTERM and SIGHUP for the run's life, with the watchdog behind them
        (only on the main thread: elsewhere the embedding program owns its signals)."""
        global _GUARDING
        if _GUARDING is not None or threading.current_thread() is not threading.main_thread():
            return  # one run of a process owns the signals at a time
        _GUARDING = self
        from sloth_runner.isolation.watchdog import Watchdog

        def handler(signum: int, frame: object) -> None:
            if self._watchdog is not None:
                self._watchdog.acknowledge()
            self.interrupt(f"interrupted by {signal.Signals(signum).name}")

        self._guarded = {sig: signal.signal(sig, handler)
                         for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
        self._watchdog = Watchdog(self._emergency)

    def _unguard(self) -> None:
        global _GUARDING
        if _GUARDING is not self:
            return
        _GUARDING = None
        if self._watchdog is not None:
            self._watchdog.close()
            self._watchdog = None
        for sig, previous in self._guarded.items():
            signal.signal(sig, previous)
        self._guarded = {}

    def _output_closed(self) -> None:
        """stdout is a closed pipe (`sloth-runner run ... | head`): an interruption, like
        Ctrl-C. Later writes go nowhere instead of failing again."""
        from sloth_runner.reporting import silence_stdout

        silence_stdout()
        self.interrupt("interrupted: the output was closed (broken pipe)")

    def _emergency(self, signum: int) -> None:
        """On the watchdog's thread, when the main thread is stuck inside a long C call and
        cannot answer a signal: kill everything the run started, record it as interrupted
        from a connection of our own, and exit 130."""
        from sloth_runner.services import process, proctree

        for pid in list(process.LIVE):
            proctree.kill_tree(pid)
        if self._pool is not None:
            for pid in self._pool.pids():
                proctree.kill_tree(pid)
        reason = (f"interrupted by {signal.Signals(signum).name} while Lua code was inside a "
                  "long call; stopped without waiting for it")
        recorder, scheduler = self._recorder, self._scheduler
        if recorder is not None:
            running = scheduler.running() if scheduler is not None else []
            waiting = scheduler.not_started() if scheduler is not None else []
            workflow = scheduler.workflow.name if scheduler is not None else ""
            try:
                recorder.finish_elsewhere(workflow, running, waiting, f"run {reason}")
            except Exception:  # the exit matters more than the record
                pass
        sys.stderr.write(f"\nsloth-runner: {reason}\n")
        if sys.stdout.isatty():
            sys.stdout.write("\x1b[?25h")  # the live display hid the cursor
        sys.stderr.flush()
        os._exit(130)

    def close(self) -> None:
        """Stop the zygote and the workers (and everything they started)."""
        self.listener.close()
        self._unguard()
        if self._ai is not None:  # an attempt cut at its deadline still writes its log row
            self._ai.wait_idle(2.0)
        if self._pool is not None:
            self._pool.close()
            self._pool = None
        if self._controller is not None:  # its agents' inbox
            self._controller.close()
        if self._store is not None and not self.process_ends:
            self._store.close()
            self._store = None

    def __enter__(self) -> Run:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _no_command(ctx: Any) -> Any:  # replaced below: the DSL makes :command() required
    raise AssertionError("a task without a command")


class _Forward(Listener):
    """What Lua code in this process logs or streams goes to the run's listeners of the moment
    (the reporter while loading, reporter and history once running), scrubbed on the way."""

    def __init__(self, run: Run) -> None:
        self.run = run

    def log(self, level: str, message: str, workflow: str | None, task: str | None) -> None:
        self.run._events.log(level, message, workflow, task)

    def stream(self, workflow: str | None, task: str | None, text: str | None) -> None:
        self.run._events.stream(workflow, task, text)
