"""curl command lines for the peer side: one upload/download, and many in one process
(``--parallel`` with a config file holding a url/upload-file/output triple per transfer)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

__all__ = ["curl_get", "curl_parallel", "curl_put"]

_BASE = ["curl", "--silent", "--show-error", "--fail"]


def curl_put(url: str, token: str, source: Path) -> list[str]:
    return [*_BASE, "-H", f"x-api-key: {token}", "-o", "/dev/null", "-T", str(source), url]


def curl_get(url: str, token: str, dest: Path, *, resume: bool = False) -> list[str]:
    resume_args = ["-C", "-"] if resume else []
    return [*_BASE, "-H", f"x-api-key: {token}", *resume_args, "--create-dirs", "-o", str(dest), url]


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def curl_parallel(
    config: Path,
    token: str,
    transfers: Sequence[tuple[str, Path]],
    *,
    upload: bool,
    parallel_max: int = 32,
) -> list[str]:
    """``curl --parallel`` over ``transfers`` (url, local file): uploads (``-T``) or downloads
    (``-o``), all in one process. The config file is written here."""
    lines = [f"header = {_quote('x-api-key: ' + token)}"]
    for url, path in transfers:
        lines.append(f"url = {_quote(url)}")
        if upload:
            lines.append(f"upload-file = {_quote(str(path))}")
            lines.append('output = "/dev/null"')
        else:
            lines.append(f"output = {_quote(str(path))}")
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text("\n".join(lines) + "\n")
    dirs = [] if upload else ["--create-dirs"]
    return [*_BASE, *dirs, "--parallel", "--parallel-max", str(parallel_max), "-K", str(config)]
