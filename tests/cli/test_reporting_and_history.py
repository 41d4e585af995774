"""What a run shows and keeps: secrets scrubbed everywhere a user can see or read them, the tail
of a failed command, one task's history, errors kept apart from failures, --debug tracebacks,
grants in history, and streamed text scrubbed as it comes."""

from __future__ import annotations

import io
import json
import random
import re

import pytest

from sloth_runner.engine.events import Listener, Redacting
from sloth_runner.engine.model import Outcome, Task, Workflow
from sloth_runner.engine.runner import run_workflows
from sloth_runner.reporting.plain import PlainReporter
from sloth_runner.scrub import Scrubber
from tests.conftest import cli, cli_json, tasks_by_name

# Real-looking secrets of three detectors, and what must never be seen of them.
GH_TOKEN = "ghp_R8nV2kLq9XwT4mJ7pB1sD6fH3gY5cA0eZuKo"  # "ghp_" + 36 alphanumerics
AWS_KEY = "AKIAQ7RZ2M4XK9TB6WNP"  # "AKIA" + 16 upper-case alphanumerics
PG_PASSWORD = "S3cretPassw0rd"
PG_URL = f"postgres://admin:{PG_PASSWORD}@db:5432/app"
# The secrets, and their tails (a scrubber that replaced only a prefix would leak these).
LEAKS = (GH_TOKEN, GH_TOKEN[4:], AWS_KEY, AWS_KEY[4:], PG_URL, PG_PASSWORD)
PLACEHOLDER = {"github": "[REDACTED:github_token:", "aws": "[REDACTED:aws_access_key:",
               "url": "[REDACTED:url_credentials:"}


def assert_no_secret(text: str, where: str) -> None:
    for secret in LEAKS:
        assert secret not in text, f"{secret!r} leaked into {where}"


def assert_no_secret_bytes(data: bytes, where: str) -> None:
    for secret in LEAKS:
        assert secret.encode() not in data, f"{secret!r} leaked into {where}"


def run_id_of(proc) -> str:
    """The run id from the last line of a text-mode run ("run ID: status in ...")."""
    found = re.search(r"^run ([0-9a-f]+): ", proc.stdout, re.M)
    assert found, proc.stdout
    return found.group(1)


