"""BatchWriter (small downloads written, synced and renamed in batches) and write_at."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import anyio
import pytest

from hc.protocol.digest import MultiHasher
from hc.transfer._files import read_and_hash, write_at
from hc.transfer.batchwrite import BatchWriter, OnWritten

Outcome = tuple[os.stat_result | None, OSError | None]


def _collector(results: dict[str, Outcome], name: str) -> OnWritten:
    async def on_done(st: os.stat_result | None, error: OSError | None) -> None:
        results[name] = (st, error)

    return on_done


async def test_every_submitted_file_lands_under_its_final_name(tmp_path: Path) -> None:
    writer = BatchWriter(tmp_path, max_bytes=64 * 1024)  # small: submitters wait for room
    results: dict[str, Outcome] = {}
    bodies = {f"d{i % 5}/f{i}.bin": os.urandom(i * 37) for i in range(300)}

    async with anyio.create_task_group() as tg:
        tg.start_soon(writer.run)
        async with anyio.create_task_group() as submitters:
            for name, body in bodies.items():
                final = tmp_path / name
                part = final.with_name(final.name + ".part")
                submitters.start_soon(writer.submit, part, final, body, _collector(results, name))
        tg.cancel_scope.cancel()  # the job is over: run() still finishes what was submitted

    assert set(results) == set(bodies)
    for name, body in bodies.items():
        st, error = results[name]
        assert error is None and st is not None
        assert (tmp_path / name).read_bytes() == body
        assert os.stat(tmp_path / name).st_ino == st.st_ino  # the stat describes the final file
    assert not list(tmp_path.rglob("*.part"))


async def test_a_file_is_reported_only_after_a_sync_that_followed_its_rename(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The power-cut promise: the bytes are synced before the rename, and the item is reported
    # written only once a later sync made its name durable (shared with the next batch's bytes).
    writer = BatchWriter(tmp_path, max_batch=7)
    events: list[tuple[str, str]] = []
    real_sync, real_rename = writer._sync, writer._rename
    calls: list[int] = []

    def sync(data: list[Any], names: list[Any]) -> None:
        calls.append(len(data) + len(names))
        events.extend(("sync-data", r.final.name) for r in data)
        events.extend(("sync-name", r.final.name) for r in names)
        real_sync(data, names)

    def rename(request: Any) -> bool:
        events.append(("rename", request.final.name))
        return real_rename(request)

    monkeypatch.setattr(writer, "_sync", sync)
    monkeypatch.setattr(writer, "_rename", rename)

    def collector(name: str) -> OnWritten:
        async def on_done(st: os.stat_result | None, error: OSError | None) -> None:
            assert error is None
            events.append(("done", name))

        return on_done

    names = [f"f{i}" for i in range(40)]
    async with anyio.create_task_group() as tg:
        tg.start_soon(writer.run)
        for name in names:
            await writer.submit(tmp_path / f"{name}.part", tmp_path / name, b"x" * 10, collector(name))
        tg.cancel_scope.cancel()

    for name in names:
        order = [kind for kind, which in events if which == name]
        assert order == ["sync-data", "rename", "sync-name", "done"], (name, order)
        assert (tmp_path / name).read_bytes() == b"x" * 10
    # 40 files in batches of 7: one sync per batch plus the last batch's names (not two a batch)
    assert len(calls) <= 7, calls


async def test_a_file_that_cannot_be_written_fails_alone(tmp_path: Path) -> None:
    (tmp_path / "blocker").write_bytes(b"a file where a directory should be")
    writer = BatchWriter(tmp_path)
    results: dict[str, Outcome] = {}
    async with anyio.create_task_group() as tg:
        tg.start_soon(writer.run)
        for name in ("ok.txt", "blocker/x.txt", "also-ok.txt"):
            final = tmp_path / name
            await writer.submit(
                final.with_name(name.split("/")[-1] + ".part"), final, b"x", _collector(results, name)
            )
        tg.cancel_scope.cancel()
    assert results["ok.txt"][1] is None and results["also-ok.txt"][1] is None
    assert isinstance(results["blocker/x.txt"][1], OSError)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["also-ok.txt", "blocker", "ok.txt"]


@pytest.mark.parametrize("pieces", [[b"one buffer"], [b"a", b"", b"bc", os.urandom(70_000), b"d" * 3]])
def test_write_at_writes_buffers_back_to_back_and_hashes_them(tmp_path: Path, pieces: list[bytes]) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"\0" * 5)
    hasher = MultiHasher(("sha256",))
    fd = os.open(path, os.O_RDWR)
    try:
        write_at(fd, pieces if len(pieces) > 1 else pieces[0], 5, hasher)
    finally:
        os.close(fd)
    joined = b"".join(pieces)
    assert path.read_bytes() == b"\0" * 5 + joined
    expected = MultiHasher(("sha256",))
    expected.update(joined)
    assert hasher.result().sha256 == expected.result().sha256


@pytest.mark.parametrize(("size", "hint"), [(4096, 4096), (4096, None), (200_000, 100), (0, 0)])
async def test_read_and_hash_returns_the_files_digests_and_small_bytes(
    tmp_path: Path, size: int, hint: int | None
) -> None:
    """Read and hashed on the loop (hint within loop_limit), in one thread hop (small), or streamed
    (larger than inline_limit, even when the hint said small: the file grew since the walk)."""
    path = tmp_path / "f"
    data = os.urandom(size)
    path.write_bytes(data)
    checksums, st, body = await read_and_hash(
        path,
        buffer_size=64 * 1024,
        limiter=anyio.CapacityLimiter(2),
        inline_limit=64 * 1024,
        size_hint=hint,
        loop_limit=64 * 1024,
    )
    expected = MultiHasher()
    expected.update(data)
    assert checksums == expected.result()
    assert st.st_size == size
    assert body == (data if size <= 64 * 1024 else None)
