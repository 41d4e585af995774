"""The schedule service: add, list, pause, resume, remove, run now, and the `tick` that starts
what is due (called by `run_forever` in the long-running server process).

Rules a schedule keeps, and why:
- **Never overlapping itself.** A nightly job that still runs at the next night's time is
  usually stuck or slow for a reason; a second copy on top of it makes things worse (two
  deploys, two backups writing one file). The due time is skipped and recorded with the
  running run's id, so the history says why there was no run.
- **Downtime.** When the scheduler was not running, the times that passed are *missed*: one
  `skipped_missed` record says how many and from when to when (a week of a job every minute is
  one row, not 10,080), or, for a schedule made with `catch_up`, exactly one run is started
  for all of them (a backup wants one fresh run, not seven in a row). A due time picked up
  within `grace` seconds is on time, not missed: ticks come every few seconds.
- **Each due time is handled once**, even with two schedulers on one home (a `ui` and a
  `server`): the move to the next time is a compare-and-set in the transaction that records
  what was done (store/schedules.claim).
- A paused schedule has no due times; resuming starts from now (a pause is not downtime).
"""

from __future__ import annotations

import os
import re
import sys
import threading
import time

from sloth_runner.errors import ConfigError, ExecError, SlothError, UsageError
from sloth_runner.schedules import cron, launch
from sloth_runner.store import schedules as stored

TYPE_CHECKING = False  # typing costs ~5 ms to import; annotations are never evaluated
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping
    from datetime import datetime
    from typing import Any

    from sloth_runner.store import Store

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
DEFAULT_INTERVAL = 5.0  # seconds between ticks of run_forever, at most
DEFAULT_GRACE = 60.0  # a due time picked up this late is on time, not missed
DEFAULT_WAIT = 10.0  # trigger_now: how long to wait for the run to record its id
SPAWNING_S = 60.0  # a start recorded without a pid this long ago was never spawned


def _epoch(now: float | datetime | None) -> float:
    if now is None:
        return time.time()
    if isinstance(now, int | float):
        return float(now)
    if now.tzinfo is None:
        raise UsageError("tick(now=...) needs an aware datetime (with a zone) or epoch seconds")
    return now.timestamp()


def _stderr(message: str) -> None:
    sys.stderr.write(f"sloth-runner schedules: {message}\n")
    sys.stderr.flush()


