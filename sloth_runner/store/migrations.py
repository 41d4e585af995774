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
    (
        "002_ai_calls_and_cache",
        """
        CREATE TABLE ai_calls (
            id                INTEGER PRIMARY KEY,
            at                REAL NOT NULL,
            day               TEXT NOT NULL,
            run_id            TEXT,
            workflow          TEXT,
            task              TEXT,
            provider          TEXT NOT NULL,
            model             TEXT,
            operation         TEXT NOT NULL,
            attempt           INTEGER NOT NULL,
            status            TEXT NOT NULL,
            prompt_tokens     INTEGER NOT NULL DEFAULT 0,
            completion_tokens INTEGER NOT NULL DEFAULT 0,
            latency_ms        REAL,
            cost_usd          REAL NOT NULL DEFAULT 0,
            cached            INTEGER NOT NULL DEFAULT 0,
            http_status       INTEGER,
            error             TEXT,
            prompt            TEXT,
            response          TEXT
        );
        CREATE INDEX ai_calls_at ON ai_calls(at);
        CREATE INDEX ai_calls_day ON ai_calls(day);
        CREATE INDEX ai_calls_run ON ai_calls(run_id);
        CREATE TABLE ai_cache (
            key           TEXT PRIMARY KEY,
            response_json TEXT NOT NULL,
            created_at    REAL NOT NULL
        );
        """,
    ),
    (
        "003_grants_and_fingerprints",
        """
        ALTER TABLE runs ADD COLUMN grants TEXT;
        CREATE TABLE fingerprints (
            key          TEXT PRIMARY KEY,
            inputs_json  TEXT NOT NULL,
            outputs_json TEXT NOT NULL,
            updated_at   REAL NOT NULL
        );
        """,
    ),
    (
        "004_ai_rate_log",
        """
        CREATE TABLE IF NOT EXISTS ai_rate_log (id INTEGER PRIMARY KEY, bucket TEXT NOT NULL,
          until REAL NOT NULL, tokens INTEGER NOT NULL, settled INTEGER NOT NULL DEFAULT 0);
        CREATE INDEX IF NOT EXISTS ai_rate_log_bucket ON ai_rate_log(bucket, until)
        """,
    ),
    (
        "005_state_expiry",
        """
        ALTER TABLE state ADD COLUMN expires_at REAL;
        CREATE INDEX state_expires ON state(expires_at)
        """,
    ),
    (
        "006_events_and_hooks",
        # events: what happened in runs (and what workflows dispatched), recorded while a hook
        # applies to the run. source is 'run' (the engine), 'lua' (event.dispatch) or
        # 'hook:NAME' (dispatched by a hook: recorded, delivered to no hook, so hooks cannot
        # loop). hooks: registered hook files. hook_runs: every execution of a hook.
        """
        CREATE TABLE events (
            id         INTEGER PRIMARY KEY,
            type       TEXT NOT NULL,
            at         REAL NOT NULL,
            run_id     TEXT,
            workflow   TEXT,
            task       TEXT,
            stack      TEXT,
            source     TEXT NOT NULL DEFAULT 'run',
            data_json  TEXT NOT NULL
        );
        CREATE INDEX events_type_at ON events(type, at);
        CREATE INDEX events_run ON events(run_id, id);
        CREATE TABLE hooks (
            name        TEXT PRIMARY KEY,
            file        TEXT NOT NULL,
            event_types TEXT NOT NULL,
            stack       TEXT,
            description TEXT NOT NULL DEFAULT '',
            timeout_s   REAL NOT NULL DEFAULT 30,
            enabled     INTEGER NOT NULL DEFAULT 1,
            added_at    REAL NOT NULL
        );
        CREATE TABLE hook_runs (
            id          INTEGER PRIMARY KEY,
            hook        TEXT NOT NULL,
            event_id    INTEGER,
            event_type  TEXT,
            run_id      TEXT,
            started_at  REAL NOT NULL,
            duration_s  REAL,
            status      TEXT NOT NULL,
            error       TEXT,
            output      TEXT
        );
        CREATE INDEX hook_runs_hook ON hook_runs(hook, started_at);
        CREATE INDEX hook_runs_event ON hook_runs(event_id)
        """,
    ),
    (
        "007_run_stack",
        """
        ALTER TABLE runs ADD COLUMN stack TEXT
        """,
    ),
    (
        "008_attempt_log",
        """
        ALTER TABLE attempts ADD COLUMN log TEXT
        """,
    ),
    (
        "009_analytics_context",
        """
        ALTER TABLE runs ADD COLUMN git_commit TEXT;
        ALTER TABLE runs ADD COLUMN changed_files INTEGER;
        ALTER TABLE runs ADD COLUMN params_hash TEXT;
        ALTER TABLE attempts ADD COLUMN load_1m REAL;
        ALTER TABLE attempts ADD COLUMN mem_free_mb INTEGER;
        ALTER TABLE attempts ADD COLUMN error_template TEXT;
        ALTER TABLE attempts ADD COLUMN backoff_s REAL
        """,
    ),
    (
        "010_decision_outcomes",
        # What workflows said of ai.decide's answers (ai.record_outcome): the raw score and
        # whether the decision was right, per model and method, to refit its calibration.
        """
        CREATE TABLE decision_outcomes (
            id             INTEGER PRIMARY KEY,
            at             REAL NOT NULL,
            run_id         TEXT,
            provider       TEXT,
            model          TEXT NOT NULL,
            method         TEXT NOT NULL,
            form           TEXT,
            choice         TEXT,
            n_options      INTEGER,
            raw_confidence REAL NOT NULL,
            correct        INTEGER NOT NULL
        );
        CREATE INDEX decision_outcomes_model ON decision_outcomes(model, method, id)
        """,
    ),
    (
        "011_heals",
        """
        CREATE TABLE heals (
            id             INTEGER PRIMARY KEY,
            run_id         TEXT NOT NULL,
            file           TEXT,
            workflow       TEXT NOT NULL,
            task           TEXT NOT NULL,
            round          INTEGER NOT NULL,
            attempt        INTEGER NOT NULL,
            action         TEXT,
            method         TEXT NOT NULL,
            reasoning      TEXT,
            confidence     REAL,
            error          TEXT,
            error_template TEXT,
            action_error   TEXT,
            healed         INTEGER,
            at             REAL NOT NULL
        );
        CREATE INDEX heals_task ON heals(workflow, task, at);
        CREATE INDEX heals_run ON heals(run_id)
        """,
    ),
    (
        "012_predictions",
        # Failure risks predicted before runs (`run --predict`), by run and task: set against
        # the run's final attempts, they show how well the model foresaw what happened.
        """
        CREATE TABLE predictions (
            id               INTEGER PRIMARY KEY,
            run_id           TEXT NOT NULL,
            workflow         TEXT NOT NULL,
            task             TEXT NOT NULL,
            at               REAL NOT NULL,
            probability      REAL,
            method           TEXT NOT NULL,
            n_history        INTEGER NOT NULL,
            top_factors_json TEXT,
            reason           TEXT
        );
        CREATE INDEX predictions_run ON predictions(run_id);
        CREATE INDEX predictions_task ON predictions(workflow, task, at)
        """,
    ),
    (
        "013_schedules",
        # Cron schedules (`sloth-runner schedule`) and what became of each due time: a run
        # started (its process's pid and start time tell whether it still runs, which no two
        # runs of a schedule may overlap), or skipped, and why. workflows, params and
        # values_files are JSON; times are epoch seconds, shown in the schedule's zone.
        """
        CREATE TABLE schedules (
            name         TEXT PRIMARY KEY,
            cron         TEXT NOT NULL,
            timezone     TEXT NOT NULL,
            file         TEXT NOT NULL,
            workflows    TEXT NOT NULL DEFAULT '[]',
            params       TEXT NOT NULL DEFAULT '{}',
            values_files TEXT NOT NULL DEFAULT '[]',
            catch_up     INTEGER NOT NULL DEFAULT 0,
            paused       INTEGER NOT NULL DEFAULT 0,
            created_at   REAL NOT NULL,
            last_run_at  REAL,
            last_run_id  TEXT,
            last_status  TEXT,
            next_run_at  REAL
        );
        CREATE TABLE schedule_runs (
            id         INTEGER PRIMARY KEY,
            schedule   TEXT NOT NULL,
            at         REAL NOT NULL,
            due_at     REAL,
            source     TEXT NOT NULL,
            outcome    TEXT NOT NULL,
            reason     TEXT,
            missed     INTEGER,
            started_at REAL,
            pid        INTEGER,
            pid_start  INTEGER,
            log_file   TEXT,
            run_id     TEXT,
            ended_at   REAL,
            exit_code  INTEGER
        );
        CREATE INDEX schedule_runs_schedule ON schedule_runs(schedule, id);
        CREATE INDEX schedule_runs_open ON schedule_runs(outcome, ended_at)
        """,
    ),
    (
        "014_run_graph",
        # the tasks a run chose and their dependencies (JSON), so the dashboard draws the DAG
        # as it was, whatever the file has become since
        """
        ALTER TABLE runs ADD COLUMN graph_json TEXT
        """,
    ),
    (
        "015_decisions",
        # what each ai.decide answered (the dashboard shows it beside the call that made it)
        """
        CREATE TABLE decisions (
            id             INTEGER PRIMARY KEY,
            at             REAL NOT NULL,
            run_id         TEXT,
            workflow       TEXT,
            task           TEXT,
            provider       TEXT,
            model          TEXT,
            options_json   TEXT,
            answer_json    TEXT,
            confidence     REAL,
            raw_confidence REAL,
            method         TEXT,
            calibration    TEXT,
            fallback       INTEGER NOT NULL DEFAULT 0
        );
        CREATE INDEX decisions_run ON decisions(run_id)
        """,
    ),
    (
        "016_ai_call_priced",
        # 0: the model's price is unknown, so cost_usd (0) says nothing: shown as "unknown"
        """
        ALTER TABLE ai_calls ADD COLUMN priced INTEGER NOT NULL DEFAULT 1
        """,
    ),
    (
        "017_ai_call_replayed",
        # 1: answered from an earlier attempt of the same task in the run (not sent, not paid)
        """
        ALTER TABLE ai_calls ADD COLUMN replayed INTEGER NOT NULL DEFAULT 0
        """,
    ),
    (
        "018_ai_call_fallback",
        # a call answered by a fallback provider: which one it stood in for, and why
        # (e.g. "openai/gpt-4o-mini@10.0.0.5:8000", "HTTP 503"); NULL for the first provider
        """
        ALTER TABLE ai_calls ADD COLUMN fallback_from TEXT;
        ALTER TABLE ai_calls ADD COLUMN fallback_reason TEXT
        """,
    ),
]