def section(text: str, stream: str) -> tuple[str, list[str]]:
    """`history RUN --task NAME` output: the header of a stream's section and its lines."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"--- {stream}"))
    end = next((i for i in range(start + 1, len(lines))
                if lines[i].startswith(("--- ", "outputs: ", "== "))), len(lines))
    return lines[start], lines[start + 1:end]


# -- 1. secrets in task results --------------------------------------------------------------------
LEAKY = '''
local GH = "GH_TOKEN"
local PG = "PG_URL"
task("a")ISOLATE:command(function(params)
    log.info("logging in with " .. GH)
    print("database at " .. PG)
    return true, "token is " .. GH,
        {token = GH, nested = {db = {urls = {"x", PG}}}, param = params.token}
end):build()
task("b")ISOLATE:depends_on("a"):command(function(params, deps)
    local raw = deps.a.token == "GH_TOKEN" and deps.a.nested.db.urls[2] == "PG_URL"
        and deps.a.param == "AWS_KEY"
    return raw, raw and "received the raw values" or "received altered values"
end):build()
task("boom")ISOLATE:command(function() error("cannot reach " .. PG) end):build()
task("sh")ISOLATE:command("echo out GH_TOKEN; echo err AWS_KEY >&2; exit 1"):build()
'''


@pytest.mark.parametrize("isolate", ["", ':timeout("10s")'], ids=["in_process", "in_worker"])
def test_secrets_in_results_never_reach_output_history_or_the_database_yet_deps_get_them_raw(
        workflow_file, sloth_home, isolate):
    source = (LEAKY.replace("GH_TOKEN", GH_TOKEN).replace("PG_URL", PG_URL)
              .replace("AWS_KEY", AWS_KEY).replace("ISOLATE", isolate))
    path = workflow_file(source)
    param = f"token={AWS_KEY}"

    text = cli("run", "-f", path, "--param", param)
    assert text.returncode == 1, text.stderr
    assert_no_secret(text.stdout + text.stderr, "the text output")
    for placeholder in PLACEHOLDER.values():
        assert placeholder in text.stdout + text.stderr
    assert "ok      b" in text.stdout and "received the raw values" in text.stdout

    as_json = cli("run", "-f", path, "--param", param, "-o", "json")
    assert as_json.returncode == 1, as_json.stderr
    assert_no_secret(as_json.stdout, "-o json stdout")
    assert_no_secret(as_json.stderr, "-o json stderr")
    doc = json.loads(as_json.stdout)
    tasks = tasks_by_name(doc)
    assert tasks["b"]["status"] == "success"
    assert tasks["b"]["message"] == "received the raw values"
    assert tasks["a"]["outputs"]["token"].startswith(PLACEHOLDER["github"])
    assert PLACEHOLDER["url"] in tasks["a"]["outputs"]["nested"]["db"]["urls"][1]
    assert tasks["a"]["outputs"]["param"].startswith(PLACEHOLDER["aws"])
    assert tasks["boom"]["status"] == "failed" and PLACEHOLDER["url"] in tasks["boom"]["error"]
    assert tasks["sh"]["outputs"]["stdout"] == f"out {tasks['a']['outputs']['token']}\n"
    assert PLACEHOLDER["aws"] in tasks["sh"]["outputs"]["stderr"]

    listing = cli("history", "-o", "json")
    assert listing.returncode == 0
    assert_no_secret(listing.stdout, "history -o json")
    for run_id in (run_id_of(text), doc["run_id"]):
        detail = cli("history", run_id, "-o", "json")
        assert detail.returncode == 0
        assert_no_secret(detail.stdout, f"history {run_id} -o json")
        assert PLACEHOLDER["aws"] in json.loads(detail.stdout)["run"]["params_json"]
    for name in ("a", "b", "boom", "sh"):
        full = cli("history", doc["run_id"], "--task", name, "--full")
        assert full.returncode == 0, full.stderr
        assert_no_secret(full.stdout + full.stderr, f"history --task {name} --full")
    full_sh = cli("history", doc["run_id"], "--task", "sh", "--full").stdout
    assert PLACEHOLDER["github"] in full_sh and PLACEHOLDER["aws"] in full_sh

    db = sloth_home / "sloth.db"
    wal = sloth_home / "sloth.db-wal"
    raw = db.read_bytes() + (wal.read_bytes() if wal.exists() else b"")
    assert_no_secret_bytes(raw, "the SQLite file")
    for placeholder in PLACEHOLDER.values():
        assert placeholder.encode() in raw


# -- 2. state.set scrubs unless told not to ---------------------------------------------------------
def test_state_set_stores_scrubbed_values_and_scrub_false_round_trips_exactly(workflow_file):
    writer = workflow_file(f'''
        task("write"):command(function()
            state.set("k", {{url = "{PG_URL}"}})
            state.set("k2", "{PG_URL}", {{scrub = false}})
        end):build()
        task("read"):depends_on("write"):command(function()
            local same = state.get("k2") == "{PG_URL}"
            return same, same and "k2 equal" or "k2 differs"
        end):build()
    ''', "writer.lua")
    code, doc = cli_json("run", "-f", writer)
    assert code == 0 and tasks_by_name(doc)["read"]["message"] == "k2 equal"

    shown = cli("state", "get", "k")
    assert shown.returncode == 0
    assert PG_PASSWORD not in shown.stdout
    assert json.loads(shown.stdout) == {
        "url": "postgres://admin:[REDACTED:url_credentials:1]@db:5432/app"}
    code, exact = cli_json("state", "get", "k2")
    assert code == 0 and exact == PG_URL

    reader = workflow_file(f'''
        task("again"):command(function()
            local k, k2 = state.get("k"), state.get("k2")
            local ok = k2 == "{PG_URL}" and k.url ~= "{PG_URL}"
            return ok, ok and "as stored" or "not as stored"
        end):build()
    ''', "reader.lua")
    code, doc = cli_json("run", "-f", reader)
    assert code == 0 and tasks_by_name(doc)["again"]["message"] == "as stored"


def test_an_unknown_state_set_option_is_an_error_naming_it_and_stores_nothing(workflow_file):
    path = workflow_file('''
        task("w"):command(function()
            state.set("k3", "v", {scurb = false})
        end):build()
    ''')
    code, doc = cli_json("run", "-f", path)
    t = tasks_by_name(doc)["w"]
    assert code == 1 and t["status"] == "failed"
    assert t["error"] == f"{path}:3: state.set: unknown option 'scurb' (options: scrub, ttl)"
    proc = cli("state", "get", "k3")
    assert proc.returncode == 3 and "no state key 'k3'" in proc.stderr


# -- 3. what a failed command printed, in the summary and in history --------------------------------
def test_a_failed_shell_task_shows_the_last_lines_of_its_stdout_and_stderr_in_the_summary(
        workflow_file):
    proc = cli("run", "-f", workflow_file('''
        task("grep"):command("printf 'line1\\\\nline2\\\\nno match for foo\\\\n'; echo oops >&2; exit 1"):build()
    '''))
    assert proc.returncode == 1
    lines = proc.stdout.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("   FAILED  grep"))
    assert [line.strip() for line in lines[at + 1:at + 7]] == [
        "stdout (last 3 lines):", "line1", "line2", "no match for foo", "stderr:", "oops"]


def test_the_summary_shows_at_most_8_lines_of_a_failed_commands_output(workflow_file):
    proc = cli("run", "-f", workflow_file(
        'task("noisy"):command("for i in $(seq 1 500); do echo row-$i; done; exit 3"):build()'))
    assert proc.returncode == 1
    shown = re.findall(r"^\s+row-(\d+)$", proc.stdout, re.M)
    assert shown == [str(n) for n in range(493, 501)]
    assert "stdout (last 8 lines):" in proc.stdout


def test_history_task_prints_each_attempt_with_its_stdout(workflow_file, tmp_path):
    counter = tmp_path / "counter"
    path = workflow_file(f'''
        task("flaky"):retries(1, "fixed"):retry_delay(0)
            :command("echo x >> {counter}; n=$(wc -l < {counter}); echo try-$n; test $n -ge 2")
            :build()
        task("other"):command("echo other-output"):build()
    ''')
    code, doc = cli_json("run", "-f", path)
    assert code == 0
    proc = cli("history", doc["run_id"], "--task", "flaky")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    first = out.index("== default/flaky attempt 1: failed")
    second = out.index("== default/flaky attempt 2: success")
    assert first < out.index("try-1") < second < out.index("try-2")
    assert "exit code 1" in out[first:second] and "exit code 0" in out[second:]
    assert "other-output" not in out


def test_history_task_errors_are_usage_errors_naming_the_tasks(workflow_file):
    code, doc = cli_json("run", "-f", workflow_file('''
        task("alpha"):command("true"):build()
        task("beta"):command("true"):build()
    '''))
    assert code == 0
    unknown = cli("history", doc["run_id"], "--task", "gamma")
    assert unknown.returncode == 3
    assert f"run {doc['run_id']} has no task 'gamma' (tasks: alpha, beta)" in unknown.stderr
    full_alone = cli("history", doc["run_id"], "--full")
    assert full_alone.returncode == 3 and "--full goes with --task NAME" in full_alone.stderr


BIG = 'task("big"):command("seq 1 200000"):build()'  # 1.3 MB: past the 1 MiB in-memory cap


def test_history_full_prints_output_past_1_mib_from_the_spool_file_and_otherwise_40_lines(
        workflow_file):
    code, doc = cli_json("run", "-f", workflow_file(BIG))
    assert code == 0
    assert "stdout_path" in tasks_by_name(doc)["big"]["outputs"]  # it did pass the cap
    full = cli("history", doc["run_id"], "--task", "big", "--full")
    assert full.returncode == 0
    header, lines = section(full.stdout, "stdout")
    assert header == "--- stdout ---"
    assert lines == [str(n) for n in range(1, 200001)]
    tail = cli("history", doc["run_id"], "--task", "big")
    assert tail.returncode == 0
    header, lines = section(tail.stdout, "stdout")
    assert "--full for all" in header and len(lines) == 40


def test_history_without_full_shows_the_real_end_of_output_past_1_mib(workflow_file):
    code, doc = cli_json("run", "-f", workflow_file(BIG))
    assert code == 0
    _, lines = section(cli("history", doc["run_id"], "--task", "big").stdout, "stdout")
    assert lines == [str(n) for n in range(199961, 200001)]


def test_the_summary_of_a_failed_command_past_1_mib_shows_the_real_end_of_its_output(
        workflow_file):
    proc = cli("run", "-f", workflow_file('task("big"):command("seq 1 200000; exit 1"):build()'))
    assert proc.returncode == 1
    shown = re.findall(r"^ {12}(\d+)$", proc.stdout, re.M)
    assert shown == [str(n) for n in range(199993, 200001)]


# -- 4. errors (could not run) vs failures (ran and said no) ---------------------------------------
DIES = '''
task("dies"):timeout("10s"):command(function()
    exec.run("kill -9 $PPID")  -- the worker is the shell's parent
    return true, "still alive"
end):build()
task("after"):depends_on("dies"):command(function() return true, "ran" end):build()
task("indep"):command(function() return true, "independent" end):build()
'''


def test_a_dead_worker_is_an_error_exit_4_its_dependents_skipped_and_others_succeed(
        workflow_file):
    path = workflow_file(DIES)
    code, doc = cli_json("run", "-f", path)
    assert code == 4
    t = tasks_by_name(doc)
    assert t["dies"]["status"] == "error"
    assert "worker process running this task died" in t["dies"]["error"]
    assert t["after"]["status"] == "skipped"
    assert t["after"]["message"] == "dependency 'dies' could not run"
    assert t["indep"]["status"] == "success"
    _, detail = cli_json("history", doc["run_id"])
    assert {a["task"]: a["status"] for a in detail["attempts"] if a["final"]} == {
        "dies": "error", "after": "skipped", "indep": "success"}

    text = cli("run", "-f", path)
    assert text.returncode == 4
    assert re.search(r"^   ERROR   dies \(", text.stdout, re.M)
    assert "   skipped after: dependency 'dies' could not run" in text.stdout


def test_a_lua_error_is_a_failure_exit_1_not_an_error(workflow_file):
    path = workflow_file('task("x"):command(function() error("x") end):build()')
    code, doc = cli_json("run", "-f", path)
    assert code == 1
    assert tasks_by_name(doc)["x"]["status"] == "failed"
    assert tasks_by_name(doc)["x"]["error"] == f"{path}:1: x"


def test_a_failure_next_to_an_error_makes_the_run_exit_1(workflow_file):
    code, doc = cli_json("run", "-f", workflow_file(
        DIES + 'task("no"):command(function() return false, "said no" end):build()\n'))
    t = tasks_by_name(doc)
    assert (t["dies"]["status"], t["no"]["status"]) == ("error", "failed")
    assert code == 1


# -- 5. --debug tracebacks: for error results only -------------------------------------------------
def _raises(ctx):
    raise RuntimeError(f"kaboom while logging in with {GH_TOKEN}")


def _says_no(ctx):
    return Outcome(False, error="said no")


def _fine(ctx):
    return Outcome(True, "fine")


def _report(debug: bool, redact: bool = False) -> tuple[dict, str]:
    out = io.StringIO()
    listener: Listener = PlainReporter(out, debug=debug)
    if redact:
        scrubber = Scrubber()
        listener = Redacting(listener, lambda text: scrubber.scrub(text)[0],
                             lambda: scrubber.stream())
    wf = Workflow("w", (Task("broken", _raises), Task("refuses", _says_no), Task("fine", _fine)))
    result = run_workflows([wf], listener=listener)
    return {t.name: t for t in result.workflows[0].tasks}, out.getvalue()


def test_debug_shows_the_traceback_of_an_error_under_its_task_line_and_only_there():
    tasks, text = _report(debug=True)
    assert (tasks["broken"].status, tasks["refuses"].status) == ("error", "failed")
    lines = text.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("   ERROR   broken"))
    assert lines[at + 1].strip() == "Traceback (most recent call last):"
    detail = " " * 10  # lines under a task line
    end = next(i for i in range(at + 1, len(lines)) if not lines[i].startswith(detail))
    assert lines[end - 1].strip().startswith("RuntimeError: kaboom while logging in with")
    assert text.count("Traceback") == 1  # not for the failure, not for the success


def test_without_debug_an_error_shows_no_traceback():
    tasks, text = _report(debug=False)
    assert tasks["broken"].status == "error" and tasks["broken"].trace
    assert re.search(r"^   ERROR   broken \(.*\): RuntimeError: kaboom", text, re.M)
    assert "Traceback" not in text and "_raises" not in text


def test_a_traceback_shown_with_debug_is_scrubbed():
    _, text = _report(debug=True, redact=True)
    assert "Traceback (most recent call last):" in text
    assert_no_secret(text, "a --debug traceback")
    assert PLACEHOLDER["github"] in text


def test_debug_prints_no_traceback_for_failures_or_a_dead_worker(workflow_file):
    proc = cli("run", "--debug", "-f", workflow_file(DIES + '''
task("lua"):command(function() error("x") end):build()
task("sh"):command("exit 2"):build()
'''))
    assert proc.returncode == 1
    assert "   ERROR   dies" in proc.stdout and "   FAILED  lua" in proc.stdout
    assert "Traceback" not in proc.stdout + proc.stderr


# -- 7. grants in history --------------------------------------------------------------------------
def test_history_records_the_sandbox_grants_of_a_run_and_none_without_sandbox(workflow_file):
    path = workflow_file('task("t"):command(function() return true end):build()')
    code, granted = cli_json("run", "-f", path, "--sandbox", "--allow", "exec,net")
    assert code == 0
    code, plain = cli_json("run", "-f", path)
    assert code == 0
    _, listing = cli_json("history")
    by_id = {r["run_id"]: r["grants"] for r in listing["runs"]}
    assert by_id == {granted["run_id"]: "sandbox+exec,net", plain["run_id"]: ""}
    _, detail = cli_json("history", granted["run_id"])
    assert detail["run"]["grants"] == "sandbox+exec,net"
    text = cli("history").stdout.splitlines()
    assert [line.endswith("(sandbox+exec,net)") for line in text] == [False, True]


# -- 8. streamed text is scrubbed as it comes -------------------------------------------------------
class StreamLog(Listener):
    def __init__(self) -> None:
        self.pieces: list[tuple[str | None, str | None, str | None]] = []

    def stream(self, workflow, task, text):
        self.pieces.append((workflow, task, text))

    def shown(self, task: str) -> str:
        return "".join(t for _, name, t in self.pieces if name == task and t is not None)


STREAMED = (f"connect with {PG_URL} then push using {GH_TOKEN} as the token, "
            f"with key {AWS_KEY} for the bucket. done")


def _cuts(text: str, how: str) -> list[str]:
    if how == "random":
        rng = random.Random(7)
        points = sorted(rng.sample(range(1, len(text)), 40))
        return [text[a:b] for a, b in zip([0, *points], [*points, len(text)], strict=True)]
    size = int(how)
    return [text[i:i + size] for i in range(0, len(text), size)]


@pytest.mark.parametrize("how", ["1", "3", "7", "random"])
def test_redacting_never_lets_a_secret_split_over_stream_pieces_through(how):
    scrubber = Scrubber()
    inner = StreamLog()
    redacting = Redacting(inner, lambda text: scrubber.scrub(text)[0], lambda: scrubber.stream())
    expected = scrubber.scrub(STREAMED)[0]
    assert_no_secret(expected, "the batch-scrubbed text")
    for piece in _cuts(STREAMED, how):
        redacting.stream("w", "t", piece)
        shown = inner.shown("t")
        assert_no_secret(shown, "the stream")
        assert expected.startswith(shown)  # what is shown is final, never taken back
    assert len(inner.shown("t")) >= len(expected) - len("done")  # it streams, not buffers
    redacting.stream("w", "t", None)
    assert inner.shown("t") == expected
    assert inner.pieces[-1] == ("w", "t", None)


def test_redacting_scrubs_interleaved_streams_of_two_tasks_separately():
    scrubber = Scrubber()
    inner = StreamLog()
    redacting = Redacting(inner, lambda text: scrubber.scrub(text)[0], lambda: scrubber.stream())
    other = f"the other task says {AWS_KEY} and {GH_TOKEN} too"
    for a, b in zip(_cuts(STREAMED, "3"), _cuts(other.ljust(len(STREAMED)), "3"), strict=True):
        redacting.stream("w", "one", a)
        redacting.stream("w", "two", b)
        assert_no_secret(inner.shown("one") + inner.shown("two"), "interleaved streams")
    redacting.stream("w", "one", None)
    redacting.stream("w", "two", None)
    assert inner.shown("one") == scrubber.scrub(STREAMED)[0]
    assert inner.shown("two") == scrubber.scrub(other.ljust(len(STREAMED)))[0]


@pytest.mark.parametrize("isolate", ["", ':timeout("10s")'], ids=["in_process", "in_worker"])
def test_secrets_known_by_name_or_seen_once_are_scrubbed_wherever_they_appear_bare(
        workflow_file, sloth_home, isolate):
    token, password = "q8ZtT2mWvB3n", "Tr0ub4dor-horse-staple"
    path = workflow_file(f'''
        task("t"){isolate}:command(function()
            log.info(os.getenv("DEPLOY_TOKEN"))
            log.info("db password=" .. "{password}")
            io.write("plain ", os.getenv("DEPLOY_TOKEN"), "\\n")
            return true, "done", {{pw = "{password}", token = os.getenv("DEPLOY_TOKEN")}}
        end):build()
    ''')
    proc = cli("run", "-f", path, "-o", "json", env={"DEPLOY_TOKEN": token})
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    out = tasks_by_name(doc)["t"]["outputs"]
    assert out["pw"].startswith("[REDACTED:") and out["token"].startswith("[REDACTED:")
    seen = proc.stdout + proc.stderr
    kept = cli("history", doc["run_id"], "--task", "t", "--full", env={"DEPLOY_TOKEN": token})
    assert kept.returncode == 0 and "--- log ---" in kept.stdout, kept.stderr
    assert "INFO: db password=[REDACTED:" in kept.stdout and "plain [REDACTED:" in kept.stdout
    seen += kept.stdout
    db = sloth_home / "sloth.db"
    wal = sloth_home / "sloth.db-wal"
    raw = (db.read_bytes() + (wal.read_bytes() if wal.exists() else b"")).decode("latin-1")
    for secret in (token, password):
        assert secret not in seen and secret not in raw


def test_history_keeps_what_a_task_logged_attempt_by_attempt_and_only_its_end(workflow_file):
    path = workflow_file('''
        task("flaky"):retries(1):command(function(this, params)
            local n = state.increment("tries")
            log.warn("attempt " .. n)
            print("printed " .. n)
            if n == 1 then
                for i = 1, 6000 do log.debug(string.rep("x", 60) .. i) end
                return false, "first fails"
            end
            return true
        end):build()
    ''')
    code, doc = cli_json("run", "-f", path)
    assert code == 0
    shown = cli("history", doc["run_id"], "--task", "flaky", "-o", "json")
    first, second = json.loads(shown.stdout)["attempts"]
    assert second["log"] == "WARN: attempt 2\nprinted 2"
    assert first["log"].startswith("[") and "earlier lines not kept" in first["log"]
    assert first["log"].endswith("x6000") and 200_000 < len(first["log"]) <= 256 * 1024 + 100
    assert "WARN: attempt 1" not in first["log"]  # the oldest lines went first
    text = cli("history", doc["run_id"], "--task", "flaky").stdout
    assert "--- log (last" in text and "x6000" in text
