"""Cron schedules of workflow runs (`sloth-runner schedule`, started by the long-running
`sloth-runner server`). The service is plain Python over the store, for the CLI and the
dashboard alike; croniter and zoneinfo are imported only when a schedule is computed."""

from sloth_runner.schedules.cron import (
    check_cron,
    check_timezone,
    format_time,
    local_timezone,
    next_runs,
)
from sloth_runner.schedules.service import ScheduleService, trigger_now

__all__ = ["ScheduleService", "check_cron", "check_timezone", "format_time", "local_timezone",
           "next_runs", "trigger_now"]
