"""The scheduler's tick, driven with explicit times, starting real runs (detached processes)."""

from __future__ import annotations

import threading
import time

import pytest

from sloth_runner.errors import UsageError
from sloth_runner.schedules import ScheduleService
from sloth_runner.store import Store
from sloth_runner.store.schedules import get_schedule, schedule_history
from tests.conftest import poll
from tests.schedules.helpers import (
    BLOCKING,
    MARKER,
    lines,
    release,
    utc,
    wait_lines,
    wait_run_done,
)

T0 = utc(2025, 1, 6, 0, 1)  # a Monday, 00:01 UTC


@pytest.fixture
def service():
    store = Store()
    said: list[str] = []
    yield ScheduleService(store, say=said.append)
    store.close()


def add(service, workflow_file, tmp_path, cron="*/5 * * * *", source=MARKER, **options):
    path = workflow_file(source)
    marker = str(tmp_path / "marker")
    service.add(options.pop("name", "job"), cron, path, params={"marker": marker},
                timezone=options.pop("timezone", "UTC"), now=options.pop("now", T0), **options)
    return marker


def test_tick_starts_a_due_run(service, workflow_file, tmp_path):
    marker = add(service, workflow_file, tmp_path)
    assert get_schedule(service.store, "job")["next_run_at"] == utc(2025, 1, 6, 0, 5)
    assert service.tick(now=utc(2025, 1, 6, 0, 4, 59)) == []  # not due yet
    [row] = service.tick(now=utc(2025, 1, 6, 0, 5, 1))
    assert (row["outcome"], row["source"], row["due_at"]) == (
        "started", "cron", utc(2025, 1, 6, 0, 5))
    assert row["pid"] > 0
    assert wait_lines(marker, 1) == ["ran"]
    done = wait_run_done("job", row["id"])
    assert done["exit_code"] == 0 and done["run_status"] == "success" and done["run_id"]
    s = get_schedule(service.store, "job")
    assert s["next_run_at"] == utc(2025, 1, 6, 0, 10)
    assert s["last_run_id"] == done["run_id"] and s["last_status"] == "success"
    with open(done["log_file"]) as fh:
        assert f"run {done['run_id']}: success" in fh.read()
    assert service.tick(now=utc(2025, 1, 6, 0, 5, 30)) == []  # that due time is done


def test_a_due_time_while_the_last_run_still_runs_is_skipped_and_recorded(
        service, workflow_file, tmp_path):
    gate = str(tmp_path / "release")
    marker = add(service, workflow_file, tmp_path, source=BLOCKING % gate)
    try:
        [first] = service.tick(now=utc(2025, 1, 6, 0, 5, 1))
        assert first["outcome"] == "started"
        wait_lines(marker, 1)  # it runs, and waits for the gate
        [skipped] = service.tick(now=utc(2025, 1, 6, 0, 10, 1))
        assert (skipped["outcome"], skipped["due_at"]) == (
            "skipped_overlap", utc(2025, 1, 6, 0, 10))
        assert "the previous run is still running" in skipped["reason"]
        assert f"pid {first['pid']}" in skipped["reason"]
        with pytest.raises(UsageError, match="still running"):  # run now neither
            service.trigger_now("job")
    finally:
        release(gate)
    wait_run_done("job", first["id"])
    assert service.running("job") is None
    [again] = service.tick(now=utc(2025, 1, 6, 0, 15, 1))
    assert again["outcome"] == "started"
    wait_run_done("job", again["id"])
    assert lines(marker) == ["ran", "ran"]
    history = schedule_history(service.store, "job")
    assert [h["outcome"] for h in history] == ["started", "skipped_overlap", "started"]
    assert history[1]["reason"] == skipped["reason"]


