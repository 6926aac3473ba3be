"""Digests: one-pass multi-hashing, checksum headers, the ``alg:hex`` form (pure)."""

from __future__ import annotations

import hashlib

import pytest

from hc.errors import UsageError
from hc.protocol.digest import (
    CHECKSUM_HEADERS,
    Checksums,
    MultiHasher,
    format_digest,
    hex_digest,
    parse_digest,
)

DATA = b"The quick brown fox jumps over the lazy dog" * 1000


def test_multihasher_matches_hashlib_whatever_the_chunking() -> None:
    for step in (1, 7, 4096, len(DATA)):
        hasher = MultiHasher()
        for i in range(0, len(DATA), step):
            hasher.update(DATA[i : i + step])
        result = hasher.result()
        assert result.size == len(DATA)
        for algorithm in ("md5", "sha1", "sha256", "sha512"):
            assert result.get(algorithm) == hashlib.new(algorithm, DATA).hexdigest()


def test_multihasher_always_includes_sha256_and_rejects_unknown() -> None:
    result = MultiHasher(["md5"]).result()
    assert result.sha256 == hashlib.sha256(b"").hexdigest()
    assert result.sha1 is None
    with pytest.raises(ValueError):
        MultiHasher(["crc32"])


def test_headers_and_mismatches() -> None:
    hasher = MultiHasher()
    hasher.update(DATA)
    result = hasher.result()
    headers = result.headers()
    assert set(headers) == set(CHECKSUM_HEADERS.values())
    assert headers["X-Checksum-Sha256"] == hashlib.sha256(DATA).hexdigest()
    assert result.mismatches({"sha256": result.sha256.upper(), "md5": " " + (result.md5 or "") + " "}) == []
    assert result.mismatches({"sha1": "0" * 40}) == ["sha1"]
    partial = Checksums(size=1, sha256="a" * 64)
    assert partial.headers() == {"X-Checksum-Sha256": "a" * 64}
    assert partial.mismatches({"md5": "b" * 32}) == ["md5"]  # not computed counts as mismatch


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("sha256:" + "a" * 64, ("sha256", "a" * 64)),
        ("SHA256:" + "A" * 64, ("sha256", "a" * 64)),
        ("md5:" + "0" * 32, ("md5", "0" * 32)),
    ],
)
def test_parse_digest(text: str, expected: tuple[str, str]) -> None:
    assert parse_digest(text) == expected
    assert format_digest(expected[1], expected[0]) == f"{expected[0]}:{expected[1]}"


@pytest.mark.parametrize("bad", ["sha256", "sha256:xyz", "sha256:" + "a" * 63, "crc:" + "a" * 8, ":abc"])
def test_bad_digests(bad: str) -> None:
    with pytest.raises(UsageError):
        parse_digest(bad)


SHA256 = hashlib.sha256(b"x").hexdigest()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (SHA256, SHA256),
        (SHA256.upper(), SHA256),  # upper case is accepted and lowered
        (f"  {SHA256}\n", SHA256),  # so are surrounding blanks
        (SHA256[:-1], None),  # too short
        (SHA256 + "0", None),  # too long
        (SHA256[:-1] + "g", None),  # not hex
        (SHA256[:30] + "  " + SHA256[32:], None),  # blanks inside (bytes.fromhex skips them)
        (SHA256[:31] + " " + SHA256[32:] + "0", None),  # a blank splitting a pair, right length
        (SHA256[:-1] + "\u0660", None),  # a non-ASCII digit
        ("", None),
        (None, None),
        (12, None),
    ],
)
def test_hex_digest_accepts_only_well_formed_digests(value: object, expected: str | None) -> None:
    assert hex_digest(value, "sha256") == expected


def test_hex_digest_lengths_follow_the_algorithm() -> None:
    for algorithm in ("md5", "sha1", "sha256", "sha512"):
        digest = hashlib.new(algorithm, b"x").hexdigest()
        assert hex_digest(digest, algorithm) == digest
        assert hex_digest(SHA256, algorithm) == (SHA256 if algorithm == "sha256" else None)
