"""PROPFIND answers as nginx (dav-ext) and others write them, and hostile ones refused."""

from __future__ import annotations

import pytest

from hc.api.webdav import WebDavClient, parse_multistatus
from hc.errors import RemoteError

NGINX = b"""<?xml version="1.0" encoding="utf-8" ?>
<D:multistatus xmlns:D="DAV:">
<D:response><D:href>/repo/app/</D:href><D:propstat><D:prop>
<D:displayname>app</D:displayname><D:getlastmodified>Wed, 26 Nov 2025 10:00:00 GMT</D:getlastmodified>
<D:resourcetype><D:collection/></D:resourcetype></D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat>
</D:response>
<D:response><D:href>/repo/app/1.0/</D:href><D:propstat><D:prop>
<D:resourcetype><D:collection/></D:resourcetype></D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat>
</D:response>
<D:response><D:href>/repo/app/a%20b%23c.txt</D:href><D:propstat><D:prop>
<D:getcontentlength>12</D:getcontentlength>
<D:getlastmodified>Wed, 26 Nov 2025 10:00:01 GMT</D:getlastmodified>
<D:resourcetype></D:resourcetype></D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat>
<D:propstat><D:prop><D:getetag/></D:prop><D:status>HTTP/1.1 404 Not Found</D:status></D:propstat>
</D:response>
</D:multistatus>"""


def test_nginx_answer_lists_children_with_sizes_and_times() -> None:
    entries = parse_multistatus(NGINX, listed_path="/repo/app/", where="x")
    assert [(e.name, e.is_dir, e.size) for e in entries] == [("1.0", True, 0), ("a b#c.txt", False, 12)]
    assert entries[1].modified == 1764151201.0
    assert entries[1].etag is None


def test_absolute_hrefs_are_accepted() -> None:
    body = NGINX.replace(b"<D:href>/repo", b"<D:href>http://127.0.0.1:8080/repo")
    assert len(parse_multistatus(body, listed_path="/repo/app", where="x")) == 2


@pytest.mark.parametrize(
    ("href", "message"),
    [
        (b"/elsewhere/x.txt", "outside the directory"),
        (b"/repo/app/sub/deeper.txt", "unsafe name"),
        (b"/repo/app/..", "unsafe name"),
        (b"/repo/app/a%5Cb", "unsafe name"),
        (b"/repo/app/a%0Ab", "unsafe name"),
    ],
)
def test_hostile_hrefs_are_refused(href: bytes, message: str) -> None:
    body = NGINX.replace(b"/repo/app/a%20b%23c.txt", href)
    with pytest.raises(RemoteError, match=message):
        parse_multistatus(body, listed_path="/repo/app/", where="x")


def test_a_file_without_a_size_and_bad_xml_are_refused() -> None:
    with pytest.raises(RemoteError, match="getcontentlength"):
        parse_multistatus(
            NGINX.replace(b"<D:getcontentlength>12</D:getcontentlength>", b""),
            listed_path="/repo/app/",
            where="x",
        )
    with pytest.raises(RemoteError, match="not valid XML"):
        parse_multistatus(b"<D:multistatus", listed_path="/", where="x")
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa">'
        b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]><x>&b;</x>'
    )
    assert parse_multistatus(bomb, listed_path="/", where="x") == []  # parsed, nothing listed


def test_urls_escape_each_segment_under_the_endpoint_path() -> None:
    client = WebDavClient(None, "http://h:1/base%20dir/", headers={})  # type: ignore[arg-type]
    assert client.url("a b/c#d.txt") == "http://h:1/base%20dir/a%20b/c%23d.txt"
    assert client.url("", directory=True) == "http://h:1/base%20dir/"
    assert client.url("pkg", directory=True) == "http://h:1/base%20dir/pkg/"
