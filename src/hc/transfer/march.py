"""Which pairs need work: compare a source with a destination listing.

Two ways to pair items, both with bounded memory for the source side:

- ``DestinationIndex``: one listing of a version kept as a compact map ``path → (size, sha256,
  md5)`` (raw digest bytes, not hex strings), then looked up per source item as it streams in.
  This is what push uses: one listing per version instead of a HEAD per file.
- ``march``: a merge-join of two streams already sorted by path, yielding ``src-only``,
  ``dst-only`` and matched pairs without holding either side (rclone's march).

``compare`` decides identical / differs: equal size and equal sha256, or equal size and equal md5
when sha256 is not known on both sides. When neither digest is shared, the answer is "differs":
transferring again is safe, skipping on a guess is not.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterable, AsyncIterator, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from hc.protocol.files import HasDigests

__all__ = [
    "DestinationIndex",
    "Fingerprint",
    "HasDigests",
    "Match",
    "Verdict",
    "compare",
    "march",
]


class Verdict(enum.Enum):
    MISSING = "missing"  # only in the source
    EXTRA = "extra"  # only in the destination
    IDENTICAL = "identical"
    DIFFERS = "differs"


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """The part of a file's identity the comparison uses; digests are lower-case hex."""

    size: int
    sha256: str | None = None
    md5: str | None = None

    @classmethod
    def of(cls, item: HasDigests) -> Fingerprint:
        return cls(item.size, _lower(item.sha256), _lower(item.md5))


def _lower(value: str | None) -> str | None:
    value = value.strip().lower() if value else None
    return value or None


def compare(src: HasDigests, dst: HasDigests | None) -> Verdict:
    """Is ``dst`` already the same content as ``src``? Pure."""
    if dst is None:
        return Verdict.MISSING
    if src.size != dst.size:
        return Verdict.DIFFERS
    for algorithm in ("sha256", "md5"):
        mine, theirs = _lower(getattr(src, algorithm)), _lower(getattr(dst, algorithm))
        if mine is not None and theirs is not None:
            return Verdict.IDENTICAL if mine == theirs else Verdict.DIFFERS
    return Verdict.DIFFERS


def _pack(hex_value: str | None) -> bytes | None:
    if not hex_value:
        return None
    try:
        return bytes.fromhex(hex_value)
    except ValueError:
        return None  # a malformed digest compares as unknown rather than crashing the job


class DestinationIndex:
    """Path → fingerprint for one destination listing, stored compactly (about 150 bytes an entry)."""

    __slots__ = ("_entries",)

    def __init__(self) -> None:
        self._entries: dict[str, tuple[int, bytes | None, bytes | None]] = {}

    def add(self, path: str, item: HasDigests) -> None:
        self._entries[path] = (item.size, _pack(item.sha256), _pack(item.md5))

    def get(self, path: str) -> Fingerprint | None:
        packed = self._entries.get(path)
        if packed is None:
            return None
        size, sha256, md5 = packed
        return Fingerprint(size, sha256.hex() if sha256 else None, md5.hex() if md5 else None)

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, path: object) -> bool:
        return path in self._entries


T = TypeVar("T")
S = TypeVar("S")
D = TypeVar("D")


@dataclass(frozen=True, slots=True)
class Match(Generic[S, D]):
    key: str
    src: S | None
    dst: D | None
    verdict: Verdict


async def _keyed(items: AsyncIterable[T], key: Callable[[T], str], side: str) -> AsyncIterator[tuple[str, T]]:
    last: str | None = None
    async for item in items:
        current = key(item)
        if last is not None and current <= last:
            # A merge-join over unsorted input silently reports wrong answers, so refuse it.
            raise ValueError(f"{side} listing is not sorted by path: {current!r} after {last!r}")
        last = current
        yield current, item


async def march(
    src: AsyncIterable[S],
    dst: AsyncIterable[D],
    *,
    src_key: Callable[[S], str],
    dst_key: Callable[[D], str],
    src_digests: Callable[[S], HasDigests],
    dst_digests: Callable[[D], HasDigests],
) -> AsyncIterator[Match[S, D]]:
    """Merge-join two streams sorted by key (plain ``str`` order), one item of each in memory.

    Raises ValueError when either stream is out of order or repeats a key.
    """
    src_it = _keyed(src, src_key, "source")
    dst_it = _keyed(dst, dst_key, "destination")
    s = await anext(src_it, None)
    d = await anext(dst_it, None)
    while s is not None or d is not None:
        if d is None or (s is not None and s[0] < d[0]):
            assert s is not None
            yield Match(s[0], s[1], None, Verdict.MISSING)
            s = await anext(src_it, None)
        elif s is None or d[0] < s[0]:
            yield Match(d[0], None, d[1], Verdict.EXTRA)
            d = await anext(dst_it, None)
        else:
            yield Match(s[0], s[1], d[1], compare(src_digests(s[1]), dst_digests(d[1])))
            s = await anext(src_it, None)
            d = await anext(dst_it, None)
