"""Run one child process and measure what a user waits for: wall time from spawn to exit, and
the child's own peak RSS.

Peak RSS needs care: when a process execs, Linux records the old address space's high-water RSS
as the new program's ``ru_maxrss``, and a child spawned from this (large) Python process starts
out as a copy of it, so ``os.wait4`` on a direct child reports at least the harness's own RSS
(≈40 MiB even for curl). The child is therefore started under GNU ``/usr/bin/time``, a small C
program whose own ``wait4`` on the real command gives that command's true peak. Without it the
harness falls back to ``os.wait4`` and the RSS column is an upper bound (flagged in the report).
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["GNU_TIME", "Measured", "RunFailed", "kill_group", "run_measured"]

GNU_TIME = shutil.which("time", path="/usr/bin:/bin")


@dataclass(frozen=True)
class Measured:
    wall: float  # seconds, spawn to exit, as seen by the harness
    max_rss_mib: float
    user: float
    sys: float
    returncode: int
    killed: bool = False


class RunFailed(RuntimeError):
    pass


def _tail(path: Path | None, limit: int = 2000) -> str:
    if path is None or not path.exists():
        return ""
    return path.read_bytes()[-limit:].decode("utf-8", "replace")


def run_measured(
    argv: Sequence[str],
    *,
    log_dir: Path,
    name: str,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    stdout: Path | None = None,
    timeout: float = 900.0,
    check: bool = True,
    on_start: Callable[[int], None] | None = None,
) -> Measured:
    """Spawn ``argv`` (in its own process group) and return its measurements.

    stdout goes to ``stdout`` (default ``log_dir/<name>.out``), stderr to ``log_dir/<name>.err``.
    ``on_start(pgid)`` runs right after the spawn (to arm a kill switch: ``kill_group(pgid)``).
    ``check`` raises ``RunFailed`` with the output tails on a non-zero exit that nobody asked for.
    """
    log_dir.mkdir(parents=True, exist_ok=True)
    out_path = stdout or log_dir / f"{name}.out"
    err_path = log_dir / f"{name}.err"
    stats_path = log_dir / f"{name}.time"
    stats_path.unlink(missing_ok=True)
    (log_dir / f"{name}.cmd").write_text(" ".join(_redact(a) for a in argv) + "\n")
    command = list(argv)
    if GNU_TIME:
        command = [GNU_TIME, "-f", "%M %U %S", "-o", str(stats_path), *command]
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(
            command,
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
            env=dict(env if env is not None else os.environ),
            cwd=cwd,
            start_new_session=True,
        )
        timer = threading.Timer(timeout, kill_group, (proc.pid,))
        timer.start()
        if on_start is not None:
            on_start(proc.pid)
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        wall = time.perf_counter() - start
    proc.returncode = code = os.waitstatus_to_exitcode(status)  # reaped: Popen must not wait again
    killed = code == -signal.SIGKILL
    rss, user, system = usage.ru_maxrss / 1024.0, usage.ru_utime, usage.ru_stime
    if GNU_TIME and stats_path.exists():
        # the last line: GNU time may first write "Command exited with non-zero status N"
        lines = stats_path.read_text().strip().splitlines()
        fields = lines[-1].split() if lines else []
        if len(fields) == 3:
            rss, user, system = int(fields[0]) / 1024.0, float(fields[1]), float(fields[2])
    measured = Measured(wall=wall, max_rss_mib=rss, user=user, sys=system, returncode=code, killed=killed)
    if check and code != 0:
        raise RunFailed(f"{name}: {' '.join(argv[:8])} … exited {code}\n{_tail(err_path)}\n{_tail(out_path)}")
    return measured


def _redact(arg: str) -> str:
    """Command lines go to the logs without API keys (hc keys start with ``pat.``)."""
    if arg.startswith("pat.") or "x-api-key" in arg.lower():
        return "<redacted>"
    return shlex.quote(arg)


def kill_group(pgid: int) -> None:
    """SIGKILL the process group ``pgid`` (GNU time and the command under it), if still there."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)
