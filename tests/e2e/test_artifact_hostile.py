"""A hostile registry: listings and headers that try to write outside the destination.

A fake server (a real HTTP server on 127.0.0.1 answering what a malicious or broken registry
could) lists file paths and version names with ``..``, backslashes, encoded dots and NULs, and
offers download names that climb out of the folder. ``hc artifact pull`` must save only what is
safe, inside the destination, and report the rest as failed items.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from ._artifact_support import serve_app
from .conftest import HcRunner, lines

TOKEN = "pat.acct.key1.secret"
BODY = b"payload\n"

SAFE = ["ok.txt", "dir/also-ok.txt"]
HOSTILE = [
    "../escape.txt",
    "sub/../../escape2.txt",
    "..\\..\\escape3.txt",
    "%2e%2e/escape4.txt",
    "%252e%252e/escape5.txt",
    "dir/\x00nul.txt",
    "C:evil.txt",
]


@dataclass
class FakeRegistry:
    """Answers just enough of the Harness API for ``pull generic``, with scripted file names."""

    paths: list[str]
    versions: list[str] = field(default_factory=lambda: ["1"])
    disposition: str | None = None
    requests: list[str] = field(default_factory=list)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(f"{request.method} {request.path}")
        if request.headers.get("x-api-key") != TOKEN:
            return web.json_response({"message": "bad key"}, status=401)
        path = request.path
        if path.startswith("/gateway/har/api/v1/registry/"):
            return self.ok({"identifier": "gen", "packageType": "GENERIC", "url": ""})
        if path == "/gateway/har/api/v3/system/info":
            return self.ok({"registryUrl": ""})
        if path == "/gateway/har/api/v3/registries":
            return self.page([{"id": "reg-1", "name": "gen"}])
        if path == "/gateway/har/api/v3/packages":
            return self.page([{"id": "pkg-1", "name": "pkg"}])
        if path == "/gateway/har/api/v3/versions":
            items = [{"id": f"ver-{v}", "name": v, "packageId": "pkg-1"} for v in self.versions]
            term = request.query.get("search_term")
            return self.page([i for i in items if not term or term in i["name"]])
        if path == "/gateway/har/api/v3/files":
            digest = hashlib.sha256(BODY).hexdigest()
            return self.page(
                [
                    {"id": str(n), "name": p, "path": "/" + p, "size": str(len(BODY)), "sha256": digest}
                    for n, p in enumerate(self.paths)
                ]
            )
        if path.startswith("/pkg/acct/gen/files/"):
            headers = {"Content-Type": "application/octet-stream"}
            if self.disposition is not None:
                headers["Content-Disposition"] = self.disposition
            if request.method == "HEAD":
                headers["Content-Length"] = str(len(BODY))
                return web.Response(status=200, headers=headers)
            return web.Response(body=BODY, headers=headers)
        return web.json_response({"message": "no such route"}, status=404)

    @staticmethod
    def ok(data: dict[str, Any]) -> web.Response:
        return web.json_response({"status": "SUCCESS", "data": data})

    @staticmethod
    def page(items: list[dict[str, Any]]) -> web.Response:
        return web.json_response({"page": 0, "size": 100, "hasMore": False, "items": items})


@pytest.fixture
def fake() -> FakeRegistry:
    return FakeRegistry(paths=SAFE + HOSTILE)


@pytest.fixture
def fake_url(fake: FakeRegistry) -> Iterator[str]:
    with serve_app(fake.app()) as url:
        yield url


def _files_under(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def test_hostile_paths_in_a_listing_never_leave_the_destination(
    hc: HcRunner, fake_url: str, tmp_path: Path
) -> None:
    work = tmp_path / "work"
    dest = work / "dest"
    result = hc("--api-url", fake_url, "--token", TOKEN, "art", "pull", "generic", "gen", "pkg/1", str(dest))
    assert result.exit_code == 1, result
    assert _files_under(dest) == set(SAFE)
    assert _files_under(work) == {f"dest/{p}" for p in SAFE}
    assert not [p for p in tmp_path.rglob("*escape*")]  # nothing anywhere else
    assert f"error: {len(HOSTILE)} of {len(SAFE) + len(HOSTILE)} items failed" in lines(result.stderr)[-1]
    assert "unsafe path" in result.stderr


def test_hostile_version_names_are_refused_too(
    hc: HcRunner, fake: FakeRegistry, fake_url: str, tmp_path: Path
) -> None:
    fake.paths = ["ok.txt"]
    fake.versions = ["1", "../../up"]
    dest = tmp_path / "work" / "dest"
    result = hc("--api-url", fake_url, "--token", TOKEN, "art", "pull", "generic", "gen", "pkg", str(dest))
    assert result.exit_code == 1, result
    assert _files_under(tmp_path / "work") == {"dest/1/ok.txt"}
    assert not [p for p in tmp_path.rglob("up")]


@pytest.mark.parametrize(
    ("disposition", "saved_as"),
    [
        ('attachment; filename="../../cd-escape.txt"', "cd-escape.txt"),
        ("attachment; filename*=UTF-8''..%2F..%2Fencoded.txt", "encoded.txt"),
        ('attachment; filename=".."', "ok.txt"),
        ('attachment; filename="a\\\\..\\\\b.txt"', "b.txt"),
        ("attachment", "ok.txt"),
    ],
)
def test_a_download_name_offered_by_the_server_is_reduced_to_a_safe_base_name(
    hc: HcRunner, fake: FakeRegistry, fake_url: str, tmp_path: Path, disposition: str, saved_as: str
) -> None:
    fake.paths = ["ok.txt"]
    fake.disposition = disposition
    dest = tmp_path / "work" / "dest"
    result = hc(
        "--api-url", fake_url, "--token", TOKEN, "art", "pull", "generic", "gen", "pkg/1/ok.txt", str(dest)
    )
    assert result.exit_code == 0, result
    assert _files_under(tmp_path / "work") == {f"dest/{saved_as}"}
    assert (dest / saved_as).read_bytes() == BODY
