"""`sloth-runner schedule`: the commands, their output and exit codes, against the real CLI."""

from __future__ import annotations

import json
import os

from tests.conftest import cli, cli_json, poll
from tests.schedules.helpers import MARKER, lines


def test_add_list_pause_resume_remove(workflow_file, tmp_path):
    path = workflow_file(MARKER)
    marker = str(tmp_path / "marker")
    proc = cli("schedule", "add", "nightly", "--cron", "0 2 * * *", "-f", path, "deploy",
               "--param", f"marker={marker}", "--tz", "Europe/Berlin", "--catch-up")
    assert proc.returncode == 0, proc.stderr
    assert "schedule 'nightly' added: 0 2 * * * (Europe/Berlin), deploy of " + path \
        in proc.stdout
    assert "next run: " in proc.stdout and "02:00 CE" in proc.stdout  # CET or CEST

    proc = cli("schedule", "list")
    assert proc.returncode == 0, proc.stderr
    header, row = proc.stdout.splitlines()
    assert header.split() == ["NAME", "CRON", "ZONE", "NEXT", "RUN", "LAST", "RUN", "STATUS",
                              "STATE"]
    assert row.startswith("nightly") and "Europe/Berlin" in row and "active, catch-up" in row

    code, doc = cli_json("schedule", "list")
    assert code == 0
    [s] = doc["schedules"]
    assert (s["name"], s["cron"], s["timezone"], s["file"]) == (
        "nightly", "0 2 * * *", "Europe/Berlin", path)
    assert s["workflows"] == ["deploy"] and s["params"] == {"marker": marker}
    assert s["catch_up"] is True and s["paused"] is False
    assert len(s["next_runs"]) == 3
    assert all("T02:00:00+0" in t for t in s["next_runs"])  # 02:00 Berlin, +01:00 or +02:00
    assert s["last_run_id"] is None and s["last_status"] is None

    proc = cli("schedule", "pause", "nightly")
    assert proc.returncode == 0 and "schedule 'nightly' paused" in proc.stdout
    assert "already paused" in cli("schedule", "pause", "nightly").stdout
    code, doc = cli_json("schedule", "list")
    assert doc["schedules"][0]["paused"] is True and doc["schedules"][0]["next_runs"] == []
    assert "paused" in cli("schedule", "list").stdout

    proc = cli("schedule", "resume", "nightly")
    assert proc.returncode == 0 and "schedule 'nightly' resumed; next run: " in proc.stdout
    assert "is not paused" in cli("schedule", "resume", "nightly").stdout
    code, doc = cli_json("schedule", "list")
    assert doc["schedules"][0]["paused"] is False and len(doc["schedules"][0]["next_runs"]) == 3

    proc = cli("schedule", "remove", "nightly")
    assert proc.returncode == 0 and "schedule 'nightly' removed" in proc.stdout
    assert cli_json("schedule", "list")[1] == {"schedules": []}
    assert "no schedules" in cli("schedule", "list").stdout


def test_the_zone_defaults_to_the_machines_by_name(workflow_file):
    path = workflow_file(MARKER)
    proc = cli("schedule", "add", "local", "--cron", "@daily", "-f", path,
               env={"TZ": "America/New_York"})
    assert proc.returncode == 0, proc.stderr
    [s] = cli_json("schedule", "list")[1]["schedules"]
    assert s["timezone"] == "America/New_York" and s["cron"] == "@daily"
    assert all(t.endswith(("-05:00", "-04:00")) for t in s["next_runs"])


