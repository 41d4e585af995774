"""`tune`'s statistics on attempts built here with known answers: timeouts, retries,
max_parallel_tasks, critical path and simulated run time; the host's budget; the safe write."""

from __future__ import annotations

import stat

import pytest

from sloth_runner.analytics import tuning, tuning_schedule
from sloth_runner.analytics.tuning_host import host_resources
from sloth_runner.analytics.tuning_write import write_verified
from sloth_runner.engine.model import Task, Workflow
from sloth_runner.errors import LoadError, SlothError


def noop(ctx):
    return None


def task(name, *deps, timeout=None, retries=0):
    return Task(name, noop, tuple(deps), timeout=timeout, retries=retries,
                location=f"/w/wf.lua:{len(name)}")


def row(task_name, seconds, run, status="success", attempt=1, final=1, rss=0, cpu=0.0,
        workflow="ci", start=0.0):
    return {"run_id": run, "workflow": workflow, "task": task_name, "attempt": attempt,
            "final": final, "status": status, "started_at": start, "ended_at": start + seconds,
            "duration_s": seconds, "exit_code": 0, "error": None, "cpu_s": cpu,
            "max_rss_kb": rss}


HOST = {"cores": 4.0, "memory_kb": 10_000_000, "memory_budget_kb": 8_000_000, "notes": []}


@pytest.mark.parametrize(("value", "friendly", "text"), [
    (0.01, 1, "1s"), (1.0, 1, "1s"), (3.47, 5, "5s"), (20.5, 30, "30s"), (61, 90, "1m30s"),
    (353, 420, "7m"), (4000, 5400, "1h30m"), (90_000, 90_000, "25h")])
def test_friendly_rounding_goes_up_to_the_next_step(value, friendly, text):
    assert tuning.friendly(value) == friendly
    assert tuning.duration_text(tuning.friendly(value)) == text


def test_percentile_interpolates_between_ranks():
    values = [float(v) for v in range(1, 101)]
    assert tuning.percentile(values, 99) == pytest.approx(99.01)
    assert tuning.percentile(values, 50) == pytest.approx(50.5)
    assert tuning.percentile([7.0], 99) == 7.0


def test_timeout_is_p99_times_margin_rounded_up_and_never_below_the_slowest_success():
    durations = [10.0] * 98 + [11.0, 60.0]  # one slow success far above the p99
    rows = [row("t", d, f"r{i}") for i, d in enumerate(durations)]
    advice = tuning.timeout_advice(task("t"), rows, rows, tuning.Settings(), in_worker=True)
    assert advice["evidence"]["percentile_s"] == pytest.approx(11.49)
    assert advice["evidence"]["slowest_s"] == 60.0
    assert advice["recommended_s"] == 60  # 11.49 x 1.5 = 17.2 is below the slowest: 60 -> 1m
    assert advice["action"] == "set" and "note" not in advice
    assert "below the slowest success -> 1m" in advice["reason"]


def test_timeout_needs_enough_successes_and_is_not_lowered_past_timeouts():
    few = [row("t", 2.0, f"r{i}") for i in range(4)]
    advice = tuning.timeout_advice(task("t"), few, few, tuning.Settings(), in_worker=False)
    assert advice["recommended_s"] is None and advice["action"] == "none"
    assert advice["reason"] == ("too few successful attempts (4 of the 5 needed): no "
                                "recommendation")
    ok = [row("t", 2.0, f"r{i}") for i in range(8)]
    timed_out = [row("t", 600.0, "x", status="timeout")]
    slow = task("t", timeout=600.0)
    advice = tuning.timeout_advice(slow, ok, ok + timed_out, tuning.Settings(), in_worker=True)
    assert advice["recommended_s"] == 600.0 and advice["action"] == "keep"
    assert "1 attempt timed out: their true duration is unknown" in advice["reason"]
    advice = tuning.timeout_advice(task("t", timeout=600.0), ok, ok, tuning.Settings(), True)
    assert (advice["recommended_s"], advice["action"]) == (3, "lower")
    loose = tuning.Settings(percentile=50, margin=3, min_successes=8)
    advice = tuning.timeout_advice(task("t"), ok, ok, loose, in_worker=False)
    assert advice["recommended_s"] == 10 and "slowest 2.00s; p50 x 3 = 6.00s" in advice["reason"]
    assert advice["note"].startswith("with a timeout the task runs in a worker process")


