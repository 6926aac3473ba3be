"""The same small-file requests as hc, from a few lines of aiohttp: the framework's own floor.

Run as ``python bare_client.py put|get LIST`` with the API key in ``HC_BENCH_TOKEN``. ``LIST`` is a
file of ``url<TAB>local path<TAB>sha256`` lines; 32 requests run at once over one session, like
``curl --parallel-max 32`` and hc's default.

- ``put``: read the file, hash it (sha256, sent as ``X-Checksum-Sha256`` as hc does), PUT it.
- ``get``: GET the body, check its sha256 against the list, write it under its final name.

Against hc this skips everything that is not a request: no listing, retries, journal, hash cache,
progress, per-file report, ``.part`` names or fsync. So ``hc − bare`` is what hc's engine and
start-up cost per job, and ``bare − curl`` what Python and aiohttp cost before any engine runs.
Not a contender with a target: a measuring stick for the scenarios' notes.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import aiohttp

CONCURRENCY = 32


async def _put(session: aiohttp.ClientSession, url: str, path: str, _: str) -> None:
    with open(path, "rb") as f:
        body = f.read()
    headers = {"X-Checksum-Sha256": hashlib.sha256(body).hexdigest()}
    async with session.put(url, data=body, headers=headers) as response:
        await response.read()
        response.raise_for_status()


async def _get(session: aiohttp.ClientSession, url: str, path: str, sha256: str) -> None:
    async with session.get(url) as response:
        response.raise_for_status()
        body = await response.read()
    if hashlib.sha256(body).hexdigest() != sha256:
        raise SystemExit(f"{url}: sha256 mismatch")
    target = Path(path)
    if not target.parent.is_dir():
        target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "wb") as f:
        f.write(body)


async def _main(mode: str, rows: list[tuple[str, str, str]], token: str) -> None:
    action = _put if mode == "put" else _get
    todo: Iterator[tuple[str, str, str]] = iter(rows)
    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    async with aiohttp.ClientSession(connector=connector, headers={"x-api-key": token}) as session:

        async def worker() -> None:
            for url, path, sha256 in todo:  # one shared iterator: each row is taken once
                await action(session, url, path, sha256)

        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))


def write_list(path: Path, rows: list[tuple[str, Path, str]]) -> Path:
    """The ``LIST`` file for ``rows`` of (url, local path, sha256 hex)."""
    path.write_text("".join(f"{url}\t{local}\t{sha256}\n" for url, local, sha256 in rows))
    return path


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("put", "get"):
        print("usage: bare_client.py put|get LIST   (API key in HC_BENCH_TOKEN)", file=sys.stderr)
        return 2
    lines = Path(argv[1]).read_text().splitlines()
    rows = [(url, path, sha256) for url, path, sha256 in (line.split("\t") for line in lines)]
    asyncio.run(_main(argv[0], rows, os.environ["HC_BENCH_TOKEN"]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
