"""AI call log, response cache, the shared rate-limit log, and the usage queries behind
`ai.get_usage_stats` and the CLI."""

from __future__ import annotations

import json
import time

from sloth_runner.store.db import Store

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any


def today() -> str:
    return time.strftime("%Y-%m-%d", time.localtime())


class AIUsageStore:
    def __init__(self, store: Store) -> None:
        self.store = store

    def record(self, call: dict[str, Any]) -> None:
        """One attempt of one call (failed attempts too: they may have cost tokens)."""
        now = call.get("at", time.time())
        with self.store.transaction() as c:
            c.execute(
                "INSERT INTO ai_calls (at, day, run_id, workflow, task, provider, model, operation,"
                " attempt, status, prompt_tokens, completion_tokens, latency_ms, cost_usd, cached,"
                " http_status, error, prompt, response, priced, replayed, fallback_from,"
                " fallback_reason) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (now, time.strftime("%Y-%m-%d", time.localtime(now)), call.get("run_id"),
                 call.get("workflow"), call.get("task"), call["provider"], call.get("model"),
                 call["operation"], call.get("attempt", 1), call["status"],
                 call.get("prompt_tokens", 0), call.get("completion_tokens", 0),
                 call.get("latency_ms"), call.get("cost_usd") or 0.0, int(call.get("cached", False)),
                 call.get("http_status"), call.get("error"), call.get("prompt"),
                 call.get("response"), int(call.get("priced", True)),
                 int(call.get("replayed", False)), call.get("fallback_from"),
                 call.get("fallback_reason")))

    def record_decision(self, decision: dict[str, Any]) -> None:
        """What one ai.decide answered: its options, choice(s), confidence and how."""
        with self.store.transaction() as c:
            c.execute(
                "INSERT INTO decisions (at, run_id, workflow, task, provider, model,"
                " options_json, answer_json, confidence, raw_confidence, method, calibration,"
                " fallback) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (decision.get("at", time.time()), decision.get("run_id"),
                 decision.get("workflow"), decision.get("task"), decision.get("provider"),
                 decision.get("model"), json.dumps(decision.get("options"), default=str),
                 json.dumps(decision.get("answer"), default=str), decision.get("confidence"),
                 decision.get("raw_confidence"), decision.get("method"),
                 decision.get("calibration"), int(bool(decision.get("fallback")))))

    def answers_of(self, run_id: str) -> list[dict[str, Any]]:
        """A run's answered calls with what was asked and answered (scrubbed; logged when
        log_prompts was on), in order: what `run --replay` answers from."""
        rows = self.store.query(
            "SELECT workflow, task, operation, prompt, response, model, provider, prompt_tokens,"
            " completion_tokens FROM ai_calls WHERE run_id = ? AND status = 'ok' AND"
            " response IS NOT NULL AND prompt IS NOT NULL ORDER BY id", (run_id,))
        return [dict(r) for r in rows]

    def cached(self, key: str) -> dict[str, Any] | None:
        rows = self.store.query("SELECT response_json FROM ai_cache WHERE key = ?", (key,))
        return json.loads(rows[0][0]) if rows else None

    def remember(self, key: str, response: dict[str, Any]) -> None:
        with self.store.transaction() as c:
            c.execute("INSERT OR REPLACE INTO ai_cache VALUES (?, ?, ?)",
                      (key, json.dumps(response), time.time()))

    def spent(self, *, day: str | None = None, run_id: str | None = None) -> float:
        if run_id is not None:
            rows = self.store.query("SELECT coalesce(sum(cost_usd), 0) FROM ai_calls "
                                    "WHERE run_id = ?", (run_id,))
        else:
            rows = self.store.query("SELECT coalesce(sum(cost_usd), 0) FROM ai_calls "
                                    "WHERE day = ?", (day or today(),))
        return float(rows[0][0])

    def stats(self, since: float | None = None) -> dict[str, Any]:
        """Totals for today (the seed's shape) plus breakdowns for the period since `since`."""
        day = today()
        row = self.store.query(
            "SELECT count(*), coalesce(sum(prompt_tokens + completion_tokens), 0),"
            " coalesce(sum(cost_usd), 0) FROM ai_calls WHERE day = ? AND status = 'ok'", (day,))[0]
        period = "at >= ?" if since is not None else "day = ?"
        arg: Any = since if since is not None else day
        by_model = {r["model"] or "?": {"calls": r["calls"], "tokens": r["tokens"],
                                        "cost": round(r["cost"], 6), "cached": r["cached"]}
                    for r in self.store.query(
                        "SELECT model, count(*) AS calls, sum(prompt_tokens + completion_tokens)"
                        " AS tokens, sum(cost_usd) AS cost, sum(cached) AS cached FROM ai_calls"
                        f" WHERE {period} AND status = 'ok' GROUP BY model", (arg,))}
        by_workflow = {r["workflow"] or "(none)": {"calls": r["calls"], "tokens": r["tokens"],
                                                   "cost": round(r["cost"], 6)}
                       for r in self.store.query(
                           "SELECT workflow, count(*) AS calls, sum(prompt_tokens +"
                           " completion_tokens) AS tokens, sum(cost_usd) AS cost FROM ai_calls"
                           f" WHERE {period} AND status = 'ok' GROUP BY workflow", (arg,))}
        failed = self.store.query(f"SELECT count(*) FROM ai_calls WHERE {period} AND "
                                  "status != 'ok'", (arg,))[0][0]
        return {"tokens_today": row[1], "calls_today": row[0],
                "estimated_cost": round(row[2], 6), "failed_attempts": failed,
                "by_model": by_model, "by_workflow": by_workflow}

    def logs(self, limit: int = 20) -> list[dict[str, Any]]:
        rows = self.store.query("SELECT * FROM ai_calls ORDER BY id DESC LIMIT ?", (limit,))
        return [dict(r) for r in rows]


