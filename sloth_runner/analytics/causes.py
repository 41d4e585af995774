"""Why tasks fail: the attributes of a run that go with a task's failures.

For each task with enough failures, each attribute value its runs had (the host, the hour,
the weekday, a parameter's value, the git commit, another task's outcome in the same run, the
host's load or free memory at the start) is tested for association with failure: a one-sided
Fisher's exact test of "fails more often with it than without it". All the tests of one
analysis are adjusted together (Benjamini-Hochberg), so what is reported at q <= 0.01 is a
cause with at most a 1 % expected share of false ones among the causes reported; on top of
that a cause must matter: twice the failure rate without it at least, and three failures.
Measures (load, free memory, changed files) are cut at several percentiles, each cut a test.

A cause found first explains others that come with it (a host that is also the only one
used at night makes "at night" look guilty): each further cause of a task is tested again
on the runs the earlier causes do not cover, and dropped when it no longer holds.

Errors that differ only in numbers, ids or paths share a template (recorded with each
attempt, or computed here); each cause reports the templates of its failures.
"""

from __future__ import annotations

from collections import Counter, defaultdict

from sloth_runner.analytics import stats
from sloth_runner.analytics.records import FAILED, SUCCESS, local_time, number

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

MIN_FAILURES = 5        # a task needs this many failures before causes are looked for
MIN_INSIDE = 3          # failures with the attribute, at least
MIN_LIFT = 2.0          # failure rate with it / without it, at least
ALPHA = 0.01            # the false discovery rate of reported causes
MAX_DISTINCT_SHARE = 0.5  # a parameter with a value per run (an id) is not a cause
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


class Rows:
    """A task's final attempts, and which failed, as bit masks: bit i is row i. Counting a
    2x2 table is then two ANDs and popcounts, whatever the number of rows."""

    __slots__ = ("task", "rows", "bad", "all")

    def __init__(self, task: str, rows: list[dict[str, Any]]) -> None:
        self.task, self.rows = task, rows
        self.bad = mask([r["status"] in FAILED for r in rows])
        self.all = (1 << len(rows)) - 1

    def table(self, inside: int, among: int | None = None) -> tuple[int, int, int, int]:
        """(failed with, succeeded with, failed without, succeeded without)."""
        scope = self.all if among is None else among
        bad = self.bad & scope
        with_ = inside & scope
        a = (with_ & bad).bit_count()
        b = with_.bit_count() - a
        c = bad.bit_count() - a
        d = scope.bit_count() - a - b - c
        return a, b, c, d


def mask(flags: list[bool]) -> int:
    """Booleans as an int whose bit i is flags[i] (built in one pass, as a binary string)."""
    return int("".join("1" if f else "0" for f in reversed(flags)) or "0", 2)


class Test:
    """One attribute value of one task, its 2x2 table and its p-value."""

    __slots__ = ("of", "kind", "key", "value", "label", "inside", "p", "q")

    def __init__(self, of: Rows, kind: str, key: str, value: Any, label: str,
                 inside: int) -> None:
        self.of, self.kind, self.key, self.value, self.label = of, kind, key, value, label
        self.inside = inside
        self.p = _p_value(of.table(inside))
        self.q = 1.0

    @property
    def task(self) -> str:
        return self.of.task


def _p_value(table: tuple[int, int, int, int]) -> float:
    a, b, c, d = table
    if a < MIN_INSIDE or _lift(a, b, c, d) < MIN_LIFT:
        return 1.0
    return stats.fisher_greater(a, b, c, d)


def _lift(a: int, b: int, c: int, d: int) -> float:
    inside = a / (a + b) if a + b else 0.0
    outside = c / (c + d) if c + d else 0.0
    return inside / max(outside, 1.0 / (a + b + c + d))


