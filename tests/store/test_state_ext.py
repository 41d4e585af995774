"""State beyond get/set: expiry, compare-and-swap, and the named lock across processes."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from sloth_runner import paths
from sloth_runner.store import Store
from sloth_runner.store.state import LockTimeout, NamedLock, StateStore
from tests.conftest import cli


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_a_key_with_a_ttl_is_absent_everywhere_once_it_expires():
    clock = Clock()
    st = StateStore(Store(), clock=clock)
    st.set("session", {"token": "abc"}, ttl=60)
    st.set("forever", 1)
    assert st.get("session") == {"token": "abc"} and st.exists("session")
    assert st.ttl("session") == 60 and st.ttl("forever") == -1 and st.ttl("nothing") == -2
    clock.now += 60
    assert st.get("session") is None and st.get("session", "dflt") == "dflt"
    assert not st.exists("session") and st.ttl("session") == -2
    assert st.keys() == ["forever"] and st.items() == [("forever", 1)]
    assert st.delete("session") is False  # nothing to delete: it had expired
    st.set("session", "again")  # a plain set makes a key permanent
    clock.now += 10_000
    assert st.get("session") == "again"


def test_expired_rows_are_removed_by_the_next_write():
    clock = Clock()
    store = Store()
    st = StateStore(store, clock=clock)
    st.set("a", 1, ttl=1)
    clock.now += 2
    st.set("b", 2)
    assert [r[0] for r in store.query("SELECT key FROM state")] == ["b"]


def test_increment_keeps_a_live_ttl_and_restarts_an_expired_key():
    clock = Clock()
    st = StateStore(Store(), clock=clock)
    st.set("hits", 5, ttl=30)
    assert st.increment("hits") == 6 and st.ttl("hits") == 30
    clock.now += 31
    assert st.increment("hits", 2) == 2 and st.ttl("hits") == -1


def test_expire_gives_or_removes_a_ttl():
    clock = Clock()
    st = StateStore(Store(), clock=clock)
    assert st.expire("nothing", 5) is False
    st.set("k", "v")
    assert st.expire("k", 5) is True and st.ttl("k") == 5
    assert st.expire("k", None) is True and st.ttl("k") == -1
    with pytest.raises(ValueError, match="TTL"):
        st.set("k", "v", ttl=0)


def test_compare_swap_replaces_only_the_expected_value():
    st = StateStore(Store())
    assert st.compare_swap("v", None, 1) is True  # None: only if absent
    assert st.compare_swap("v", None, 2) is False
    assert st.compare_swap("v", 2, 3) is False and st.get("v") == 1
    assert st.compare_swap("v", 1.0, 2) is True and st.get("v") == 2  # numbers by value
    assert st.compare_swap("v", True, 3) is False  # true is not 1
    st.set("cfg", {"a": [1, 2], "b": "x"})
    assert st.compare_swap("cfg", {"b": "x", "a": [1, 2]}, {"a": []}) is True
    assert st.get("cfg") == {"a": []}
    assert st.compare_swap("cfg", {"a": []}, None) is True and not st.exists("cfg")


def test_compare_swap_is_atomic_across_processes():
    code = ("from sloth_runner.store import Store\n"
            "from sloth_runner.store.state import StateStore\n"
            "s = StateStore(Store())\n"
            "done = 0\n"
            "while done < 40:\n"
            "    seen = s.get('n', 0)\n"
            "    if s.compare_swap('n', seen if seen else None, seen + 1): done += 1\n")
    procs = [subprocess.Popen([sys.executable, "-c", code]) for _ in range(4)]
    assert all(p.wait(120) == 0 for p in procs)
    assert StateStore(Store()).get("n") == 160


def test_the_named_lock_serialises_read_modify_write_across_processes():
    code = ("import json, os\n"
            "from sloth_runner.store.state import NamedLock\n"
            "path = os.path.join(os.environ['SLOTH_RUNNER_HOME'], 'counter')\n"
            "for _ in range(25):\n"
            "    lock = NamedLock('counter lock/1')\n"
            "    lock.acquire(timeout=60)\n"
            "    try:\n"
            "        n = json.load(open(path)) if os.path.exists(path) else 0\n"
            "        with open(path + '.tmp', 'w') as fh: json.dump(n + 1, fh)\n"
            "        os.replace(path + '.tmp', path)\n"
            "    finally:\n"
            "        lock.release()\n")
    procs = [subprocess.Popen([sys.executable, "-c", code]) for _ in range(4)]
    assert all(p.wait(120) == 0 for p in procs)
    with open(os.path.join(paths.home(), "counter")) as fh:
        assert json.load(fh) == 100


def test_a_lock_whose_holder_dies_is_free_at_once():
    code = ("import sys, time\n"
            "from sloth_runner.store.state import NamedLock\n"
            "lock = NamedLock('deploy')\n"
            "lock.acquire()\n"
            "print('held', flush=True)\n"
            "sys.stdin.read()\n")  # holds until killed
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                              stdin=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        lock = NamedLock("deploy")
        with pytest.raises(LockTimeout, match="lock 'deploy' is held elsewhere"):
            lock.acquire(timeout=0.05)
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(10)
        started = time.monotonic()
        lock.acquire(timeout=5)
        assert lock.held and time.monotonic() - started < 1
        lock.release()
        assert not lock.held
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()
        holder.stdin.close()


def test_two_holders_in_one_process_exclude_each_other_and_stop_waiting_on_request():
    first, second = NamedLock("x"), NamedLock("x")
    first.acquire()
    with pytest.raises(LockTimeout):
        second.acquire(stopped=lambda: True)
    with pytest.raises(LockTimeout):
        second.acquire(deadline=time.monotonic() + 0.05)
    first.release()
    second.acquire(timeout=1)
    second.release()


def test_lock_names_become_safe_file_names():
    odd = NamedLock("../../etc/passwd")
    assert os.path.dirname(odd.path) == os.path.join(paths.home(), "locks", "state")
    assert "/" not in os.path.basename(odd.path)
    long_a, long_b = NamedLock("a" * 300 + "1"), NamedLock("a" * 300 + "2")
    assert long_a.path != long_b.path and len(os.path.basename(long_a.path)) < 255


def test_the_state_cli_does_not_show_expired_keys():
    st = StateStore(Store())
    st.set("live", "yes", ttl=3600)
    st.set("stale", "old", ttl=3600)
    with sqlite3.connect(paths.db_path()) as conn:  # expire it without waiting for it
        conn.execute("UPDATE state SET expires_at = ? WHERE key = 'stale'", (time.time() - 1,))
    listed = cli("state", "list")
    assert listed.returncode == 0 and "live" in listed.stdout and "stale" not in listed.stdout
    got = cli("state", "get", "stale")
    assert got.returncode == 3 and "no state key 'stale'" in got.stderr
    assert cli("state", "get", "live").stdout.strip() == "yes"


def test_state_expiry_migration_adds_the_column_and_its_index(tmp_path):
    store = Store(tmp_path / "fresh.db")
    columns = {r[1] for r in store.query("PRAGMA table_info(state)")}
    indexes = {r[1] for r in store.query("PRAGMA index_list(state)")}
    assert "expires_at" in columns and "state_expires" in indexes
    store.close()
