"""Read-side queries for the dashboard (`sloth-runner ui`): runs with filters, one run with its
attempts, AI calls and spend. The views call these; they never write SQL themselves.

Everything here reads what the runs wrote, already scrubbed; nothing is written.
"""

from __future__ import annotations

import json
import time

from sloth_runner.store.db import Store

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

PAGE = 50
STATUSES = ("running", "success", "failed", "interrupted")


def runs_page(store: Store, *, status: str | None = None, workflow: str | None = None,
              file: str | None = None, since: float | None = None, host: str | None = None,
              has_ai: bool = False, before: tuple[float, str] | None = None,
              limit: int = PAGE) -> list[dict[str, Any]]:
    """Runs newest first, filtered, each with its tasks counted by final status, the hosts and
    agents its attempts ran on and its AI cost. `before` pages (the last row's started_at)."""
    where: list[str] = ["1 = 1"]
    args: list[Any] = []
    if status:
        where.append("r.status = ?")
        args.append(status)
    if workflow:
        where.append("(',' || r.workflows || ',') LIKE ?")
        args.append(f"%,{workflow},%")
    if file:
        where.append("r.file LIKE ?")
        args.append(f"%{file}%")
    if since is not None:
        where.append("r.started_at >= ?")
        args.append(since)
    if before is not None:  # keyset paging: runs sharing the boundary time are not lost
        where.append("(r.started_at < ? OR (r.started_at = ? AND r.id < ?))")
        args += [before[0], before[0], before[1]]
    if host:
        where.append("(r.host = ? OR EXISTS (SELECT 1 FROM attempts a WHERE a.run_id = r.id "
                     "AND a.host = ?))")
        args += [host, host]
    if has_ai:
        where.append("EXISTS (SELECT 1 FROM ai_calls c WHERE c.run_id = r.id)")
    rows = store.query(f"SELECT r.* FROM runs r WHERE {' AND '.join(where)} "
                       "ORDER BY r.started_at DESC, r.id DESC LIMIT ?", (*args, limit))
    runs = [dict(r) for r in rows]
    ids = [r["id"] for r in runs]
    counts: dict[str, dict[str, int]] = {i: {} for i in ids}
    hosts: dict[str, set[str]] = {i: set() for i in ids}
    cost: dict[str, tuple[float, int]] = {}
    if ids:
        marks = ",".join("?" * len(ids))
        for r in store.query(f"SELECT run_id, status, count(*) AS n FROM attempts WHERE final = 1"
                             f" AND run_id IN ({marks}) GROUP BY run_id, status", tuple(ids)):
            counts[r["run_id"]][r["status"]] = r["n"]
        for r in store.query(f"SELECT DISTINCT run_id, host FROM attempts WHERE run_id IN "
                             f"({marks}) AND host IS NOT NULL", tuple(ids)):
            hosts[r["run_id"]].add(r["host"])
        for r in store.query(f"SELECT run_id, sum(cost_usd) AS cost, count(*) AS n FROM ai_calls"
                             f" WHERE run_id IN ({marks}) GROUP BY run_id", tuple(ids)):
            cost[r["run_id"]] = (r["cost"] or 0.0, r["n"])
    now = time.time()
    for run in runs:
        ended = run["ended_at"]
        run["duration_s"] = (ended or now) - run["started_at"]
        run["tasks"] = counts[run["id"]]
        run["hosts"] = sorted(hosts[run["id"]])
        run["ai_cost"], run["ai_calls"] = cost.get(run["id"], (0.0, 0))
    return runs


def run_detail(store: Store, run_id: str) -> dict[str, Any] | None:
    """A run with all its attempts (in the order they ended), its tasks' final results, its
    params and its AI calls; None if there is no such run."""
    rows = store.query("SELECT * FROM runs WHERE id = ?", (run_id,))
    if not rows:
        return None
    run = dict(rows[0])
    attempts = [dict(a) for a in store.query(
        "SELECT id, workflow, task, attempt, final, status, started_at, ended_at, duration_s,"
        " exit_code, message, error, host, cpu_s, max_rss_kb FROM attempts WHERE run_id = ?"
        " ORDER BY id", (run_id,))]
    run["attempts"] = attempts
    run["tasks"] = [a for a in attempts if a["final"]]
    run["params"] = _json(run.get("params_json")) or {}
    run["graph"] = _json(run.get("graph_json"))
    run["ai_calls"] = ai_calls(store, run_id=run_id)
    run["decisions"] = decisions(store, run_id)
    run["duration_s"] = (run["ended_at"] or time.time()) - run["started_at"]
    return run


def run_started_by(store: Store, pid: int, since: float) -> str | None:
    """The id of the run recorded by process `pid` since `since` on this host (a run the
    dashboard started; an older run of a reused pid is not it)."""
    from sloth_runner.store.runs import HOST

    rows = store.query("SELECT id FROM runs WHERE pid = ? AND started_at >= ? AND host = ?"
                       " ORDER BY started_at DESC LIMIT 1", (pid, since, HOST))
    return str(rows[0][0]) if rows else None


