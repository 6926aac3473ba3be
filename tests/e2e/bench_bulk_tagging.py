"""One-off benchmark (not collected by pytest): tag 10,000 versions on the embedded registry.

    .venv/bin/python tests/e2e/bench_bulk_tagging.py [VERSIONS] [CONCURRENCY]

Creates VERSIONS generic versions (one 1-byte file each, spread over 100 packages) with concurrent
PUTs, then runs ``metadata set --package '*' --all-versions`` in process, the way the embedded
default does (client and server in one event loop), and prints the timings.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from hc.cli._bulk import BulkOptions, BulkReport, TagRequest, tag_metadata
from hc.cli._bulk_select import Selection
from hc.cli.progress import ProgressMode
from hc.config import Settings
from hc.protocol.metadata import parse_metadata
from hc.server.embedded import serve_embedded


async def main(count: int, concurrency: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "store"
        async with serve_embedded(data_dir) as server:
            headers = {"x-api-key": server.token}
            async with aiohttp.ClientSession(headers=headers) as session:
                async with session.post(
                    f"{server.base_url}/gateway/har/api/v1/registry",
                    params={"space_ref": server.account},
                    json={
                        "identifier": "bench",
                        "packageType": "GENERIC",
                        "config": {"type": "VIRTUAL"},
                        "parentRef": server.account,
                    },
                ) as response:
                    assert response.status < 300, await response.text()
                started = time.monotonic()
                queue: asyncio.Queue[int] = asyncio.Queue()
                for i in range(count):
                    queue.put_nowait(i)

                async def put() -> None:
                    while not queue.empty():
                        i = queue.get_nowait()
                        url = f"{server.base_url}/pkg/{server.account}/bench/files/p{i % 100}/v{i}/f.txt"
                        async with session.put(url, data=b"x") as response:
                            assert response.status < 300, await response.text()

                await asyncio.gather(*(put() for _ in range(64)))
                print(f"created {count} versions in {time.monotonic() - started:.1f}s")
            settings = Settings(
                api_url=server.base_url,
                pkg_url=server.base_url,
                token=server.token,
                account=server.account,
                quiet=True,
                hc_home=Path(tmp) / "home",
            )
            options = BulkOptions(concurrency=concurrency, progress=ProgressMode.NONE)
            report = BulkReport(label="metadata set", options=options, quiet=True)
            request = TagRequest(
                registry="bench",
                selection=Selection(package="*", all_versions=True),
                pairs=parse_metadata("team:core"),
            )
            started = time.monotonic()
            summary = await tag_metadata(settings, request, options, report)
            report.close()
            elapsed = time.monotonic() - started
            print(
                f"tagged {summary.succeeded} versions ({summary.failed} failed) in {elapsed:.1f}s "
                f"= {summary.succeeded / elapsed:.0f} versions/s at concurrency {concurrency}"
            )


if __name__ == "__main__":
    asyncio.run(
        main(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000, int(sys.argv[2]) if len(sys.argv) > 2 else 16)
    )
