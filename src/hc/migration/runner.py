"""Run a migration: connect, plan each mapping (or read a plan), and hand the items to the engine.

```
versions (source) ─► shard ─► files per version (≤ 8 versions listed at once) ─► filters
   ─► plan line (dry run) ─► known-identical check ─► TransferManager.copy (destination)
```

- The engine's ``copy`` streams every file source → destination with verification, retries,
  skip-identical (one destination listing per version), journal and accounting; everything here
  decides *what* to copy.
- Sources without digests (WebDAV) cannot be compared by digest. A file is then taken as already
  migrated when the destination has it at the same path with the same size, and the destination's
  copy was made after the source file's last modification (``createdAt`` ≥ ``getlastmodified`` +
  1 s, the latter having one-second resolution); the destination's sha256 then stands for the
  source's, so the engine's comparison skips it. Anything else is copied, and its bytes hashed and
  verified by the destination.
- Mappings run one after another, each with one bounded pool (``concurrency`` requests).
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Final

import anyio
from anyio.streams.memory import MemoryObjectSendStream

from hc.api import Endpoint, RegistryClient, RetryPolicy, connect
from hc.api.files import HarnessRemote
from hc.api.webdav import RAW_PACKAGE, RAW_VERSION, WebDavClient, WebDavRemote, open_webdav
from hc.config import Settings, account_from_token
from hc.errors import ConfigError, HcError, NotFound, UsageError
from hc.migration.config import EndpointConfig, MappingConfig, MigrationConfig, RegistryPath, SourceType
from hc.migration.patterns import PathFilter, date_verdict
from hc.migration.plan import PlanItem, SourceEntry, open_plan, read_plan
from hc.migration.raw import RawHarnessRemote
from hc.migration.sources import HarSource, MigrationSource, TreeSource, VersionRef
from hc.transfer import Accounting, FileRef, Journal, Summary, TransferConfig, TransferManager
from hc.transfer.shard import Shard

__all__ = ["MigrationOptions", "run_migration"]

#: Versions whose files are listed at once (each one PROPFIND walk or v3 listing).
LISTING_CONCURRENCY: Final = 8
#: Plan items applied per destination listing (a plan's items come grouped by version).
_PLAN_BATCH: Final = 5000
_STREAM_BUFFER: Final = 1024


@dataclass(frozen=True, kw_only=True)
class MigrationOptions:
    concurrency: int
    overwrite: bool = False
    dry_run: bool = False
    shard: Shard | None = None
    #: apply this plan file instead of listing the source
    plan: Path | None = None


@dataclass(frozen=True, kw_only=True)
class _Hooks:
    warn: Callable[[str], None]
    notice: Callable[[str], None]
    plan_sink: Callable[[PlanItem], None] | None


async def run_migration(
    config: MigrationConfig,
    settings: Settings,
    options: MigrationOptions,
    *,
    accounting: Accounting,
    journal: Journal | None,
    warn: Callable[[str], None],
    notice: Callable[[str], None] = lambda _: None,
    plan_sink: Callable[[PlanItem], None] | None = None,
) -> Summary:
    """Migrate every mapping; returns the summary of all of them (failed items do not raise)."""
    hooks = _Hooks(warn=warn, notice=notice, plan_sink=plan_sink)
    engine = TransferConfig(
        concurrency=options.concurrency,
        overwrite=options.overwrite,
        dry_run=options.dry_run,
        outage_budget=settings.retry_budget,
    )
    async with AsyncExitStack() as stack:
        dest_base = await stack.enter_async_context(
            _connect_har(config.destination, settings, role="destination", connections=options.concurrency)
        )
        source_har: RegistryClient | None = None
        source_dav: WebDavClient | None = None
        if config.source_type is SourceType.HAR:
            source_har = await stack.enter_async_context(
                _connect_har(config.source, settings, role="source", connections=options.concurrency)
            )
        else:
            creds = config.source.credentials
            source_dav = await stack.enter_async_context(
                open_webdav(
                    config.source.endpoint,
                    username=creds.username,
                    password=creds.password,
                    insecure=config.source.insecure or settings.insecure,
                    ca_bundle=settings.ca_bundle,
                    connections=options.concurrency,
                    retry=RetryPolicy(outage_budget=settings.retry_budget),
                )
            )
        for mapping in config.mappings:
            dest_client = _scoped(dest_base, mapping.destination)
            dest = await _destination_remote(dest_client, mapping)
            source = await _source(mapping, source_har, source_dav, hooks)
            manager = TransferManager(dest, engine, journal=journal, accounting=accounting)
            await _migrate_mapping(mapping, source, manager, dest, options, hooks)
    return accounting.summary()


# -- connections ---------------------------------------------------------------------------------


@asynccontextmanager
async def _connect_har(
    cfg: EndpointConfig, settings: Settings, *, role: str, connections: int
) -> AsyncIterator[RegistryClient]:
    """A client for a HAR endpoint. The key is ``credentials.password``, else hc's own login (the Go
    CLI uses its global token for management calls). Management calls go to ``apiEndpoint``, else
    to the configured API URL when ``endpoint`` is the configured package URL (Harness SaaS splits
    the two), else to ``endpoint`` itself (an hc registry serves both)."""
    token = cfg.credentials.password or settings.token
    if not token:
        raise ConfigError(f"{role}.credentials.password: an API key is required for a HAR {role}")
    account = settings.account if not cfg.credentials.password and settings.account else None
    if account is None:
        try:
            account = account_from_token(token)
        except ConfigError:
            raise ConfigError(
                f"{role}.credentials.password: expected a Harness API key 'pat.<account>.<id>.<secret>'"
            ) from None
    api_url = cfg.api_endpoint
    if api_url is None and settings.api_url and settings.pkg_url and _same(settings.pkg_url, cfg.endpoint):
        api_url = settings.api_url
    endpoint = Endpoint(api_url=api_url or cfg.endpoint, pkg_url=cfg.endpoint, account=account, token=token)
    async with connect(
        endpoint,
        insecure=cfg.insecure or settings.insecure,
        ca_bundle=settings.ca_bundle,
        retry=RetryPolicy(outage_budget=settings.retry_budget),
        connections=connections,
    ) as client:
        if role == "source" and cfg.api_endpoint is None:
            # A Harness source's files are served from its package URL, which system/info names.
            try:
                pkg = await client.package_url()
            except HcError:
                pkg = None
            if pkg and not _same(pkg, cfg.endpoint):
                client = client.with_endpoint(replace(endpoint, pkg_url=pkg))
        yield client


def _same(left: str, right: str) -> bool:
    return left.rstrip("/").lower() == right.rstrip("/").lower()


def _scoped(client: RegistryClient, where: RegistryPath) -> RegistryClient:
    endpoint = replace(client.endpoint, org=where.org, project=where.project)
    return client.with_endpoint(endpoint)


async def _destination_remote(client: RegistryClient, mapping: MappingConfig) -> HarnessRemote:
    registry = mapping.destination.registry
    remote: HarnessRemote
    if mapping.artifact_type == "RAW":
        remote = await RawHarnessRemote.open_raw(client, registry)
    else:
        remote = await HarnessRemote.open(client, registry)
    try:
        await remote.registry_id()
    except NotFound:
        raise NotFound(
            f"{mapping}: destination registry {str(mapping.destination)!r} not found at "
            f"{client.endpoint.api_url} (create it first: hc registry create {registry} "
            f"--package-type {mapping.artifact_type})"
        ) from None
    return remote


async def _source(
    mapping: MappingConfig, har: RegistryClient | None, dav: WebDavClient | None, hooks: _Hooks
) -> MigrationSource:
    raw = mapping.artifact_type == "RAW"
    if har is not None:
        where = RegistryPath.parse(mapping.source_registry, where=f"mappings[{mapping.index}].sourceRegistry")
        client = _scoped(har, where)
        listing = await HarnessRemote.open(client, where.registry)
        reader: HarnessRemote = (
            RawHarnessRemote(client, where.registry, features=listing.capabilities) if raw else listing
        )
        try:
            await listing.registry_id()
        except NotFound:
            raise NotFound(f"{mapping}: source registry {mapping.source_registry!r} not found") from None
        return HarSource(client, listing, raw=raw, read_remote=reader)
    assert dav is not None
    return TreeSource(WebDavRemote(dav, mapping.source_registry, raw=raw), warn=hooks.warn)


# -- one mapping -----------------------------------------------------------------------------------


async def _migrate_mapping(
    mapping: MappingConfig,
    source: MigrationSource,
    manager: TransferManager,
    dest: HarnessRemote,
    options: MigrationOptions,
    hooks: _Hooks,
) -> None:
    send, receive = anyio.create_memory_object_stream[PlanItem](_STREAM_BUFFER)
    known = _KnownIdentical(manager, enabled=not options.overwrite)

    async def produce() -> None:
        async with send:
            if options.plan is not None:
                await _from_plan(mapping, options, known, send, hooks)
            else:
                await _from_listing(mapping, source, options, known, send, hooks)

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(produce)
            async with receive:
                await manager.copy(source.remote, receive)
    except BaseExceptionGroup as group:
        # Task groups wrap a listing's failure (nested); the CLI wants the one HcError inside.
        leaves = _leaves(group)
        errors = [leaf for leaf in leaves if isinstance(leaf, HcError)]
        if errors:
            raise errors[0] from None
        raise


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in _leaves(inner)]
    return [exc]


async def _from_listing(
    mapping: MappingConfig,
    source: MigrationSource,
    options: MigrationOptions,
    known: _KnownIdentical,
    send: MemoryObjectSendStream[PlanItem],
    hooks: _Hooks,
) -> None:
    path_filter = PathFilter.from_patterns(mapping.include_patterns, mapping.exclude_patterns)
    raw = mapping.artifact_type == "RAW"
    shard = options.shard
    slots = anyio.Semaphore(LISTING_CONCURRENCY)
    warned = False

    def warn_downloads() -> None:
        nonlocal warned
        if not warned:
            warned = True
            hooks.warn(
                f"{mapping}: dateFilter.downloadedAfter is ignored: the source does not record downloads"
            )

    async def one_version(ref: VersionRef, out: MemoryObjectSendStream[PlanItem]) -> None:
        try:
            async with out:
                batch: list[PlanItem] = []
                async for entry in source.files(ref):
                    name = entry.path if raw else f"{entry.package}/{entry.version}/{entry.path}"
                    if not path_filter.keeps(name):
                        continue
                    verdict = date_verdict(
                        mapping.date_filter,
                        created=entry.modified,
                        downloaded=None,
                        downloads_known=source.downloads_known,
                    )
                    if verdict.downloads_unknown:
                        warn_downloads()
                    if not verdict.keep:
                        continue
                    item = _item(mapping, source, entry)
                    if raw and shard is not None and not shard.owns(item.shard_key):
                        continue
                    if hooks.plan_sink is not None:
                        hooks.plan_sink(item)
                    batch.append(item)
                    if len(batch) >= _PLAN_BATCH:
                        await _send_all(out, await known.apply(batch))
                        batch = []
                if batch:
                    await _send_all(out, await known.apply(batch))
        finally:
            slots.release()

    async with anyio.create_task_group() as tg:
        async for ref in source.versions():
            if not raw and shard is not None and not shard.owns(f"{ref.package}/{ref.version}"):
                continue
            await slots.acquire()
            tg.start_soon(one_version, ref, send.clone())


def _item(mapping: MappingConfig, source: MigrationSource, entry: SourceEntry) -> PlanItem:
    if mapping.artifact_type == "RAW":
        destination = FileRef(package=RAW_PACKAGE, version=RAW_VERSION, path=entry.path)
    else:
        destination = FileRef(package=entry.package, version=entry.version, path=entry.path)
    return PlanItem(
        mapping=mapping.index,
        artifact_type=mapping.artifact_type,
        source_registry=source.registry,
        source=entry,
        destination_registry=str(mapping.destination),
        destination=destination,
        source_url=source.url(entry),
    )


async def _from_plan(
    mapping: MappingConfig,
    options: MigrationOptions,
    known: _KnownIdentical,
    send: MemoryObjectSendStream[PlanItem],
    hooks: _Hooks,
) -> None:
    assert options.plan is not None
    handle = open_plan(options.plan)
    try:
        batch: list[PlanItem] = []
        for item in _plan_items(read_plan(handle, name=str(options.plan)), mapping):
            if options.shard is not None and not options.shard.owns(item.shard_key):
                continue
            if batch and (batch[0].version_key != item.version_key or len(batch) >= _PLAN_BATCH):
                await _send_all(send, await known.apply(batch))
                batch = []
            batch.append(item)
            if len(batch) % 256 == 0:
                await anyio.lowlevel.checkpoint()
        if batch:
            await _send_all(send, await known.apply(batch))
    finally:
        handle.close()


def _plan_items(items: Iterable[PlanItem], mapping: MappingConfig) -> Iterator[PlanItem]:
    """This mapping's items of a plan, checked against the config it is applied with."""
    for item in items:
        if item.mapping != mapping.index:
            continue
        if (
            item.destination_registry != str(mapping.destination)
            or item.artifact_type != mapping.artifact_type
        ):
            raise UsageError(
                f"the plan's mapping {item.mapping} ({item.artifact_type} → {item.destination_registry}) "
                f"does not match {mapping} of the config: was the plan made with another config?"
            )
        yield item


