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
from sloth_runner.lua.convert import to_python, type_name
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
    """git.get_diff/get_changed_files/current_branch/head_commit (questions, in the task's
    workdir), and working copies: git.clone/repo return a repository object ({path, url,
    exists} with :checkout/:pull/:push/:add/:commit/:tag/:status/:result), and
    git.checkout/pull/push/... take such an object or a directory, as the Go module does."""
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

    def located(ctx: TaskContext | None, name: str, path: Any, writes: bool = True) -> str:
        """A directory argument: relative to the task's workdir; under the sandbox, a place
        the workflow may write to (git writes there) unless fs is granted."""
        if not isinstance(path, str) or not path:
            raise TypeError(f"git.{name} expects a repository or a directory path")
        if ctx is not None and ctx.workdir and not os.path.isabs(path):
            path = os.path.join(ctx.workdir, path)
        if writes and not grants.allows("fs"):
            from sloth_runner.services import files

            root = ctx.workdir if ctx is not None and ctx.workdir else os.getcwd()
            real = files.target(path, True)
            if not files.within(real, root):
                grants.require("fs", f"git.{name} in {real} (outside the workdir "
                                     f"{os.path.realpath(root)})")
        return path

    def remote_op(name: str) -> None:
        grants.require("exec", f"git.{name} (it runs the git program)")
        grants.require("net", f"git.{name} (it reaches a remote)")

    def clone(ctx: TaskContext | None, url: Any = None, dest: Any = None,
              options: Any = None) -> Callable[[], Any]:
        opts = _git_options("clone", options, {"branch", "depth", "clean"})
        if not isinstance(url, str) or not url or not isinstance(dest, str) or not dest:
            raise TypeError("git.clone expects a URL string and a directory path")
        grants.require("exec", "git.clone (it runs the git program)")
        if not _local_url(url):
            grants.require("net", f"git.clone from {_host(url) if '://' in url else 'a remote'}")
        where = located(ctx, "clone", dest)
        branch, depth = opts.get("branch"), opts.get("depth")
        clean = bool(opts.get("clean", False))
        deadline, cancel = (ctx.deadline, ctx.cancel) if ctx else (None, None)
        return lambda: git.clone(url, where, branch=branch, depth=depth, clean=clean,
                                 deadline=deadline, cancel=cancel)

    def working_copy(name: str, run: Callable[..., Any], remote: bool = False,
                     writes: bool = True) -> Any:
        def prepare(ctx: TaskContext | None, path: Any = None, *args: Any) -> Callable[[], Any]:
            if remote:
                remote_op(name)
            else:
                grants.require("exec", f"git.{name} (it runs the git program)")
            where = located(ctx, name, path, writes)
            deadline = ctx.deadline if ctx else None
            job = run(ctx, where, deadline, *args)
            return job

        return rt.blocking(f"git.{name}", BlockingOp(prepare, _table_or_value(rt)))

    def checkout(ctx: TaskContext | None, path: str, deadline: float | None, ref: Any = None,
                 options: Any = None) -> Callable[[], Any]:
        opts = _git_options("checkout", options, {"create"})
        if not isinstance(ref, str) or not ref:
            raise TypeError("git.checkout expects a branch, tag or commit")
        return lambda: git.checkout(path, ref, create=bool(opts.get("create")),
                                    deadline=deadline)

    def pull(ctx: TaskContext | None, path: str, deadline: float | None, remote: Any = None,
             branch: Any = None) -> Callable[[], Any]:
        cancel = ctx.cancel if ctx else None
        return lambda: git.pull(path, remote, branch, deadline=deadline, cancel=cancel)

    def push(ctx: TaskContext | None, path: str, deadline: float | None, remote: Any = None,
             branch: Any = None, options: Any = None) -> Callable[[], Any]:
        opts = _git_options("push", options, {"follow_tags"})
        cancel = ctx.cancel if ctx else None
        follow = bool(opts.get("follow_tags"))
        return lambda: git.push(path, remote, branch, follow_tags=follow, deadline=deadline,
                                cancel=cancel)

    def add(ctx: TaskContext | None, path: str, deadline: float | None,
            pattern: Any = ".") -> Callable[[], Any]:
        if not isinstance(pattern, str) or not pattern:
            raise TypeError("git.add expects a path or pattern like \".\"")
        return lambda: git.add(path, pattern, deadline)

    def commit(ctx: TaskContext | None, path: str, deadline: float | None, message: Any = None,
               options: Any = None) -> Callable[[], Any]:
        opts = _git_options("commit", options, {"all", "add_all"})
        every = bool(opts.get("all") or opts.get("add_all"))
        return lambda: git.commit(path, message, all_changes=every, deadline=deadline)

    def tag(ctx: TaskContext | None, path: str, deadline: float | None, name: Any = None,
            message: Any = None) -> Callable[[], Any]:
        if not isinstance(name, str) or not name:
            raise TypeError("git.tag expects a tag name")
        return lambda: git.tag(path, name, message if isinstance(message, str) else None,
                               deadline)

    def status(ctx: TaskContext | None, path: str, deadline: float | None) -> Callable[[], Any]:
        return lambda: git.status(path, deadline)

    def open_repo(ctx: TaskContext | None, path: str, deadline: float | None
                  ) -> Callable[[], Any]:
        return lambda: git.open_repo(path, deadline)

    def is_repo(ctx: TaskContext | None, path: str, deadline: float | None
                ) -> Callable[[], Any]:
        return lambda: git.is_repo(path, deadline)

    raw = rt.lua.table_from({
        "clone": rt.blocking("git.clone", BlockingOp(clone, _as_table(rt))),
        "open": working_copy("repo", open_repo, writes=False),
        "is_repo": working_copy("is_repo", is_repo, writes=False),
        "checkout": working_copy("checkout", checkout),
        "pull": working_copy("pull", pull, remote=True),
        "push": working_copy("push", push, remote=True, writes=False),
        "add": working_copy("add", add),
        "commit": working_copy("commit", commit),
        "tag": working_copy("tag", tag),
        "status": working_copy("status", status, writes=False),
    })
    questions = {
        "get_diff": op("get_diff", git.diff, True),
        "get_changed_files": op("get_changed_files", git.changed_files, True),
        "current_branch": op("current_branch", git.current_branch, False),
        "head_commit": op("head_commit", git.head_commit, False),
    }
    front = rt.lua.execute(_GIT_FRONT, raw, rt.S.raise_error, name="=git")
    rt.install("git", {**questions, **{name: front[name] for name in front}})