def failure_tests(records: list[dict[str, Any]]) -> list[Test]:
    """Every test of every task with enough failures; the caller adjusts their p-values
    (together with the other analyses' tests) and passes them to `report`."""
    by_task: dict[str, list[dict[str, Any]]] = defaultdict(list)
    by_run: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        if r["final"] and (r["status"] == SUCCESS or r["status"] in FAILED):
            by_task[r["name"]].append(r)
            by_run[r["run_id"]].append(r)
    tests: list[Test] = []
    for task, rows in by_task.items():
        if sum(r["status"] in FAILED for r in rows) >= MIN_FAILURES:
            tests += _tests_for(Rows(task, rows), by_run)
    return tests


def _tests_for(of: Rows, by_run: dict[Any, list[dict[str, Any]]]) -> list[Test]:
    tests: list[Test] = []
    rows = of.rows

    def categorical(kind: str, key: str, values: list[Any], label: Any) -> None:
        counts = Counter(v for v in values if v is not None)
        if len(counts) < 2 and None not in values:
            return  # one value for every run: nothing to compare with
        for value, n in counts.items():
            if n >= MIN_INSIDE:
                tests.append(Test(of, kind, key, value, label(value),
                                  mask([v == value for v in values])))

    categorical("host", "host", [r.get("host") for r in rows], lambda v: f"on host {v}")
    times = [local_time(r) for r in rows]
    if any(t is not None for t in times):
        categorical("hour", "hour", [t.tm_hour if t else None for t in times],
                    lambda v: f"between {v:02d}:00 and {v:02d}:59")
        categorical("weekday", "weekday", [WEEKDAYS[t.tm_wday] if t else None for t in times],
                    lambda v: f"on {v}")
    categorical("commit", "git_commit", [r.get("git_commit") for r in rows],
                lambda v: f"at commit {str(v)[:10]}")
    _param_tests(rows, categorical)
    _other_task_tests(of.task, rows, by_run, categorical)
    for key, word, high in (("load_1m", "the host's load at start", True),
                            ("mem_free_mb", "the host's free memory at start", False),
                            ("changed_files", "files changed by the commit", True)):
        _measure_tests(of, key, word, high, tests)
    return tests


def _param_tests(rows: list[dict[str, Any]], categorical: Any) -> None:
    keys: set[str] = set()
    for r in rows:
        params = r.get("params")
        if isinstance(params, dict):
            keys.update(k for k, v in params.items()
                        if isinstance(v, (str, int, float, bool)) and not isinstance(k, int))
    for key in sorted(keys):
        values = [_scalar((r.get("params") or {}).get(key)) for r in rows]
        distinct = len({v for v in values if v is not None})
        if distinct > max(2, MAX_DISTINCT_SHARE * len(rows)):
            continue
        categorical("param", key, values, lambda v, key=key: f"with {key}={v}")


def _scalar(value: Any) -> Any:
    if isinstance(value, (str, int, float, bool)):
        return str(value)[:60] if isinstance(value, str) else value
    return None


def _other_task_tests(task: str, rows: list[dict[str, Any]],
                      by_run: dict[Any, list[dict[str, Any]]], categorical: Any) -> None:
    """"A task that ran before it in the run needed a retry / failed": a dependency's outcome,
    or a shared cause (a service both use). Only tasks that started before it count: what
    happens after a failure (the tasks that then do not run) is its consequence."""
    others: dict[str, list[Any]] = defaultdict(lambda: [None] * len(rows))
    for i, r in enumerate(rows):
        start = r.get("started_at")
        for o in by_run.get(r["run_id"], ()):
            if o["name"] == task or o.get("workflow") != r.get("workflow"):
                continue
            before = o.get("started_at")
            if not isinstance(start, (int, float)) or not isinstance(before, (int, float)) \
                    or before >= start:
                continue
            if o["status"] in FAILED:
                others[o["name"]][i] = "failed"
            elif o["attempt"] > 1:
                others[o["name"]][i] = "needed a retry"
            else:
                others[o["name"]][i] = "succeeded"
    for name, outcomes in sorted(others.items()):
        categorical("task", name, outcomes, lambda v, name=name: f"when {name} {v}")


