"""Lua modules for the systems around a deployment: `git`, `monitoring`, `notifications`, `aws`.

Adapters only: the work is in services/git.py, services/hostmetrics.py, services/notify.py and
services/aws.py.
Calls that wait on a process or the network are blocking ops (they yield to the scheduler inside
a task); reading local load metrics is immediate. Each module is a global and `require`-able,
like exec and log.

Under `--sandbox` (grants.py): git runs a process, so it needs `exec`; webhooks, health URLs and
AWS reach the network, so they need `net`. Setting things up (aws.configure) and what stays on
the machine (an alert without a webhook is a log line; load metrics) need nothing.
"""

from __future__ import annotations

import os

from sloth_runner.errors import IntegrationError
from sloth_runner.lua.convert import lua_type, to_python
from sloth_runner.lua.runtime import BlockingOp, LuaRuntime
from sloth_runner.services import git, notify

# services/aws.py and services/hostmetrics.py are imported on first call: a run that does not
# use them does not pay for them at start-up.

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from sloth_runner.engine.model import TaskContext
    from sloth_runner.grants import Grants
    from sloth_runner.lua.services import Services

HEALTH_URLS_ENV = "SLOTH_HEALTH_URLS"


def install_integrations(rt: LuaRuntime, services: Services) -> None:
    _install_git(rt, services)
    grants = services.grants

    def health(ctx: TaskContext | None, options: Any = None) -> Callable[[], Any]:
        return _health_job(ctx, options, grants)

    rt.install("monitoring", {
        "get_load_metrics": rt.wrap(lambda: rt.table(_hostmetrics().load_metrics())),
        "get_health": rt.blocking("monitoring.get_health", BlockingOp(health, _as_table(rt))),
    })
    _install_notifications(rt, services)
    _install_aws(rt, services)


def _as_table(rt: LuaRuntime) -> Callable[[TaskContext | None, Any], Any]:
    return lambda ctx, result: rt.table(result)


def _install_git(rt: LuaRuntime, services: Services) -> None:
    grants = services.grants

    def op(name: str, fn: Callable[..., Any], revisions: bool) -> Any:
        def prepare(ctx: TaskContext | None, *args: Any) -> Callable[[], Any]:
            grants.require("exec", f"git.{name} (it runs the git program)")
            if revisions and len(args) > 2:
                raise TypeError(f"git.{name} takes at most two revisions (base, head)")
            revs = [a for a in args[:2] if a is not None] if revisions else []
            if any(not isinstance(r, str) for r in revs):
                raise TypeError(f"git.{name}: revisions are strings like \"HEAD~1\"")
            cwd = ctx.workdir if ctx else None
            deadline = ctx.deadline if ctx else None
            return lambda: fn(*revs, cwd=cwd, deadline=deadline)

        def finish(ctx: TaskContext | None, result: Any) -> Any:
            return rt.table(result) if isinstance(result, list) else result

        return rt.blocking(f"git.{name}", BlockingOp(prepare, finish))

    rt.install("git", {
        "get_diff": op("get_diff", git.diff, True),
        "get_changed_files": op("get_changed_files", git.changed_files, True),
        "current_branch": op("current_branch", git.current_branch, False),
        "head_commit": op("head_commit", git.head_commit, False),
    })


def _health_job(ctx: TaskContext | None, options: Any, grants: Grants) -> Callable[[], Any]:
    """get_health(), get_health("http://..."), get_health{urls = {...}, timeout = 5}."""
    opts = to_python(options) if options is not None else {}
    if isinstance(opts, str):
        opts = {"urls": [opts]}
    if not isinstance(opts, dict):
        raise TypeError("monitoring.get_health expects a URL or a table {urls = {...}, timeout}")
    unknown = set(opts) - {"url", "urls", "timeout"}
    if unknown:
        raise ValueError(f"monitoring.get_health: unknown option '{sorted(unknown)[0]}' "
                         "(options: url, urls, timeout)")
    urls = list(opts.get("urls") or []) + ([opts["url"]] if opts.get("url") else [])
    if not urls and os.environ.get(HEALTH_URLS_ENV):
        urls = [u.strip() for u in os.environ[HEALTH_URLS_ENV].split(",") if u.strip()]
    timeout = opts.get("timeout", 5)
    if not isinstance(timeout, int | float) or timeout <= 0:
        raise ValueError("monitoring.get_health: timeout must be a positive number of seconds")
    if urls:
        hosts = ", ".join(sorted({_host(str(u)) for u in urls}))
        grants.require("net", f"monitoring.get_health of URLs ({hosts})")
    return lambda: _hostmetrics().health(urls, float(timeout))


