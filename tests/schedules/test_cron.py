"""Run times from cron expressions in named zones, across daylight saving changes."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from sloth_runner.errors import ConfigError
from sloth_runner.schedules import check_cron, check_timezone, local_timezone, next_runs
from tests.schedules.helpers import utc

BERLIN = ZoneInfo("Europe/Berlin")


def berlin(*parts: int) -> float:
    return datetime(*parts, tzinfo=BERLIN).timestamp()


def local(times: list[float], zone: str = "Europe/Berlin") -> list[str]:
    return [datetime.fromtimestamp(t, ZoneInfo(zone)).isoformat() for t in times]


def test_a_daily_time_stays_on_the_wall_clock_across_spring_forward():
    # Berlin went from +01:00 to +02:00 at 02:00 on 2024-03-31: noon is 23 hours after noon
    times = next_runs("0 12 * * *", "Europe/Berlin", berlin(2024, 3, 30, 0, 0), 3)
    assert local(times) == ["2024-03-30T12:00:00+01:00", "2024-03-31T12:00:00+02:00",
                            "2024-04-01T12:00:00+02:00"]
    assert times[1] - times[0] == 23 * 3600 and times[2] - times[1] == 24 * 3600
    assert times[0] == utc(2024, 3, 30, 11, 0) and times[1] == utc(2024, 3, 31, 10, 0)


def test_a_time_in_the_skipped_hour_runs_right_after_the_gap():
    times = next_runs("0 2 * * *", "Europe/Berlin", berlin(2024, 3, 29, 12, 0), 3)
    assert local(times) == ["2024-03-30T02:00:00+01:00", "2024-03-31T03:00:00+02:00",
                            "2024-04-01T02:00:00+02:00"]
    hourly = next_runs("30 * * * *", "Europe/Berlin", berlin(2024, 3, 31, 1, 0), 3)
    assert local(hourly) == ["2024-03-31T01:30:00+01:00", "2024-03-31T03:30:00+02:00",
                             "2024-03-31T04:30:00+02:00"]  # 02:30 did not exist that night


def test_a_repeated_hour_runs_a_daily_job_once_and_an_hourly_job_each_hour():
    # Berlin went back from 03:00 +02:00 to 02:00 +01:00 on 2024-10-27
    daily = next_runs("0 2 * * *", "Europe/Berlin", berlin(2024, 10, 26, 12, 0), 3)
    assert local(daily) == ["2024-10-27T02:00:00+02:00", "2024-10-28T02:00:00+01:00",
                            "2024-10-29T02:00:00+01:00"]
    # asked from inside the repeated hour, the daily job does not come back
    inside = utc(2024, 10, 27, 0, 30)  # 02:30 +02:00, the first pass
    assert local(next_runs("0 2 * * *", "Europe/Berlin", inside, 1)) == [
        "2024-10-28T02:00:00+01:00"]
    hourly = next_runs("30 * * * *", "Europe/Berlin", berlin(2024, 10, 27, 1, 0), 4)
    assert local(hourly) == ["2024-10-27T01:30:00+02:00", "2024-10-27T02:30:00+02:00",
                             "2024-10-27T02:30:00+01:00", "2024-10-27T03:30:00+01:00"]
    assert all(b - a == 3600 for a, b in zip(hourly, hourly[1:], strict=False))


def test_the_same_cron_means_each_zones_own_wall_clock():
    after = utc(2025, 7, 1, 0, 0)
    assert local(next_runs("0 9 * * *", "America/New_York", after, 1), "America/New_York") \
        == ["2025-07-01T09:00:00-04:00"]
    assert next_runs("0 9 * * *", "UTC", after, 1) == [utc(2025, 7, 1, 9, 0)]
    assert next_runs("0 9 * * *", "Asia/Kolkata", after, 1) == [utc(2025, 7, 1, 3, 30)]


@pytest.mark.parametrize("expr, message", [
    ("0 25 * * *", "is not a valid cron expression"),
    ("61 * * * *", "is not a valid cron expression"),
    ("* * * *", "has 4 fields"),
    ("0 2 * * * 2030", "has 6 fields"),
    ("", "empty"),
    ("@often", "not a known alias"),
])
def test_a_bad_cron_names_the_field(expr, message):
    with pytest.raises(ConfigError) as caught:
        check_cron(expr)
    assert caught.value.field == "cron" and message in str(caught.value)
    assert str(caught.value).startswith("cron: ")


@pytest.mark.parametrize("zone", ["Mars/Olympus", "", "../../etc/passwd", "Europe/"])
def test_a_bad_zone_names_the_field(zone):
    with pytest.raises(ConfigError) as caught:
        check_timezone(zone)
    assert caught.value.field == "timezone" and str(caught.value).startswith("timezone: ")


def test_cron_is_normalised_and_aliases_accepted():
    assert check_cron("  0   2 * *  * ") == "0 2 * * *"
    assert check_cron("@DAILY") == "@daily"
    assert check_timezone("Europe/Berlin") == "Europe/Berlin"


def test_the_local_zone_is_a_name(monkeypatch):
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    assert local_timezone() == "Asia/Tokyo"
    monkeypatch.setenv("TZ", ":Europe/Paris")
    assert local_timezone() == "Europe/Paris"
    monkeypatch.setenv("TZ", "Not/AZone")
    assert check_timezone(local_timezone())  # falls back to the system's (or UTC)


def test_a_plain_run_imports_neither_croniter_nor_zoneinfo(workflow_file):
    path = workflow_file('task("t"):command(function() return true end):build()')
    code = ("import sys\nfrom sloth_runner.cli.main import main\n"
            f"rc = main(['run', '-f', {path!r}, '-o', 'json'])\n"
            "print('LOADED', sorted(m for m in ('croniter', 'zoneinfo', 'sloth_runner.schedules',"
            " 'sloth_runner.store.schedules') if m in sys.modules), file=sys.stderr)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "LOADED []" in proc.stderr, proc.stderr
