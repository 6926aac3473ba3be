"""``hc artifact push generic`` and ``pull generic`` as functions of Settings (tested without click).

Each resolves its target, checks the registry once (a clear "not found" or exit 3 before any
file is touched), builds the item stream (local walk, or the registry's listing) and hands it to
the engine's ``TransferManager`` with the HTTP ``HarnessRemote``. What the user sees comes from
the ``TransferJob`` subscribed to the engine's accounting.
"""

from __future__ import annotations

import posixpath
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from hc.api import RegistryClient
from hc.api.files import HarnessRemote
from hc.cli._transfer import TransferJob, TransferOptions, job_state
from hc.cli.context import Target, connect_target, open_target
from hc.config import Settings
from hc.errors import NotFound, UnsafePathError, UsageError
from hc.protocol.identifiers import (
    validate_package_name,
    validate_registry_identifier,
    validate_version_name,
)
from hc.transfer import (
    FileEntry,
    FileRef,
    ItemFinished,
    ItemResult,
    LocalItem,
    Summary,
    TransferManager,
    sanitize_relpath,
    validate_sources,
    walk_async,
)

__all__ = [
    "DEFAULT_VERSION",
    "PullRequest",
    "PullSpec",
    "PushRequest",
    "parse_pull_spec",
    "pull_file_name",
    "pull_generic",
    "push_generic",
    "refuse_results_over_a_source",
    "validate_generic_package",
]

DEFAULT_VERSION: Final = "1.0.0"


def validate_generic_package(name: str) -> str:
    """A generic package name is one path segment (it sits between ``/files/`` and the version)."""
    validate_package_name(name)
    if "/" in name:
        raise UsageError(f"invalid package name {name!r}: '/' is not allowed in a generic package name")
    return name


@asynccontextmanager
async def _client(
    settings: Settings, job: TransferJob, concurrency: int
) -> AsyncIterator[tuple[Target, RegistryClient]]:
    async with AsyncExitStack() as stack:
        target = await stack.enter_async_context(open_target(settings, notify=job.notice))
        client = await stack.enter_async_context(connect_target(target, connections=concurrency))
        yield target, client


def _identity(target: Target, verb: str, *parts: str) -> list[str]:
    """What names a job for its journal: the command, the registry server and its arguments. The
    embedded registry is named by its store (its port changes with every command)."""
    endpoint = target.endpoint
    server = f"embedded:{target.data_dir}" if target.embedded else endpoint.api_url
    return [verb, server, endpoint.account, endpoint.org or "", endpoint.project or "", *parts]


# -- push --------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class PushRequest:
    registry: str
    package: str
    sources: Sequence[str]
    version: str = DEFAULT_VERSION
    include_hidden: bool = False

    def validate(self) -> None:
        validate_registry_identifier(self.registry)
        validate_generic_package(self.package)
        validate_version_name(self.version)
        if not self.sources:
            raise UsageError("nothing to push: give at least one file, directory or glob")
        validate_sources(self.sources)


def refuse_results_over_a_source(results: Path | None, sources: Sequence[str]) -> None:
    """``--results`` is truncated when the job starts: naming a file to push there would destroy
    that file (and push it empty), so it is refused before anything is opened."""
    if results is None or not results.exists():
        return
    for source in sources:
        try:
            same = Path(source).is_file() and results.samefile(source)
        except OSError:  # a glob, or a path that vanished: the walk reports it
            continue
        if same:
            raise UsageError(f"--results {str(results)!r} is one of the files to push: name another file")


async def push_generic(
    settings: Settings, request: PushRequest, options: TransferOptions, job: TransferJob
) -> Summary:
    """Upload files, directories and globs to ``package/version`` (identical files are skipped
    using one listing of the version, unless ``--overwrite``)."""
    request.validate()
    retry = job.retry_set
    async with _client(settings, job, options.concurrency) as (target, client):
        await client.get_registry(request.registry)
        remote = await HarnessRemote.open(client, request.registry)
        sources = [str(Path(s).absolute()) for s in request.sources]
        identity = _identity(
            target, "push generic", request.registry, request.package, request.version, *sources
        )
        items: AsyncIterator[LocalItem] = walk_async(
            request.sources,
            include_hidden=request.include_hidden,
            on_skip=lambda skipped: job.warn(f"skipped {skipped.path}: {skipped.reason}"),
        )
        if retry is not None:
            items = _only(items, lambda item: item.relpath in retry)
        with job_state(settings, identity, dry_run=options.dry_run) as state:
            job.journal = state.journal_path
            manager = TransferManager(
                remote,
                options.engine_config(retry_budget=settings.retry_budget),
                journal=state.journal,
                hash_cache=state.hash_cache,
                accounting=job.accounting,
            )
            async with job.progress.ticking():
                summary = await manager.push(items, package=request.package, version=request.version)
            state.clean = summary.ok
    if summary.items == 0:
        job.warn("no files to push" + ("" if retry is None else " (nothing failed in the results file)"))
    return summary


async def _only(
    items: AsyncIterator[LocalItem], keep: Callable[[LocalItem], bool]
) -> AsyncIterator[LocalItem]:
    async for item in items:
        if keep(item):
            yield item


# -- pull --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PullSpec:
    """``<package>[/<version>[/<file path>]]`` split as the Go CLI does (``SplitN("/", 3)``)."""

    package: str
    version: str | None = None
    path: str | None = None

    def __str__(self) -> str:
        return "/".join(part for part in (self.package, self.version, self.path) if part)