def _measure_tests(of: Rows, key: str, word: str, high: bool, tests: list[Test]) -> None:
    """A measure past a cut: "the load was high when it failed". Cuts at the 50th to 90th
    percentiles (10th to 50th for a low measure), each its own test; the strongest is
    reported and the cuts it covers are explained away with it."""
    values = [number(r, key) for r in of.rows]
    known = [v for v in values if v is not None]
    if len(known) < 8 or min(known) == max(known):
        return
    sign = ">=" if high else "<="
    seen: set[float] = set()
    for share in (0.5, 0.6, 0.7, 0.8, 0.9):
        cut = stats.quantile(known, share if high else 1 - share)
        if cut in seen:
            continue
        seen.add(cut)
        inside = mask([v is not None and (v >= cut if high else v <= cut) for v in values])
        if inside in (0, of.all):
            continue
        tests.append(Test(of, key, key, round(cut, 3), f"when {word} was {sign} {cut:g}",
                          inside))


def report(tests: list[Test], alpha: float = ALPHA) -> list[dict[str, Any]]:
    """The causes that hold (q <= alpha), explained-away ones dropped, as patterns."""
    by_task: dict[str, list[Test]] = defaultdict(list)
    for t in tests:
        if t.q <= alpha:
            by_task[t.task].append(t)
    out: list[dict[str, Any]] = []
    for found in by_task.values():
        found.sort(key=lambda t: t.p)
        covered = 0
        for t in found:
            if covered and _p_value(t.of.table(t.inside, t.of.all & ~covered)) > alpha:
                continue  # what earlier causes explain
            covered |= t.inside
            out.append(_pattern(t))
    return out


def _pattern(t: Test) -> dict[str, Any]:
    a, b, c, d = t.of.table(t.inside)
    rate_in, rate_out = a / (a + b), (c / (c + d) if c + d else 0.0)
    hit = t.inside & t.of.bad
    failures = [r for i, r in enumerate(t.of.rows) if hit >> i & 1]
    templates = Counter(r.get("error_template") or _template(r.get("error")) for r in failures)
    exit_codes = Counter(r.get("exit_code") for r in failures if r.get("exit_code") is not None)
    return {
        "type": "failure_correlation", "task": t.task, "attribute": t.kind, "key": t.key,
        "value": t.value,
        "description": f"{t.task} fails {t.label}: {a} of {a + b} runs ({rate_in:.0%}) vs "
                       f"{c} of {c + d} otherwise ({rate_out:.0%})",
        "confidence": round(1.0 - t.q, 4),
        "recommendation": _advice(t),
        "evidence": {"failed_with": a, "runs_with": a + b, "failed_without": c,
                     "runs_without": c + d, "rate_with": round(rate_in, 4),
                     "rate_without": round(rate_out, 4),
                     "lift": round(_lift(a, b, c, d), 2), "p_value": t.p,
                     "q_value": t.q, "test": "Fisher's exact, one-sided",
                     "error_templates": [{"template": k, "failures": n}
                                         for k, n in templates.most_common(3) if k],
                     "exit_codes": dict(exit_codes.most_common(3))},
    }


def _template(error: Any) -> str | None:
    from sloth_runner.services.runcontext import error_template

    return error_template(error) if isinstance(error, str) else None


def _advice(t: Test) -> str:
    task, v = t.task, t.value
    if t.kind == "host":
        return f"drain {v} or pin {task} to other hosts, then look at what differs on {v} " \
               "(disk, network, versions)"
    if t.kind in ("hour", "weekday"):
        return "something else runs then (backups, cron jobs, traffic peaks): move the " \
               "schedule or find the job it collides with"
    if t.kind == "param":
        return f"validate {t.key}={v} before running, or fix the code path that value takes"
    if t.kind == "commit":
        return f"look at commit {str(v)[:10]}: {task} started failing with it"
    if t.kind == "task":
        return f"{task} depends on what {t.key} leaves behind: declare it (:depends_on) or " \
               "find the resource they share"
    if t.kind == "load_1m":
        return "it fails when the host is busy: run it with fewer neighbours " \
               "(max_parallel_tasks) or give it more time (:timeout)"
    if t.kind == "mem_free_mb":
        return "it fails when memory is short: run it alone or on a host with more memory"
    return "it fails after large changes: add a check (tests, a dry run) before it"