class RateEntry:
    """A row of the rate log, with the fields of ai/ratelimit.Entry (the store does not import
    the AI package: it sits below it)."""

    __slots__ = ("id", "until", "tokens", "settled")

    def __init__(self, id: int, until: float, tokens: int, settled: bool) -> None:
        self.id, self.until, self.tokens, self.settled = id, until, tokens, settled


class SQLiteRateLog:
    """The rate-limit log in the home's database, shared by every process using it. `admit`
    is one write transaction (BEGIN IMMEDIATE: processes take turns), so two processes can
    never both take the last slot; `settle` is another. Expired entries are deleted as it goes.
    Times are wall-clock (time.time()), the one clock processes share."""

    def __init__(self, store: Store) -> None:
        self.store = store  # its table comes from migration 004_ai_rate_log

    def admit(self, bucket: str, clock: Callable[[], float], fits: Callable[[int, int], bool],
              lease: float, tokens: int) -> tuple[int | None, float, list[RateEntry]]:
        """As MemoryLog.admit, in one write transaction."""
        with self.store.transaction() as c:
            now = clock()  # read once the write lock is held, not before waiting for it
            c.execute("DELETE FROM ai_rate_log WHERE bucket = ? AND until <= ?", (bucket, now))
            count, used = c.execute("SELECT count(*), coalesce(sum(tokens), 0) FROM ai_rate_log"
                                    " WHERE bucket = ?", (bucket,)).fetchone()
            if not fits(count, used):
                return None, now, [RateEntry(r[0], r[1], r[2], bool(r[3])) for r in c.execute(
                    "SELECT id, until, tokens, settled FROM ai_rate_log WHERE bucket = ?"
                    " ORDER BY until", (bucket,))]
            cur = c.execute("INSERT INTO ai_rate_log (bucket, until, tokens) VALUES (?, ?, ?)",
                            (bucket, now + lease, tokens))
            return cur.lastrowid, now, []

    def settle(self, bucket: str, entry_id: int, clock: Callable[[], float], window: float,
               tokens: int) -> None:
        with self.store.transaction() as c:
            c.execute("UPDATE ai_rate_log SET until = ?, tokens = ?, settled = 1"
                      " WHERE id = ? AND bucket = ?", (clock() + window, tokens, entry_id, bucket))
