"""Replace a workflow file with its tuned text, safely: all of it or none of it.

The new text goes to a temporary file beside the original (same file system), with the
original's mode (and owner, where allowed), is flushed to disk, and is renamed over it: a
reader sees the old file or the new one, never half of each, and a crash leaves one of them.
A symlink is followed, so the link stays a link. Then the caller's check runs (`tune` loads
the file again and compares what it defines with what was written); if it fails, or raises,
the original bytes are put back the same way.
"""

from __future__ import annotations

import os
import stat
import tempfile

from sloth_runner.errors import LoadError, SlothError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable


def write_verified(path: str, old: bytes, new: bytes, check: Callable[[], str | None]) -> None:
    """Write `new` over `path` (which must still hold `old`), then `check()`: a message
    means the new file is wrong, and the original is restored."""
    real = os.path.realpath(path)
    info = os.stat(real)
    with open(real, "rb") as fh:
        if fh.read() != old:
            raise SlothError(f"{path} changed while it was being tuned: nothing written; run "
                             "tune again")
    replace_atomically(real, new, info)
    try:
        problem = check()
    except BaseException:
        replace_atomically(real, old, info)
        raise
    if problem:
        replace_atomically(real, old, info)
        raise LoadError(f"{path}: the tuned file {problem}; the original is restored, "
                        "unchanged")


def replace_atomically(real: str, data: bytes, like: os.stat_result) -> None:
    folder, name = os.path.split(real)
    fd, temporary = tempfile.mkstemp(prefix=f".{name}.", suffix=".tune", dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fchmod(fh.fileno(), stat.S_IMODE(like.st_mode))
            try:
                os.fchown(fh.fileno(), like.st_uid, like.st_gid)
            except PermissionError:  # not ours to give away: it stays the writer's
                pass
            os.fsync(fh.fileno())
        os.replace(temporary, real)
    except BaseException:
        try:
            os.unlink(temporary)
        except FileNotFoundError:
            pass
        raise
    directory = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(directory)  # the rename itself survives a crash
    finally:
        os.close(directory)
