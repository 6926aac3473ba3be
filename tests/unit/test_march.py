"""Comparing source and destination: identical / differs / missing, by index and by merge-join."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable

import pytest

from hc.protocol.digest import Checksums
from hc.transfer.march import DestinationIndex, Fingerprint, Match, Verdict, compare, march

A256 = "a" * 64
B256 = "b" * 64
AMD5 = "1" * 32
BMD5 = "2" * 32


@pytest.mark.parametrize(
    ("src", "dst", "verdict"),
    [
        (Fingerprint(10, A256, AMD5), None, Verdict.MISSING),
        (Fingerprint(10, A256, AMD5), Fingerprint(10, A256, AMD5), Verdict.IDENTICAL),
        (Fingerprint(10, A256), Fingerprint(10, A256.upper()), Verdict.IDENTICAL),  # hex case does not matter
        (Fingerprint(10, A256), Fingerprint(11, A256), Verdict.DIFFERS),  # size wins
        (
            Fingerprint(10, A256, AMD5),
            Fingerprint(10, B256, AMD5),
            Verdict.DIFFERS,
        ),  # sha256 decides over md5
        (Fingerprint(10, None, AMD5), Fingerprint(10, A256, AMD5), Verdict.IDENTICAL),  # only md5 shared
        (Fingerprint(10, A256, AMD5), Fingerprint(10, None, BMD5), Verdict.DIFFERS),
        (Fingerprint(10, A256), Fingerprint(10, None, AMD5), Verdict.DIFFERS),  # nothing shared: transfer
        (Fingerprint(0), Fingerprint(0), Verdict.DIFFERS),
    ],
)
def test_compare_table(src: Fingerprint, dst: Fingerprint | None, verdict: Verdict) -> None:
    assert compare(src, dst) is verdict


def test_compare_accepts_local_checksums() -> None:
    local = Checksums(size=3, sha256=A256, md5=AMD5)
    assert compare(local, Fingerprint(3, A256)) is Verdict.IDENTICAL


def test_destination_index_round_trips_digests_compactly() -> None:
    index = DestinationIndex()
    index.add("a/b.txt", Fingerprint(5, A256.upper(), AMD5))
    index.add("c", Fingerprint(0, None, None))
    index.add("bad-digest", Fingerprint(1, "not-hex", None))
    assert index.get("a/b.txt") == Fingerprint(5, A256, AMD5)
    assert index.get("c") == Fingerprint(0)
    assert index.get("bad-digest") == Fingerprint(1)  # unknown, not a crash
    assert index.get("missing") is None
    assert "c" in index and len(index) == 3


async def stream(items: Iterable[tuple[str, Fingerprint]]) -> AsyncIterator[tuple[str, Fingerprint]]:
    for item in items:
        yield item


async def run_march(
    src: list[tuple[str, Fingerprint]], dst: list[tuple[str, Fingerprint]]
) -> list[tuple[str, Verdict]]:
    out: list[tuple[str, Verdict]] = []
    matches: AsyncIterator[Match[tuple[str, Fingerprint], tuple[str, Fingerprint]]] = march(
        stream(src),
        stream(dst),
        src_key=lambda s: s[0],
        dst_key=lambda d: d[0],
        src_digests=lambda s: s[1],
        dst_digests=lambda d: d[1],
    )
    async for match in matches:
        out.append((match.key, match.verdict))
    return out


async def test_march_pairs_sorted_streams() -> None:
    same, other = Fingerprint(1, A256), Fingerprint(1, B256)
    src = [("a", same), ("b", same), ("d", same), ("e", same)]
    dst = [("b", same), ("c", same), ("d", other), ("f", same)]
    assert await run_march(src, dst) == [
        ("a", Verdict.MISSING),
        ("b", Verdict.IDENTICAL),
        ("c", Verdict.EXTRA),
        ("d", Verdict.DIFFERS),
        ("e", Verdict.MISSING),
        ("f", Verdict.EXTRA),
    ]


async def test_march_with_one_side_empty() -> None:
    fp = Fingerprint(1, A256)
    assert await run_march([], [("x", fp)]) == [("x", Verdict.EXTRA)]
    assert await run_march([("x", fp)], []) == [("x", Verdict.MISSING)]
    assert await run_march([], []) == []


async def test_march_refuses_unsorted_input() -> None:
    fp = Fingerprint(1, A256)
    with pytest.raises(ValueError, match="not sorted"):
        await run_march([("b", fp), ("a", fp)], [])
    with pytest.raises(ValueError, match="not sorted"):
        await run_march([], [("a", fp), ("a", fp)])
