"""The store on disk: fsck, temp sweeping, local credentials, default location, CLI commands."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import sqlite3
import stat
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest
from click.testing import CliRunner

from hc.cli.server import server_group
from hc.server.admin import fsck
from hc.server.blobs import INLINE_BODY
from hc.server.embedded import ensure_local_credentials
from hc.server.paths import default_data_dir

from .conftest import Api

#: bodies above blobs.INLINE_BODY are kept as blob files (smaller ones in registry.db)
FILE_SIZE = INLINE_BODY + 1


async def test_fsck_is_clean_then_finds_a_corrupt_and_a_missing_blob(api: Api) -> None:
    await api.create_registry("gen")
    await api.put("gen", "p/1/a", b"a" * FILE_SIZE)
    await api.put("gen", "p/1/b", b"b" * FILE_SIZE)
    await api.put("gen", "p/2/a", b"a" * FILE_SIZE)  # shares a's blob
    report = fsck(api.data_dir)
    assert report.clean, report.faults
    assert (report.blobs_checked, report.files_checked) == (2, 3)
    blob_a, blob_b = sorted(
        api.blob_files(), key=lambda p: p.name != hashlib.sha256(b"a" * FILE_SIZE).hexdigest()
    )
    blob_a.write_bytes(b"tampered")
    blob_b.unlink()
    report = fsck(api.data_dir)
    assert not report.clean
    corrupt = [f for f in report.faults if f.startswith("corrupt blob")]
    missing = [f for f in report.faults if f.startswith("missing blob")]
    assert len(corrupt) == 1 and blob_a.name in corrupt[0]
    assert len(missing) == 1 and blob_b.name in missing[0] and "local/gen/p/1/" in missing[0]
    assert "fault" in report.summary()


async def test_fsck_checks_the_bodies_kept_in_the_database(api: Api) -> None:
    """Small bodies live in registry.db (inline_blobs), not in files: fsck hashes them too."""
    await api.create_registry("gen")
    await api.put("gen", "p/1/a", b"aaaa")
    await api.put("gen", "p/1/b", b"bbbb")
    await api.put("gen", "p/2/a", b"aaaa")  # shares a's body
    assert api.blob_files() == []  # no file per small upload
    report = fsck(api.data_dir)
    assert report.clean, report.faults
    assert (report.blobs_checked, report.files_checked) == (2, 3)
    digest_a, digest_b = hashlib.sha256(b"aaaa").hexdigest(), hashlib.sha256(b"bbbb").hexdigest()
    with contextlib.closing(sqlite3.connect(api.data_dir / "registry.db")) as db, db:
        db.execute("UPDATE inline_blobs SET data = ? WHERE sha256 = ?", (b"tampered", digest_a))
        db.execute("DELETE FROM inline_blobs WHERE sha256 = ?", (digest_b,))
    report = fsck(api.data_dir)
    corrupt = [f for f in report.faults if f.startswith("corrupt blob")]
    missing = [f for f in report.faults if f.startswith("missing blob")]
    assert len(corrupt) == 1 and digest_a in corrupt[0]
    assert len(missing) == 1 and digest_b in missing[0] and "local/gen/p/1/b" in missing[0]


async def test_fsck_command_exit_codes(api: Api) -> None:
    await api.create_registry("gen")
    await api.put("gen", "p/1/a", b"a" * FILE_SIZE)
    runner = CliRunner()
    clean = runner.invoke(server_group, ["fsck", "--data-dir", str(api.data_dir)])
    assert clean.exit_code == 0, clean.output
    assert "clean" in clean.output
    api.blob_files()[0].write_bytes(b"x")
    broken = runner.invoke(server_group, ["fsck", "--data-dir", str(api.data_dir)])
    assert broken.exit_code == 1
    assert "corrupt blob" in broken.stdout


def test_fsck_of_a_missing_store_is_a_usage_error(tmp_path: Path) -> None:
    from hc.errors import UsageError

    with pytest.raises(UsageError):
        fsck(tmp_path / "none")


def test_token_create_prints_a_working_key_alone(data_dir: Path) -> None:
    result = CliRunner().invoke(
        server_group, ["token", "create", "--data-dir", str(data_dir), "--account", "acme"]
    )
    assert result.exit_code == 0, result.output
    token = result.stdout.strip()
    assert result.stdout == token + "\n"
    assert token.startswith("pat.acme.")
    from hc.server.auth import token_digest
    from hc.server.metadata import Catalog, Database

    db = Database(data_dir / "registry.db")
    try:
        assert db.run_sync(Catalog.account_for_token, token_digest(token)) == "acme"
    finally:
        db.close()
    assert token not in (data_dir / "registry.db").read_bytes().decode("latin-1")  # only its hash is stored


def test_local_credentials_are_created_once_private_and_stable(data_dir: Path) -> None:
    first = ensure_local_credentials(data_dir)
    second = ensure_local_credentials(data_dir)
    assert first == second
    assert first.account == "local" and first.token.startswith("pat.local.")
    path = data_dir / "local-credentials.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
    assert json.loads(path.read_text())["token"] == first.token
    assert first.token not in repr(first)


def test_a_store_folder_made_world_readable_by_hand_is_narrowed_to_the_owner(tmp_path: Path) -> None:
    data_dir = tmp_path / "store"
    data_dir.mkdir(mode=0o755)
    data_dir.chmod(0o755)  # whatever the umask: readable by every local user
    ensure_local_credentials(data_dir)
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE((data_dir / "blobs").stat().st_mode) == 0o700


def test_a_link_planted_at_a_credentials_temp_name_is_not_followed(data_dir: Path) -> None:
    """The temp file's name is random and opened exclusively: nothing a local user prepared in the
    folder (a link at a guessable name) receives the key."""
    victim = data_dir.parent / "victim.txt"
    victim.write_text("precious")
    data_dir.mkdir(parents=True, exist_ok=True)
    for pid in range(os.getpid() - 2, os.getpid() + 3):
        (data_dir / f".local-credentials.json.{pid}.tmp").symlink_to(victim)
    credentials = ensure_local_credentials(data_dir)
    assert victim.read_text() == "precious"
    assert json.loads((data_dir / "local-credentials.json").read_text())["token"] == credentials.token


def test_local_credentials_race_between_processes(data_dir: Path) -> None:
    with ProcessPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(ensure_local_credentials, [data_dir] * 8))
    assert len({r.token for r in results}) == 1


def test_local_credentials_are_replaced_when_the_database_does_not_know_them(data_dir: Path) -> None:
    first = ensure_local_credentials(data_dir)
    for name in os.listdir(data_dir):
        if name.startswith("registry.db"):
            os.unlink(data_dir / name)
    second = ensure_local_credentials(data_dir)
    assert second.token != first.token


def test_default_data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("HC_HOME", raising=False)
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    assert default_data_dir() == tmp_path / ".local" / "share" / "hc"
    monkeypatch.setenv("XDG_DATA_HOME", "relative/ignored")
    assert default_data_dir() == tmp_path / ".local" / "share" / "hc"
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert default_data_dir() == tmp_path / "xdg" / "hc"
    monkeypatch.setenv("HC_HOME", str(tmp_path / "home"))
    assert default_data_dir() == tmp_path / "home"


async def test_startup_sweeps_dead_writers_temps_but_not_live_ones(data_dir: Path) -> None:
    from hc.server.embedded import serve_embedded

    async with serve_embedded(data_dir):
        pass
    tmp = data_dir / "tmp"
    dead = tmp / "dead.part"
    dead.write_bytes(b"partial")
    live = tmp / "live.part"
    live.write_bytes(b"in flight")
    holder = os.open(live, os.O_RDONLY)
    fcntl.flock(holder, fcntl.LOCK_EX)  # what a live writer (maybe another process) holds
    try:
        async with serve_embedded(data_dir):
            assert not dead.exists()
            assert live.exists()
    finally:
        os.close(holder)


async def test_trash_left_by_a_crash_mid_delete_is_settled(api: Api) -> None:
    """A delete moves an orphaned blob to tmp/trash.* inside its transaction; if the process died
    before committing, the row still exists and the next start puts the blob back."""
    await api.create_registry("gen")
    await api.put("gen", "p/1/a", b"keep me" * FILE_SIZE)
    (blob,) = api.blob_files()
    trash = api.data_dir / "tmp" / f"trash.{blob.name}.deadbeef"
    os.rename(blob, trash)
    from hc.server.embedded import serve_embedded

    async with serve_embedded(api.data_dir):
        assert blob.exists() and not trash.exists()
    assert fsck(api.data_dir).clean