class ScheduleService:
    """Schedules of one home's store. Thread-safe: the server's `run_forever` thread and the
    dashboard's request threads may share one."""

    def __init__(self, store: Store | None = None, *, grace: float = DEFAULT_GRACE,
                 say: Callable[[str], None] | None = None) -> None:
        self._store = store
        self.grace = grace
        self._say = say or _stderr
        # one decision at a time in this process: "not running, so start" must not race
        self._lock = threading.RLock()
        self._ended: dict[int, threading.Event] = {}  # start row id -> set when its process ends

    @property
    def store(self) -> Store:
        if self._store is None:
            from sloth_runner.store import Store

            self._store = Store()
        return self._store

    # -- managing schedules -------------------------------------------------------------------
    def add(self, name: str, cron_expr: str, file: str, workflows: Iterable[str] = (),
            params: Mapping[str, str] | None = None, values: Iterable[str] = (),
            timezone: str | None = None, catch_up: bool = False, replace: bool = False,
            now: float | datetime | None = None) -> dict[str, Any]:
        """Check and store a schedule; its stored form (with `next_runs`). UsageError for a bad
        name or an existing one (without `replace`); ConfigError naming the field for a bad
        cron, zone, file or values file."""
        check_name(name)
        expr = cron.check_cron(cron_expr)
        zone = cron.check_timezone(timezone) if timezone is not None else cron.local_timezone()
        path = _existing_file("file", file)
        names = [str(w) for w in workflows]
        for w in names:
            if not w or w.startswith("-"):
                raise UsageError(f"{w!r} is not a workflow name")
        values_files = [_existing_file("values", v) for v in values]
        from sloth_runner.values import read_values_file

        for v in values_files:  # a broken values file is said now, not at 2 a.m.
            read_values_file(v)
        params = {str(k): str(v) for k, v in (params or {}).items()}
        if any(not k for k in params):
            raise UsageError("a parameter needs a name (KEY=VALUE)")
        at = _epoch(now)
        first = cron.next_run(expr, zone, at)
        if not stored.add_schedule(self.store, name, cron=expr, timezone=zone, file=path,
                                   workflows=names, params=params, values_files=values_files,
                                   catch_up=catch_up, next_run_at=first, created_at=at,
                                   replace=replace):
            raise UsageError(f"a schedule named '{name}' exists: remove it first, or add it "
                             "again with --replace")
        return self.get(name, now=at)

    def get(self, name: str, count: int = 3, now: float | datetime | None = None
            ) -> dict[str, Any]:
        """One schedule as `list` shows it; UsageError if there is none of that name."""
        for s in self.schedules(count=count, now=now):
            if s["name"] == name:
                return s
        raise _unknown(name)

    def schedules(self, count: int = 3, now: float | datetime | None = None
                  ) -> list[dict[str, Any]]:
        """Every schedule (store/schedules.list_schedules' fields), with `next_runs`: the next
        `count` run times after now, epoch seconds (none while paused)."""
        at = _epoch(now)
        out = stored.list_schedules(self.store)
        for s in out:
            s["next_runs"] = [] if s["paused"] else _safe_next(s, at, count)
        return out

    def pause(self, name: str) -> bool:
        """Pause; whether it was paused already."""
        was = stored.set_paused(self.store, name, True)
        if was is None:
            raise _unknown(name)
        return was

    def resume(self, name: str, now: float | datetime | None = None) -> bool:
        """Resume, from now on (times that passed while paused are not run or counted as
        missed); whether it was running already (nothing is changed then)."""
        s = stored.get_schedule(self.store, name)
        if s is None:
            raise _unknown(name)
        if not s["paused"]:
            return False
        stored.set_paused(self.store, name, False,
                          cron.next_run(s["cron"], s["timezone"], _epoch(now)))
        return True

    def remove(self, name: str) -> None:
        """Remove a schedule (its history stays; a run of it that is going on goes on)."""
        if not stored.remove_schedule(self.store, name):
            raise _unknown(name)

    def history(self, name: str, limit: int = 20) -> list[dict[str, Any]]:
        """What became of its due times and manual runs, newest first."""
        rows = stored.schedule_history(self.store, name, limit)
        if not rows and stored.get_schedule(self.store, name) is None:
            raise _unknown(name)
        return rows

    # -- starting runs ------------------------------------------------------------------------
    def running(self, name: str) -> dict[str, Any] | None:
        """The schedule's start whose process is still running, if any."""
        start = stored.latest_start(self.store, name)
        if start is None or start["ended_at"] is not None:
            return None
        if start["pid"] is None:  # recorded, being spawned (or the spawner died)
            return start if time.time() - start["at"] < SPAWNING_S else None
        return start if launch.alive(start["pid"], start["pid_start"]) else None

    def trigger_now(self, name: str, wait: float = DEFAULT_WAIT) -> str | None:
        """Start a run of the schedule now (paused or not); its run id once the run has
        recorded itself (None if that takes longer than `wait` seconds: see `history`).
        UsageError if a run of it is still going on (schedules never overlap), ConfigError if
        its file is gone, ExecError if the run could not start (with its log's last lines)."""
        with self._lock:
            s = stored.get_schedule(self.store, name)
            if s is None:
                raise _unknown(name)
            busy = self.running(name)
            if busy is not None:
                raise UsageError(f"schedule '{name}' is still running "
                                 f"({_which(busy, s['timezone'])}): a "
                                 "schedule never overlaps itself; wait for it to end")
            problem = _missing(s)
            if problem is not None:
                stored.record(self.store, name, {"source": "manual", "outcome":
                                                 stored.FAILED_TO_START, "reason": problem[1]})
                raise ConfigError(*problem)
            started_at = time.time()
            row_id = stored.record(self.store, name, {"source": "manual", "outcome":
                                                      stored.STARTED, "started_at": started_at})
            spawned = self._spawn(s, row_id, started_at)
        if spawned is None:
            reason = (stored.schedule_run(self.store, row_id) or {}).get("reason")
            raise ExecError(f"schedule '{name}': the run could not start: {reason}")
        pid, ended = spawned
        deadline = time.monotonic() + wait
        while True:
            run_id = stored.find_run(self.store, pid, started_at)
            if run_id is not None:
                stored.set_run_id(self.store, row_id, run_id)
                return run_id
            if ended.is_set():
                mine = stored.schedule_run(self.store, row_id) or {}
                if mine.get("run_id") is not None:
                    return str(mine["run_id"])
                if mine.get("outcome") != stored.FAILED_TO_START:
                    return None  # it ended well, recording no run (a file without tasks)
                raise ExecError(f"schedule '{name}': the run did not start: {mine['reason']}")
            if time.monotonic() >= deadline:
                return None
            ended.wait(0.05)

    def tick(self, now: float | datetime | None = None) -> list[dict[str, Any]]:
        """Handle every schedule due at `now` (default: the clock): start, skip or catch up,
        as the rules above say. The rows recorded, each with its `id`. Times are epoch seconds
        or aware datetimes; tests pass them to replay a night in no time."""
        at = _epoch(now)
        self.refresh()
        done: list[dict[str, Any]] = []
        for s in stored.due_schedules(self.store, at):
            try:
                done += self._handle(s, at)
            except SlothError as exc:  # one broken schedule must not stop the others
                self._say(f"schedule '{s['name']}': {exc}")
        return done

    def run_forever(self, stop: threading.Event, interval: float = DEFAULT_INTERVAL) -> None:
        """Tick until `stop` is set: at most `interval` seconds apart, and at each schedule's
        due time. Waits are on the event, so setting it ends the loop at once. Errors are said
        and survived (a busy database, a bug): a server must not lose its scheduler."""
        while not stop.is_set():
            try:
                self.tick()
                soonest = stored.earliest_next_run(self.store)
            except Exception as exc:  # noqa: BLE001 (said, and the next tick tries again)
                self._say(str(exc) if isinstance(exc, SlothError) else
                          f"internal error: {type(exc).__name__}: {exc}")
                soonest = None
            pause = interval
            if soonest is not None:
                pause = min(interval, max(0.0, soonest - time.time()) + 0.01)
            stop.wait(max(0.01, pause))

    def refresh(self) -> None:
        """Bring started runs' records up to date: link each to the run its process recorded,
        and notice processes that ended (those of other processes too: a CLI's `run now`)."""
        for row in stored.open_starts(self.store):
            row_id = row["id"]
            if row["run_id"] is None and row["pid"] is not None:
                run_id = stored.find_run(self.store, row["pid"], row["started_at"])
                if run_id is not None:
                    stored.set_run_id(self.store, row_id, run_id)
            if row_id in self._ended:
                continue  # ours: its watcher records the end
            if row["pid"] is None:
                if time.time() - row["at"] >= SPAWNING_S:
                    stored.not_started(self.store, row_id, "it was never spawned (the "
                                       "scheduler stopped while starting it)")
                continue
            if not launch.alive(row["pid"], row["pid_start"]):
                self._finished(row_id, row["pid"], row["started_at"], None, row["log_file"])

    # -- internals ----------------------------------------------------------------------------
    def _handle(self, s: dict[str, Any], now: float) -> list[dict[str, Any]]:
        name, first = s["name"], s["next_run_at"]
        try:
            due = cron.due_between(s["cron"], s["timezone"], first, now)
        except ConfigError as exc:  # a zone gone from tzdata: stop it, say why, once
            return self._claim(s, first, None, [{
                "source": "cron", "due_at": first, "outcome": stored.FAILED_TO_START,
                "reason": f"{exc}; the schedule stopped (add it again to fix it)"}])
        on_time = now - due.last <= self.grace
        missed = due.count - 1 if on_time else due.count
        catching_up = not on_time and s["catch_up"]
        rows: list[dict[str, Any]] = []
        if missed and not catching_up:
            last_missed = due.before_last if on_time else due.last
            rows.append({"source": "cron", "due_at": first, "outcome": stored.SKIPPED_MISSED,
                         "missed": missed, "reason": _missed(s, due, missed, last_missed)})
        if on_time or catching_up:
            row: dict[str, Any] = {"source": "catch_up" if catching_up else "cron",
                                   "due_at": due.last}
            if catching_up:
                row["missed"] = missed
                row["reason"] = "catching up: " + _missed(s, due, missed, due.last) + \
                    "; one run stands for them"
            with self._lock:
                busy = self.running(name)
                problem = _missing(s)
                if busy is not None:
                    row["outcome"] = stored.SKIPPED_OVERLAP
                    row["reason"] = "the previous run is still running (" + \
                        _which(busy, s["timezone"]) + ")" + \
                        (f"; {row['reason']}" if row.get("reason") else "")
                elif problem is not None:
                    row["outcome"] = stored.FAILED_TO_START
                    row["reason"] = f"{problem[0]}: {problem[1]}"
                else:
                    row["outcome"] = stored.STARTED
                    row["started_at"] = time.time()
                rows.append(row)
                done = self._claim(s, first, due.following, rows)
                if done and row["outcome"] == stored.STARTED:
                    spawned = self._spawn(s, done[-1]["id"], row["started_at"])
                    done[-1]["pid"] = spawned[0] if spawned else None
                return done
        return self._claim(s, first, due.following, rows)

    def _claim(self, s: dict[str, Any], first: float, following: float | None,
               rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        ids = stored.claim(self.store, s["name"], first, following, rows)
        if ids is None:
            return []  # another scheduler handled this due time
        return [{**r, "id": i, "schedule": s["name"]} for r, i in zip(rows, ids, strict=True)]

    def _spawn(self, s: dict[str, Any], row_id: int, started_at: float
               ) -> tuple[int, threading.Event] | None:
        """Start the recorded run: its pid and an event set once its end is recorded; None
        if it could not be started (recorded as failed_to_start)."""
        path = launch.log_file(s["name"], started_at, row_id)
        try:
            proc = launch.spawn(s, path)
        except OSError as exc:
            stored.not_started(self.store, row_id, f"cannot start {launch.command(s)[0]}: "
                               f"{exc.strerror or exc}")
            return None
        stored.spawned(self.store, row_id, proc.pid, launch.process_start(proc.pid), path)
        launch.prune_logs(s["name"])
        ended = self._ended[row_id] = threading.Event()

        def watch() -> None:  # reap it (no zombie in a long-lived server) and record its end
            code = proc.wait()
            try:
                self._finished(row_id, proc.pid, started_at, code, path)
            except Exception as exc:  # noqa: BLE001 (a closed or busy store: said, not raised)
                self._say(f"schedule '{s['name']}': recording the end of pid {proc.pid}: "
                          f"{exc}")
            finally:
                ended.set()
                self._ended.pop(row_id, None)

        threading.Thread(target=watch, name=f"sloth-schedule-{row_id}", daemon=True).start()
        return proc.pid, ended

    def _finished(self, row_id: int, pid: int, started_at: float, code: int | None,
                  log_path: str | None) -> None:
        """Its process ended: link the run it recorded, or say why it recorded none."""
        now = time.time()
        run_id = stored.find_run(self.store, pid, started_at, now)
        if run_id is not None:
            stored.set_run_id(self.store, row_id, run_id)
        if run_id is None and code != 0:
            how = f"exited with code {code}" if code is not None else "ended"
            tail = launch.log_tail(log_path)
            stored.not_started(self.store, row_id, f"the process {how} before its run began"
                               + (f": {tail}" if tail else "") + f" (log: {log_path})", code)
        else:  # the end is written last: whoever waits for `ended_at` sees the rest
            stored.ended(self.store, row_id, code, now)


def check_name(name: str) -> str:
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise UsageError(f"{name!r} is not a schedule name (letters, digits, _ . -, starting "
                         "with a letter or digit, at most 100 characters)")
    return name


def _existing_file(field: str, path: str) -> str:
    full = os.path.abspath(os.path.expanduser(str(path)))
    if not os.path.exists(full):
        raise ConfigError(field, f"{full} does not exist")
    if not os.path.isfile(full):
        raise ConfigError(field, f"{full} is not a file")
    return full


def _missing(s: dict[str, Any]) -> tuple[str, str] | None:
    """(field, problem) if the file or a values file is gone since the schedule was added."""
    for field, path in [("file", s["file"])] + [("values", v) for v in s["values_files"]]:
        if not os.path.isfile(path):
            return field, f"{path} no longer exists"
    return None


def _which(start: dict[str, Any], timezone: str) -> str:
    """Which start is still running: "run ID, pid N, started TIME" (what is known of it)."""
    parts = [f"run {start['run_id']}"] if start.get("run_id") else []
    parts += [f"pid {start['pid']}"] if start.get("pid") else ["being started"]
    return ", ".join(parts + [f"started {cron.format_time(start['at'], timezone)}"])


def _missed(s: dict[str, Any], due: cron.Due, missed: int, last: float | None) -> str:
    many = f"at least {missed}" if due.capped else str(missed)
    runs = "run" if missed == 1 else "runs"
    when = cron.format_time(due.first, s["timezone"])
    if missed > 1 and last is not None:
        when = f"from {when} to {cron.format_time(last, s['timezone'])}"
    else:
        when = f"at {when}"
    return f"{many} {runs} missed ({when}) while no scheduler was running"


def _safe_next(s: dict[str, Any], at: float, count: int) -> list[float]:
    try:
        return cron.next_runs(s["cron"], s["timezone"], at, count)
    except ConfigError:  # a stored zone tzdata no longer has: listed, with no next run
        return []


def _unknown(name: str) -> UsageError:
    return UsageError(f"no schedule named '{name}' (see `sloth-runner schedule list`)")


def trigger_now(store: Store | None, name: str, wait: float = DEFAULT_WAIT) -> str | None:
    """`ScheduleService(store).trigger_now(name)`, for callers without a service of their
    own (the dashboard run without schedules, a script)."""
    return ScheduleService(store).trigger_now(name, wait)
