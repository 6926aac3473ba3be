"""HTTP header values both sides read the same way."""

from __future__ import annotations

import email.utils
import math
import re
from datetime import UTC, datetime
from typing import Final

__all__ = ["parse_retry_after"]

# ASCII digits only: str.isdigit() also accepts "²" or Arabic-Indic digits, which float() refuses.
_SECONDS_RE: Final = re.compile(r"^[0-9]+(\.[0-9]+)?$")


def parse_retry_after(value: str | None, *, now: datetime | float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delay-seconds or an HTTP-date.

    Returns ``None`` for a missing or malformed value (the caller then falls back to backoff), and
    ``0.0`` for a date in the past. ``now`` (a datetime or epoch seconds) is injectable so the
    function stays pure in tests.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if _SECONDS_RE.match(text):
        seconds = float(text)
        return seconds if math.isfinite(seconds) else None
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # "-0000" means UTC by RFC 5322; HTTP-dates are always GMT
        when = when.replace(tzinfo=UTC)
    if now is None:
        reference = datetime.now(UTC)
    elif isinstance(now, datetime):
        reference = now
    else:
        reference = datetime.fromtimestamp(now, UTC)
    return max(0.0, (when - reference).total_seconds())
