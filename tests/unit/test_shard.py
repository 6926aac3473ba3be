"""Shard: parsing K/N and a stable, partitioning ownership test."""

from __future__ import annotations

import hashlib

import pytest

from hc.errors import UsageError
from hc.transfer import Shard, item_key


@pytest.mark.parametrize(
    ("text", "index", "count"),
    [("0/1", 0, 1), ("0/4", 0, 4), ("3/4", 3, 4), (" 2 / 10 ", 2, 10), ("99/100", 99, 100)],
)
def test_parse_accepts_zero_based_index(text: str, index: int, count: int) -> None:
    shard = Shard.parse(text)
    assert (shard.index, shard.count) == (index, count)
    assert str(shard) == f"{index}/{count}"


@pytest.mark.parametrize("text", ["", "4/4", "1/0", "0/0", "-1/4", "a/4", "1", "1/2/3", "1.5/4", "0/100001"])
def test_parse_refuses_bad_input(text: str) -> None:
    with pytest.raises(UsageError):
        Shard.parse(text)


def test_shards_partition_keys_with_no_overlap_and_no_gap() -> None:
    keys = [item_key(f"pkg-{p}", f"{v}.0.{p % 3}") for p in range(50) for v in range(40)]
    for count in (1, 2, 3, 4, 7):
        shards = [Shard(i, count) for i in range(count)]
        owners = [[s for s in shards if s.owns(k)] for k in keys]
        assert all(len(o) == 1 for o in owners)
        if count > 1:
            sizes = [sum(1 for o in owners if o[0] == s) for s in shards]
            # a hash spreads 2000 keys roughly evenly; far from even means a broken hash
            assert min(sizes) > len(keys) / count / 2


def test_ownership_is_stable_across_runs_and_machines() -> None:
    # Pinned values: sha256("pkg/1.0")[:8] mod N. Changing these re-deals half-finished jobs.
    assert [Shard.bucket(k, 4) for k in ("pkg/1.0", "pkg/2.0", "a/b", "x")] == [1, 1, 1, 0]

    for key in ("pkg/1.0", "ünïcode/2", "a"):
        expected = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big")
        assert Shard.bucket(key, 1000) == expected % 1000
    assert Shard(0, 1).owns("anything") and Shard(0, 1).is_all