def test_missed_runs_after_downtime_are_skipped_once(service, workflow_file, tmp_path):
    marker = add(service, workflow_file, tmp_path, cron="0 * * * *",
                 now=utc(2025, 1, 6, 0, 30))
    # the scheduler was down from 00:30 to 05:30: 01:00 ... 05:00 passed
    [row] = service.tick(now=utc(2025, 1, 6, 5, 30))
    assert (row["outcome"], row["missed"], row["due_at"]) == (
        "skipped_missed", 5, utc(2025, 1, 6, 1, 0))
    assert "5 runs missed (from 2025-01-06 01:00 UTC to 2025-01-06 05:00 UTC)" in row["reason"]
    assert get_schedule(service.store, "job")["next_run_at"] == utc(2025, 1, 6, 6, 0)
    assert service.tick(now=utc(2025, 1, 6, 5, 31)) == []
    assert lines(marker) == []
    # back on time: the next due time runs
    [ran] = service.tick(now=utc(2025, 1, 6, 6, 0, 3))
    assert ran["outcome"] == "started"
    wait_run_done("job", ran["id"])
    assert lines(marker) == ["ran"]


def test_with_catch_up_exactly_one_run_stands_for_the_missed_ones(service, workflow_file,
                                                                  tmp_path):
    marker = add(service, workflow_file, tmp_path, cron="0 * * * *", catch_up=True,
                 now=utc(2025, 1, 6, 0, 30))
    [row] = service.tick(now=utc(2025, 1, 6, 5, 30))
    assert (row["outcome"], row["source"], row["missed"], row["due_at"]) == (
        "started", "catch_up", 5, utc(2025, 1, 6, 5, 0))
    assert "catching up: 5 runs missed" in row["reason"]
    assert service.tick(now=utc(2025, 1, 6, 5, 45)) == []
    wait_run_done("job", row["id"])
    assert lines(marker) == ["ran"]
    assert [h["outcome"] for h in schedule_history(service.store, "job")] == ["started"]


def test_a_run_picked_up_late_but_within_grace_runs_and_earlier_misses_are_counted(
        service, workflow_file, tmp_path):
    marker = add(service, workflow_file, tmp_path, cron="0 * * * *",
                 now=utc(2025, 1, 6, 0, 30))
    rows = service.tick(now=utc(2025, 1, 6, 3, 0, 20))  # 20 s late for 03:00
    assert [(r["outcome"], r.get("missed")) for r in rows] == [
        ("skipped_missed", 2), ("started", None)]
    assert "2 runs missed (from 2025-01-06 01:00 UTC to 2025-01-06 02:00 UTC)" \
        in rows[0]["reason"]
    wait_run_done("job", rows[1]["id"])
    assert lines(marker) == ["ran"]


def test_a_very_long_downtime_is_counted_without_replaying_it(service, workflow_file,
                                                             tmp_path):
    marker = add(service, workflow_file, tmp_path, cron="* * * * *",
                 now=utc(2025, 1, 1, 0, 0, 30))
    started = time.monotonic()
    missed, ran = service.tick(now=utc(2025, 3, 1, 0, 0, 30))  # two months of minutes
    assert time.monotonic() - started < 5
    assert missed["outcome"] == "skipped_missed" and missed["missed"] >= 9999
    assert f"at least {missed['missed']} runs missed (from 2025-01-01 00:01 UTC to " \
        "2025-02-28 23:59 UTC)" in missed["reason"]  # to the minute before the run's
    assert (ran["outcome"], ran["due_at"]) == ("started", utc(2025, 3, 1, 0, 0))
    assert get_schedule(service.store, "job")["next_run_at"] == utc(2025, 3, 1, 0, 1)
    wait_run_done("job", ran["id"])
    assert lines(marker) == ["ran"]


