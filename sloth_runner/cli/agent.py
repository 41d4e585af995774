"""`sloth-runner agent start|list|exec|stop`: Celery workers on other hosts that run
delegated tasks (docs/ARCHITECTURE.md, "Agents")."""

from __future__ import annotations

import argparse
import sys
import time

from sloth_runner.cli.common import add_output, print_json
from sloth_runner.errors import ConfigError, UsageError

TYPE_CHECKING = False  # typing costs ~5 ms to import; annotations are never evaluated
if TYPE_CHECKING:
    from typing import Any

NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")
EXEC_TIMEOUT_S = 600.0


def register(sub: Any) -> None:
    p = sub.add_parser("agent", help="agents: run delegated tasks on other hosts")
    ops = p.add_subparsers(dest="op", metavar="OP")

    def broker_options(q: Any) -> None:
        q.add_argument("--broker", metavar="URL",
                       help="Redis URL (default: SLOTH_BROKER_URL, else agents.yaml)")
        q.add_argument("--insecure", action="store_true",
                       help="allow a broker on another host without a password")

    s = ops.add_parser("start", help="run this host's agent (a Celery worker) in the foreground")
    s.add_argument("--name", required=True, help="the agent's name, as :delegate_to() gives it")
    s.add_argument("--concurrency", type=int, default=1, metavar="N",
                   help="task attempts at once (default 1)")
    s.add_argument("--pool", action="store_true",
                   help="also take tasks from the shared pool queue (run --executor celery)")
    broker_options(s)
    ls = ops.add_parser("list", help="the agents, their slots and whether they are up")
    broker_options(ls)
    add_output(ls)
    e = ops.add_parser("exec", help="run a shell command on an agent, its output streamed")
    e.add_argument("name")
    e.add_argument("command")
    e.add_argument("--timeout", type=float, default=EXEC_TIMEOUT_S, metavar="S",
                   help=f"kill it after S seconds (default {EXEC_TIMEOUT_S:g})")
    broker_options(e)
    st = ops.add_parser("stop", help="ask an agent to stop once its running tasks are done")
    st.add_argument("name")
    broker_options(st)
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    if not args.op:
        raise UsageError("agent needs an operation: start, list, exec or stop")
    from sloth_runner.agents import broker

    url = broker.resolve(args.broker, insecure=args.insecure)
    if args.op == "start":
        return _start(args, url)
    if args.op == "list":
        return _list(args, url)
    if args.op == "exec":
        return _exec(args, url)
    return _stop(args, url)


def _client(url: str) -> Any:
    import redis

    return redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=10)


def _start(args: argparse.Namespace, url: str) -> int:
    import os
    import socket

    from sloth_runner.agents import protocol
    from sloth_runner.agents.app import attempt_processes, make_app, thread_pool
    from sloth_runner.agents.broker import mask
    from sloth_runner.agents.registry import Heartbeat

    if not args.name or set(args.name) - NAME_CHARS:
        raise UsageError("--name: letters, digits, '-', '_' and '.' only")
    if args.concurrency < 1:
        raise UsageError("--concurrency must be at least 1")
    os.environ["SLOTH_AGENT_NAME"] = args.name
    app = make_app(url)
    queues = [protocol.queue(args.name)] + ([protocol.POOL_QUEUE] if args.pool else [])
    worker_name = f"{args.name}@{socket.gethostname()}"
    heartbeat = Heartbeat(_client(url), args.name, args.concurrency, worker_name, args.pool)
    try:
        heartbeat.start()
    except Exception as exc:
        raise ConfigError("broker", f"cannot reach {mask(url)}: {exc}") from None
    from sloth_runner.agents.runners import remove_stale_folders

    remove_stale_folders()
    processes = attempt_processes(args.concurrency)
    processes.fill()  # warm before the first attempt arrives
    print(f"agent {args.name}: {args.concurrency} slot(s), queues {', '.join(queues)}, "
          f"broker {mask(url)}", flush=True)
    print(_systemd_hint(args), flush=True)
    import warnings

    # Celery warns about root; it exists for pickle, which is never accepted here (json only)
    warnings.filterwarnings("ignore", message=".*superuser privileges.*")
    try:
        worker = app.Worker(hostname=worker_name, queues=queues, concurrency=args.concurrency,
                            pool_cls=thread_pool(), loglevel="WARNING", without_gossip=True,
                            without_mingle=True, quiet=True)
        worker.start()
        return int(worker.exitcode or 0)
    finally:
        heartbeat.stop()
        processes.close()


