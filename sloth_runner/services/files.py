"""File-system helpers behind the `fs` module: small, explicit, and with readable errors."""

from __future__ import annotations

import shutil
from pathlib import Path


def read(path: str) -> str:
    return Path(path).read_text(encoding="utf-8", errors="replace")


def write(path: str, content: str, append: bool = False) -> bool:
    with open(path, "a" if append else "w", encoding="utf-8") as fh:
        fh.write(content)
    return True


def exists(path: str) -> bool:
    return Path(path).exists()


def mkdir(path: str) -> bool:
    Path(path).mkdir(parents=True, exist_ok=True)
    return True


def rm(path: str, recursive: bool = False) -> bool:
    p = Path(path)
    if not p.exists() and not p.is_symlink():
        return False
    if p.is_dir() and not p.is_symlink():
        if not recursive:
            raise OSError(f"{path} is a directory: pass {{recursive = true}} to remove it")
        shutil.rmtree(p)
    else:
        p.unlink()
    return True


def ls(path: str = ".") -> list[str]:
    return sorted(child.name for child in Path(path).iterdir())
