"""TransferConfig: every knob of the engine in one validated, immutable value.

The CLI builds it from flags, environment and the config file (``hc.config``), and passes it down;
the engine never reads the environment. Bad values raise ``UsageError`` when the value is built,
so a typo in ``--concurrency`` fails before any byte moves.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Final

from hc.config import DEFAULT_CONCURRENCY
from hc.errors import UsageError
from hc.transfer.pacer import Backoff, RetryPolicy

__all__ = ["DEFAULT_CONCURRENCY", "KiB", "MiB", "TransferConfig"]

KiB: Final = 1024
MiB: Final = 1024 * KiB


def _default_hash_threads() -> int:
    return max(1, min(os.cpu_count() or 1, 8))


@dataclass(frozen=True, slots=True, kw_only=True)
class TransferConfig:
    """Engine settings.

    - ``concurrency``: requests in flight across the whole job (whole small files and parts of big
      ones share it; nesting never multiplies it).
    - ``chunk_size``: the part size of a resumable upload session, and the unit a resume loses
      at most per stream.
    - ``buffer_size``: how many bytes move per read/write/hash step (memory per stream).
    - ``split`` / ``split_threshold``: a download at least ``split_threshold`` bytes long is fetched
      as ``split`` parallel ranges (and, when the server allows parallel parts, an upload sends up
      to ``split`` parts at once).
    - ``max_attempts``, ``backoff_base``, ``backoff_cap``, ``retry_after_cap``: per-operation retries.
    - ``outage_budget``: an operation that fails because the registry is unreachable or down
      (refused, reset, 502/503/504) keeps retrying past ``max_attempts`` until this many seconds
      have passed since its first failure (``pacer.RetryPolicy``), so a restart is ridden out.
    - ``overwrite``: transfer even when the destination already holds identical content.
    - ``dry_run``: report the plan, change nothing (no uploads, files, journal or cache writes).
    - ``backlog``: items read ahead of the workers (bounds memory whatever the item count). A
      push's workers wait for the destination's listing before they decide anything; a deep
      backlog (4096 files, ~2 MB) lets the walk finish its stats during that wait, where a shallow
      one made walk and skips contend for the GIL afterwards (a re-push of 5,000 unchanged
      files: 0.19–0.20 s of skips after the listing with 256, 0.11–0.17 s with 4096).
    - ``hash_threads``: threads hashing at once (hashing is CPU-bound; more than the cores is waste).
    - ``batch``: small files go many to a request where the remote offers batch reads and writes
      (an hc registry); False sends one request per file, as the Go CLI does.
    - ``stall_timeout``: seconds a request may go without moving a byte before the attempt fails
      (and is retried): a download that receives nothing, an upload whose body is not taken (the
      receiver stopped reading) or whose answer does not come.
    """

    concurrency: int = DEFAULT_CONCURRENCY
    chunk_size: int = 16 * MiB
    buffer_size: int = 1 * MiB
    split: int = 4
    split_threshold: int = 64 * MiB
    max_attempts: int = 5
    backoff_base: float = 0.5
    backoff_cap: float = 30.0
    retry_after_cap: float = 300.0
    outage_budget: float = 30.0
    overwrite: bool = False
    dry_run: bool = False
    backlog: int = 4096
    hash_threads: int = field(default_factory=_default_hash_threads)
    stall_timeout: float = 120.0
    batch: bool = True

    def __post_init__(self) -> None:
        def require(ok: bool, message: str) -> None:
            if not ok:
                raise UsageError(f"invalid transfer setting: {message}")

        require(1 <= self.concurrency <= 1024, f"concurrency must be 1..1024, got {self.concurrency}")
        require(
            64 * KiB <= self.buffer_size <= 64 * MiB,
            f"buffer size must be 64KiB..64MiB, got {self.buffer_size}",
        )
        require(
            self.buffer_size <= self.chunk_size <= 5 * 1024 * MiB,
            f"chunk size must be between the buffer size and 5GiB, got {self.chunk_size}",
        )
        require(1 <= self.split <= 64, f"split must be 1..64, got {self.split}")
        require(self.split_threshold >= 0, "split threshold must not be negative")
        require(1 <= self.max_attempts <= 100, f"max attempts must be 1..100, got {self.max_attempts}")
        require(
            0 <= self.backoff_base <= self.backoff_cap,
            f"backoff base ({self.backoff_base}) must be between 0 and the cap ({self.backoff_cap})",
        )
        require(0 <= self.retry_after_cap <= 86400, "retry-after cap must be 0..86400 seconds")
        require(0 <= self.outage_budget <= 86400, "outage budget must be 0..86400 seconds")
        require(1 <= self.backlog <= 1_000_000, f"backlog must be 1..1000000, got {self.backlog}")
        require(1 <= self.hash_threads <= 256, f"hash threads must be 1..256, got {self.hash_threads}")
        require(self.stall_timeout > 0, "stall timeout must be positive")

    @property
    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(
            max_attempts=self.max_attempts,
            outage_budget=self.outage_budget,
            backoff=Backoff(
                base=self.backoff_base, cap=self.backoff_cap, retry_after_cap=self.retry_after_cap
            ),
        )
