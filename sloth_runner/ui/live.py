"""Live updates for open pages: server-sent events saying which runs changed.

The store is the only channel between runs and the dashboard (runs are other processes), so
the feed polls it every POLL_S: `PRAGMA data_version` (free: it changes only when another
connection commits), then, after a commit, a few indexed reads for what changed. A run's attempts are committed at most 0.1 s after they end, so an open page
learns of a finished task within ~0.4 s and fetches just the rows or the run it shows.
Each stream ends after MAX_STREAM_S (the browser's EventSource reconnects), when the client
goes away (nothing polls for a page nobody has open), or when the server is stopping (Ctrl-C
does not wait on open pages).
"""

from __future__ import annotations

import json
import time

import anyio
from starlette.requests import Request
from starlette.responses import StreamingResponse

from sloth_runner.store import dashboard

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import AsyncIterator

POLL_S = 0.25
KEEPALIVE_S = 15.0
MAX_STREAM_S = 3600.0


async def events(request: Request) -> StreamingResponse:
    store = request.app.state.settings.store
    stopping = request.app.state.settings.stopping

    async def stream() -> AsyncIterator[str]:
        mark, _ = await anyio.to_thread.run_sync(dashboard.changes_since, store, (0, 0.0, 0))
        yield "retry: 2000\n\n"
        started = last_sent = time.monotonic()
        while time.monotonic() - started < MAX_STREAM_S and not stopping.is_set():
            if await request.is_disconnected():
                return
            mark, changed = await anyio.to_thread.run_sync(dashboard.changes_since, store, mark)
            if changed:
                yield f"event: runs\ndata: {json.dumps(changed)}\n\n"
                last_sent = time.monotonic()
            elif time.monotonic() - last_sent > KEEPALIVE_S:
                yield ": keep-alive\n\n"
                last_sent = time.monotonic()
            await anyio.sleep(POLL_S)

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"X-Accel-Buffering": "no"})
