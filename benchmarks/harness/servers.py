"""``hc server run`` as a child process on 127.0.0.1, with an API key and GENERIC registries."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from hc.server.embedded import create_api_key

__all__ = ["HcServer", "cpu_seconds"]

_CLK_TCK = os.sysconf("SC_CLK_TCK")
_SERVING = re.compile(r"serving (http://\S+)")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds ``pid`` has used so far (its threads included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


class HcServer:
    """``with HcServer(data_dir, log) as server:`` → ``server.base_url``, ``server.token``."""

    def __init__(self, data_dir: Path, log_file: Path, *, env: dict[str, str] | None = None) -> None:
        self.data_dir = data_dir
        self.log_file = log_file
        self._env = env
        self.base_url = ""
        self.port = 0
        self.token = ""
        self.account = "local"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    def __enter__(self) -> HcServer:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.token = create_api_key(self.data_dir, self.account)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "wb") as log:
            self._proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "hc",
                    "server",
                    "run",
                    "--data-dir",
                    str(self.data_dir),
                    "--port",
                    "0",
                ],
                stdout=log,
                stderr=log,
                stdin=subprocess.DEVNULL,
                env=self._env,
                start_new_session=True,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            found = _SERVING.search(self.log_file.read_text(errors="replace"))
            if found:
                self.base_url = found.group(1)
                self.port = int(self.base_url.rsplit(":", 1)[1])
                return self
            if self._proc.poll() is not None:
                break
            time.sleep(0.02)
        self.__exit__()
        raise RuntimeError(f"hc server did not start:\n{self.log_file.read_text(errors='replace')[-2000:]}")

    def __exit__(self, *exc: object) -> None:
        if self._proc is None or self._proc.poll() is not None:
            return
        self._proc.send_signal(signal.SIGTERM)
        try:
            self._proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()

    def cpu(self) -> float:
        return cpu_seconds(self.pid)

    def request(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            self.base_url + path,
            data=data,
            method=method,
            headers={"x-api-key": self.token, "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=120) as response:
            raw = response.read()
        return json.loads(raw) if raw else None

    def create_registry(self, identifier: str) -> None:
        self.request(
            "POST",
            f"/gateway/har/api/v1/registry?space_ref={self.account}",
            {"identifier": identifier, "packageType": "GENERIC"},
        )

    def file_url(self, registry: str, package: str, version: str, relpath: str) -> str:
        from hc.protocol.routes import generic_file_path

        return self.base_url + generic_file_path(self.account, registry, package, version, relpath)

    def count_files(self, registry: str, package: str, version: str) -> int:
        """How many files the version holds (v1 listing's itemCount; 0 if it does not exist)."""
        from urllib.error import HTTPError
        from urllib.parse import quote

        ref = quote(f"{self.account}/{registry}", safe="")
        path = (
            f"/gateway/har/api/v1/registry/{ref}/+/artifact/{quote(package, safe='')}/+/version/"
            f"{quote(version, safe='')}/files?page=0&size=1"
        )
        try:
            body = self.request("GET", path)
        except HTTPError as exc:
            if exc.code == 404:
                return 0
            raise
        return int(body["data"]["itemCount"])
