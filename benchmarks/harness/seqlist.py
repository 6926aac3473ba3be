"""The Go CLI's way of listing a version's files: resolve the names to v3 ids, then walk
``GET v3 /files?registry_id&version_id&page&size`` one page after another until ``hasMore`` is
false, on one keep-alive connection. Run as a child process (so its wall time includes an
interpreter start, like hc's), it prints one line per file (path, size, sha256).

Usage: ``python seqlist.py BASE_URL TOKEN ACCOUNT REGISTRY PACKAGE VERSION [PAGE_SIZE]``
"""

from __future__ import annotations

import http.client
import json
import sys
from typing import Any
from urllib.parse import urlencode, urlsplit

V3 = "/gateway/har/api/v3"


class Client:
    def __init__(self, base_url: str, token: str, account: str) -> None:
        parts = urlsplit(base_url)
        self._conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=120)
        self._headers = {"x-api-key": token, "Accept": "application/json"}
        self._account = account

    def get(self, path: str, params: list[tuple[str, str]]) -> Any:
        query = urlencode([("account_identifier", self._account), *params])
        self._conn.request("GET", f"{V3}{path}?{query}", headers=self._headers)
        response = self._conn.getresponse()
        body = response.read()
        if response.status != 200:
            raise SystemExit(f"GET {path}: HTTP {response.status}: {body[:200]!r}")
        return json.loads(body)

    def find(self, path: str, params: list[tuple[str, str]], name: str) -> str:
        page = 0
        while True:
            body = self.get(path, [*params, ("search_term", name), ("page", str(page)), ("size", "100")])
            for item in body.get("items") or []:
                if item.get("name") == name:
                    return str(item["id"])
            if not body.get("hasMore"):
                raise SystemExit(f"{name!r} not found under {path}")
            page += 1


def main(argv: list[str]) -> int:
    base, token, account, registry, package, version = argv[:6]
    size = int(argv[6]) if len(argv) > 6 else 100
    client = Client(base, token, account)
    registry_id = client.find("/registries", [("scope", "ancestors")], registry)
    package_id = client.find("/packages", [("registry_ids", registry_id)], package)
    version_id = client.find(
        "/versions", [("registry_ids", registry_id), ("package_ids", package_id)], version
    )
    out = sys.stdout
    page = count = 0
    while True:
        body = client.get(
            "/files",
            [
                ("registry_id", registry_id),
                ("version_id", version_id),
                ("page", str(page)),
                ("size", str(size)),
            ],
        )
        items = body.get("items") or []
        for item in items:
            out.write(f"{item.get('path')}\t{item.get('size')}\t{item.get('sha256')}\n")
        count += len(items)
        if not body.get("hasMore") or not items:
            break
        page += 1
    print(f"{count} files in {page + 1} pages", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
