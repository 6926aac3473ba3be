"""Test data, made once and kept in ``benchmarks/work/data`` between runs.

- ``big_file(size)``: random bytes (incompressible). ``stamp(path, tag)`` rewrites its first 16
  bytes so every run sends content the registry has never seen (no dedup, no cache hits).
- ``small_tree(count, size)``: ``count`` distinct random files in one directory.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["big_file", "small_tree", "stamp", "tree_files", "tree_size"]

_BLOCK = 1 << 20


def big_file(root: Path, size: int) -> Path:
    path = root / f"big-{size}.bin"
    if path.exists() and path.stat().st_size == size:
        return path
    root.mkdir(parents=True, exist_ok=True)
    temp = path.with_suffix(".tmp")
    seed = os.urandom(_BLOCK)
    with open(temp, "wb") as f:
        for i in range(size // _BLOCK):
            # a cheap unique block: the index + a random tail, so no two blocks are alike
            f.write(i.to_bytes(8, "little") + os.urandom(64) + seed[72:])
        if size % _BLOCK:
            f.write(os.urandom(size % _BLOCK))
    os.replace(temp, path)
    return path


def stamp(path: Path, tag: str) -> None:
    """Make the file's content new (first 16 bytes) without rewriting it."""
    fd = os.open(path, os.O_WRONLY)
    try:
        os.pwrite(fd, tag.encode()[:16].ljust(16, b"."), 0)
    finally:
        os.close(fd)


def small_tree(root: Path, count: int, size: int) -> Path:
    path = root / f"small-{count}x{size}"
    marker = path / ".complete"
    if marker.exists():
        return path
    path.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        (path / f"f{i:06d}.bin").write_bytes(os.urandom(size))
    marker.write_text(str(count))  # a dotfile: hc skips it (no --include-hidden), curl is not given it
    return path


def tree_files(path: Path) -> list[str]:
    return sorted(name for name in os.listdir(path) if not name.startswith("."))


def tree_size(path: Path) -> int:
    return sum((path / name).stat().st_size for name in tree_files(path))
