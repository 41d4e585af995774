"""Output files kept past the in-memory cap (the run's spool) hold what commands printed, raw.
At the run's end they are rewritten scrubbed by the run's own scrubber, which knows the
secrets this run saw (its environment's credentials, values it already redacted), so that
the dashboard's download never serves a secret the page showed as a placeholder."""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

CHUNK = 1 << 16


def scrub_files_in(folder: str, scrubber: Any) -> None:
    """Every regular file directly in `folder`, scrubbed in place (streamed, never whole in
    memory; replaced atomically, so a reader sees the old file or the new one)."""
    try:
        names = os.listdir(folder)
    except OSError:
        return
    for name in names:
        path = os.path.join(folder, name)
        if not os.path.isfile(path) or name.endswith(".scrubbing"):
            continue
        stream = scrubber.stream()
        tmp = path + ".scrubbing"
        try:
            with open(path, encoding="utf-8", errors="replace") as src, \
                    open(tmp, "w", encoding="utf-8") as dst:
                for chunk in iter(lambda: src.read(CHUNK), ""):  # noqa: B023 (src is this loop's)
                    dst.write(stream.feed(chunk))
                dst.write(stream.flush())
            os.replace(tmp, path)
        except OSError:
            try:
                os.unlink(tmp)
            except OSError:
                pass
