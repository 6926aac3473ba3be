"""``hc artifact pull`` into a destination that holds something hc did not put there: a FIFO or a
link at the name the server offers, a listing whose names collide with hc's own ``.part`` names.
The CLI must end with one clear error line, never hang, and never write through what it found."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from ._artifact_support import serve_app
from .conftest import HcRunner, Run, lines
from .test_artifact_hostile import BODY, TOKEN, FakeRegistry


@pytest.fixture
def fake() -> FakeRegistry:
    return FakeRegistry(paths=["ok.txt"])


@pytest.fixture
def fake_url(fake: FakeRegistry) -> Iterator[str]:
    with serve_app(fake.app()) as url:
        yield url


def _pull(hc: HcRunner, url: str, spec: str, dest: Path) -> Run:
    return hc("--api-url", url, "--token", TOKEN, "art", "pull", "generic", "gen", spec, str(dest))


def test_a_fifo_at_the_offered_name_fails_the_pull_without_hanging(
    hc: HcRunner, fake: FakeRegistry, fake_url: str, tmp_path: Path
) -> None:
    fake.disposition = 'attachment; filename="offered.txt"'
    dest = tmp_path / "dest"
    dest.mkdir()
    fifo = dest / "offered.txt"
    os.mkfifo(fifo)
    rescued: list[bool] = []
    done = threading.Event()

    def watchdog() -> None:  # if hc opened the FIFO to read it, release it (and fail the test)
        if not done.wait(5.0):
            rescued.append(True)
            fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            os.close(fd)

    thread = threading.Thread(target=watchdog, daemon=True)
    thread.start()
    try:
        result = _pull(hc, fake_url, "pkg/1/ok.txt", dest)
    finally:
        done.set()
        thread.join()
    assert rescued == []
    assert result.exit_code == 1, result
    assert "not a regular file (a FIFO)" in result.stderr
    assert fifo.is_fifo() and sorted(p.name for p in dest.iterdir()) == ["offered.txt"]


def test_a_link_at_the_offered_name_is_not_written_through(
    hc: HcRunner, fake: FakeRegistry, fake_url: str, tmp_path: Path
) -> None:
    fake.disposition = 'attachment; filename="offered.txt"'
    dest = tmp_path / "dest"
    dest.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"precious")
    (dest / "offered.txt").symlink_to(victim)
    result = _pull(hc, fake_url, "pkg/1/ok.txt", dest)
    assert result.exit_code == 1, result
    assert "unsafe path" in result.stderr
    assert victim.read_bytes() == b"precious"


def test_a_listing_naming_a_file_and_its_part_name_keeps_what_it_reports(
    hc: HcRunner, fake: FakeRegistry, fake_url: str, tmp_path: Path
) -> None:
    fake.paths = ["x.txt", "x.txt.part"]
    dest = tmp_path / "dest"
    result = _pull(hc, fake_url, "pkg/1", dest)
    assert result.exit_code == 1, result
    assert "error: 1 of 2 items failed" in lines(result.stderr)[-1]
    assert "temporary" in result.stderr
    assert [p.name for p in dest.iterdir()] == ["x.txt"]
    assert (dest / "x.txt").read_bytes() == BODY