def parse_pull_spec(text: str) -> PullSpec:
    parts = text.split("/", 2)
    if any(not part for part in parts):
        raise UsageError(
            f"invalid artifact {text!r}: expected <package>, <package>/<version> or "
            "<package>/<version>/<file path>, with no empty part"
        )
    validate_generic_package(parts[0])
    if len(parts) > 1:
        validate_version_name(parts[1])
    return PullSpec(*parts)


@dataclass(frozen=True, kw_only=True)
class PullRequest:
    registry: str
    spec: PullSpec
    dest: Path


def pull_file_name(offered: str | None, path: str, *, warn: Callable[[str], None]) -> str:
    """The local name of a single pulled file: the name the server offers (Content-Disposition,
    as the Go CLI), reduced to a safe base name; the requested file's base name otherwise."""
    fallback = posixpath.basename(path)
    if offered:
        name = posixpath.basename(offered.replace("\\", "/"))
        try:
            return sanitize_relpath(name)
        except UnsafePathError:
            warn(f"ignoring the unsafe file name {offered!r} offered by the server; saving as {fallback!r}")
    return sanitize_relpath(fallback)


async def _version_listing(
    manager: TransferManager, package: str, versions: Sequence[str]
) -> AsyncIterator[FileEntry]:
    for version in versions:
        async for entry in manager.listing(package, version):
            yield entry


async def pull_generic(
    settings: Settings, request: PullRequest, options: TransferOptions, job: TransferJob
) -> tuple[Summary, ItemResult | None]:
    """Download one file, one version or every version of a package, verified, via ``.part``
    files. Returns the summary and, for a single file, its result (where it was saved)."""
    validate_registry_identifier(request.registry)
    spec, dest = request.spec, request.dest
    retry = job.retry_set
    if spec.path is None and dest.exists() and not dest.is_dir():
        raise UsageError(f"destination {str(dest)!r} exists and is not a directory")
    async with _client(settings, job, options.concurrency) as (server, client):
        await client.get_registry(request.registry)
        remote = await HarnessRemote.open(client, request.registry)
        identity = _identity(server, "pull generic", request.registry, str(spec), str(dest.absolute()))
        with job_state(settings, identity, dry_run=options.dry_run) as state:
            job.journal = state.journal_path
            manager = TransferManager(
                remote,
                options.engine_config(retry_budget=settings.retry_budget),
                journal=state.journal,
                hash_cache=state.hash_cache,
                accounting=job.accounting,
            )
            root, items, target = await _pull_plan(remote, manager, request, job)
            if not options.dry_run:
                _make_destination(root)
            if retry is not None:
                items = _only_entries(items, lambda entry: target(entry) in retry)
            last: list[ItemResult] = []

            def remember(event: object) -> None:
                if isinstance(event, ItemFinished):
                    last[:] = [event.result]

            unsubscribe = job.accounting.subscribe(remember)
            try:
                async with job.progress.ticking():
                    summary = await manager.pull(items, root, target=target)
            finally:
                unsubscribe()
            state.clean = summary.ok
    single = last[0] if spec.path is not None and last else None
    return summary, single


async def _pull_plan(
    remote: HarnessRemote, manager: TransferManager, request: PullRequest, job: TransferJob
) -> tuple[Path, AsyncIterator[FileEntry], Callable[[FileEntry], str]]:
    """(destination root, items, local name of each item) for the three forms of the argument."""
    spec, dest, registry = request.spec, request.dest, request.registry
    if spec.version is None:
        versions = [v async for v in remote.versions(spec.package)]
        if not versions:
            raise NotFound(f"package {spec.package!r} not found in registry {registry!r}")
        return dest, _version_listing(manager, spec.package, versions), _version_and_path
    if spec.path is None:
        if not await remote.version_exists(spec.package, spec.version):
            raise NotFound(f"version {spec.package}/{spec.version} not found in registry {registry!r}")
        return dest, manager.listing(spec.package, spec.version), _path_only
    entry: FileEntry | None = await remote.find_file(spec.package, spec.version, spec.path)
    head = await remote.stat(FileRef(package=spec.package, version=spec.version, path=spec.path))
    if entry is None:
        entry = head
    if entry is None:
        raise NotFound(
            f"file {spec.path!r} not found in {spec.package}/{spec.version} of registry {registry!r}"
        )
    if dest.exists() and not dest.is_dir():
        # As the Go CLI: an existing file is the target itself.
        root, name = dest.parent, dest.name
    else:
        root, name = dest, pull_file_name(head.filename if head else None, spec.path, warn=job.warn)
    return root, _one(entry), lambda _entry: name


def _make_destination(root: Path) -> None:
    """Create the destination folder once the source is known to exist (so a typo in the source
    leaves no empty folder behind); a path under a file, or a folder hc may not create, is the
    user's to fix, on one line."""
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create the destination {str(root)!r}: {exc.strerror or exc}") from None


def _path_only(entry: FileEntry) -> str:
    return entry.path


def _version_and_path(entry: FileEntry) -> str:
    return f"{entry.version}/{entry.path}"


async def _one(entry: FileEntry) -> AsyncIterator[FileEntry]:
    yield entry


async def _only_entries(
    items: AsyncIterator[FileEntry], keep: Callable[[FileEntry], bool]
) -> AsyncIterator[FileEntry]:
    async for item in items:
        if keep(item):
            yield item
