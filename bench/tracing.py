"""Cost of tracing on a run of 200 no-op tasks: CLI wall time (off / OTLP to a local receiver)
and in-process Run.load()+execute() (off / in-memory exporter).

    N=21 python bench/tracing.py
"""
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)
from tests.tracing.otlp_receiver import OTLPReceiver  # noqa: E402

N = int(os.environ.get("N", "21"))
home = tempfile.mkdtemp()
os.environ["SLOTH_RUNNER_HOME"] = home
for k in list(os.environ):
    if k.startswith("OTEL_"):
        del os.environ[k]
path = os.path.join(home, "noop200.lua")
with open(path, "w") as fh:
    fh.write("for i = 1, 200 do\n  task('t' .. i):command(function() return true end):build()\nend\n")


def cli(env):
    t = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "sloth_runner", "run", "-f", path, "-o", "json"],
                       env={**os.environ, **env, "PYTHONPATH": ROOT}, capture_output=True)
    assert p.returncode == 0, p.stderr
    assert b"tracing" not in p.stderr, p.stderr
    return time.perf_counter() - t


receiver = OTLPReceiver()
modes = {"off": {}, "otlp": {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint}}
times = {m: [] for m in modes}
cli({})  # warm caches
cli(modes["otlp"])
for _ in range(N):
    for m, env in modes.items():
        times[m].append(cli(env))
receiver.stop()
print(f"CLI, python -m sloth_runner run -f noop200.lua -o json, {N} runs each, alternating:")
for m, ts in times.items():
    print(f"  {m:5s} median {statistics.median(ts)*1000:7.1f} ms   min {min(ts)*1000:7.1f} ms")
print(f"  spans received per traced run: {len(receiver.spans) // (N + 1)}")

# in-process: the run itself, interpreter and imports already paid
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter  # noqa
from sloth_runner.running import Run  # noqa
from sloth_runner.tracing import export  # noqa


def inproc(traced):
    if traced:
        os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = "http://127.0.0.1:9"
        memory = InMemorySpanExporter()
        export.new_exporter = lambda: memory
    else:
        os.environ.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
    t = time.perf_counter()
    with Run(path) as run:
        run.load()
        run.execute()
    took = time.perf_counter() - t
    if traced:
        assert len(memory.get_finished_spans()) == 201
    return took


inproc(False)
inproc(True)
ins = {False: [], True: []}
for _ in range(N):
    for traced in (False, True):
        ins[traced].append(inproc(traced))
print(f"in-process Run.load()+execute(), {N} runs each:")
for traced, ts in ins.items():
    label = "in-memory" if traced else "off"
    print(f"  {label:9s} median {statistics.median(ts)*1000:7.1f} ms   min {min(ts)*1000:7.1f} ms")
d = statistics.median(ins[True]) - statistics.median(ins[False])
print(f"  per task: {d / 200 * 1e6:.0f} us")
