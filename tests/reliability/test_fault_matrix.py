"""The fault matrix: push, list, pull, metadata and copy through a proxy that breaks 5–10 % of the
requests in one way each, against the real embedded registry.

Transfers (push, pull, list) must end with zero failed items, zero corrupt files and no duplicate
in any listing: every fault is either retried away or caught by verification. Writes (metadata,
copy) are single requests that hc does not retry; under faults they must fail cleanly (one line,
exit 1) and atomically (all or nothing on the server), and the test records how many failed.

Body faults (``flip``, ``short-length``, ``flip-request``) are aimed at the package endpoints,
where the sha256 of every file is the contract: a JSON body has no end-to-end check in the Harness
API (nor in hc), so a flipped bit there is the transport's (TCP/TLS) to catch.

Also here: every request failing once (each code path's retry), upload sessions under faults, 100 %
faults (a clean exit 1 and a ``--results`` file naming every item as failed), requests that never
answer (slow: hc's own 120 s timeouts), and descriptors left open by failed attempts.

Results are in docs/RELIABILITY.md; ``-s`` prints each cell's request and fault counts.
"""

from __future__ import annotations

import gc
import json
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from engine.support import open_files_under

from .faultproxy import Fault
from .support import (
    LoopThread,
    Registry,
    Run,
    Sandbox,
    create_registry,
    expected_listing,
    fsck,
    list_files,
    listing_triples,
    make_tree,
    read_tree,
    target,
)

PKG = "^/pkg/"


@dataclass(frozen=True)
class Case:
    fault: Fault
    rate: float = 0.1
    #: only paths matching this may fail (body faults: the package endpoints)
    match: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    #: the rate for the 500-file variant, when it must differ (a fault whose effect is global)
    slow_rate: float | None = None

    @property
    def id(self) -> str:
        return self.fault.value


CASES = [
    Case(Fault.RESET),
    Case(Fault.RESET_REQUEST),
    Case(Fault.RESET_RESPONSE),
    Case(Fault.STALL, extra={"stall_seconds": 0.3}),
    # A hang that the client would only notice after its 120 s read timeout is in the slow suite;
    # here the proxy gives up after 2 s with a reset, which the client must survive too.
    Case(Fault.HANG, rate=0.05, extra={"hang_max": 2.0}),
    Case(Fault.HTTP_500),
    Case(Fault.HTTP_502),
    Case(Fault.HTTP_503),
    Case(Fault.HTTP_504),
    Case(Fault.HTTP_502_AFTER),
    # Every 429 pauses the whole job for Retry-After (1 s): 3 % keeps the cell short.
    Case(Fault.RATE_LIMIT, rate=0.03),
    Case(Fault.RATE_LIMIT_DATE, rate=0.03),
    Case(Fault.TRUNCATE),
    Case(Fault.BAD_LENGTH),
    Case(Fault.SHORT_LENGTH, match=PKG),
    Case(Fault.FLIP, match=PKG),
    Case(Fault.FLIP_REQUEST, match=PKG),
    # A refusal closes the proxy's listener for everyone: at 5 % × 0.2 s the registry is already
    # unreachable for about a second of a two-second job (see the outage test in test_crashes.py).
    # The 500-file job makes ~5x the requests: 1 % keeps the number of closures about the same.
    Case(Fault.REFUSE, rate=0.05, extra={"refuse_seconds": 0.2}, slow_rate=0.01),
]
TRANSFER_CASES = [pytest.param(case, id=case.id) for case in CASES]

SMALL_FILES = 100
BIG_FILES = (2 << 20, 3 << 20)
SLOW_SMALL_FILES = 500
SLOW_BIG_FILES = (8 << 20, 5 << 20)


def _push(sandbox: Sandbox, via: Sequence[str], src: Path, results: Path, version: str = "1") -> Run:
    return sandbox.hc(
        *via,
        "artifact",
        "push",
        "generic",
        "gen",
        f"{src}/.",
        "--name",
        "pkg",
        "--version",
        version,
        "--progress",
        "none",
        "--results",
        str(results),
    )


