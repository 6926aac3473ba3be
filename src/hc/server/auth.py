"""API keys: how they look, how they are stored, how a request presents one.

- A key is ``pat.<account>.<keyid>.<secret>``, the shape of a Harness PAT, so the client derives the
  account from the token alone as the Go CLI does (``SplitN(token, ".", 3)[1]``).
- Only the sha256 of a key is stored. Keys carry 192 random bits, so a fast hash is enough (no
  password stretching needed) and a lookup by hash is a constant-time comparison in effect: the
  secret itself is never compared byte by byte.
- A request may present the key as ``x-api-key`` (what the Go CLI sends), ``Authorization: <key>``
  (its JWT path), ``Authorization: Bearer <key>``, or HTTP Basic with the key as password (what
  pip/maven/nuget configurations written by ``hc registry configure`` send).
- Keys are never logged; the cache below holds digests, not keys.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass

from hc.protocol.identifiers import validate_scope_identifier

__all__ = ["IssuedKey", "TokenCache", "extract_token", "issue_key", "token_digest"]


@dataclass(frozen=True, slots=True)
class IssuedKey:
    token: str
    key_id: str
    digest: str

    def __repr__(self) -> str:  # keep the secret out of logs and tracebacks
        return f"IssuedKey(key_id={self.key_id!r})"


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def issue_key(account: str) -> IssuedKey:
    validate_scope_identifier(account, kind="account")
    key_id = secrets.token_hex(12)
    secret = secrets.token_urlsafe(24)  # urlsafe alphabet has no '.', so the token splits cleanly
    token = f"pat.{account}.{key_id}.{secret}"
    return IssuedKey(token=token, key_id=key_id, digest=token_digest(token))


def extract_token(headers: Mapping[str, str]) -> str | None:
    """The API key a request presents, or None."""
    key = headers.get("x-api-key")
    if key:
        return key.strip()
    auth = headers.get("Authorization")
    if not auth:
        return None
    scheme, _, rest = auth.strip().partition(" ")
    lowered = scheme.lower()
    if lowered == "bearer":
        return rest.strip() or None
    if lowered == "basic":
        try:
            decoded = base64.b64decode(rest.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        _, sep, password = decoded.partition(":")
        return password if sep and password else None
    return auth.strip()


class TokenCache:
    """Remembers ``digest → account`` for a short while so a burst of small uploads does not cost one
    database lookup each. Keys are never revoked in this version; the TTL bounds staleness anyway."""

    def __init__(self, ttl_s: float = 30.0, max_entries: int = 1024) -> None:
        self._ttl = ttl_s
        self._max = max_entries
        self._entries: dict[str, tuple[str, float]] = {}

    def get(self, digest: str) -> str | None:
        entry = self._entries.get(digest)
        if entry is None:
            return None
        account, expires = entry
        if expires < time.monotonic():
            del self._entries[digest]
            return None
        return account

    def put(self, digest: str, account: str) -> None:
        if len(self._entries) >= self._max:
            self._entries.clear()
        self._entries[digest] = (account, time.monotonic() + self._ttl)