def retried(task_name, run, statuses):
    return [row(task_name, 1.0, run, status=s, attempt=i + 1, final=int(i == len(statuses) - 1))
            for i, s in enumerate(statuses)]


def test_retries_are_kept_added_or_dropped_from_what_they_recovered():
    recovering = (retried("f", "a", ["failed", "success"]) + retried("f", "b", ["success"])
                  + retried("f", "c", ["timeout", "failed", "success"]))
    advice = tuning.retry_advice(task("f", retries=2), recovering)
    assert (advice["action"], advice["recommended"]) == ("keep", 2)
    assert advice["reason"] == ("first attempt failed in 2 of 3 runs; a retry recovered 2 of 2 "
                                "(needing up to 2)")
    ran_out = recovering + retried("f", "d", ["failed", "failed", "failed"])
    advice = tuning.retry_advice(task("f", retries=2), ran_out)
    assert (advice["action"], advice["recommended"]) == ("add", 3)
    assert advice["evidence"]["ran_out"] == 1 and advice["evidence"]["wasted_s"] == 2.0
    never = retried("m", "a", ["failed", "failed"]) + retried("m", "b", ["failed", "failed"])
    advice = tuning.retry_advice(task("m", retries=1), never)
    assert (advice["action"], advice["recommended"]) == ("drop", 0)
    assert "retries never recovered it (2 retried, 2.0s spent retrying)" in advice["reason"]
    intermittent = (retried("i", "a", ["failed"]) + retried("i", "b", ["failed"])
                    + [row("i", 1.0, f"ok{n}") for n in range(3)])
    advice = tuning.retry_advice(task("i"), intermittent)
    assert (advice["action"], advice["recommended"]) == ("add", 1)
    broken = retried("b", "a", ["failed"]) + retried("b", "b", ["failed"]) + [row("b", 1, "c")]
    assert tuning.retry_advice(task("b"), broken)["action"] == "keep"  # mostly broken: fix it
    steady = [row("s", 1.0, f"r{n}") for n in range(5)]
    advice = tuning.retry_advice(task("s", retries=3), steady)
    assert (advice["action"], advice["reason"]) == ("keep", "first attempt never failed in 5 runs")


DIAMOND = [("fetch", ()), ("build", ("fetch",)), ("docs", ("fetch",)), ("ship", ("build", "docs"))]


def test_critical_path_and_simulation_follow_the_dag():
    durations = {"fetch": 1.0, "build": 10.0, "docs": 3.0, "ship": 2.0}
    assert tuning_schedule.critical_path(DIAMOND, durations) == (["fetch", "build", "ship"], 13.0)
    assert tuning_schedule.simulate(DIAMOND, durations, None) == {
        "makespan_s": 13.0, "peak": 2, "cpu_peak": 0.0}
    assert tuning_schedule.simulate(DIAMOND, durations, 1)["makespan_s"] == 16.0
    # two tasks asking for 2 cores each on 2 cores share them: each takes twice as long
    shared = tuning_schedule.simulate(DIAMOND, durations, None, {"build": 2.0, "docs": 2.0}, 2.0)
    assert shared["makespan_s"] == pytest.approx(1 + 6 + 7 + 2) and shared["cpu_peak"] == 4.0


def wide(n):
    return [(f"t{i}", ()) for i in range(n)]


def test_max_parallel_is_lowered_for_memory():
    usage = {f"t{i}": {"peak_rss_kb": 3_000_000, "cpu_cores": 0.1} for i in range(6)}
    advice = tuning_schedule.parallelism(wide(6), {f"t{i}": 5.0 for i in range(6)}, usage,
                                         HOST, None)
    assert (advice["action"], advice["recommended"]) == ("lower", 2)  # 2 x 3 GB in 8 GB
    assert advice["evidence"]["memory_limit"] == 2
    assert advice["reason"] == ("6 tasks can run at once, but only 2 of the heaviest fit in "
                                "the host's memory budget together")