def _pull(sandbox: Sandbox, via: Sequence[str], dest: Path, results: Path, version: str = "1") -> Run:
    return sandbox.hc(
        *via,
        "artifact",
        "pull",
        "generic",
        "gen",
        f"pkg/{version}",
        str(dest),
        "--progress",
        "none",
        "--results",
        str(results),
    )


def _results(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _assert_clean_failure(run: Run) -> None:
    """A failed command: exit 1, a one-line error last, never a traceback or an internal error."""
    assert run.code == 1, run
    assert "Traceback" not in run.stderr and "internal error" not in run.stderr, run
    assert run.stderr.splitlines()[-1].startswith("error: "), run


def _transfer_cell(
    case: Case,
    sandbox: Sandbox,
    loop: LoopThread,
    tmp_path: Path,
    *,
    small: int,
    big: Sequence[int],
    rate: float | None = None,
) -> None:
    registry = loop.serve_registry(tmp_path / "store")
    create_registry(sandbox, registry, "gen")
    src, dest = tmp_path / "src", tmp_path / "dest"
    tree = make_tree(src, small=small, big=big, seed=7)
    proxy = loop.proxy(
        registry.url, rate=rate or case.rate, faults=[case.fault], seed=11, match=case.match, **case.extra
    )
    via = target(proxy.url, registry.token)

    push = _push(sandbox, via, src, tmp_path / "push.jsonl")
    listed = sandbox.hc(
        *via,
        "artifact",
        "list",
        "--registry",
        "gen",
        "--package",
        "pkg",
        "--version",
        "1",
        "--format",
        "json",
    )
    versions = sandbox.hc(
        *via, "artifact", "list", "--registry", "gen", "--package", "pkg", "--format", "json"
    )
    pull = _pull(sandbox, via, dest, tmp_path / "pull.jsonl")
    assert proxy.stats.injected[case.fault] > 0, f"no {case.fault} fault was injected: {proxy.stats}"

    assert push.code == 0, push
    assert {r["status"] for r in _results(tmp_path / "push.jsonl")} == {"done"}
    truth = listing_triples(list_files(sandbox, registry, "gen", "pkg", "1"))
    assert truth == expected_listing(tree)  # every file once, whole, with its own bytes
    assert listed.code == 0, listed
    assert listing_triples(json.loads(listed.stdout)) == truth
    assert versions.code == 0, versions
    assert [v["name"] for v in json.loads(versions.stdout)] == ["1"]  # no duplicated version
    assert pull.code == 0, pull
    assert read_tree(dest) == tree  # byte for byte, and no .part left behind
    check = fsck(sandbox, registry.data_dir)
    assert check.code == 0, check
    print(
        f"matrix {case.id}: {proxy.stats.requests} requests, {proxy.stats.injected[case.fault]} "
        f"{case.fault} injected, {len(tree)} files: push, list, pull exact"
    )


@pytest.mark.parametrize("case", TRANSFER_CASES)
def test_push_list_pull_survive_faults(
    case: Case, sandbox: Sandbox, loop: LoopThread, tmp_path: Path
) -> None:
    _transfer_cell(case, sandbox, loop, tmp_path, small=SMALL_FILES, big=BIG_FILES)


@pytest.mark.slow
@pytest.mark.parametrize("case", TRANSFER_CASES)
def test_push_list_pull_survive_faults_500_files(
    case: Case, sandbox: Sandbox, loop: LoopThread, tmp_path: Path
) -> None:
    _transfer_cell(
        case, sandbox, loop, tmp_path, small=SLOW_SMALL_FILES, big=SLOW_BIG_FILES, rate=case.slow_rate
    )


# -- writes: metadata and copy ---------------------------------------------------------------------

WRITES = 5


def _seed_version(sandbox: Sandbox, registry: Registry, tmp_path: Path) -> dict[str, bytes]:
    for name in ("gen", *(f"dst{n}" for n in range(WRITES))):
        create_registry(sandbox, registry, name)
    tree = make_tree(tmp_path / "src", small=5, seed=3)
    push = _push(sandbox, target(registry, registry.token), tmp_path / "src", tmp_path / "seed.jsonl")
    assert push.code == 0, push
    return tree


#: ``hc artifact metadata get`` of the seeded version, as JSON.
METADATA_GET_JSON = (
    *("artifact", "metadata", "get", "--registry", "gen"),
    *("--package", "pkg", "--version", "1", "--format", "json"),
)


def _metadata(sandbox: Sandbox, registry: Registry) -> dict[str, str]:
    run = sandbox.hc(*target(registry, registry.token), *METADATA_GET_JSON)
    assert run.code == 0, run
    return {item["key"]: item["value"] for item in json.loads(run.stdout)}


#: The write cells run by default (one per kind of break); ``-m slow`` runs every fault.
DEFAULT_WRITE_FAULTS = {Fault.RESET, Fault.HTTP_502_AFTER, Fault.HTTP_503}
#: Body faults aim at the package endpoints (see the module docstring): writes have none.
WRITE_CASES = [
    pytest.param(case, id=case.id, marks=[] if case.fault in DEFAULT_WRITE_FAULTS else [pytest.mark.slow])
    for case in CASES
    if case.match is None
]


@pytest.mark.parametrize("case", WRITE_CASES)
def test_metadata_and_copy_under_faults_fail_cleanly_and_atomically(
    case: Case, sandbox: Sandbox, loop: LoopThread, tmp_path: Path
) -> None:
    registry = loop.serve_registry(tmp_path / "store")
    tree = _seed_version(sandbox, registry, tmp_path)
    # A write is one request: 30 % (not 10 %) so that every cell meets its fault a few times.
    proxy = loop.proxy(registry.url, rate=0.3, faults=[case.fault], seed=5, match=case.match, **case.extra)
    via = target(proxy.url, registry.token)
    sets = [
        sandbox.hc(
            *via,
            "artifact",
            "metadata",
            "set",
            "--registry",
            "gen",
            "--package",
            "pkg",
            "--version",
            "1",
            "--metadata",
            f"k{n}:v{n}",
        )
        for n in range(WRITES)
    ]
    got = sandbox.hc(*via, *METADATA_GET_JSON)
    copies = [sandbox.hc(*via, "artifact", "copy", "gen/pkg/1", f"dst{n}") for n in range(WRITES)]

    stored = _metadata(sandbox, registry)
    for n, run in enumerate(sets):
        if run.code == 0:
            assert stored.get(f"k{n}") == f"v{n}", (run, stored)
        else:
            _assert_clean_failure(run)
            assert stored.get(f"k{n}") in (None, f"v{n}")  # applied whole or not at all
    if got.code == 0:
        assert {i["key"]: i["value"] for i in json.loads(got.stdout)} == stored
    else:
        _assert_clean_failure(got)
    source = listing_triples(list_files(sandbox, registry, "gen", "pkg", "1"))
    assert source == expected_listing(tree)
    for n, run in enumerate(copies):
        copied = _copied_listing(sandbox, registry, f"dst{n}")
        if run.code == 0:
            assert copied == source, run
        else:
            _assert_clean_failure(run)
            assert copied in ([], source)  # a copy is one transaction: all of it or nothing
    check = fsck(sandbox, registry.data_dir)
    assert check.code == 0, check
    assert proxy.stats.injected[case.fault] > 0, f"no {case.fault} fault was injected"
    print(
        f"writes {case.id}: {proxy.stats.injected[case.fault]} {case.fault} injected; "
        f"metadata set failed {sum(r.code != 0 for r in sets)}/{len(sets)}, "
        f"copy failed {sum(r.code != 0 for r in copies)}/{len(copies)}; all clean and atomic"
    )


def _versions(sandbox: Sandbox, registry: Registry, reg: str) -> list[str]:
    """The version names of package ``pkg`` (none when the package does not exist)."""
    run = sandbox.hc(
        *target(registry, registry.token),
        "artifact",
        "list",
        "--registry",
        reg,
        "--package",
        "pkg",
        "--format",
        "json",
    )
    if run.code != 0:
        assert "not found" in run.stderr, run
        return []
    return [v["name"] for v in json.loads(run.stdout)]


def _copied_listing(sandbox: Sandbox, registry: Registry, reg: str) -> list[tuple[str, int, str]]:
    if not _versions(sandbox, registry, reg):
        return []
    return listing_triples(list_files(sandbox, registry, reg, "pkg", "1"))


@pytest.mark.parametrize("fault", [Fault.HTTP_503, Fault.REFUSE], ids=str)
def test_a_write_refused_once_before_reaching_the_server_is_retried(
    fault: Fault, sandbox: Sandbox, loop: LoopThread, tmp_path: Path
) -> None:
    registry = loop.serve_registry(tmp_path / "store")
    _seed_version(sandbox, registry, tmp_path)
    proxy = loop.proxy(registry.url, rate=1.0, faults=[fault], first_attempts=1, methods={"POST"})
    via = target(proxy.url, registry.token)
    metadata = sandbox.hc(
        *via,
        "artifact",
        "metadata",
        "set",
        "--registry",
        "gen",
        "--package",
        "pkg",
        "--version",
        "1",
        "--metadata",
        "team:core",
    )
    copy = sandbox.hc(*via, "artifact", "copy", "gen/pkg/1", "dst0")
    assert proxy.stats.injected[fault] >= 1
    assert (metadata.code, copy.code) == (0, 0), (metadata, copy)


# -- every request fails once ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "fault", [Fault.HTTP_503, Fault.TRUNCATE, pytest.param(Fault.RESET, marks=pytest.mark.slow)], ids=str
)
def test_push_and_pull_survive_every_request_failing_once(
    fault: Fault, sandbox: Sandbox, loop: LoopThread, tmp_path: Path
) -> None:
    """Not a sample: every single request (listings, lookups, uploads, downloads) fails on its
    first attempt, so every code path's retry is exercised."""
    registry = loop.serve_registry(tmp_path / "store")
    create_registry(sandbox, registry, "gen")
    tree = make_tree(tmp_path / "src", small=20, big=(2 << 20,), seed=9)
    proxy = loop.proxy(registry.url, rate=1.0, faults=[fault], first_attempts=1)
    via = target(proxy.url, registry.token)
    push = _push(sandbox, via, tmp_path / "src", tmp_path / "push.jsonl")
    assert push.code == 0, push
    pull = _pull(sandbox, via, tmp_path / "dest", tmp_path / "pull.jsonl")
    assert pull.code == 0, pull
    assert read_tree(tmp_path / "dest") == tree
    assert listing_triples(list_files(sandbox, registry, "gen", "pkg", "1")) == expected_listing(tree)
    # lookups and listings, the small files' batch writes and reads, the large file's session and
    # ranged GETs: each of them failed once (10 requests when this was written)
    assert proxy.stats.injected[fault] >= 8