def attempt_detail(store: Store, run_id: str, attempt_id: int) -> dict[str, Any] | None:
    """One attempt with its outputs (stdout/stderr as kept: the end of each, scrubbed; the
    path of the whole output in the run's spool when it was longer) and its log."""
    if not 0 < attempt_id < 2 ** 63:
        return None
    rows = store.query("SELECT * FROM attempts WHERE run_id = ? AND id = ?", (run_id, attempt_id))
    if not rows:
        return None
    attempt = dict(rows[0])
    attempt["outputs"] = _json(attempt.pop("outputs_json", None))
    return attempt


def ai_calls(store: Store, *, run_id: str | None = None, limit: int = 500) -> list[dict[str, Any]]:
    """AI calls, newest first: of one run, or overall."""
    if run_id is not None:
        rows = store.query("SELECT * FROM ai_calls WHERE run_id = ? ORDER BY id DESC LIMIT ?",
                           (run_id, limit))
    else:
        rows = store.query("SELECT * FROM ai_calls ORDER BY id DESC LIMIT ?", (limit,))
    return [dict(r) for r in rows]


def decisions(store: Store, run_id: str) -> list[dict[str, Any]]:
    """What each `ai.decide` of a run answered: options, choice(s), confidence, the method
    behind it and whether it fell back; oldest first."""
    out = []
    for row in store.query("SELECT * FROM decisions WHERE run_id = ? ORDER BY id", (run_id,)):
        d = dict(row)
        d["options"] = _json(d.pop("options_json")) or []
        d["answer"] = _json(d.pop("answer_json")) or {}
        out.append(d)
    return out


def spend(store: Store, days: int = 30) -> dict[str, Any]:
    """AI cost and tokens per day, per model and per workflow over the last `days` days."""
    since = time.strftime("%Y-%m-%d", time.localtime(time.time() - days * 86400))
    per_day = [dict(r) for r in store.query(
        "SELECT day, sum(cost_usd) AS cost, sum(prompt_tokens + completion_tokens) AS tokens,"
        " count(*) AS calls FROM ai_calls WHERE day >= ? GROUP BY day ORDER BY day", (since,))]
    per_model = [dict(r) for r in store.query(
        "SELECT coalesce(model, '?') AS model, sum(cost_usd) AS cost, sum(prompt_tokens +"
        " completion_tokens) AS tokens, count(*) AS calls FROM ai_calls WHERE day >= ?"
        " GROUP BY model ORDER BY cost DESC", (since,))]
    per_workflow = [dict(r) for r in store.query(
        "SELECT coalesce(workflow, '-') AS workflow, sum(cost_usd) AS cost, sum(prompt_tokens +"
        " completion_tokens) AS tokens, count(*) AS calls FROM ai_calls WHERE day >= ?"
        " GROUP BY workflow ORDER BY cost DESC", (since,))]
    return {"since": since, "per_day": per_day, "per_model": per_model,
            "per_workflow": per_workflow}


def filter_choices(store: Store) -> dict[str, list[str]]:
    """What the runs view's filters offer: workflows, hosts and agents seen recently."""
    workflows: set[str] = set()
    for r in store.query("SELECT DISTINCT workflows FROM runs ORDER BY started_at DESC "
                         "LIMIT 500"):
        workflows.update(w for w in (r[0] or "").split(",") if w)
    hosts = [r[0] for r in store.query(
        "SELECT DISTINCT host FROM attempts WHERE host IS NOT NULL AND id > "
        "(SELECT coalesce(max(id), 0) - 20000 FROM attempts) LIMIT 100")]
    return {"workflows": sorted(workflows), "hosts": sorted(hosts), "statuses": list(STATUSES)}


def changes_since(store: Store, mark: tuple[int, float, int]
                  ) -> tuple[tuple[int, float, int], list[str]]:
    """For live pages: the ids of runs that changed since `mark`, and the new mark. The mark
    is (the database's data_version, the newest run start seen, the newest attempt id): while
    no other connection has committed, data_version says so at no cost; after a commit, runs
    started since and runs with new attempts are found by index, and runs still marked running
    are included (one may have ended or been found dead: its page asks again)."""
    version = int(store.query("PRAGMA data_version")[0][0])
    seen_version, newest_run, newest_attempt = mark
    if version == seen_version and seen_version:
        return mark, []
    top = store.query("SELECT coalesce(max(started_at), 0) FROM runs")[0][0]
    last = store.query("SELECT coalesce(max(id), 0) FROM attempts")[0][0]
    if not seen_version:  # the first look: nothing is news yet
        return (version, top, last), []
    changed = {r[0] for r in store.query("SELECT id FROM runs WHERE started_at > ?",
                                         (newest_run,))}
    changed.update(r[0] for r in store.query(
        "SELECT DISTINCT run_id FROM attempts WHERE id > ?", (newest_attempt,)))
    changed.update(r[0] for r in store.query(
        "SELECT id FROM runs WHERE status = 'running' ORDER BY started_at DESC LIMIT 200"))
    return (version, max(newest_run, top), max(newest_attempt, last)), sorted(changed)


def _json(text: Any) -> Any:
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None
