"""Ordered, named schema migrations. Append only: never edit one that has shipped."""

from __future__ import annotations

MIGRATIONS: list[tuple[str, str]] = [
    (
        "001_runs_attempts_state",
        """
        CREATE TABLE runs (
            id          TEXT PRIMARY KEY,
            file        TEXT NOT NULL,
            workflows   TEXT NOT NULL DEFAULT '',
            started_at  REAL NOT NULL,
            ended_at    REAL,
            status      TEXT NOT NULL,
            pid         INTEGER,
            host        TEXT,
            params_json TEXT,
            error       TEXT
        );
        CREATE INDEX runs_started ON runs(started_at);
        CREATE TABLE attempts (
            id           INTEGER PRIMARY KEY,
            run_id       TEXT NOT NULL REFERENCES runs(id),
            workflow     TEXT NOT NULL,
            task         TEXT NOT NULL,
            attempt      INTEGER NOT NULL,
            final        INTEGER NOT NULL,
            status       TEXT NOT NULL,
            started_at   REAL NOT NULL,
            ended_at     REAL NOT NULL,
            duration_s   REAL NOT NULL,
            exit_code    INTEGER,
            message      TEXT,
            error        TEXT,
            host         TEXT,
            outputs_json TEXT,
            cpu_s        REAL,
            max_rss_kb   INTEGER
        );
        CREATE INDEX attempts_run ON attempts(run_id);
        CREATE INDEX attempts_task ON attempts(workflow, task, started_at);
        CREATE TABLE state (
            key        TEXT PRIMARY KEY,
            value_json TEXT NOT NULL,
            updated_at REAL NOT NULL
        );
        """,
    ),
]
