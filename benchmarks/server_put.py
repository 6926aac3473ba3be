"""Server throughput: ``hc server run`` against curl and an aiohttp client on loopback.

Scenarios (each run ``--runs`` times; medians reported, since the machine is shared and noisy):

- ``put1g``   ``curl -T`` of a 1 GiB file to a fresh path (bytes differ per run, so the blob is new)
- ``get1g``   ``curl -o /dev/null`` of that file (sendfile path)
- ``small``   N × 4 KiB distinct files PUT by an aiohttp client at C concurrency (fresh paths)

Besides wall time, the server's own CPU time (user+sys from /proc/<pid>/stat) is reported per
scenario, which is what the server can make cheaper; the client shares the two cores.

Usage: ``.venv/bin/python benchmarks/server_put.py [--runs 3] [--only put1g,get1g,small]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import aiohttp

from hc.server.embedded import create_api_key

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


class Server:
    def __init__(self, data_dir: Path, port: int) -> None:
        self.data_dir = data_dir
        self.token = create_api_key(data_dir, "local")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hc", "server", "run", "--data-dir", str(data_dir), "--port", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        assert self.proc.stderr is not None
        line = self.proc.stderr.readline().decode()
        if "serving" not in line:
            raise RuntimeError(f"server did not start: {line}")
        self.base = line.split("serving ", 1)[1].split()[0]

    def cpu(self) -> float:
        return cpu_seconds(self.proc.pid)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=60)

    def create_registry(self, name: str) -> None:
        request = urllib.request.Request(
            f"{self.base}/gateway/har/api/v1/registry?space_ref=local",
            data=json.dumps({"identifier": name, "packageType": "GENERIC"}).encode(),
            headers={"x-api-key": self.token, "Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request) as response:
            assert response.status == 201


def make_big_file(path: Path, size: int) -> None:
    block = os.urandom(1 << 20)
    with open(path, "wb") as f:
        for i in range(size >> 20):
            f.write(i.to_bytes(8, "little") + block[8:])


def stamp(path: Path, run: int) -> None:
    """Make this run's bytes differ from every other run's (a new blob each time)."""
    with open(path, "r+b") as f:
        f.write(f"run-{run}-{time.time_ns()}".encode().ljust(64, b"."))


def curl(args: list[str]) -> float:
    out = subprocess.run(
        ["curl", "-s", "-f", "-w", "%{time_total}", *args], check=True, capture_output=True, text=True
    ).stdout
    return float(out.strip().splitlines()[-1])


async def put_small(server: Server, run: int, files: int, concurrency: int) -> float:
    payloads = [os.urandom(4096) for _ in range(files)]
    sem = asyncio.Semaphore(concurrency)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, headers={"x-api-key": server.token}) as s:

        async def one(i: int) -> None:
            url = f"{server.base}/pkg/local/bench/files/small/{run}/f{i}"
            async with sem, s.put(url, data=payloads[i]) as r:
                if r.status not in (200, 201):
                    raise RuntimeError(f"f{i}: HTTP {r.status} {await r.text()}")
                await r.read()

        started = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(files)))
        return time.perf_counter() - started


def summary(name: str, unit: str, values: list[float], cpu: list[float]) -> str:
    med = statistics.median(values)
    return (
        f"{name:8} median {med:10.1f} {unit:8} (runs: {', '.join(f'{v:.1f}' for v in values)}); "
        f"server CPU median {statistics.median(cpu):.2f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--files", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--only", default="put1g,get1g,small")
    parser.add_argument("--workdir", type=Path, default=None, help="scratch folder (default: a temp dir)")
    args = parser.parse_args()
    wanted = set(args.only.split(","))
    work = Path(tempfile.mkdtemp(prefix="hc-bench-", dir=args.workdir))
    port = args.port or 0
    if port == 0:
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
    server = Server(work / "store", port)
    results: list[str] = []
    try:
        server.create_registry("bench")
        big = work / "big.bin"
        size = args.size_mib << 20
        if wanted & {"put1g", "get1g"}:
            make_big_file(big, size)
        headers = ["-H", f"x-api-key: {server.token}"]
        put_mbs: list[float] = []
        put_cpu: list[float] = []
        get_mbs: list[float] = []
        get_cpu: list[float] = []
        for run in range(args.runs):
            url = f"{server.base}/pkg/local/bench/files/big/{run}/big.bin"
            if wanted & {"put1g", "get1g"}:
                stamp(big, run)
                subprocess.run(["sync"], check=True)
                before = server.cpu()
                seconds = curl([*headers, "-o", "/dev/null", "-T", str(big), url])
                put_cpu.append(server.cpu() - before)
                put_mbs.append(size / seconds / 1e6)
            if "get1g" in wanted:
                before = server.cpu()
                seconds = curl([*headers, "-o", "/dev/null", url])
                get_cpu.append(server.cpu() - before)
                get_mbs.append(size / seconds / 1e6)
        if "put1g" in wanted:
            results.append(summary("put1g", "MB/s", put_mbs, put_cpu))
        if "get1g" in wanted:
            results.append(summary("get1g", "MB/s", get_mbs, get_cpu))
        if "small" in wanted:
            rates: list[float] = []
            cpu: list[float] = []
            for run in range(args.runs):
                subprocess.run(["sync"], check=True)
                before = server.cpu()
                seconds = asyncio.run(put_small(server, run, args.files, args.concurrency))
                cpu.append(server.cpu() - before)
                rates.append(args.files / seconds)
            results.append(summary("small", "files/s", rates, cpu))
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    print(f"{args.size_mib} MiB, {args.files} x 4 KiB at concurrency {args.concurrency}, {args.runs} runs")
    for line in results:
        print(line)


if __name__ == "__main__":
    main()
