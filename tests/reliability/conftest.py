"""Fixtures for the reliability suite: a sandboxed HOME/HC_HOME and a background event loop."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .support import LEAKY_ENV, LoopThread, Sandbox, loop_thread, make_sandbox


@pytest.fixture
def sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Sandbox:
    for name in LEAKY_ENV:
        monkeypatch.delenv(name, raising=False)
    box = make_sandbox(tmp_path / "sandbox")
    monkeypatch.setenv("HOME", str(box.home))
    monkeypatch.setenv("HC_HOME", str(box.hc_home))
    return box


@pytest.fixture
def loop() -> Iterator[LoopThread]:
    with loop_thread() as thread:
        yield thread
