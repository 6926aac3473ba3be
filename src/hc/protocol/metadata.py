"""The ``--metadata "k:v,k2:v2"`` syntax, parsed strictly into the pairs the v2 metadata API takes.

Rules (the Go CLI's ``ParseMetadataString`` plus the limits of the v2 ``MetadataInput`` schema, so a
bad string is refused before any request goes out):

- the text is split on ``,``; blank segments are skipped (as in Go, so a trailing comma is harmless);
- each pair is split on its first ``:`` (a value may contain ``:``, e.g. a URL); key and value are
  trimmed and must both be non-empty;
- a key has 1 to 128 characters, a value 1 to 256; at most 50 pairs; no key twice;
- no control characters (they would only end up garbling a terminal or a log line).

Errors are ``UsageError`` and name the offending pair.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from hc.errors import UsageError

__all__ = ["MAX_KEY_LENGTH", "MAX_PAIRS", "MAX_VALUE_LENGTH", "MetadataPair", "parse_metadata"]

MAX_PAIRS: Final = 50
MAX_KEY_LENGTH: Final = 128
MAX_VALUE_LENGTH: Final = 256
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f-\x9f]")


@dataclass(frozen=True, slots=True)
class MetadataPair:
    key: str
    value: str

    def to_json(self) -> dict[str, str]:
        return {"key": self.key, "value": self.value}


def parse_metadata(text: str) -> tuple[MetadataPair, ...]:
    """Parse ``"k:v,k2:v2"`` into pairs, in order; raise ``UsageError`` naming the bad pair."""
    pairs: list[MetadataPair] = []
    seen: set[str] = set()
    for segment in text.split(","):
        if not segment.strip():
            continue
        key, sep, value = segment.partition(":")
        key, value = key.strip(), value.strip()
        shown = segment.strip()
        if not sep:
            raise UsageError(f"invalid metadata pair {shown!r}: expected key:value")
        if not key:
            raise UsageError(f"invalid metadata pair {shown!r}: the key is empty")
        if not value:
            raise UsageError(f"invalid metadata pair {shown!r}: the value is empty")
        if len(key) > MAX_KEY_LENGTH:
            raise UsageError(
                f"invalid metadata pair {_clip(shown)!r}: the key is longer than {MAX_KEY_LENGTH} characters"
            )
        if len(value) > MAX_VALUE_LENGTH:
            raise UsageError(
                f"invalid metadata pair {_clip(shown)!r}: "
                f"the value is longer than {MAX_VALUE_LENGTH} characters"
            )
        if _CONTROL.search(key) or _CONTROL.search(value):
            raise UsageError(f"invalid metadata pair {_clip(shown)!r}: control characters are not allowed")
        if key in seen:
            raise UsageError(f"invalid metadata pair {shown!r}: the key {key!r} is given twice")
        seen.add(key)
        pairs.append(MetadataPair(key, value))
    if not pairs:
        raise UsageError("no metadata given: expected key:value[,key2:value2...]")
    if len(pairs) > MAX_PAIRS:
        raise UsageError(f"too many metadata pairs ({len(pairs)}): at most {MAX_PAIRS} per request")
    return tuple(pairs)


def _clip(text: str, limit: int = 40) -> str:
    # Long offenders are cut so the error stays one readable line.
    return text if len(text) <= limit else text[: limit - 1] + "…"
