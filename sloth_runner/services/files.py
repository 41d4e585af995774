"""File-system helpers behind the `fs` module: small, explicit, and with readable errors.

`target` and `within` answer the sandbox's question "does this write stay inside the workdir?"
on real paths: `..` and symlinks are resolved first, so neither `../x` nor a link pointing out
of the directory passes.
"""

from __future__ import annotations

import os


def read(path: str) -> str:
    with open(path, encoding="utf-8", errors="replace") as fh:
        return fh.read()


def write(path: str, content: str, append: bool = False) -> bool:
    with open(path, "a" if append else "w", encoding="utf-8") as fh:
        fh.write(content)
    return True


def exists(path: str) -> bool:
    return os.path.exists(path)


def mkdir(path: str) -> bool:
    os.makedirs(path, exist_ok=True)
    return True


def rm(path: str, recursive: bool = False) -> bool:
    if not os.path.lexists(path):
        return False
    if os.path.isdir(path) and not os.path.islink(path):
        if not recursive:
            raise OSError(f"{path} is a directory: pass {{recursive = true}} to remove it")
        import shutil  # lazily: most runs never remove a tree

        shutil.rmtree(path)
    else:
        os.unlink(path)
    return True


def ls(path: str = ".") -> list[str]:
    return sorted(os.listdir(path))


def target(path: str, follow: bool = True) -> str:
    """The real path a write to `path` touches: relative to the current directory, `..` and
    symlinks resolved. With follow=False the last component is not followed (removing a
    symlink removes the link, not what it points to)."""
    head, tail = os.path.split(path)
    if follow or tail in ("", ".", ".."):
        return os.path.realpath(path)
    return os.path.join(os.path.realpath(head or "."), tail)


def within(real: str, root: str, *, itself: bool = True) -> bool:
    """Whether the real path `real` is inside the directory `root` (resolved here); `root`
    itself counts only with itself=True."""
    base = os.path.realpath(root)
    if real == base:
        return itself
    return real.startswith(base if base.endswith(os.sep) else base + os.sep)
