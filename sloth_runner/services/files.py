"""File-system helpers behind the `fs` module: small, explicit, and with readable errors."""

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