def test_bad_input_is_a_usage_error_naming_the_field(workflow_file, tmp_path):
    path = workflow_file(MARKER)
    cases = [
        (["--cron", "0 25 * * *", "-f", path], "error: cron: '0 25 * * *' is not a valid cron"),
        (["--cron", "0 2 * * * *", "-f", path], "error: cron: '0 2 * * * *' has 6 fields"),
        (["--cron", "@reboot", "-f", path], "error: cron: '@reboot' is not a known alias"),
        (["--cron", "0 0 31 2 *", "-f", path], "error: cron: '0 0 31 2 *' matches no date"),
        (["--cron", "0 2 * * *", "-f", path, "--tz", "Mars/Olympus"],
         "error: timezone: unknown time zone 'Mars/Olympus'"),
        (["--cron", "0 2 * * *", "-f", str(tmp_path / "gone.lua")],
         f"error: file: {tmp_path / 'gone.lua'} does not exist"),
        (["--cron", "0 2 * * *", "-f", str(tmp_path)], "error: file: "),
        (["--cron", "0 2 * * *", "-f", path, "-v", str(tmp_path / "v.yaml")],
         f"error: values: {tmp_path / 'v.yaml'} does not exist"),
        (["--cron", "0 2 * * *", "-f", path, "--param", "novalue"],
         "error: --param expects KEY=VALUE"),
        (["--cron", "0 2 * * *"], "the following arguments are required: -f/--file"),
    ]
    for args, message in cases:
        proc = cli("schedule", "add", "job", *args)
        assert proc.returncode == 3, (args, proc.stderr)
        assert message in proc.stderr, (args, proc.stderr)
        assert "Traceback" not in proc.stderr
    assert cli_json("schedule", "list")[1] == {"schedules": []}  # nothing half-added

    assert "is not a schedule name" in cli("schedule", "add", "../x", "--cron", "@daily",
                                           "-f", path).stderr
    assert cli("schedule", "add", "job", "--cron", "@daily", "-f", path).returncode == 0
    proc = cli("schedule", "add", "job", "--cron", "@hourly", "-f", path)
    assert proc.returncode == 3 and "a schedule named 'job' exists" in proc.stderr
    proc = cli("schedule", "add", "job", "--cron", "@hourly", "-f", path, "--replace")
    assert proc.returncode == 0, proc.stderr
    assert cli_json("schedule", "list")[1]["schedules"][0]["cron"] == "@hourly"
    for op in ("pause", "resume", "remove", "run", "history"):
        proc = cli("schedule", op, "nope")
        assert proc.returncode == 3, (op, proc.stderr)
        assert "no schedule named 'nope'" in proc.stderr and "Traceback" not in proc.stderr
    proc = cli("schedule")
    assert proc.returncode == 3 and "schedule needs an operation" in proc.stderr


def test_run_now_prints_the_run_id_and_history_shows_it(workflow_file, tmp_path):
    path = workflow_file(MARKER)
    marker = str(tmp_path / "marker")
    values = tmp_path / "v.yaml"
    values.write_text("word: from-values\n")
    assert cli("schedule", "add", "job", "--cron", "0 3 * * *", "-f", path, "--param",
               f"marker={marker}", "-v", str(values)).returncode == 0
    assert cli("schedule", "pause", "job").returncode == 0  # run now works while paused

    proc = cli("schedule", "run", "job")
    assert proc.returncode == 0, proc.stderr
    run_id = proc.stdout.strip()
    assert len(run_id) == 12 and all(c in "0123456789abcdef" for c in run_id)
    assert poll(lambda: lines(marker) == ["from-values"], 30), lines(marker)

    def finished() -> bool:
        return cli_json("history", run_id)[1]["run"]["status"] == "success"

    assert poll(finished, 30)
    code, doc = cli_json("schedule", "history", "job")
    assert code == 0
    [row] = doc["runs"]
    assert (row["outcome"], row["source"], row["run_id"], row["due_at"]) == (
        "started", "manual", run_id, None)
    assert poll(lambda: cli_json("schedule", "history", "job")[1]["runs"][0]["run_status"]
                == "success", 30)
    assert os.path.isfile(row["log_file"]) and row["pid"] > 0
    assert "run " + run_id in cli("schedule", "history", "job").stdout
    [s] = cli_json("schedule", "list")[1]["schedules"]
    assert s["last_run_id"] == run_id and s["last_status"] == "success"
    assert run_id in cli("schedule", "list").stdout

    assert cli("schedule", "remove", "job").returncode == 0
    code, doc = cli_json("schedule", "history", "job")  # its history stays
    assert code == 0 and doc["runs"][0]["run_id"] == run_id


def test_run_now_of_a_file_that_no_longer_loads_says_why(workflow_file):
    path = workflow_file(MARKER)
    assert cli("schedule", "add", "job", "--cron", "@daily", "-f", path).returncode == 0
    with open(path, "w") as fh:
        fh.write("task(\n")  # a syntax error
    proc = cli("schedule", "run", "job")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "the run did not start: the process exited with code 2 before its run began" \
        in proc.stderr
    assert "Traceback" not in proc.stderr
    [row] = json.loads(cli("schedule", "history", "job", "-o", "json").stdout)["runs"]
    assert row["outcome"] == "failed_to_start" and row["exit_code"] == 2
    os.unlink(path)
    proc = cli("schedule", "run", "job")
    assert proc.returncode == 3 and f"error: file: {path} no longer exists" in proc.stderr
