"""A migration plan: one item per file, written and read as JSON lines.

A plan line (``--dry-run`` writes them, ``--plan FILE`` applies them exactly, without listing the
source again)::

    {"mapping": 0, "type": "GENERIC",
     "source": {"registry": "repo", "package": "app", "version": "1.0", "path": "lib/a.jar",
                "url": "http://dav.example/repo/app/1.0/lib/a.jar", "modified": 1732665600.0},
     "destination": {"registry": "dst", "package": "app", "version": "1.0", "path": "lib/a.jar"},
     "size": 1234, "sha256": null, "md5": null, "sha1": null, "sha512": null}

Digests are the source's (``null`` when it has none, as on WebDAV: the bytes are then hashed as
they stream and the destination verifies them). ``PlanItem`` satisfies the engine's ``CopyPair``.

Shard key (``--shard K/N``): a GENERIC item's destination ``<package>/<version>``, so a version is
always migrated whole by one shard; a RAW item's destination directory (RAW has no versions).
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, Any

from hc.errors import UnsafePathError, UsageError
from hc.protocol.files import FileRecord
from hc.protocol.identifiers import validate_relative_path
from hc.transfer import FileRef
from hc.transfer.shard import item_key

__all__ = ["PlanItem", "SourceEntry", "read_plan"]


@dataclass(frozen=True, slots=True, kw_only=True)
class SourceEntry(FileRecord):
    """A source file: where it is, its size and whatever digests and times the source gave."""

    #: epoch seconds: creation (HAR) or last modification (WebDAV)
    modified: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class PlanItem:
    mapping: int
    artifact_type: str
    source_registry: str
    source: SourceEntry
    destination_registry: str
    destination: FileRef
    source_url: str | None = None

    @property
    def shard_key(self) -> str:
        if self.artifact_type == "RAW":
            return posixpath.dirname(self.destination.path) or "/"
        return item_key(self.destination.package, self.destination.version)

    @property
    def version_key(self) -> tuple[int, str, str]:
        return (self.mapping, self.destination.package, self.destination.version)

    def with_sha256(self, sha256: str) -> PlanItem:
        return replace(self, source=replace(self.source, sha256=sha256))

    def to_json(self) -> dict[str, Any]:
        src = self.source
        return {
            "mapping": self.mapping,
            "type": self.artifact_type,
            "source": {
                "registry": self.source_registry,
                "package": src.package,
                "version": src.version,
                "path": src.path,
                "url": self.source_url,
                "modified": src.modified,
            },
            "destination": {
                "registry": self.destination_registry,
                "package": self.destination.package,
                "version": self.destination.version,
                "path": self.destination.path,
            },
            "size": src.size,
            "sha256": src.sha256,
            "md5": src.md5,
            "sha1": src.sha1,
            "sha512": src.sha512,
        }

    @classmethod
    def from_json(cls, data: object, *, where: str) -> PlanItem:
        def fail(message: str) -> UsageError:
            return UsageError(f"{where}: {message}")

        if not isinstance(data, dict):
            raise fail("not a plan line (expected a JSON object)")
        src, dst = data.get("source"), data.get("destination")
        if not isinstance(src, dict) or not isinstance(dst, dict):
            raise fail("a plan line needs 'source' and 'destination' objects")

        def text(obj: dict[str, Any], key: str) -> str:
            value = obj.get(key)
            if not isinstance(value, str) or not value:
                raise fail(f"'{key}' must be a non-empty string")
            return value

        def digest(key: str, length: int) -> str | None:
            value = data.get(key)
            if value is None:
                return None
            if not isinstance(value, str) or len(value) != length or not _is_hex(value):
                raise fail(f"'{key}' is not a {length}-digit hex digest")
            return value.lower()

        size, mapping = data.get("size"), data.get("mapping")
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise fail("'size' must be a whole number of bytes")
        if isinstance(mapping, bool) or not isinstance(mapping, int) or mapping < 0:
            raise fail("'mapping' must be the index of a mapping in the config")
        modified = src.get("modified")
        if modified is not None and (isinstance(modified, bool) or not isinstance(modified, int | float)):
            raise fail("'source.modified' must be epoch seconds")
        url = src.get("url")
        try:
            source_path = validate_relative_path(text(src, "path"))
            dest_path = validate_relative_path(text(dst, "path"))
        except UnsafePathError as exc:
            raise fail(str(exc)) from None
        return cls(
            mapping=mapping,
            artifact_type=str(data.get("type") or "GENERIC").upper(),
            source_registry=str(src.get("registry") or ""),
            source=SourceEntry(
                package=text(src, "package"),
                version=text(src, "version"),
                path=source_path,
                size=size,
                sha256=digest("sha256", 64),
                md5=digest("md5", 32),
                sha1=digest("sha1", 40),
                sha512=digest("sha512", 128),
                modified=float(modified) if modified is not None else None,
            ),
            destination_registry=text(dst, "registry"),
            destination=FileRef(package=text(dst, "package"), version=text(dst, "version"), path=dest_path),
            source_url=url if isinstance(url, str) else None,
        )

    def to_line(self) -> str:
        return json.dumps(self.to_json(), ensure_ascii=False, separators=(", ", ": "))


def _is_hex(value: str) -> bool:
    try:
        int(value, 16)
    except ValueError:
        return False
    return True


def read_plan(handle: IO[str], *, name: str) -> Iterator[PlanItem]:
    """The items of a plan file, one per non-empty line, lazily (a plan may be millions of lines)."""
    lines = iter(handle)
    number = 0
    while True:
        number += 1
        try:
            line = next(lines)
        except StopIteration:
            return
        except UnicodeDecodeError:
            raise UsageError(f"{name}:{number}: not UTF-8 text") from None
        if not line.strip():
            continue
        where = f"{name}:{number}"
        try:
            data = json.loads(line)
        except ValueError:
            raise UsageError(f"{where}: not a plan line (expected one JSON object)") from None
        yield PlanItem.from_json(data, where=where)


def open_plan(path: Path) -> IO[str]:
    try:
        return path.open("r", encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read plan file {str(path)!r}: {exc.strerror or exc}") from None
