"""TransferManager.copy: remote → remote, streamed, verified, skipping what is already identical."""

from __future__ import annotations

from hc.transfer import Accounting, CopyItem, FileRef, Status, TransferManager
from hc.transfer.config import KiB

from .fakes import FakeRemote, Fault, Faults
from .support import Recorder, fast_config, make_payloads


def _source(payloads: dict[str, bytes], versions: tuple[str, ...] = ("1.0", "2.0")) -> FakeRemote:
    remote = FakeRemote()
    for version in versions:
        for path, data in payloads.items():
            remote.add("pkg", version, path, data)
    return remote


def _items(src: FakeRemote) -> list[CopyItem]:
    return [CopyItem.same_place(src.entry(*key)) for key in sorted(src.files)]


async def test_copy_moves_every_file_and_skips_identical_on_a_second_run() -> None:
    payloads = make_payloads(small=30, big_sizes=(700 * KiB,))
    src, dst = _source(payloads), FakeRemote()
    accounting = Accounting()
    recorder = Recorder(accounting)
    summary = await TransferManager(dst, fast_config(), accounting=accounting).copy(src, _items(src))
    assert summary.ok and summary.succeeded == len(src.files) and summary.failed == 0
    assert {k: v.data for k, v in dst.files.items()} == {k: v.data for k, v in src.files.items()}
    # every result names the destination location and carries the verified sha256
    some = recorder.results["pkg/1.0/big/b0.bin"]
    assert some.status is Status.DONE and some.sha256 == src.entry("pkg", "1.0", "big/b0.bin").sha256

    again = await TransferManager(dst, fast_config()).copy(src, _items(src))
    assert again.skipped == len(src.files) and again.succeeded == 0
    assert dst.calls["put_file"] == len(src.files)  # nothing re-sent
    # one destination listing per version, not a HEAD per file
    assert dst.calls["stat"] == 0


async def test_copy_to_a_different_place_and_dry_run_changes_nothing() -> None:
    src = _source({"a.txt": b"alpha", "b/c.txt": b"gamma"}, versions=("1",))
    dst = FakeRemote()
    items = [
        CopyItem(source=src.entry(*key), destination=FileRef(package="other", version="9", path=key[2]))
        for key in sorted(src.files)
    ]
    planned = await TransferManager(dst, fast_config(dry_run=True)).copy(src, items)
    assert planned.planned == 2 and not dst.files
    done = await TransferManager(dst, fast_config()).copy(src, items)
    assert done.succeeded == 2
    assert dst.data("other", "9", "b/c.txt") == b"gamma"


async def test_corrupt_source_bytes_never_land_and_a_retry_recovers() -> None:
    payloads = {"x.bin": bytes(range(256)) * 1024}
    src = _source(payloads, versions=("1",))
    src.faults.script("open_read", [Fault.BITFLIP, Fault.RESET, Fault.HTTP_503], path="x.bin")
    dst = FakeRemote()
    summary = await TransferManager(dst, fast_config()).copy(src, _items(src))
    assert summary.succeeded == 1
    assert dst.data("pkg", "1", "x.bin") == payloads["x.bin"]


async def test_a_source_that_always_lies_fails_the_item_only() -> None:
    src = _source({"bad.bin": b"z" * 5000, "good.bin": b"ok"}, versions=("1",))
    src.faults.always("open_read", Fault.BITFLIP, path="bad.bin")
    dst = FakeRemote()
    accounting = Accounting()
    recorder = Recorder(accounting)
    summary = await TransferManager(dst, fast_config(max_attempts=3), accounting=accounting).copy(
        src, _items(src)
    )
    assert summary.failed == 1 and summary.succeeded == 1
    assert ("pkg", "1", "bad.bin") not in dst.files
    failed = recorder.results["pkg/1/bad.bin"]
    assert failed.status is Status.FAILED and "mismatch" in (failed.error or "")


async def test_a_source_entry_without_sha256_is_hashed_first_and_still_verified() -> None:
    src = _source({"m.bin": b"m" * 3000}, versions=("1",))
    entry = src.entry("pkg", "1", "m.bin")
    from dataclasses import replace

    md5_only = replace(entry, sha256=None)
    dst = FakeRemote()
    summary = await TransferManager(dst, fast_config()).copy(src, [CopyItem.same_place(md5_only)])
    assert summary.succeeded == 1 and dst.data("pkg", "1", "m.bin") == b"m" * 3000


async def test_verify_destination_and_transient_upload_faults() -> None:
    src = _source(make_payloads(small=12), versions=("1",))
    dst = FakeRemote(faults=Faults().at_rate("put_file", 0.3, [Fault.HTTP_500, Fault.RESET]))
    summary = await TransferManager(dst, fast_config()).copy(src, _items(src), verify_destination=True)
    assert summary.ok and summary.succeeded == len(src.files)
    assert dst.calls["stat"] == len(src.files)
    assert {k: v.data for k, v in dst.files.items()} == {k: v.data for k, v in src.files.items()}