def _install_notifications(rt: LuaRuntime, services: Services) -> None:
    def prepare(ctx: TaskContext | None, message: Any = None, options: Any = None) -> Any:
        if not isinstance(message, str) or not message:
            got = lua_type(message) or type(message).__name__
            raise TypeError(f"notifications.send_alert expects a message string, got {got}")
        opts = to_python(options) if options is not None else {}
        if not isinstance(opts, dict) or set(opts) - {"webhook", "severity"}:
            raise ValueError("notifications.send_alert options: {webhook = url, severity = "
                             "\"critical\"}")
        severity = str(opts.get("severity", "critical"))
        level = notify.log_level_for(severity)
        clean = services.scrubber.scrub(message)[0]  # an alert leaves the machine
        where = "/".join(p for p in (ctx.workflow, ctx.task) if p) if ctx else ""
        text = f"[sloth-runner] {severity.upper()}{' in ' + where if where else ''}: {clean}"
        webhook = opts.get("webhook") or notify.webhook_from_env()
        workflow, task = (ctx.workflow, ctx.task) if ctx else (None, None)
        if not webhook:
            services.listener.log(level, f"ALERT ({severity}): {clean}", workflow, task)
            return lambda: {"sent": False, "channel": "log", "text": text}
        if not isinstance(webhook, str):
            raise IntegrationError("notifications: webhook must be a URL string")
        services.grants.require("net", f"notifications.send_alert to a webhook "
                                       f"({_host(webhook)})")
        return lambda: notify.post_alert(webhook, text) | {"text": text}

    rt.install("notifications", {
        "send_alert": rt.blocking("notifications.send_alert", BlockingOp(prepare, _as_table(rt))),
    })


def _hostmetrics() -> Any:
    from sloth_runner.services import hostmetrics

    return hostmetrics


def _install_aws(rt: LuaRuntime, services: Services) -> None:
    made: list[Any] = []
    grants = services.grants

    def client() -> Any:
        if not made:
            from sloth_runner.services import aws

            made.append(aws.AWSClient())
        return made[0]

    def window(value: Any, default: str | None = None) -> float:
        from sloth_runner.services import aws

        return aws.window_seconds(value, default) if default else aws.window_seconds(value)

    def windowed(name: str, method: str) -> Any:
        def prepare(ctx: TaskContext | None, period: Any = None) -> Callable[[], Any]:
            grants.require("net", f"aws.{name}")
            seconds = window(period)
            fn = getattr(client(), method)
            return lambda: fn(seconds)

        return rt.blocking(f"aws.{name}", BlockingOp(prepare, _as_table(rt)))

    def modify(ctx: TaskContext | None, instance_id: Any = None,
               options: Any = None) -> Callable[[], Any]:
        grants.require("net", "aws.ec2.modify_instance")
        opts = to_python(options) if options is not None else {}
        if not isinstance(instance_id, str) or not isinstance(opts, dict) or \
                not isinstance(opts.get("instance_type"), str):
            raise TypeError("aws.ec2.modify_instance(instance_id, {instance_type = \"t3.small\", "
                            "restart = true, dry_run = false, wait = \"10m\"})")
        unknown = set(opts) - {"instance_type", "restart", "dry_run", "wait"}
        if unknown:
            raise ValueError(f"aws.ec2.modify_instance: unknown option '{sorted(unknown)[0]}'")
        wait = window(opts.get("wait"), "10m")
        aws = client()
        return lambda: aws.modify_instance(instance_id, opts["instance_type"],
                                           bool(opts.get("restart", True)),
                                           bool(opts.get("dry_run", False)), wait)

    def configure(settings: Any) -> bool:
        value = to_python(settings)
        if not isinstance(value, dict):
            raise TypeError("aws.configure expects a table {region, profile, endpoint_url}")
        client().configure(value)
        return True

    rt.install("aws", {
        "configure": rt.wrap(configure),
        "ec2": rt.lua.table_from({
            "get_utilization_metrics": windowed("ec2.get_utilization_metrics",
                                                "ec2_utilization"),
            "modify_instance": rt.blocking("aws.ec2.modify_instance", BlockingOp(modify,
                                                                                 _as_table(rt))),
        }),
        "rds": rt.lua.table_from({
            "get_performance_metrics": windowed("rds.get_performance_metrics",
                                                "rds_performance"),
        }),
        "billing": rt.lua.table_from({"get_costs": windowed("billing.get_costs", "costs")}),
    })


def _host(url: str) -> str:
    """Only the host of a URL goes into a message: a webhook URL is a secret."""
    from urllib.parse import urlsplit

    try:
        return urlsplit(url).hostname or "?"
    except ValueError:
        return "?"
