"""Digests: the ``sha256:<hex>`` form, and hashing several algorithms in one pass over the bytes.

Harness generic uploads carry md5, sha1, sha256 and sha512 as ``X-Checksum-*`` headers, and the
registry lists all four per file, so both sides compute them from a single read. hashlib releases
the GIL for updates over 2 KiB, so ``MultiHasher.update`` is safe (and useful) to call from a worker
thread while the event loop keeps moving bytes.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

from hc.errors import UsageError

__all__ = [
    "ALGORITHMS",
    "CHECKSUM_HEADERS",
    "HEX_LENGTH",
    "Checksums",
    "MultiHasher",
    "format_digest",
    "hex_digest",
    "parse_digest",
]

#: Algorithms hc knows, in the order the Go CLI sends their headers.
ALGORITHMS: Final = ("md5", "sha1", "sha256", "sha512")

#: The request header carrying each algorithm's hex digest on a generic upload.
CHECKSUM_HEADERS: Final = {
    "md5": "X-Checksum-Md5",
    "sha1": "X-Checksum-Sha1",
    "sha256": "X-Checksum-Sha256",
    "sha512": "X-Checksum-Sha512",
}

#: Hex digits in each algorithm's digest.
HEX_LENGTH: Final = {"md5": 32, "sha1": 40, "sha256": 64, "sha512": 128}


def hex_digest(value: object, algorithm: str) -> str | None:
    """``value`` as a well-formed hex digest of ``algorithm`` in lower case (surrounding blanks
    and upper case accepted), or None: a malformed digest from a listing or a header is unknown.
    ``bytes.fromhex`` is the check (a listing has four digests per file, and it is a third of a
    regular expression's cost); it also skips blanks between pairs, which the length refuses."""
    if not isinstance(value, str):
        return None
    text = value.strip().lower()
    if len(text) != HEX_LENGTH[algorithm]:
        return None
    try:
        return text if len(bytes.fromhex(text)) * 2 == len(text) else None
    except ValueError:
        return None


_DIGEST_RE: Final = re.compile(r"^(?P<alg>[a-z0-9]+):(?P<hex>[0-9a-f]+)$")


@dataclass(frozen=True, slots=True, kw_only=True)
class Checksums:
    """Lower-case hex digests of one file. sha256 is always present; the others when computed."""

    size: int
    sha256: str
    md5: str | None = None
    sha1: str | None = None
    sha512: str | None = None

    def get(self, algorithm: str) -> str | None:
        value: str | None = getattr(self, algorithm)
        return value

    def headers(self) -> dict[str, str]:
        """The ``X-Checksum-*`` headers for every digest present."""
        return {
            header: value
            for algorithm, header in CHECKSUM_HEADERS.items()
            if (value := self.get(algorithm)) is not None
        }

    def mismatches(self, expected: Mapping[str, str]) -> list[str]:
        """Names of the algorithms whose expected hex (case-insensitive) differs from ours."""
        bad = []
        for algorithm, want in expected.items():
            have = self.get(algorithm)
            if have is None or have != want.strip().lower():
                bad.append(algorithm)
        return bad


class MultiHasher:
    """Feeds every chunk to several hash objects at once and counts the bytes."""

    __slots__ = ("_hashes", "size")

    def __init__(self, algorithms: Iterable[str] = ALGORITHMS) -> None:
        names = set(algorithms) | {"sha256"}
        unknown = names - set(ALGORITHMS)
        if unknown:
            raise ValueError(f"unknown hash algorithm(s): {', '.join(sorted(unknown))}")
        self._hashes = {name: hashlib.new(name) for name in ALGORITHMS if name in names}
        self.size = 0

    def update(self, chunk: bytes | bytearray | memoryview) -> None:
        for h in self._hashes.values():
            h.update(chunk)
        self.size += len(chunk)

    def result(self) -> Checksums:
        hexes = {name: h.hexdigest() for name, h in self._hashes.items()}
        return Checksums(
            size=self.size,
            sha256=hexes["sha256"],
            md5=hexes.get("md5"),
            sha1=hexes.get("sha1"),
            sha512=hexes.get("sha512"),
        )


def format_digest(hex_sha256: str, algorithm: str = "sha256") -> str:
    return f"{algorithm}:{hex_sha256}"


def parse_digest(text: str) -> tuple[str, str]:
    """Parse ``<alg>:<hex>`` (as OCI and hc's upload sessions use) into ``(alg, hex)``.

    Raises UsageError for an unknown algorithm, a non-hex value or the wrong length.
    """
    match = _DIGEST_RE.match(text.strip().lower())
    if match is None:
        raise UsageError(f"malformed digest {text!r}: expected <algorithm>:<hex>")
    algorithm, hex_value = match["alg"], match["hex"]
    if algorithm not in HEX_LENGTH:
        raise UsageError(f"unsupported digest algorithm {algorithm!r}")
    if len(hex_value) != HEX_LENGTH[algorithm]:
        raise UsageError(f"malformed {algorithm} digest: expected {HEX_LENGTH[algorithm]} hex characters")
    return algorithm, hex_value
