"""Which files a mapping keeps: include/exclude globs and the date filter, as pure decisions.

Globs follow the Go CLI's ``gobwas/glob`` with ``/`` as the separator: ``*`` matches within one path
segment, ``**`` across segments, ``?`` one character of a segment, ``[abc]`` / ``[!abc]`` a class.
They are matched against the file's path in the source registry, ``<package>/<version>/<path>``
(RAW: the file's path), with no leading ``/`` (a leading ``/`` in a pattern is ignored).

Unlike the Go CLI, include and exclude may both be given: a file is kept when it matches some
include pattern (or there are none) and no exclude pattern.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from hc.errors import ConfigError
from hc.migration.config import DateFilter, DateMatch

__all__ = ["DateVerdict", "PathFilter", "compile_glob", "date_verdict"]


@lru_cache(maxsize=256)
def compile_glob(pattern: str) -> re.Pattern[str]:
    """A glob as an anchored regular expression (``ConfigError`` for an unclosed class)."""
    text = pattern.strip().lstrip("/")
    out: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "*":
            if text.startswith("**", i):
                i += 2
                if text.startswith("/", i):  # "**/" also matches no directory at all
                    out.append("(?:.*/)?")
                    i += 1
                else:
                    out.append(".*")
                continue
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "[":
            end = text.find("]", i + 2 if text.startswith(("[!", "[^"), i) else i + 1)
            if end < 0:
                raise ConfigError(f"invalid pattern {pattern!r}: '[' without a closing ']'")
            body = text[i + 1 : end]
            negate = body[:1] in ("!", "^")
            if negate:
                body = body[1:]
            escaped = "".join("\\" + c if c in "\\^]" else c for c in body)
            out.append(f"[{'^' if negate else ''}{escaped}]" if not negate else f"[^/{escaped}]")
            i = end
        else:
            out.append(re.escape(ch))
        i += 1
    return re.compile("".join(out) + r"\Z", re.DOTALL)


@dataclass(frozen=True, slots=True)
class PathFilter:
    include: tuple[re.Pattern[str], ...] = ()
    exclude: tuple[re.Pattern[str], ...] = ()

    @classmethod
    def from_patterns(cls, include: Sequence[str], exclude: Sequence[str]) -> PathFilter:
        return cls(tuple(compile_glob(p) for p in include), tuple(compile_glob(p) for p in exclude))

    def keeps(self, path: str) -> bool:
        path = path.lstrip("/")
        if self.include and not any(p.match(path) for p in self.include):
            return False
        return not any(p.match(path) for p in self.exclude)


@dataclass(frozen=True, slots=True)
class DateVerdict:
    keep: bool
    #: the filter asked about downloads and the source cannot tell (the caller warns once)
    downloads_unknown: bool = False


def date_verdict(
    date_filter: DateFilter | None, *, created: float | None, downloaded: float | None, downloads_known: bool
) -> DateVerdict:
    """Does a file pass the date filter? ``created``/``downloaded`` are epoch seconds (None: the
    source gave no time for this file, which never passes that condition).

    A condition the source cannot answer at all (downloads on WebDAV or an hc registry) is left out
    rather than guessed: with ``ANY`` the other condition decides, with ``ALL`` the others must
    hold; a filter left with no condition keeps everything. Dropping files on a guess would lose
    data silently, so the caller warns once instead.
    """
    if date_filter is None:
        return DateVerdict(True)
    checks: list[bool] = []
    unknown = False
    if date_filter.created_after is not None:
        checks.append(created is not None and created >= date_filter.created_after)
    if date_filter.downloaded_after is not None:
        if downloads_known:
            checks.append(downloaded is not None and downloaded >= date_filter.downloaded_after)
        else:
            unknown = True
    if not checks:
        return DateVerdict(True, downloads_unknown=unknown)
    keep = any(checks) if date_filter.match is DateMatch.ANY else all(checks)
    return DateVerdict(keep, downloads_unknown=unknown)
