"""The transfer engine: bulk push and pull through one bounded pool, resumable and verified.

It talks to a registry only through the ``Remote`` protocol (``hc.api`` implements it over HTTP;
tests implement it in memory) and never imports aiohttp.
"""

from hc.transfer.accounting import (
    Accounting,
    BytesMoved,
    Event,
    ItemFinished,
    ItemQueued,
    ItemRetried,
    ItemStarted,
    Stats,
)
from hc.transfer.config import TransferConfig
from hc.transfer.coordinator import TransferCoordinator
from hc.transfer.hashcache import HashCache
from hc.transfer.journal import Journal, job_key
from hc.transfer.manager import TransferManager
from hc.transfer.pacer import parse_retry_after
from hc.transfer.remote import (
    ByteSource,
    Capabilities,
    CopyItem,
    CopyPair,
    FileEntry,
    FileLocation,
    FileRef,
    ReadStream,
    Remote,
    RemoteCapabilities,
    RemoteFile,
    SessionState,
    UploadSession,
)
from hc.transfer.results import ItemResult, Status, Summary
from hc.transfer.sanitize import safe_join, sanitize_relpath
from hc.transfer.shard import Shard, item_key, shard_filter
from hc.transfer.walk import LocalItem, SkippedEntry, validate_sources, walk, walk_async

__all__ = [
    "Accounting",
    "ByteSource",
    "BytesMoved",
    "Capabilities",
    "CopyItem",
    "CopyPair",
    "Event",
    "FileEntry",
    "FileLocation",
    "FileRef",
    "HashCache",
    "ItemFinished",
    "ItemQueued",
    "ItemResult",
    "ItemRetried",
    "ItemStarted",
    "Journal",
    "LocalItem",
    "ReadStream",
    "Remote",
    "RemoteCapabilities",
    "RemoteFile",
    "SessionState",
    "Shard",
    "SkippedEntry",
    "Stats",
    "Status",
    "Summary",
    "TransferConfig",
    "TransferCoordinator",
    "TransferManager",
    "UploadSession",
    "item_key",
    "job_key",
    "parse_retry_after",
    "safe_join",
    "sanitize_relpath",
    "shard_filter",
    "validate_sources",
    "walk",
    "walk_async",
]