def test_max_parallel_is_lowered_for_cores_only_when_it_costs_no_time():
    usage = {f"t{i}": {"peak_rss_kb": 0, "cpu_cores": 1.0} for i in range(8)}
    advice = tuning_schedule.parallelism(wide(8), {f"t{i}": 5.0 for i in range(8)}, usage,
                                         HOST, None)
    assert (advice["action"], advice["recommended"]) == ("lower", 4)
    assert advice["reason"].startswith("at 8 at once the tasks ask for 8.0 cores of 4; 4 at "
                                       "once is within 5% as fast (simulated 10.0s vs 10.0s)")
    light = {f"t{i}": {"peak_rss_kb": 0, "cpu_cores": 0.0} for i in range(8)}
    advice = tuning_schedule.parallelism(wide(8), {f"t{i}": 5.0 for i in range(8)}, light,
                                         HOST, None)
    assert advice["action"] == "keep" and advice["recommended"] is None


def test_max_parallel_is_raised_when_the_limit_holds_the_dag_back():
    usage = {f"t{i}": {"peak_rss_kb": 1_000_000, "cpu_cores": 0.2} for i in range(12)}
    advice = tuning_schedule.parallelism(wide(12), {f"t{i}": 5.0 for i in range(12)}, usage,
                                         HOST, 3)
    assert (advice["action"], advice["recommended"]) == ("raise", 8)  # 8 x 1 GB fit in 8 GB
    assert "12 at once; 8 at once simulates to 10.0s instead of 20.0s" in advice["reason"]


def test_tune_reports_the_critical_path_and_expected_run_time():
    wf = Workflow("ci", tuple(task(n, *deps) for n, deps in DIAMOND), max_parallel=1)
    durations = {"fetch": 1.0, "build": 10.0, "docs": 3.0, "ship": 2.0}
    rows = []
    for run in range(6):
        start = 100.0 * run
        rows += [row("fetch", 1.0, f"r{run}", start=start),
                 row("build", 10.0, f"r{run}", start=start + 1),
                 row("docs", 3.0, f"r{run}", start=start + 11),
                 row("ship", 2.0, f"r{run}", start=start + 14)]
    report = tuning.tune([wf], rows, HOST)
    (doc,) = report["workflows"]
    assert doc["critical_path"] == {"tasks": ["fetch", "build", "ship"], "duration_s": 13.0,
                                    "unknown": []}
    assert doc["max_parallel_tasks"]["action"] == "raise"
    assert doc["expected"] == {"current_s": 16.0, "current_limit": 1, "recommended_s": 13.0,
                               "recommended_limit": 2, "observed_median_s": 16.0,
                               "observed_runs": 6}
    assert report["expected_s"] == 13.0 and report["expected_now_s"] == 16.0
    assert {t["name"]: t["median_s"] for t in doc["tasks"]} == durations


def test_host_budget_reads_meminfo_and_cgroup_limits(tmp_path):
    proc, cgroup = tmp_path / "proc", tmp_path / "cgroup"
    proc.mkdir()
    cgroup.mkdir()
    (proc / "meminfo").write_text("MemTotal:  16000000 kB\nMemFree: 1 kB\nMemAvailable: 9000 kB\n")
    host = host_resources(str(proc), str(cgroup))
    assert (host["memory_kb"], host["memory_available_kb"], host["memory_budget_kb"]) == (
        16_000_000, 9000, 12_800_000)
    (cgroup / "cpu.max").write_text("50000 100000\n")
    (cgroup / "memory.max").write_text(str(4 * 1024 ** 3) + "\n")
    host = host_resources(str(proc), str(cgroup))
    assert host["cores"] == 1.0 and host["memory_kb"] == 4 * 1024 ** 2
    assert host["notes"][-1] == "cgroup memory limit: 4096 MiB"


def test_write_verified_replaces_atomically_and_restores_on_a_failed_check(tmp_path):
    path = tmp_path / "wf.lua"
    path.write_bytes(b"old\r\n")
    path.chmod(0o640)
    write_verified(str(path), b"old\r\n", b"new\r\n", lambda: None)
    assert path.read_bytes() == b"new\r\n" and stat.S_IMODE(path.stat().st_mode) == 0o640
    with pytest.raises(LoadError, match="the tuned file does not load: boom; the original is "
                                        "restored"):
        write_verified(str(path), b"new\r\n", b"bad", lambda: "does not load: boom")
    assert path.read_bytes() == b"new\r\n"

    def interrupted():
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_verified(str(path), b"new\r\n", b"half", interrupted)
    assert path.read_bytes() == b"new\r\n"
    with pytest.raises(SlothError, match="changed while it was being tuned"):
        write_verified(str(path), b"something else", b"x", lambda: None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["wf.lua"]  # no temporary left