def _table_or_value(rt: LuaRuntime) -> Callable[[TaskContext | None, Any], Any]:
    return lambda ctx, result: rt.table(result) if isinstance(result, dict | list) else result


def _git_options(name: str, options: Any, known: set[str]) -> dict[str, Any]:
    opts = to_python(options) if options is not None else {}
    if opts == []:
        opts = {}
    if not isinstance(opts, dict):
        raise TypeError(f"git.{name}: options must be a table")
    unknown = set(opts) - known
    if unknown:
        raise ValueError(f"git.{name}: unknown option '{sorted(unknown)[0]}' (options: "
                         f"{', '.join(sorted(known))})")
    return opts


def _local_url(url: str) -> bool:
    """A clone from this machine (a path or file://) needs no network."""
    return url.startswith(("/", "./", "../", "file://")) or "://" not in url and ":" not in url


# The repository object, in Lua: a plain table {path, url, exists} whose methods call the
# module's blocking functions with its path (Python only ever sees the path).
_GIT_FRONT = r"""
local raw, raise = ...
local type, setmetatable, getmetatable, fmt = type, setmetatable, getmetatable, string.format

local Repo = {}
Repo.__index = Repo
Repo.__tostring = function(self) return fmt("git repository %s", tostring(self.path)) end

local function path_of(x, what)
    if type(x) == "string" then return x end
    if type(x) == "table" then
        local p = x.path or x.local_path
        if type(p) == "string" then return p end
    end
    raise(fmt("%s expects a repository (from git.clone or git.repo) or a directory path, got %s",
              what, type(x)))
end

local function repo(t)
    return setmetatable(t, Repo)
end

local function as_repo(target, path, result)
    if getmetatable(target) == Repo then
        target.last = result
        return target
    end
    local r = repo({path = result and result.path or path, exists = true})
    r.last = result
    return r
end

local M = {}

function M.clone(url, dir, options)
    if type(url) == "table" then  -- the Go module's git.clone{url, local_path, branch, depth, clean}
        local t = url
        url, dir = t.url, t.local_path or t.path
        options = {branch = t.branch, depth = t.depth, clean = t.clean}
    end
    local r = raw.clone(url, dir, options)
    return repo(r)
end

function M.repo(path)
    local r = raw.open(path_of(path, "git.repo"))
    return repo(r)
end

function M.is_repo(path)
    local p = path
    if type(path) == "table" then p = path_of(path, "git.is_repo") end
    local r = raw.is_repo(p)
    return r
end

-- git.checkout(repo_or_dir, ref [, {create = true}]), or the Go module's git.checkout{path, branch}
function M.checkout(target, ref, options)
    if type(target) == "table" and getmetatable(target) ~= Repo and ref == nil then
        ref = target.branch or target.ref
    end
    local path = path_of(target, "git.checkout")
    local r = raw.checkout(path, ref, options)
    local out = as_repo(target, path, r)
    return out
end

function M.pull(target, remote, branch)
    local path = path_of(target, "git.pull")
    local r = raw.pull(path, remote, branch)
    local out = as_repo(target, path, r)
    return out
end

function M.push(target, remote, branch, options)
    local path = path_of(target, "git.push")
    local r = raw.push(path, remote, branch, options)
    local out = as_repo(target, path, r)
    return out
end

function M.add(target, pattern)
    local path = path_of(target, "git.add")
    local r = raw.add(path, pattern or ".")
    local out = as_repo(target, path, r)
    return out
end

function M.commit(target, message, options)
    if type(target) == "table" and getmetatable(target) ~= Repo and message == nil then
        message, options = target.message, {add_all = target.add_all}
    end
    local path = path_of(target, "git.commit")
    local r = raw.commit(path, message, options)
    local out = as_repo(target, path, r)
    return out
end

function M.tag(target, name, message)
    local path = path_of(target, "git.tag")
    local r = raw.tag(path, name, message)
    local out = as_repo(target, path, r)
    return out
end

function M.status(target)
    local r = raw.status(path_of(target, "git.status"))
    return r
end

function Repo:checkout(ref, options) local r = M.checkout(self, ref, options); return r end
function Repo:pull(remote, branch) local r = M.pull(self, remote, branch); return r end
function Repo:push(remote, branch, options)
    local r = M.push(self, remote, branch, options)
    return r
end
function Repo:add(pattern) local r = M.add(self, pattern); return r end
function Repo:commit(message, options) local r = M.commit(self, message, options); return r end
function Repo:tag(name, message) local r = M.tag(self, name, message); return r end
function Repo:status() local r = M.status(self); return r end
function Repo:result()
    return self.last or {success = true, stdout = "", stderr = ""}
end

return M
"""


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
            got = type_name(message)
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
