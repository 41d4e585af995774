"""What the failure model knows about a task before it runs: features computed from the
history, chronologically, by one piece of code for training and for predicting.

The unit is an *outcome*: a task's final attempt in one run (failed, timed out or errored:
a failure; succeeded: not), with what was true when it started (host, hour, load,
parameters, changed files). `FeatureState` folds outcomes in, run by run, and can say at any
moment what the features of a next run would be. Training replays the whole history through
it and takes, for each run, the features *before* that run was folded in; predicting takes
the same state as it stands now. So the features the model learned from and the features it
is asked about are made by the same code from the same kind of past: no train/serve skew, and
no feature ever sees its own run or anything later (a run's outcomes are folded in together,
after all of its features were taken, because before a run nothing of it is known).

Most features are target encodings: the task's failure rate in comparable past runs (on this
host, at this hour, with this parameter value, at this load) shrunk towards the task's own
rate when there were few such runs, as log-odds above that rate. So each says "how much worse
than usual is this situation for this task", and can be put in words with its counts ("host
build-07 failed 27 of its last 30 runs of deploy"). A feature that cannot be known (no load
reading, no parameters) is None: the model treats it as an average run.
"""

from __future__ import annotations

import json
import math
import time
from bisect import bisect_right

from sloth_runner.analytics.records import FAILED, SUCCESS

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

FEATURES = ("base", "recent", "streak", "failing_for", "host", "host_all", "hour", "param",
            "load", "changed", "upstream")
FINISHED = FAILED | {SUCCESS}
DECAY = 0.8           # weight of a run in the recent rate, per later run (half-life ~3 runs)
SHRINK = 10.0         # pseudo-runs at the task's own rate behind every target encoding
KEEP = 30             # outcomes remembered per task, per (task, host) and 100 per host
HOST_KEEP = 100
MAX_PARAMS = 200      # parameter values remembered per task (ids are pruned first)
MAX_PARAM_CHARS = 80
UPSTREAM = 3          # tasks that ended last before a task started: its likely dependencies


class Outcome:
    """One task's final attempt in one run, and its circumstances. `trouble`: it needed a
    retry or failed (what a task's dependents may feel even when a retry saved it)."""

    __slots__ = ("run_id", "workflow", "task", "started_at", "ended_at", "failed", "trouble",
                 "host", "load", "changed", "params", "row_id")

    def __init__(self, workflow: str, task: str, started_at: float, *, run_id: str = "",
                 ended_at: float | None = None, failed: bool = False, trouble: bool = False,
                 host: str | None = None, load: float | None = None,
                 changed: int | None = None, params: dict[str, str] | None = None,
                 row_id: int = 0) -> None:
        self.run_id, self.workflow, self.task = run_id, workflow, task
        self.started_at = started_at
        self.ended_at = started_at if ended_at is None else ended_at
        self.failed, self.trouble = failed, trouble or failed
        self.host, self.load, self.changed = host, load, changed
        self.params = params
        self.row_id = row_id

    @property
    def key(self) -> str:
        return task_key(self.workflow, self.task)


def task_key(workflow: str, task: str) -> str:
    """How the state names a task: its workflow and its name, apart (either may hold a `/`)."""
    return f"{workflow}\t{task}"


def split_key(key: str) -> tuple[str, str]:
    workflow, _, task = key.partition("\t")
    return workflow, task


def outcomes_from_records(records: list[dict[str, Any]]) -> list[Outcome]:
    """The final attempts among `records` (history rows or analysis records: `task` and
    `status` at least) as outcomes, oldest first. Attempts that never ran, were interrupted or
    are not final are left out: they say nothing about how the task ends."""
    out: list[Outcome] = []
    cache: dict[str, dict[str, str]] = {}
    for r in records:
        status = r.get("status")
        final = r.get("final", True)
        if status not in FINISHED or not final or (r.get("attempt") or 1) < 1:
            continue
        at = r.get("started_at")
        if not isinstance(at, (int, float)):
            continue
        attempt = r.get("attempt") or 1
        failed = status in FAILED
        load = r.get("load_1m")
        changed = r.get("changed_files")
        params = r.get("params")
        if params is None and isinstance(r.get("params_json"), str):
            raw = r["params_json"]
            if raw not in cache:
                cache[raw] = _parse_params(raw)
            params = cache[raw]
        out.append(Outcome(
            r.get("workflow") or "", r["task"], float(at), run_id=str(r.get("run_id") or ""),
            ended_at=r.get("ended_at") if isinstance(r.get("ended_at"), (int, float)) else None,
            failed=failed, trouble=failed or attempt > 1, host=r.get("host"),
            load=float(load) if isinstance(load, (int, float)) else None,
            changed=int(changed) if isinstance(changed, int) else None,
            params=flat_params(params) if isinstance(params, dict) else None,
            row_id=int(r.get("id") or 0)))
    out.sort(key=lambda o: o.started_at)
    return out


