import os
import time

import pytest

from sloth_runner.engine.model import CancelToken
from sloth_runner.errors import ExecError
from sloth_runner.services import process


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is dead for our purposes
    with open(f"/proc/{pid}/stat") as fh:
        return fh.read().split(")")[1].split()[0] != "Z"


def test_result_fields(tmp_path):
    r = process.run("echo out; echo err >&2; exit 3", spool=str(tmp_path))
    assert (r.stdout, r.stderr, r.exit_code, r.success) == ("out\n", "err\n", 3, False)
    assert r.duration > 0
    d = r.as_dict()
    assert set(d) == {"stdout", "stderr", "exit_code", "success", "duration"}
    assert list(tmp_path.iterdir()) == []  # nothing left on disk for small output


def test_argv_list_env_and_cwd(tmp_path):
    r = process.run(["sh", "-c", 'printf "%s %s" "$GREETING" "$(pwd)"'],
                    env={"GREETING": "hi"}, cwd=str(tmp_path))
    assert r.stdout == f"hi {tmp_path}"


def test_timeout_kills_the_whole_process_group(tmp_path):
    pidfile = tmp_path / "grandchild.pid"
    started = time.monotonic()
    r = process.run(f"(sleep 30 & echo $! > {pidfile}; wait) ; sleep 30", timeout=0.3)
    assert r.timed_out and not r.success
    assert time.monotonic() - started < 5
    grandchild = int(pidfile.read_text())
    deadline = time.monotonic() + 3
    while alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(grandchild)


def test_timeout_kills_children_that_ignore_sigterm(tmp_path):
    pidfile = tmp_path / "stubborn.pid"
    script = f"trap '' TERM; sh -c 'trap \"\" TERM; echo $$ > {pidfile}; sleep 30' & wait"
    r = process.run(script, timeout=0.3)
    assert r.timed_out
    stubborn = int(pidfile.read_text())
    deadline = time.monotonic() + 3
    while alive(stubborn) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(stubborn)


def test_deadline_is_absolute():
    r = process.run("sleep 10", deadline=time.monotonic() + 0.2)
    assert r.timed_out


def test_cancel_token_stops_the_process():
    import threading

    token = CancelToken()
    threading.Timer(0.2, token.cancel).start()
    started = time.monotonic()
    r = process.run("sleep 10", cancel=token)
    assert not r.success and time.monotonic() - started < 5


def test_output_beyond_the_cap_is_kept_on_disk(tmp_path):
    r = process.run("head -c 5000 /dev/zero | tr '\\0' x", spool=str(tmp_path), cap=1000)
    assert len(r.stdout) == 1000
    assert r.stdout_path is not None
    assert os.path.getsize(r.stdout_path) == 5000
    assert r.as_dict()["stdout_path"] == r.stdout_path


def test_child_resource_usage_is_measured():
    import resource

    own_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    r = process.run(["python3", "-c", f"x = bytearray({own_mib + 60} * 1024 * 1024); "
                                      "sum(range(3_000_000))"])
    assert r.success
    assert r.max_rss_kb > (own_mib + 50) * 1024
    assert r.cpu_s > 0.01


def test_a_small_child_reports_no_memory_rather_than_ours():
    # Linux counts in a child's peak the memory it was forked from: `true` would "use" as
    # much as this test process. Below our own peak nothing is known, and nothing is said.
    hog = bytearray(80 * 1024 * 1024)  # noqa: F841  (our peak is now well above `true`'s)
    r = process.run(["true"])
    assert r.success and r.max_rss_kb == 0


def test_missing_program_is_an_exec_error():
    with pytest.raises(ExecError, match="cannot start"):
        process.run(["/definitely/not/here"])


def test_another_user_needs_root_and_an_existing_account(monkeypatch):
    # The suite runs as root, and this machine's Python is not reachable by other users, so
    # "not root" is the one thing faked here: the effective uid the check reads.
    with pytest.raises(ExecError, match="no user 'no-such-user-here'"):
        process.run("true", user="no-such-user-here")
    monkeypatch.setattr(os, "geteuid", lambda: 65534)
    with pytest.raises(ExecError, match="as user 'root' needs sloth-runner to run as root"):
        process.run("true", user="root")
