"""Patterns in execution history, on records built here with known answers."""

import math
import time

import pytest

from sloth_runner.analytics import patterns


def record(task, status, run, duration=1.0, attempt=1, rss=10240, cpu=0.1):
    return {"workflow": "ci", "task": task, "status": status, "run_id": run, "attempt": attempt,
            "final": 1, "duration_s": duration, "max_rss_kb": rss, "cpu_s": cpu,
            "started_at": time.time()}


def test_failure_patterns_and_co_failures():
    data = []
    for run in range(10):
        bad = run % 2 == 0
        data.append(record("db", "failed" if bad else "success", f"r{run}"))
        data.append(record("api", "failed" if bad else "success", f"r{run}"))
        data.append(record("lint", "success", f"r{run}"))
    found = patterns.analyze(data, ["failure_correlation"])
    singles = {p["task"]: p for p in found if "task" in p}
    assert set(singles) == {"ci/db", "ci/api"}
    assert singles["ci/db"]["description"] == "ci/db failed 5 of 10 runs (50%), 0 by timeout"
    assert math.isclose(singles["ci/db"]["confidence"], round(0.5 * 10 / 13, 3))
    (pair,) = [p for p in found if "tasks" in p]
    assert pair["tasks"] == ["ci/api", "ci/db"] and "failed together in 5 runs" in pair["description"]


def test_performance_trend_detected_only_when_real():
    slower = [record("build", "success", f"r{i}", duration=1.0 if i < 5 else 2.0) for i in range(10)]
    (trend,) = patterns.analyze(slower, ["performance_trends"])
    assert trend["description"] == "ci/build got 100% slower (1.00s -> 2.00s median)"
    assert trend["confidence"] == round(1.0 * 10 / 13, 3)
    steady = [record("build", "success", f"r{i}", duration=1.0 + (i % 2) * 0.05) for i in range(10)]
    assert patterns.analyze(steady, ["performance_trends"]) == []


def test_unknown_pattern_type():
    with pytest.raises(ValueError, match="unknown pattern type 'vibes'"):
        patterns.analyze([], ["vibes"])


def test_anomalies_flag_the_outlier_run_and_nothing_else():
    durations = [2.0, 2.1, 1.9, 2.05, 1.95, 2.0, 9.5, 2.1, 2.0, 1.9]
    data = [record("build", "success", f"run{i:02d}", duration=d) for i, d in enumerate(durations)]
    data += [record("lint", "success", f"run{i:02d}", duration=0.5 + 0.1 * (i % 3))
             for i in range(10)]
    data.append(record("lint", "success", "run99", rss=10240 * 40))  # a memory spike
    found = patterns.analyze(data, ["anomalies"])
    assert sorted((p["task"], p["run_id"], p["metric"]) for p in found) == [
        ("ci/build", "run06", "duration_s"), ("ci/lint", "run99", "max_rss_kb")]
    slow = next(p for p in found if p["metric"] == "duration_s")
    assert slow["description"] == "ci/build took 9.50s in run run06, 4.8x its usual 2.00s"
    assert slow["evidence"]["robust_z"] > 3.5 and 0 < slow["confidence"] <= 1
    noisy = [record("t", "success", f"r{i}", duration=1.0 + (i % 5) * 0.2) for i in range(20)]
    assert patterns.analyze(noisy, ["anomalies"]) == []  # ordinary spread is not an anomaly


def test_retry_advice_tells_paying_retries_from_wasted_ones():
    data = []
    for run in range(6):
        # "fetch" fails its first attempt every other run and recovers on the second or third
        if run % 2 == 0:
            data.append(record("fetch", "failed", f"r{run}", attempt=1, duration=0.2))
            if run == 4:
                data.append(record("fetch", "failed", f"r{run}", attempt=2, duration=0.2))
            data.append(record("fetch", "success", f"r{run}", attempt=3 if run == 4 else 2))
        else:
            data.append(record("fetch", "success", f"r{run}"))
        # "migrate" always fails all three attempts: the retries only cost time
        for attempt in (1, 2, 3):
            data.append(record("migrate", "failed", f"r{run}", attempt=attempt, duration=1.5))
    found = {p["task"]: p for p in patterns.analyze(data, ["retry_advice"])}
    assert found["ci/fetch"]["description"] == (
        "ci/fetch: retries recovered 3 of 3 retried failures (needing up to 2 retries)")
    assert found["ci/fetch"]["recommendation"].startswith("keep :retries(2)")
    assert found["ci/migrate"]["description"] == (
        "ci/migrate: retries never recovered it (6 retried failures, 18.0s spent retrying)")
    assert found["ci/migrate"]["recommendation"].startswith("drop its :retries()")
    assert math.isclose(found["ci/migrate"]["confidence"], round(6 / 9, 3))
