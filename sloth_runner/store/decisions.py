"""Outcomes of `ai.decide` decisions, as workflows record them (`ai.record_outcome`).

One row per recorded outcome: the model and method that produced the decision's raw
confidence, that raw confidence, how many options it was chosen from, and whether the decision
turned out right. The calibration
of that model and method is refitted from these rows (ai/calibration.py); nothing here knows
how.
"""

from __future__ import annotations

import time

from sloth_runner.store.db import Store


class DecisionOutcomes:
    def __init__(self, store: Store) -> None:
        self.store = store

    def record(self, *, model: str, method: str, raw_confidence: float, correct: bool,
               n_options: int | None = None, provider: str | None = None,
               form: str | None = None, choice: str | None = None,
               run_id: str | None = None) -> int:
        """Store one outcome; returns how many are now recorded for (model, method)."""
        with self.store.transaction() as c:
            c.execute("INSERT INTO decision_outcomes (at, run_id, provider, model, method, form,"
                      " choice, n_options, raw_confidence, correct)"
                      " VALUES (?,?,?,?,?,?,?,?,?,?)",
                      (time.time(), run_id, provider, model, method, form, choice, n_options,
                       float(raw_confidence), int(bool(correct))))
            row = c.execute("SELECT count(*) FROM decision_outcomes WHERE model = ? AND "
                            "method = ?", (model, method)).fetchone()
        return int(row[0])

    def count(self, model: str, method: str) -> int:
        rows = self.store.query("SELECT count(*) FROM decision_outcomes WHERE model = ? AND "
                                "method = ?", (model, method))
        return int(rows[0][0])

    def recent(self, model: str, method: str, limit: int
               ) -> list[tuple[float, bool, int | None]]:
        """(raw confidence, correct, number of options) of the newest `limit` outcomes for
        (model, method)."""
        rows = self.store.query("SELECT raw_confidence, correct, n_options FROM "
                                "decision_outcomes WHERE model = ? AND method = ? "
                                "ORDER BY id DESC LIMIT ?", (model, method, limit))
        return [(float(r[0]), bool(r[1]), r[2]) for r in rows]