# -- 100 % ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fault", [Fault.HTTP_503, pytest.param(Fault.RESET, marks=pytest.mark.slow)], ids=str
)
def test_at_100_percent_push_and_pull_fail_cleanly_naming_every_item(
    fault: Fault, sandbox: Sandbox, loop: LoopThread, tmp_path: Path
) -> None:
    registry = loop.serve_registry(tmp_path / "store")
    create_registry(sandbox, registry, "gen")
    tree = make_tree(tmp_path / "src", small=12, big=(2 << 20,), seed=4)
    assert (
        _push(sandbox, target(registry, registry.token), tmp_path / "src", tmp_path / "seed.jsonl").code == 0
    )
    proxy = loop.proxy(registry.url, rate=1.0, faults=[fault], match=PKG)
    # A registry that stays down is retried for --retry-budget seconds (default 30): 1 s here.
    via = [*target(proxy.url, registry.token), "--retry-budget", "1"]

    push_results = tmp_path / "push.jsonl"
    push = _push(sandbox, via, tmp_path / "src", push_results, version="2")
    _assert_clean_failure(push)
    assert f"error: {len(tree)} of {len(tree)} items failed" in push.stderr
    records = _results(push_results)
    assert sorted(r["path"] for r in records) == sorted(tree)
    assert {r["status"] for r in records} == {"failed"}
    assert all(r.get("error") for r in records)
    assert _versions(sandbox, registry, "gen") == ["1"]  # nothing of version 2 was stored

    pull_results = tmp_path / "pull.jsonl"
    dest = tmp_path / "dest"
    pull = _pull(sandbox, via, dest, pull_results)
    _assert_clean_failure(pull)
    records = _results(pull_results)
    assert sorted(r["path"] for r in records) == sorted(tree)
    assert {r["status"] for r in records} == {"failed"}
    # Nothing under a final name; a failure that may pass keeps its .part for the next run to resume.
    assert all(name.endswith(".part") for name in read_tree(dest)), read_tree(dest).keys()

    # --retry-failed redoes exactly the failed items once the faults stop
    proxy.config.rate = 0.0
    retry = sandbox.hc(
        *via,
        "artifact",
        "pull",
        "generic",
        "gen",
        "pkg/1",
        str(dest),
        "--progress",
        "none",
        "--retry-failed",
        str(pull_results),
    )
    assert retry.code == 0, retry
    assert read_tree(dest) == tree  # every .part was resumed or replaced


