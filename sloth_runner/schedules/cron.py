"""Cron expressions and time zones: checked, and turned into run times (epoch seconds).

Parsing and matching are croniter's (a maintained library: cron has corner cases, such as
day-of-month OR day-of-week, that hand-written parsers get wrong). Times are computed as
aware datetimes in the schedule's own zone (zoneinfo, by name), so "0 2 * * *" in
Europe/Berlin is 02:00 Berlin time in winter and in summer, whatever the machine's zone.

Daylight saving time, as Vixie cron does it: a wall-clock time that does not exist (the hour
skipped in spring) runs at the first time after the gap (croniter's behaviour), and a time that
happens twice (the hour repeated in autumn) runs once, at its first occurrence, unless the
expression runs every hour (then each real hour gets its run).

croniter and zoneinfo are imported on first use: `sloth-runner run` never loads them.
"""

from __future__ import annotations

import os

from sloth_runner.errors import ConfigError

TYPE_CHECKING = False  # typing costs ~5 ms to import; annotations are never evaluated
if TYPE_CHECKING:
    from collections.abc import Iterator
    from datetime import datetime, tzinfo

ALIASES = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
CRON_HELP = ("5 fields (minute hour day-of-month month day-of-week, e.g. \"0 2 * * *\") or "
             + ", ".join(ALIASES))
MISSED_CAP = 10_000  # due times counted one by one after downtime; beyond, "at least"


def check_cron(expr: str) -> str:
    """`expr` normalised (single spaces), or ConfigError("cron") saying what is wrong. Only the
    standard 5 fields: croniter would read a 6th as seconds, which a run-starting scheduler
    cannot honour, and a typo'd extra field must not silently change the meaning."""
    from croniter import CroniterError, croniter

    text = " ".join(str(expr).split())
    if not text:
        raise ConfigError("cron", f"empty; expected {CRON_HELP}")
    fields = text.split(" ")
    if text.startswith("@"):
        text = text.lower()
        if text not in ALIASES:
            raise ConfigError("cron", f"{text!r} is not a known alias; expected {CRON_HELP}")
    elif len(fields) != 5:
        raise ConfigError("cron", f"{text!r} has {len(fields)} fields; expected {CRON_HELP}")
    try:
        croniter(text)
    except (CroniterError, ValueError, KeyError) as exc:
        raise ConfigError("cron", f"{text!r} is not a valid cron expression ({exc}); expected "
                          f"{CRON_HELP}") from None
    return text


def check_timezone(name: str) -> str:
    """`name` if zoneinfo knows it, or ConfigError("timezone")."""
    _zone(name)
    return str(name).strip()


def _zone(name: str) -> tzinfo:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    text = str(name).strip()
    if not text:
        raise ConfigError("timezone", "empty; expected an IANA zone name like Europe/Berlin "
                          "or UTC")
    try:
        return ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ConfigError("timezone", f"unknown time zone {text!r}; expected an IANA zone "
                          "name like Europe/Berlin, America/New_York or UTC") from None


def local_timezone() -> str:
    """This machine's zone, by name (so a schedule keeps meaning the same wall-clock time
    wherever its database goes later): $TZ, else /etc/timezone, else where /etc/localtime
    points; UTC if none of them names a zone zoneinfo knows."""
    candidates = []
    tz = os.environ.get("TZ", "").lstrip(":")
    if tz:
        candidates.append(tz.split("zoneinfo/", 1)[-1])
    try:
        with open("/etc/timezone", encoding="utf-8") as fh:
            candidates.append(fh.read().strip())
    except OSError:
        pass
    try:
        target = os.path.realpath("/etc/localtime")
        if "zoneinfo/" in target:
            candidates.append(target.split("zoneinfo/", 1)[1])
    except OSError:
        pass
    for name in candidates:
        try:
            return check_timezone(name)
        except ConfigError:
            continue
    return "UTC"


def _times(cron: str, timezone: str, after: float, backwards: bool = False
           ) -> Iterator[datetime]:
    """The run times strictly after `after` (or before it, backwards), nearest first."""
    from datetime import datetime

    from croniter import CroniterBadDateError, croniter

    zone = _zone(timezone)
    it = croniter(cron, datetime.fromtimestamp(after, zone))
    every_hour = it.expanded[1] == ["*"]
    step = it.get_prev if backwards else it.get_next
    while True:
        try:
            when = step(datetime)
        except CroniterBadDateError:
            raise ConfigError("cron", f"{cron!r} matches no date (like the 31st of February)"
                              ) from None
        if every_hour or not _repeated(when, zone):
            yield when


def _repeated(when: datetime, zone: tzinfo) -> bool:
    """Whether `when` is the second occurrence of its wall-clock time (autumn's repeated
    hour)."""
    wall = when.replace(tzinfo=None)
    first = wall.replace(tzinfo=zone, fold=0).utcoffset()
    second = wall.replace(tzinfo=zone, fold=1).utcoffset()
    return first != second and when.utcoffset() == second


def next_runs(cron: str, timezone: str, after: float, count: int = 1) -> list[float]:
    """The next `count` run times strictly after `after`, as epoch seconds."""
    out: list[float] = []
    if count <= 0:
        return out
    for when in _times(cron, timezone, after):
        out.append(when.timestamp())
        if len(out) >= count:
            return out
    return out


def next_run(cron: str, timezone: str, after: float) -> float:
    return next_runs(cron, timezone, after, 1)[0]


class Due:
    """The run times from a schedule's pending time `first` up to now: how many (`count`,
    at least MISSED_CAP when `capped`), the first, the one before the last, the last, and the
    next one after now."""

    __slots__ = ("count", "first", "before_last", "last", "following", "capped")

    def __init__(self, count: int, first: float, before_last: float | None, last: float,
                 following: float, capped: bool) -> None:
        self.count = count
        self.first = first
        self.before_last = before_last
        self.last = last
        self.following = following
        self.capped = capped


def due_between(cron: str, timezone: str, first: float, now: float) -> Due:
    """What is due at `now` for a schedule whose next pending time is `first` (<= now)."""
    count, before_last, last = 1, None, first
    following = None
    for when in _times(cron, timezone, first):
        t = when.timestamp()
        if t > now:
            following = t
            break
        count, before_last, last = count + 1, last, t
        if count >= MISSED_CAP:
            break
    if following is None:  # capped after a long downtime: jump to now
        [last_dt, before_dt] = _take(_times(cron, timezone, now + 1e-3, backwards=True), 2)
        last, before_last = last_dt.timestamp(), before_dt.timestamp()
        following = next_run(cron, timezone, now)
        return Due(count, first, before_last, last, following, True)
    return Due(count, first, before_last, last, following, False)


def _take(it: Iterator[datetime], n: int) -> list[datetime]:
    return [next(it) for _ in range(n)]


def format_time(t: float | None, timezone: str, iso: bool = False) -> str:
    """`t` as the schedule's wall-clock time: "2026-12-02 02:00 CET" (or ISO 8601 with its
    offset, for JSON); "-" for none."""
    if t is None:
        return "-"
    from datetime import datetime

    when = datetime.fromtimestamp(t, _zone(timezone))
    if iso:
        return when.isoformat()
    return when.strftime("%Y-%m-%d %H:%M:%S %Z" if when.second else "%Y-%m-%d %H:%M %Z")