def _systemd_hint(args: argparse.Namespace) -> str:
    pool = " --pool" if args.pool else ""
    return ("to keep it running, a systemd unit:\n"
            "  [Service]\n"
            "  Environment=SLOTH_BROKER_URL=redis://:PASSWORD@BROKER:6379/0\n"
            f"  ExecStart={sys.executable} -m sloth_runner agent start --name {args.name} "
            f"--concurrency {args.concurrency}{pool}\n"
            "  Restart=on-failure\n"
            "  KillMode=mixed")


def _list(args: argparse.Namespace, url: str) -> int:
    from sloth_runner.agents.registry import agents

    found = agents(_client(url))
    if args.output == "json":
        print_json({"agents": found})
        return 0
    if not found:
        print("no agents have reported to this broker (start one: sloth-runner agent start "
              "--name NAME)")
        return 0
    print(f"{'NAME':<16} {'HOST':<20} {'ADDRESS':<16} {'VERSION':<8} {'SLOTS':>5} {'BUSY':>4} "
          f"{'LOAD':>5}  {'HEARTBEAT':<10} STATUS")
    for a in found:
        print(f"{a['name']:<16} {a['host']:<20} {a['address']:<16} {a['version']:<8} "
              f"{a['slots']:>5} {a['busy']:>4} {a['load']:>5}  {str(a['age_s']) + 's ago':<10} "
              f"{a['status']}")
    return 0


def _agent_up(url: str, name: str) -> dict[str, Any]:
    from sloth_runner.agents.registry import up

    alive = up(_client(url))
    if name not in alive:
        names = ", ".join(sorted(alive)) or "none"
        raise UsageError(f"agent '{name}' is not up (agents up: {names})")
    return alive[name]


def _exec(args: argparse.Namespace, url: str) -> int:
    from sloth_runner.agents import protocol
    from sloth_runner.agents.app import make_app

    _agent_up(url, args.name)
    app = make_app(url)
    client = _client(url)
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    task_id = f"exec-{time.time_ns():x}"
    pubsub.subscribe(protocol.output_channel(task_id))  # before the command can print
    result = app.send_task("sloth.exec", args=[args.command, args.timeout], task_id=task_id,
                           queue=protocol.queue(args.name))
    deadline = time.monotonic() + args.timeout + 30
    ended = False
    while time.monotonic() < deadline:
        message = pubsub.get_message(timeout=0.5)
        if message is not None:
            line = message["data"].decode("utf-8", "replace")
            if line == "\x00end":
                ended = True
                break
            print(line, flush=True)
        elif result.ready():
            break
    pubsub.close()
    outcome = result.get(timeout=30 if ended else 5, propagate=False)
    if not isinstance(outcome, dict):
        print(f"agent {args.name}: the command could not run: {outcome}", file=sys.stderr)
        return 1
    if outcome.get("timed_out"):
        print(f"agent {args.name}: killed after {args.timeout:g}s", file=sys.stderr)
    return int(outcome.get("exit_code") or 0)


def _stop(args: argparse.Namespace, url: str) -> int:
    from sloth_runner.agents.app import make_app

    record = _agent_up(url, args.name)
    make_app(url).control.shutdown(destination=[record["worker"]])
    print(f"agent {args.name}: asked to stop")
    return 0