def test_the_repeated_autumn_hour_starts_a_daily_job_once(service, workflow_file, tmp_path):
    marker = add(service, workflow_file, tmp_path, cron="0 2 * * *", timezone="Europe/Berlin",
                 now=utc(2024, 10, 26, 12, 0))
    first = utc(2024, 10, 27, 0, 0)  # 02:00 +02:00
    assert get_schedule(service.store, "job")["next_run_at"] == first
    [row] = service.tick(now=first + 2)
    assert row["outcome"] == "started"
    # 02:00 +01:00 (an hour later) is the same wall-clock time: no second run
    assert get_schedule(service.store, "job")["next_run_at"] == utc(2024, 10, 28, 1, 0)
    assert service.tick(now=utc(2024, 10, 27, 1, 0, 2)) == []
    wait_run_done("job", row["id"])
    assert lines(marker) == ["ran"]


def test_paused_schedules_have_no_due_times_and_resume_from_now(service, workflow_file,
                                                                tmp_path):
    add(service, workflow_file, tmp_path, cron="0 * * * *", now=utc(2025, 1, 6, 0, 30))
    assert service.pause("job") is False and service.pause("job") is True
    assert service.tick(now=utc(2025, 1, 6, 9, 0, 5)) == []
    assert service.schedules(now=utc(2025, 1, 6, 9, 0, 5))[0]["next_runs"] == []
    assert service.resume("job", now=utc(2025, 1, 6, 9, 0, 5)) is True
    assert get_schedule(service.store, "job")["next_run_at"] == utc(2025, 1, 6, 10, 0)
    assert service.tick(now=utc(2025, 1, 6, 9, 30)) == []  # the paused hours are not missed
    assert schedule_history(service.store, "job") == []


def test_two_schedulers_on_one_home_start_a_due_time_once(service, workflow_file, tmp_path):
    marker = add(service, workflow_file, tmp_path)
    other_store = Store()
    try:
        other = ScheduleService(other_store)
        at = utc(2025, 1, 6, 0, 5, 1)
        rows = service.tick(now=at) + other.tick(now=at)
        assert [r["outcome"] for r in rows] == ["started"]
        wait_run_done("job", rows[0]["id"])
    finally:
        other_store.close()
    assert lines(marker) == ["ran"]


def test_a_file_gone_since_is_recorded_as_failed_to_start(service, workflow_file, tmp_path):
    add(service, workflow_file, tmp_path)
    (tmp_path / "wf.lua").unlink()
    [row] = service.tick(now=utc(2025, 1, 6, 0, 5, 1))
    assert row["outcome"] == "failed_to_start" and "no longer exists" in row["reason"]
    assert get_schedule(service.store, "job")["last_status"] == "failed_to_start"


def test_run_forever_starts_due_runs_and_stops_promptly(service, workflow_file, tmp_path):
    # due a few seconds ago: within grace, so the first tick starts it
    now = time.time()
    marker = add(service, workflow_file, tmp_path, cron="* * * * *", now=now - 61)
    stop = threading.Event()
    thread = threading.Thread(target=service.run_forever, args=(stop,),
                              kwargs={"interval": 30.0})
    thread.start()
    try:
        wait_lines(marker, 1)
    finally:
        stop.set()
        asked = time.monotonic()
        thread.join(5)
    assert not thread.is_alive()
    assert time.monotonic() - asked < 1.0
    [row] = [r for r in schedule_history(service.store, "job") if r["outcome"] == "started"]
    wait_run_done("job", row["id"])


def test_run_forever_survives_a_failing_tick(workflow_file, tmp_path):
    said: list[str] = []

    class Broken(ScheduleService):
        def tick(self, now=None):
            raise RuntimeError("boom")

    store = Store()
    service = Broken(store, say=said.append)
    stop = threading.Event()
    thread = threading.Thread(target=service.run_forever, args=(stop,),
                              kwargs={"interval": 0.05})
    thread.start()
    try:
        assert poll(lambda: len(said) >= 2, 10), said
    finally:
        stop.set()
        thread.join(5)
        store.close()
    assert not thread.is_alive()
    assert said[0] == "internal error: RuntimeError: boom"
