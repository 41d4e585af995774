import json
import os
import sqlite3
import subprocess
import sys
import threading
import time

import pytest

from sloth_runner import paths
from sloth_runner.engine.model import AttemptRecord
from sloth_runner.store import Store, queries
from sloth_runner.store.migrations import MIGRATIONS
from sloth_runner.store.runs import RunRecorder, new_run_id, recover_interrupted
from sloth_runner.store.state import StateStore


def test_migrations_apply_in_order_from_an_empty_database_and_only_once(tmp_path):
    db = tmp_path / "x.db"
    s = Store(db)
    assert s.applied_migrations() == [name for name, _ in MIGRATIONS]
    s.close()
    s = Store(db)  # idempotent
    assert s.applied_migrations() == [name for name, _ in MIGRATIONS]
    tables = {r[0] for r in s.query("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"runs", "attempts", "state", "migrations"} <= tables
    assert s.query("PRAGMA journal_mode")[0][0] == "wal"


def test_state_keeps_types():
    st = StateStore(Store())
    values = {"i": 3, "f": 2.5, "s": "x", "b": True, "t": {"a": [1, 2, {"b": None}]}}
    for k, v in values.items():
        st.set(k, v)
    for k, v in values.items():
        got = st.get(k)
        assert got == v and type(got) is type(v)
    assert st.keys() == sorted(values)
    assert st.keys("t") == ["t"]
    assert st.delete("i") and st.get("i") is None and not st.delete("i")


def test_increment_is_atomic_across_processes(tmp_path):
    code = ("from sloth_runner.store import Store\n"
            "from sloth_runner.store.state import StateStore\n"
            "s = StateStore(Store())\n"
            "for _ in range(50): s.increment('n')\n")
    procs = [subprocess.Popen([sys.executable, "-c", code]) for _ in range(4)]
    assert all(p.wait(60) == 0 for p in procs)
    assert StateStore(Store()).get("n") == 200


def test_like_wildcards_in_prefix_are_literal():
    st = StateStore(Store())
    st.set("a_b", 1)
    st.set("axb", 2)
    assert st.keys("a_") == ["a_b"]


def _record(rec, task, status="success", attempt=1, final=True):
    now = time.time()
    rec.attempt_finished(AttemptRecord("w", task, attempt, status, now, now + 0.5,
                                       outputs={"k": 1}, cpu_s=0.1, max_rss_kb=1234, final=final))


def test_recorder_writes_runs_and_attempts():
    store = Store()
    rec = RunRecorder(store, new_run_id(), "f.lua", {"p": "1"})
    _record(rec, "a", "failed", 1, final=False)
    _record(rec, "a", "success", 2)
    rec.finish("success", ["w"])
    runs = queries.recent_runs(store)
    assert runs[0]["run_id"] == rec.run_id and runs[0]["status"] == "success"
    assert runs[0]["tasks"] == {"success": 1}
    rows = queries.run_attempts(store, rec.run_id)
    assert [(r["attempt"], r["status"], r["final"]) for r in rows] == [(1, "failed", 0),
                                                                        (2, "success", 1)]
    assert json.loads(rows[1]["outputs_json"]) == {"k": 1}
    assert rows[1]["max_rss_kb"] == 1234 and rows[1]["host"]
    assert not os.path.exists(paths.lock_file(rec.run_id))


def test_a_live_run_is_not_marked_interrupted_but_a_dead_one_is():
    store = Store()
    live = RunRecorder(store, new_run_id(), "f.lua", {})
    assert recover_interrupted(store) == []
    # a run whose process died: its row says running, nobody holds its lock
    code = ("import os\nfrom sloth_runner.store import Store\n"
            "from sloth_runner.store.runs import RunRecorder, new_run_id\n"
            "r = RunRecorder(Store(), new_run_id(), 'dead.lua', {})\nprint(r.run_id, flush=True)\n"
            "os._exit(0)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=dict(os.environ), check=True)
    dead_id = out.stdout.strip()
    assert recover_interrupted(store) == [dead_id]
    statuses = {r["run_id"]: r["status"] for r in queries.recent_runs(store)}
    assert statuses[dead_id] == "interrupted" and statuses[live.run_id] == "running"
    live.finish("success", [])


def test_unreadable_database_is_a_store_error(tmp_path):
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"this is not sqlite" * 100)
    try:
        Store(bad)
    except Exception as exc:
        from sloth_runner.errors import StoreError

        assert isinstance(exc, StoreError) and "bad.db" in str(exc)
        assert isinstance(exc.__cause__, sqlite3.Error)
    else:
        raise AssertionError("expected StoreError")


def test_concurrent_first_opens_migrate_once(tmp_path):
    db = tmp_path / "fresh.db"
    code = f"from sloth_runner.store import Store\nStore({str(db)!r})\n"
    procs = [subprocess.Popen([sys.executable, "-c", code]) for _ in range(6)]
    assert all(p.wait(60) == 0 for p in procs)
    assert Store(db).applied_migrations() == [name for name, _ in MIGRATIONS]


def test_open_waits_for_a_writer_instead_of_failing_at_once(tmp_path):
    # Switching a database to WAL while another connection holds a write lock returns
    # SQLITE_BUSY at once, without SQLite's busy timeout: the race CI hit when several
    # processes opened one new database together. The store must wait its turn.
    db = tmp_path / "rollback.db"
    writer = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    writer.execute("CREATE TABLE unrelated (x)")
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("INSERT INTO unrelated VALUES (1)")
    raw = sqlite3.connect(db, isolation_level=None, timeout=5)
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        raw.execute("PRAGMA journal_mode=WAL")  # the failure being guarded against
    raw.close()
    releaser = threading.Timer(0.3, lambda: writer.execute("COMMIT"))
    releaser.start()
    store = Store(db)
    releaser.join()
    assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.applied_migrations() == [name for name, _ in MIGRATIONS]
    writer.close()
