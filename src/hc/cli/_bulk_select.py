"""Which packages or versions a bulk command works on: selectors → a lazy stream of targets.

Selectors (``hc artifact metadata set|delete``, ``hc artifact copy``):

- ``--package GLOB`` / ``--version GLOB``: wildcards ``*`` and ``?`` (as ``hc artifact delete``);
- ``--all-versions``: every version of the matching packages;
- ``--where key:value`` (repeatable): only targets whose own metadata has every pair;
- ``--from FILE``: JSON lines ``{"package": …, "version": …}`` (version optional), read lazily.

Without a version selector the targets are packages; with one they are versions. Targets come
from the v3 listings (``/packages``, ``/versions`` with ``registry_ids``, ``package_ids`` when the
package is exact, ``search_term`` when a name is exact, ``metadata=k:v`` for ``--where``), page
by page, never held whole. Globs are matched here, on the client, since the API has no glob filter.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import anyio

from hc.api.artifacts import ArtifactClient
from hc.errors import UsageError
from hc.protocol.metadata import MetadataPair, parse_metadata
from hc.transfer import item_key

__all__ = [
    "Selection",
    "Target",
    "has_wildcards",
    "matches",
    "parse_where",
    "read_targets_file",
    "select_targets",
]

_FORBIDDEN: Final = frozenset("[]{}")
#: v3 page size for bulk listings (hc registries allow 1000; Harness documents no maximum).
BULK_PAGE_SIZE: Final = 1000


def has_wildcards(text: str) -> bool:
    return "*" in text or "?" in text


def _check_glob(text: str, *, what: str) -> str:
    if not text.strip():
        raise UsageError(f"the {what} pattern is empty")
    if _FORBIDDEN & set(text):
        raise UsageError(f"invalid {what} pattern {text!r}: only the wildcards * and ? are supported")
    return text


def matches(pattern: str, name: str) -> bool:
    """Glob match with ``*`` (any run, ``/`` included) and ``?`` (one character), case-sensitive."""
    return fnmatch.fnmatchcase(name, pattern)


def parse_where(values: Sequence[str]) -> tuple[MetadataPair, ...]:
    """``--where k:v`` (repeatable, or comma-separated) → pairs, all of which must match."""
    if not values:
        return ()
    return parse_metadata(",".join(values))


@dataclass(frozen=True, slots=True)
class Target:
    """A package (``version is None``) or a version."""

    package: str
    version: str | None = None

    @property
    def key(self) -> str:
        """The shard, journal and results key: ``pkg`` or ``pkg/version``."""
        return item_key(self.package, self.version)


@dataclass(frozen=True, kw_only=True)
class Selection:
    package: str | None = None
    version: str | None = None
    all_versions: bool = False
    where: tuple[MetadataPair, ...] = ()
    from_file: Path | None = None

    def validate(self) -> None:
        if self.from_file is not None:
            if self.package or self.version or self.all_versions or self.where:
                raise UsageError(
                    "--from lists the targets itself: give no --package, --version, --all-versions or --where"
                )
            return
        if self.package is None:
            raise UsageError(
                "choose the targets: --package GLOB (with --version GLOB or --all-versions) or --from FILE"
            )
        _check_glob(self.package, what="package")
        if self.version is not None:
            _check_glob(self.version, what="version")
            if self.all_versions:
                raise UsageError("--version and --all-versions select versions differently: give one")

    @property
    def versions(self) -> bool:
        """Are the targets versions (rather than packages)?"""
        return self.version is not None or self.all_versions

    def describe(self) -> list[str]:
        """Stable words naming this selection (for a job's journal identity)."""
        if self.from_file is not None:
            return ["from", str(self.from_file.absolute())]
        return [
            f"package={self.package}",
            f"version={'*' if self.all_versions else self.version or ''}",
            "where=" + ",".join(f"{p.key}:{p.value}" for p in self.where),
        ]


async def read_targets_file(path: Path) -> AsyncIterator[Target]:
    """JSON lines of ``{"package": "...", "version": "..."}`` (version optional), line by line."""
    try:
        handle = await anyio.open_file(path, "rb")  # decoded line by line: errors name their line
    except OSError as exc:
        raise UsageError(f"cannot read {str(path)!r}: {exc.strerror or exc}") from None
    async with handle:
        number = 0
        async for raw in handle:
            number += 1
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise UsageError(f"{path}:{number}: not UTF-8 text") from None
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                raise UsageError(f"{path}:{number}: not a JSON object") from None
            package = record.get("package") if isinstance(record, dict) else None
            version = record.get("version") if isinstance(record, dict) else None
            if not isinstance(package, str) or not package.strip():
                raise UsageError(f'{path}:{number}: expected {{"package": "...", "version": "..."}}')
            if version is not None and (not isinstance(version, str) or not version.strip()):
                raise UsageError(f"{path}:{number}: 'version' must be a non-empty string when given")
            yield Target(package, version)


async def select_targets(
    artifacts: ArtifactClient,
    registry_id: str,
    selection: Selection,
    *,
    server_where: bool = True,
    page_size: int = BULK_PAGE_SIZE,
) -> AsyncIterator[Target]:
    """Stream the targets of ``selection`` in one registry. ``server_where=False`` leaves
    ``--where`` to the caller (when the job changes the very metadata it filters on, the filtered
    listing would shift under its own paging)."""
    if selection.from_file is not None:
        async for target in read_targets_file(selection.from_file):
            yield target
        return
    package = selection.package
    assert package is not None
    where = [(p.key, p.value) for p in selection.where] if server_where else []
    exact_package = not has_wildcards(package)
    if not selection.versions:
        async for found in artifacts.iter_packages(
            registry_id, metadata=where, search_term=package if exact_package else None, page_size=page_size
        ):
            if matches(package, found.name):
                yield Target(found.name)
        return
    package_ids: list[str] = []
    if exact_package:
        exact = await artifacts.find_package(registry_id, package)
        if exact is None or not exact.id:
            return
        package_ids.append(exact.id)
    version = None if selection.all_versions else selection.version
    exact_version = version is not None and not has_wildcards(version)
    async for found_version in artifacts.iter_registry_versions(
        registry_id,
        package_ids=package_ids,
        metadata=where,
        search_term=version if exact_version else None,
        page_size=page_size,
    ):
        if not matches(package, found_version.package_name):
            continue
        if version is not None and not matches(version, found_version.name):
            continue
        yield Target(found_version.package_name, found_version.name)