async def _send_all(out: MemoryObjectSendStream[PlanItem], items: list[PlanItem]) -> None:
    for item in items:
        await out.send(item)


class _KnownIdentical:
    """For items without a source sha256: one destination listing per version decides which are
    already there (same path and size, copied after the source's last change); those get the
    destination's sha256, so the engine's skip-identical recognises them."""

    def __init__(self, manager: TransferManager, *, enabled: bool) -> None:
        self._manager = manager
        self._enabled = enabled
        self._last: tuple[tuple[str, str], dict[str, tuple[int, str | None, int | None]]] | None = None

    async def _listing(self, package: str, version: str) -> dict[str, tuple[int, str | None, int | None]]:
        key = (package, version)
        if self._last is not None and self._last[0] == key:
            return self._last[1]
        found: dict[str, tuple[int, str | None, int | None]] = {}
        async for entry in self._manager.listing(package, version):
            created = getattr(entry, "created_at", None)
            found[entry.path] = (entry.size, entry.sha256, created if isinstance(created, int) else None)
        self._last = (key, found)
        return found

    async def apply(self, batch: list[PlanItem]) -> list[PlanItem]:
        if not self._enabled or all(item.source.sha256 for item in batch):
            return batch
        first = batch[0].destination
        listing = await self._listing(first.package, first.version)
        result = []
        for item in batch:
            there = listing.get(item.destination.path) if not item.source.sha256 else None
            if there is not None and _copied_after_change(item.source, *there):
                sha256 = there[1]
                assert sha256 is not None
                item = item.with_sha256(sha256)
            result.append(item)
        return result


def _copied_after_change(source: SourceEntry, size: int, sha256: str | None, created_ms: int | None) -> bool:
    if size != source.size or not sha256 or created_ms is None or source.modified is None:
        return False
    return created_ms >= (math.floor(source.modified) + 1) * 1000
