"""The names agents and controllers agree on: queues, Redis keys, timings.

- Each agent consumes the queue `sloth.agent.NAME`; with `--pool` also `sloth.pool`, shared by
  every pool agent (`run --executor celery` sends tasks without a target there).
- Each agent writes its record to `sloth:agent:NAME` (JSON: host, address, version, slots,
  busy, load, Celery hostname, last heartbeat) every HEARTBEAT_S; an agent whose last heartbeat
  is older than LOST_AFTER_S is `lost` (the record stays RECORD_TTL_S so `agent list` can say
  so). The number of its slots in use is `sloth:agent:NAME:busy`.
- A run's workflow files are stored once under `sloth:files:SHA256` (FILES_TTL_S); each attempt
  names the key.
- Output a task or command writes on an agent is published, line by line, on
  `sloth:out:TASK_ID` while it runs.
"""

from __future__ import annotations

POOL_QUEUE = "sloth.pool"
HEARTBEAT_S = 2.0
LOST_AFTER_S = 6.0
RECORD_TTL_S = 3600
FILES_TTL_S = 7 * 24 * 3600
CONTROLLER_TTL_S = 10


def queue(agent: str) -> str:
    return f"sloth.agent.{agent}"


def record_key(agent: str) -> str:
    return f"sloth:agent:{agent}"


def busy_key(agent: str) -> str:
    return f"sloth:agent:{agent}:busy"


def cancel_key(task_id: str) -> str:
    """Set by the controller to stop a delegated attempt (Ctrl-C): the agent kills its group."""
    return f"sloth:cancel:{task_id}"


def controller_key(prefix: str) -> str:
    """Refreshed every HEARTBEAT_S by a running controller (expires after CONTROLLER_TTL_S):
    an agent does not start an attempt whose controller is gone (killed with tasks queued)."""
    return f"sloth:controller:{prefix}"


def output_channel(task_id: str) -> str:
    return f"sloth:out:{task_id}"


def files_key(digest: str) -> str:
    """A run's workflow files (JSON: entry and {path: text}), stored once by the controller
    and read by each agent process that has not loaded them yet."""
    return f"sloth:files:{digest}"


AGENT_PREFIX = "sloth:agent:"
