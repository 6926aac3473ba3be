"""What every scenario shares: sizes, folders, the hc command line, fresh servers, measuring."""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from .proc import Measured, run_measured
from .report import Sample, ScenarioResult
from .servers import HcServer

__all__ = ["REGISTRY", "Context", "Sizes"]

REGISTRY = "bench"
_counter = itertools.count()


@dataclass(frozen=True)
class Sizes:
    big: int  # bytes of the single large file (scenarios 1, 2, 8, 10)
    small_count: int  # files of the small-file tree (3, 4, 6, 7)
    small_size: int
    list_count: int  # files in the listed version (5)

    @classmethod
    def for_mode(cls, quick: bool) -> Sizes:
        if quick:
            return cls(big=256 << 20, small_count=1000, small_size=4096, list_count=10_000)
        return cls(big=1 << 30, small_count=5000, small_size=4096, list_count=100_000)


class Context:
    def __init__(self, root: Path, *, quick: bool, runs: int, stamp: str, budget: float = 60.0) -> None:
        self.root = root
        self.quick = quick
        self.runs = runs
        self.budget = budget
        self.sizes = Sizes.for_mode(quick)
        self.work = root / "work"
        self.data = self.work / "data"
        self.cache = self.work / "cache"
        self.scratch = self.work / "scratch"
        self.logs = self.work / "logs" / stamp
        self.python = sys.executable
        for folder in (self.data, self.cache, self.scratch, self.logs):
            folder.mkdir(parents=True, exist_ok=True)
        # children never see the caller's Harness settings or home
        self.home = self.work / "home"
        self.home.mkdir(exist_ok=True)
        self._trash: list[Path] = []

    def wants(self, result: ScenarioResult, contender: str, run: int, *, informational: bool = False) -> bool:
        """Whether ``contender`` runs again in round ``run``: always in round 0; afterwards only a
        main contender whose samples so far took less than ``budget`` seconds in all (so a slow
        baseline, e.g. a 2-minute sequential listing, is measured once and the suite stays short).
        A skipped repeat is noted in the result."""
        if run == 0:
            return True
        if informational:
            return False
        spent = sum(s.wall for s in result.of(contender))
        if spent < self.budget:
            return True
        runs = len(result.of(contender))
        note = f"'{contender}' ran {runs}× only: its runs took {spent:.0f} s (budget {self.budget:.0f} s)"
        if note not in result.notes:
            result.notes.append(note)
        return False

    # -- environment -------------------------------------------------------------------------

    def env(self, hc_home: Path | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HARNESS_", "HC_"))}
        env.pop("ORG_IDENTIFIER", None)
        env.pop("PROJECT_IDENTIFIER", None)
        # An installed hc runs from compiled bytecode; a sandbox that sets this would make every
        # sample recompile hc's sources (~0.07 s a process) and measure that instead.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["HOME"] = str(self.home)
        env["XDG_DATA_HOME"] = str(self.home / "data")
        env["HC_HOME"] = str(hc_home or self.fresh_dir("hc-home"))
        return env

    def hc(self, base_url: str, token: str, *args: str) -> list[str]:
        return [self.python, "-m", "hc", "--api-url", base_url, "--token", token, *args]

    def fresh_dir(self, name: str) -> Path:
        path = self.scratch / f"{name}-{os.getpid()}-{next(_counter)}"
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True)
        return path

    # -- servers -----------------------------------------------------------------------------

    @contextlib.contextmanager
    def server(self, name: str, *, data_dir: Path | None = None, keep: bool = False) -> Iterator[HcServer]:
        """A running ``hc server run`` (a fresh, empty store unless ``data_dir``) with the GENERIC
        registry ``bench``; the store is deleted afterwards unless ``keep``."""
        fresh = data_dir is None
        store = data_dir or self.fresh_dir(f"{name}-store")
        try:
            with HcServer(store, self.logs / f"{name}-server-{next(_counter)}.log", env=self.env()) as server:
                if fresh:
                    server.create_registry(REGISTRY)
                yield server
        finally:
            if fresh and not keep:
                self.discard(store)

    def discard(self, path: Path) -> None:
        """Delete ``path`` when the scenario ends (``empty_trash``), not now, between samples."""
        self._trash.append(path)

    def empty_trash(self) -> None:
        """Delete the stores and downloads of finished samples. Not between samples: ext4 makes the
        next thousands of file creations slower right after thousands of deletions (it skips the
        freshly freed inodes), which would charge one contender for the cleanup of the one before."""
        for store in self._trash:
            shutil.rmtree(store, ignore_errors=True)
        self._trash.clear()

    # -- measuring ---------------------------------------------------------------------------

    def measure(
        self,
        contender: str,
        run: int,
        argv: Sequence[str],
        *,
        server: HcServer | Sequence[HcServer] | None = None,
        env: dict[str, str] | None = None,
        stdout: Path | None = None,
        check: bool = True,
        on_start: Callable[[int], None] | None = None,
        sync: bool = True,
    ) -> tuple[Sample, Measured]:
        """Run one contender once (after a ``sync``, so earlier writes do not land on this run)."""
        servers = [] if server is None else [server] if isinstance(server, HcServer) else list(server)
        if sync:
            os.sync()
        load = os.getloadavg()[0]  # others' work on this machine shows up here
        before = sum(s.cpu() for s in servers)
        name = f"{contender.replace(' ', '_')}-{run}-{next(_counter)}"
        measured = run_measured(
            argv,
            log_dir=self.logs,
            name=name,
            env=env or self.env(),
            stdout=stdout,
            check=check,
            on_start=on_start,
        )
        server_cpu = sum(s.cpu() for s in servers) - before if servers else None
        sample = Sample(
            contender=contender,
            run=run,
            wall=measured.wall,
            max_rss_mib=measured.max_rss_mib,
            user=measured.user,
            sys=measured.sys,
            server_cpu=server_cpu,
            extra={"load1": round(load, 2)},
        )
        return sample, measured