def _parse_params(raw: str) -> dict[str, str]:
    try:
        value = json.loads(raw)
    except ValueError:
        return {}
    return flat_params(value) if isinstance(value, dict) else {}


def flat_params(params: dict[str, Any]) -> dict[str, str]:
    """Parameters as `key -> text`: scalars only (a table of values is no category), cut to
    a length (a long value is an id or a blob, not a setting)."""
    out: dict[str, str] = {}
    for key, value in params.items():
        if isinstance(value, (str, int, float, bool)):
            text = str(value)
            if len(text) <= MAX_PARAM_CHARS:
                out[str(key)] = text
    return out


def by_run(outcomes: list[Outcome]) -> list[list[Outcome]]:
    """Outcomes grouped by run, runs in the order they started (outcomes without a run id
    are runs of their own)."""
    groups: dict[str, list[Outcome]] = {}
    order: list[list[Outcome]] = []
    for i, o in enumerate(outcomes):
        key = o.run_id or f"#{i}"
        group = groups.get(key)
        if group is None:
            group = groups[key] = []
            order.append(group)
        group.append(o)
    order.sort(key=lambda g: g[0].started_at)
    return order


def _logit(p: float) -> float:
    p = min(max(p, 1e-3), 1 - 1e-3)
    return math.log(p / (1 - p))


def _shrunk(fails: float, n: float, prior: float, k: float | None = None) -> float:
    k = SHRINK if k is None else k
    return (fails + k * prior) / (n + k)


def load_bucket(load: float) -> int:
    """0: below 1, then one bucket per doubling (1-2, 2-4, 4-8, 8-16), 5: 16 and more."""
    if load < 1:
        return 0
    return min(5, int(math.log2(load)) + 1)


def _bucket_words(bucket: int) -> str:
    if bucket == 0:
        return "below 1"
    if bucket == 5:
        return "16 or more"
    return f"{2 ** (bucket - 1)}-{2 ** bucket}"


class TaskState:
    """What the history says of one task, kept small: counts and the last outcomes."""

    __slots__ = ("n", "fails", "ewma_f", "ewma_n", "trouble_n", "trouble_f", "tr_ewma_f",
                 "tr_ewma_n", "streak", "last_success", "last_run", "last", "hosts", "hours",
                 "params", "loads", "upstream", "last_params")

    def __init__(self) -> None:
        self.n = self.fails = 0
        self.ewma_f = self.ewma_n = 0.0
        self.trouble_n = self.trouble_f = 0
        self.tr_ewma_f = self.tr_ewma_n = 0.0
        self.streak = 0
        self.last_success: float | None = None
        self.last_run: float | None = None
        self.last: list[int] = []  # 0 success, 1 needed a retry, 2 failed; newest last
        self.hosts: dict[str, list[int]] = {}  # host -> last outcomes there (1 = failed)
        self.hours: dict[str, list[int]] = {}  # "3" -> [runs, failures]
        self.params: dict[str, list[int]] = {}  # "target=arm64" -> [runs, failures]
        self.loads: dict[str, list[int]] = {}  # bucket -> [runs, failures]
        self.upstream: list[str] = []  # the tasks that ended just before it began, last run
        self.last_params: dict[str, str] | None = None  # the parameters of its last run

    def to_json(self) -> list[Any]:
        return [self.n, self.fails, self.ewma_f, self.ewma_n, self.trouble_n, self.trouble_f,
                self.tr_ewma_f, self.tr_ewma_n, self.streak, self.last_success, self.last_run,
                self.last, self.hosts, self.hours, self.params, self.loads, self.upstream,
                self.last_params]

    @classmethod
    def from_json(cls, data: list[Any]) -> TaskState:
        s = cls()
        (s.n, s.fails, s.ewma_f, s.ewma_n, s.trouble_n, s.trouble_f, s.tr_ewma_f, s.tr_ewma_n,
         s.streak, s.last_success, s.last_run, s.last, s.hosts, s.hours, s.params, s.loads,
         s.upstream, s.last_params) = data
        return s