def test_at_100_percent_on_every_request_a_command_fails_with_one_line(
    sandbox: Sandbox, loop: LoopThread, tmp_path: Path
) -> None:
    registry = loop.serve_registry(tmp_path / "store")
    create_registry(sandbox, registry, "gen")
    make_tree(tmp_path / "src", small=3, seed=1)
    proxy = loop.proxy(registry.url, rate=1.0, faults=[Fault.HTTP_502])
    via = [*target(proxy.url, registry.token), "--retry-budget", "1"]
    for run in (
        _push(sandbox, via, tmp_path / "src", tmp_path / "push.jsonl"),
        sandbox.hc(*via, "artifact", "list", "--registry", "gen"),
    ):
        _assert_clean_failure(run)
        assert len(run.error_lines) == 1, run
        assert "HTTP 502" in run.error_lines[0]


# -- requests that never answer (slow: hc's own timeouts are 120 s) ----------------------------------


def _run_with_deadline(sandbox: Sandbox, args: Sequence[str], log: Path, deadline: float) -> int | None:
    """Run ``hc ARGS`` as a process; its exit code, or None if it is still running at the deadline."""
    proc = sandbox.hc_popen(*args, log=log)
    try:
        return proc.wait(timeout=deadline)
    except subprocess.TimeoutExpired:
        return None
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.slow
def test_a_download_that_never_answers_is_timed_out_and_retried(
    sandbox: Sandbox, loop: LoopThread, tmp_path: Path
) -> None:
    registry = loop.serve_registry(tmp_path / "store")
    create_registry(sandbox, registry, "gen")
    tree = make_tree(tmp_path / "src", small=3, big=(8 << 20,), seed=2)
    assert (
        _push(sandbox, target(registry, registry.token), tmp_path / "src", tmp_path / "seed.jsonl").code == 0
    )
    proxy = loop.proxy(
        registry.url, rate=1.0, faults=[Fault.HANG], first_attempts=1, match=r"/big0\.bin$", hang_max=900
    )
    args = (
        *target(proxy.url, registry.token),
        "artifact",
        "pull",
        "generic",
        "gen",
        "pkg/1",
        str(tmp_path / "dest"),
        "--progress",
        "none",
    )
    code = _run_with_deadline(sandbox, args, tmp_path / "pull.log", deadline=300)
    assert code == 0, (tmp_path / "pull.log").read_text()[-2000:]
    assert read_tree(tmp_path / "dest") == tree
    assert proxy.stats.injected[Fault.HANG] == 1


