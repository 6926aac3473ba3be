"""Sharding: split one bulk job across N machines with no overlap and no gap.

``Shard.parse("K/N")`` takes a 0-based index ``K`` in ``0..N-1`` (the value a Kubernetes Indexed Job
puts in ``JOB_COMPLETION_INDEX``), so ``--shard $(JOB_COMPLETION_INDEX)/N`` works as it stands.
``Shard.owns(key)`` answers from a stable hash of the item's key: the first 8 bytes of the SHA-256 of
its UTF-8 encoding, read as a big-endian unsigned integer, modulo ``N``. The hash does not depend on
the machine, the Python version or ``PYTHONHASHSEED``, so every shard of every run agrees on who
owns what; and since exactly one residue matches, the N shards partition any set of keys.

Keys used by hc (keep them stable: changing one re-deals the work of a half-finished job):

- tagging and bulk copy: ``"<package>/<version>"`` (``"<package>"`` for a package-level target);
- migration (the migration engineer's): whatever it documents, built with ``item_key``.

Example::

    shard = Shard.parse(os.environ.get("SHARD", "0/1"))
    mine = [k for k in keys if shard.owns(k)]
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import AsyncIterable, AsyncIterator, Callable
from dataclasses import dataclass
from typing import Final, TypeVar

from hc.errors import UsageError

__all__ = ["MAX_SHARDS", "Shard", "item_key", "shard_filter"]

#: A sanity bound: more shards than this is a typo, not a plan.
MAX_SHARDS: Final = 100_000
_SPEC: Final = re.compile(r"^\s*(\d{1,9})\s*/\s*(\d{1,9})\s*$")

T = TypeVar("T")


def item_key(package: str, version: str | None = None) -> str:
    """The shard key of a package (``"pkg"``) or a version (``"pkg/version"``)."""
    return package if version is None else f"{package}/{version}"


@dataclass(frozen=True, slots=True)
class Shard:
    """Shard ``index`` of ``count`` (0-based). ``Shard(0, 1)`` owns everything."""

    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        if not 1 <= self.count <= MAX_SHARDS:
            raise UsageError(f"invalid shard count {self.count}: expected 1..{MAX_SHARDS}")
        if not 0 <= self.index < self.count:
            raise UsageError(
                f"invalid shard {self.index}/{self.count}: the index is 0-based, so 0..{self.count - 1}"
            )

    @classmethod
    def parse(cls, text: str) -> Shard:
        """``"K/N"`` → ``Shard(K, N)``, with ``0 <= K < N``; ``UsageError`` for anything else."""
        match = _SPEC.match(text)
        if match is None:
            raise UsageError(
                f"invalid shard {text!r}: expected K/N with K the 0-based index (e.g. 0/4 … 3/4)"
            )
        return cls(int(match.group(1)), int(match.group(2)))

    @property
    def is_all(self) -> bool:
        return self.count == 1

    @staticmethod
    def bucket(key: str, count: int) -> int:
        """Which of ``count`` shards owns ``key`` (pure and stable across machines and runs)."""
        digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()
        return int.from_bytes(digest[:8], "big") % count

    def owns(self, key: str) -> bool:
        """Is ``key`` this shard's work?"""
        return self.count == 1 or self.bucket(key, self.count) == self.index

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


async def shard_filter(
    items: AsyncIterable[T], shard: Shard | None, key: Callable[[T], str]
) -> AsyncIterator[T]:
    """The items of ``items`` this shard owns (all of them when ``shard`` is None or 0/1)."""
    async for item in items:
        if shard is None or shard.owns(key(item)):
            yield item