class FeatureState:
    """The history folded in so far. `features(o)` before `update_run([o, ...])`."""

    def __init__(self) -> None:
        self.tasks: dict[str, TaskState] = {}
        self.hosts: dict[str, list[int]] = {}  # host -> last outcomes of all its tasks
        self.n = 0
        self.fails = 0

    # -- what is known -----------------------------------------------------------------------
    def runs_of(self, key: str) -> int:
        t = self.tasks.get(key)
        return t.n if t is not None else 0

    def global_rate(self) -> float:
        return (self.fails + 0.5) / (self.n + 10)

    def base_rate(self, t: TaskState) -> float:
        return _shrunk(t.fails, t.n, self.global_rate(), 2.0)

    def baselines(self, o: Outcome) -> tuple[float, float]:
        """The two baselines' predictions: the task's last outcome (1 failed, 0 not) and its
        failure rate so far (the overall rate for a task never seen)."""
        t = self.tasks.get(o.key)
        if t is None or not t.n:
            rate = self.fails / self.n if self.n else 0.0
            return rate, rate
        return (1.0 if t.last and t.last[-1] == 2 else 0.0), t.fails / t.n

    def features(self, o: Outcome) -> list[float | None]:
        """The features of a run of `o.task` starting at `o.started_at` in `o`'s
        circumstances, from what is known now (never from `o`'s outcome)."""
        t = self.tasks.get(o.key)
        if t is None:
            t = TaskState()
        base = self.base_rate(t)
        lb = _logit(base)
        recent = _logit(_shrunk(t.ewma_f, t.ewma_n, base, 2.0)) - lb
        failing_for = None
        if t.streak and t.last_run is not None:
            since = t.last_success if t.last_success is not None else t.last_run
            failing_for = math.log1p(max(0.0, t.last_run - since) / 3600.0)
        elif t.n:
            failing_for = 0.0
        host = host_all = None
        # with one host there is nothing to compare it with: its rate is just a recent rate
        if o.host and len(t.hosts) > 1:
            seen = t.hosts.get(o.host, [])
            host = _logit(_shrunk(sum(seen), len(seen), base)) - lb
        if o.host and len(self.hosts) > 1:
            everything = self.hosts.get(o.host, [])
            g = self.global_rate()
            host_all = _logit(_shrunk(sum(everything), len(everything), g)) - _logit(g)
        hour = None  # likewise an hour, a load, when all runs so far had the same
        if len(t.hours) > 1:
            counts = t.hours.get(str(time.localtime(o.started_at).tm_hour))
            hour = _logit(_shrunk(counts[1], counts[0], base)) - lb if counts else 0.0
        param = None
        if o.params is not None:
            param = 0.0
            for k, v in o.params.items():
                c = t.params.get(f"{k}={v}")
                if c:
                    param = max(param, _logit(_shrunk(c[1], c[0], base)) - lb)
        load = None
        if o.load is not None and len(t.loads) > 1:
            c = t.loads.get(str(load_bucket(o.load)))
            load = _logit(_shrunk(c[1], c[0], base)) - lb if c else 0.0
        changed = math.log1p(o.changed) if o.changed is not None else None
        upstream = None
        for name in t.upstream:
            u = self.tasks.get(name)
            if u is None or not u.trouble_n:
                continue
            ub = _shrunk(u.trouble_f, u.trouble_n, self.global_rate(), 2.0)
            value = _logit(_shrunk(u.tr_ewma_f, u.tr_ewma_n, ub, 2.0)) - _logit(ub)
            upstream = value if upstream is None else max(upstream, value)
        return [lb, recent, math.log1p(t.streak), failing_for, host, host_all, hour, param,
                load, changed, upstream]

    # -- learning from a run -----------------------------------------------------------------
    def update_run(self, outcomes: list[Outcome]) -> None:
        """Fold in the outcomes of one run (all of them at once: see the module's doc)."""
        ends = sorted((u.ended_at, u.key) for u in outcomes)
        end_times = [e for e, _ in ends]
        for o in outcomes:
            t = self.tasks.get(o.key)
            if t is None:
                t = self.tasks[o.key] = TaskState()
            failed = int(o.failed)
            t.n += 1
            t.fails += failed
            t.ewma_f = t.ewma_f * DECAY + failed
            t.ewma_n = t.ewma_n * DECAY + 1
            t.trouble_n += 1
            t.trouble_f += int(o.trouble)
            t.tr_ewma_f = t.tr_ewma_f * DECAY + int(o.trouble)
            t.tr_ewma_n = t.tr_ewma_n * DECAY + 1
            t.streak = t.streak + 1 if failed else 0
            if not failed:
                t.last_success = o.started_at
            t.last_run = o.started_at
            _push(t.last, 2 if failed else int(o.trouble), KEEP)
            if o.host:
                _push(t.hosts.setdefault(o.host, []), failed, KEEP)
                _push(self.hosts.setdefault(o.host, []), failed, HOST_KEEP)
            _count(t.hours, str(time.localtime(o.started_at).tm_hour), failed)
            if o.params is not None:
                t.last_params = o.params
            if o.params:
                for k, v in o.params.items():
                    _count(t.params, f"{k}={v}", failed)
                if len(t.params) > MAX_PARAMS:  # values seen once (ids) go first
                    t.params = {k: c for k, c in t.params.items() if c[0] > 1}
            if o.load is not None:
                _count(t.loads, str(load_bucket(o.load)), failed)
            # its upstream: the tasks that ended last before it started (a task starts when
            # its last dependency ends; the history has no DAG, so this stands for one)
            before = bisect_right(end_times, o.started_at)
            t.upstream = [k for _, k in ends[max(0, before - UPSTREAM):before] if k != o.key]
            self.n += 1
            self.fails += failed

    # -- words -------------------------------------------------------------------------------
    def explain(self, name: str, o: Outcome) -> str:
        """The feature `name` of `o` in words a user can check against the history."""
        t = self.tasks.get(o.key) or TaskState()
        task = o.task
        if name == "base":
            return f"{task} failed {t.fails} of its {t.n} runs"
        if name == "recent":
            last = t.last[-10:]
            return f"{task} failed {sum(1 for x in last if x == 2)} of its last {len(last)} runs"
        if name == "streak":
            if t.streak:
                return f"{task} failed its last {t.streak} run{'s' if t.streak > 1 else ''}"
            return f"{task} succeeded in its last run"
        if name == "failing_for":
            if t.streak and t.last_success is not None and t.last_run is not None:
                return f"{task} has been failing for {_ago(t.last_run - t.last_success)} (from " \
                       "its last success to its last run)"
            if t.streak:
                return f"{task} has never succeeded"
            return f"{task} succeeded in its last run"
        if name == "host":
            seen = t.hosts.get(o.host or "", [])
            if not seen:
                return f"{task} has not run on host {o.host} before"
            return f"host {o.host} failed {sum(seen)} of its last {len(seen)} runs of {task}"
        if name == "host_all":
            seen = self.hosts.get(o.host or "", [])
            return f"host {o.host} failed {sum(seen)} of the last {len(seen)} tasks it ran"
        if name == "hour":
            h = time.localtime(o.started_at).tm_hour
            c = t.hours.get(str(h), [0, 0])
            when = f"between {h:02d}:00 and {(h + 1) % 24:02d}:00"
            if not c[0]:
                return f"{task} has not run {when} before"
            return f"{task} failed {c[1]} of its {c[0]} runs {when}"
        if name == "param":
            best, words = -1.0, f"{task}'s parameters are as usual"
            base = self.base_rate(t)
            for k, v in (o.params or {}).items():
                tally = t.params.get(f"{k}={v}")
                if tally:
                    value = _shrunk(tally[1], tally[0], base)
                    if value > best:
                        best = value
                        words = f"{task} failed {tally[1]} of its {tally[0]} runs with {k}={v}"
            return words
        if name == "load":
            b = load_bucket(o.load or 0.0)
            c = t.loads.get(str(b), [0, 0])
            if not c[0]:
                return f"{task} has not run at load {_bucket_words(b)} before (load now " \
                       f"{o.load:.1f})"
            return f"{task} failed {c[1]} of its {c[0]} runs that started at load " \
                   f"{_bucket_words(b)} (load now {o.load:.1f})"
        if name == "changed":
            return f"the commit changed {o.changed} files"
        if name == "upstream":
            worst, words = -math.inf, ""
            for u_name in t.upstream:
                u = self.tasks.get(u_name)
                if u is None or not u.last:
                    continue
                last = u.last[-10:]
                bad = sum(1 for x in last if x)
                if bad / len(last) > worst:
                    worst = bad / len(last)
                    short = split_key(u_name)[1]
                    words = f"{short}, which runs before {task}, needed a retry or failed in " \
                            f"{bad} of its last {len(last)} runs"
            return words or f"the tasks before {task} ran as usual"
        raise ValueError(f"unknown feature '{name}' (features: {', '.join(FEATURES)})")

    # -- persistence -------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {"n": self.n, "fails": self.fails, "hosts": self.hosts,
                "tasks": {k: t.to_json() for k, t in self.tasks.items()}}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FeatureState:
        s = cls()
        s.n, s.fails, s.hosts = data["n"], data["fails"], data["hosts"]
        s.tasks = {k: TaskState.from_json(v) for k, v in data["tasks"].items()}
        return s


def _push(items: list[int], value: int, keep: int) -> None:
    items.append(value)
    if len(items) > keep:
        del items[0]


def _count(table: dict[str, list[int]], key: str, failed: int) -> None:
    c = table.get(key)
    if c is None:
        table[key] = [1, failed]
    else:
        c[0] += 1
        c[1] += failed


def _ago(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172_800:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86_400:.0f} days"
