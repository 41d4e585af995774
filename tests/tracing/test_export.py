"""The real command with a real OTLP/HTTP receiver, a dead collector, a hanging one, and
without the extra: spans arrive, and nothing ever holds up or breaks a run."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

from tests.conftest import cli, poll
from tests.tracing.otlp_receiver import OTLPReceiver

FILE = '''
    task("a"):command(function() return true end):build()
    task("b"):depends_on({"a"}):command("true"):build()
'''


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_spans_reach_a_real_collector(receiver: OTLPReceiver, workflow_file):
    path = workflow_file(FILE)
    proc = cli("run", "-f", path, "-o", "json", env={
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
        "OTEL_EXPORTER_OTLP_HEADERS": "x-tenant=team-a"})
    assert proc.returncode == 0, proc.stderr
    assert "tracing" not in proc.stderr
    run_id = json.loads(proc.stdout)["run_id"]
    assert poll(lambda: len(receiver.spans) >= 3, 5), receiver.spans  # sent before exiting
    spans = {s["name"]: s for s in receiver.spans}
    assert sorted(spans) == ["sloth-runner run", "task default.a", "task default.b"]
    root = spans["sloth-runner run"]
    assert root["parent_span_id"] is None
    assert root["attributes"]["sloth.run_id"] == run_id
    assert root["attributes"]["sloth.status"] == "success"
    assert root["attributes"]["sloth.workflows"] == ["default"]
    assert root["resource"]["service.name"] == "sloth-runner"
    assert root["scope"] == "sloth_runner"
    for name in ("task default.a", "task default.b"):
        span = spans[name]
        assert span["trace_id"] == root["trace_id"]
        assert span["parent_span_id"] == root["span_id"]
        assert root["start"] <= span["start"] <= span["end"] <= root["end"]
        assert span["attributes"]["sloth.status"] == "success"
    assert spans["task default.a"]["end"] <= spans["task default.b"]["start"]
    assert all(h.get("x-tenant") == "team-a" for h in receiver.headers)
    assert all(h["content-type"] == "application/x-protobuf" for h in receiver.headers)


def test_the_service_name_can_be_set(receiver: OTLPReceiver, workflow_file):
    proc = cli("run", "-f", workflow_file(FILE), env={
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"{receiver.endpoint}/v1/traces",
        "OTEL_SERVICE_NAME": "nightly-ci", "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=ci"})
    assert proc.returncode == 0, proc.stderr
    assert poll(lambda: len(receiver.spans) >= 3, 5)
    resource = receiver.spans[0]["resource"]
    assert resource["service.name"] == "nightly-ci"
    assert resource["deployment.environment"] == "ci"


def test_a_dead_collector_costs_one_warning_line_and_no_time(workflow_file):
    port = closed_port()
    started = time.monotonic()
    proc = cli("run", "-f", workflow_file(FILE), env={
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}"}, timeout=30)
    elapsed = time.monotonic() - started
    assert proc.returncode == 0, proc.stderr
    assert elapsed < 5, elapsed  # refused at once: the run does not wait for retries
    output = proc.stdout + proc.stderr
    assert "Traceback" not in output
    said = [line for line in output.splitlines() if "tracing" in line.lower()]
    assert len(said) == 1, output
    assert f"3 of 3 spans could not be sent to http://127.0.0.1:{port}/v1/traces" in said[0]
    assert "Connection refused" in said[0]


def test_a_collector_that_never_answers_holds_the_run_a_bounded_time(receiver, workflow_file):
    receiver.mode = "hang"
    started = time.monotonic()
    proc = cli("run", "-f", workflow_file(FILE), env={
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "OTEL_BSP_EXPORT_TIMEOUT": "500"},
        timeout=30)
    elapsed = time.monotonic() - started
    assert proc.returncode == 0, proc.stderr
    assert elapsed < 5, elapsed
    output = proc.stdout + proc.stderr
    assert "Traceback" not in output
    said = [line for line in output.splitlines() if "tracing" in line.lower()]
    assert len(said) == 1 and "no answer within 0.5 s" in said[0], output


def test_without_the_extra_the_run_goes_on_with_one_hint(workflow_file):
    # a finder that makes every opentelemetry module missing, as when the extra is not installed
    code = ("import sys\n"
            "class Missing:\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name.split('.')[0] == 'opentelemetry':\n"
            "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
            "sys.meta_path.insert(0, Missing())\n"
            "from sloth_runner.cli.main import main\n"
            f"sys.exit(main(['run', '-f', {workflow_file(FILE)!r}]))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=30, env={**os.environ,
                                           "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"})
    assert proc.returncode == 0, proc.stderr
    output = proc.stdout + proc.stderr
    said = [line for line in output.splitlines() if "tracing" in line.lower()]
    assert len(said) == 1 and "pip install 'sloth-runner[otel]'" in said[0], output
    assert "Traceback" not in output


def modules_after_a_run(path: str, env: dict) -> list[str]:
    code = ("import sys\nfrom sloth_runner.cli.main import main\n"
            f"main(['run', '-f', {path!r}, '-o', 'json'])\n"
            "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')"
            " or m.startswith('sloth_runner.tracing')), file=sys.stderr)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=30, env=env)
    return json.loads(proc.stderr.strip().splitlines()[-1].replace("'", '"'))


def test_nothing_of_opentelemetry_is_imported_when_tracing_is_off(workflow_file):
    path = workflow_file(FILE)
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    assert modules_after_a_run(path, clean) == ["sloth_runner.tracing"]
    # (the check can see them: with an endpoint set, they are there)
    port = closed_port()
    traced = modules_after_a_run(path, {**clean, "OTEL_EXPORTER_OTLP_ENDPOINT":
                                        f"http://127.0.0.1:{port}"})
    assert "opentelemetry.sdk.trace" in traced and "sloth_runner.tracing.tracer" in traced
    # switched off the standard ways: nothing imported either
    for off in ({"OTEL_SDK_DISABLED": "true"}, {"OTEL_TRACES_EXPORTER": "none"}):
        assert modules_after_a_run(path, {**clean, "OTEL_EXPORTER_OTLP_ENDPOINT":
                                          f"http://127.0.0.1:{port}", **off}) \
            == ["sloth_runner.tracing"]