@pytest.mark.slow
def test_an_upload_the_server_stops_reading_is_timed_out_and_retried(
    sandbox: Sandbox, loop: LoopThread, tmp_path: Path
) -> None:
    registry = loop.serve_registry(tmp_path / "store")
    create_registry(sandbox, registry, "gen")
    tree = make_tree(tmp_path / "src", small=2, big=(8 << 20,), seed=2)
    proxy = loop.proxy(
        registry.url, rate=1.0, faults=[Fault.HANG], first_attempts=1, match=r"/big0\.bin$", hang_max=900
    )
    args = (
        *target(proxy.url, registry.token),
        "artifact",
        "push",
        "generic",
        "gen",
        f"{tmp_path / 'src'}/.",
        "--name",
        "pkg",
        "--version",
        "1",
        "--progress",
        "none",
    )
    code = _run_with_deadline(sandbox, args, tmp_path / "push.log", deadline=300)
    assert code == 0, f"push still running after 300 s ({code=})"
    assert listing_triples(list_files(sandbox, registry, "gen", "pkg", "1")) == expected_listing(tree)


# -- upload sessions (files over the 16 MiB chunk size, when the registry offers sessions) ----------


@pytest.mark.parametrize(
    "fault",
    [
        Fault.HTTP_503,
        Fault.RESET_REQUEST,
        pytest.param(Fault.RESET, marks=pytest.mark.slow),
        # the commit's answer is lost after the registry committed: the retry must find it done
        Fault.HTTP_502_AFTER,
        pytest.param(Fault.TRUNCATE, marks=pytest.mark.slow),
    ],
    ids=str,
)
def test_an_upload_session_survives_every_request_failing_once(
    fault: Fault, sandbox: Sandbox, loop: LoopThread, tmp_path: Path
) -> None:
    """Begin, every part and the commit each fail once (the 502-after ones *after* the registry
    acted: a part stored twice, a commit whose answer is lost)."""
    registry = loop.serve_registry(tmp_path / "store")
    create_registry(sandbox, registry, "gen")
    tree = make_tree(tmp_path / "src", small=2, big=(17 << 20,), seed=12)  # two parts of 16 MiB
    proxy = loop.proxy(
        registry.url, rate=1.0, faults=[fault], first_attempts=1, match=r"/uploads", record=True
    )
    push = _push(sandbox, target(proxy.url, registry.token), tmp_path / "src", tmp_path / "push.jsonl")
    session_requests = [line for line in proxy.stats.request_lines if "/uploads" in line]
    assert session_requests, "the registry offered no upload session: this test needs them"
    assert push.code == 0, push
    print(f"session {fault}: {session_requests}")
    assert listing_triples(list_files(sandbox, registry, "gen", "pkg", "1")) == expected_listing(tree)
    check = fsck(sandbox, registry.data_dir)
    assert check.code == 0, check


# -- resources ------------------------------------------------------------------------------------


def test_failed_upload_attempts_leave_no_open_files(
    sandbox: Sandbox, loop: LoopThread, tmp_path: Path
) -> None:
    registry = loop.serve_registry(tmp_path / "store")
    create_registry(sandbox, registry, "gen")
    make_tree(tmp_path / "src", small=0, big=[2 << 20] * 12, seed=7)  # over 1 MiB: streamed from disk
    proxy = loop.proxy(
        registry.url, rate=1.0, faults=[Fault.HTTP_503], first_attempts=2, match=PKG, methods={"PUT"}
    )
    push = _push(sandbox, target(proxy.url, registry.token), tmp_path / "src", tmp_path / "push.jsonl")
    assert push.code == 0, push
    assert proxy.stats.injected[Fault.HTTP_503] == 24
    gc.collect()
    assert open_files_under(tmp_path / "src") == 0
