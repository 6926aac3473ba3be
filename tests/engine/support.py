"""Shared helpers for the engine tests: small fast configs, file trees, result recorders."""

from __future__ import annotations

import contextlib
import os
import random
from dataclasses import replace
from pathlib import Path
from typing import Any

from hc.transfer.accounting import Accounting, Event, ItemFinished
from hc.transfer.config import KiB, TransferConfig
from hc.transfer.results import ItemResult, Status

PACKAGE, VERSION = "pkg", "1.0.0"


def fast_config(**overrides: Any) -> TransferConfig:
    """Small buffers and parts so a few MiB exercise splitting and sessions; near-zero backoff and
    no outage time budget (tests of the budget set their own)."""
    base = TransferConfig(
        concurrency=8,
        buffer_size=64 * KiB,
        chunk_size=256 * KiB,
        split=4,
        split_threshold=512 * KiB,
        max_attempts=8,
        backoff_base=0.001,
        backoff_cap=0.005,
        retry_after_cap=0.05,
        outage_budget=0.0,  # outages get max_attempts only: a persistent 503 fails fast
        hash_threads=2,
        backlog=32,
    )
    return replace(base, **overrides)


def make_payloads(*, small: int, big_sizes: tuple[int, ...] = (), seed: int = 7) -> dict[str, bytes]:
    """``small`` files of 0–20 KiB spread over a few directories, plus the ``big_sizes`` files."""
    rng = random.Random(seed)
    payloads: dict[str, bytes] = {}
    for i in range(small):
        size = 0 if i == 0 else rng.randrange(1, 20 * KiB)
        payloads[f"d{i % 7}/sub{i % 3}/f{i:04d}.bin"] = rng.randbytes(size)
    for i, size in enumerate(big_sizes):
        payloads[f"big/b{i}.bin"] = rng.randbytes(size)
    return payloads


def write_tree(root: Path, payloads: dict[str, bytes]) -> None:
    for relpath, data in payloads.items():
        path = root / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def read_tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


class Recorder:
    """Collects every event and the final result of each item."""

    def __init__(self, accounting: Accounting) -> None:
        self.events: list[Event] = []
        self.results: dict[str, ItemResult] = {}
        accounting.subscribe(self._on_event)

    def _on_event(self, event: Event) -> None:
        self.events.append(event)
        if isinstance(event, ItemFinished):
            self.results[event.result.path] = event.result

    def with_status(self, status: Status) -> dict[str, ItemResult]:
        return {path: r for path, r in self.results.items() if r.status is status}


def open_files_under(folder: Path) -> int:
    """How many descriptors this process holds on files under ``folder`` (Linux: /proc/self/fd)."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # the listing's own descriptor is gone by now
            count += os.readlink(f"/proc/self/fd/{fd}").startswith(str(folder))
    return count
