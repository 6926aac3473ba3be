"""Results: samples per contender, their summary, target checks, the machine, JSON and Markdown."""

from __future__ import annotations

import json
import os
import platform
import re
import statistics
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = ["Check", "Sample", "ScenarioResult", "machine_info", "write_results"]


@dataclass
class Sample:
    contender: str
    run: int
    wall: float
    max_rss_mib: float
    user: float = 0.0
    sys: float = 0.0
    server_cpu: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Check:
    """One target: ``value`` (what was measured) against ``target`` (``op`` is >= or <=)."""

    name: str
    value: float | None
    op: str
    target: float
    unit: str = "×"

    @property
    def met(self) -> bool | None:
        if self.value is None:
            return None
        return self.value >= self.target if self.op == ">=" else self.value <= self.target

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "met": self.met}


@dataclass
class ScenarioResult:
    id: int
    title: str
    #: amount of work per run, for a throughput column: (quantity, unit) e.g. (2**30, "MiB")
    work: tuple[float, str] | None = None
    samples: list[Sample] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    status: str = "ok"  # ok | pending | error | skipped
    notes: list[str] = field(default_factory=list)
    setup_seconds: float = 0.0

    def contenders(self) -> list[str]:
        seen: list[str] = []
        for sample in self.samples:
            if sample.contender not in seen:
                seen.append(sample.contender)
        return seen

    def of(self, contender: str) -> list[Sample]:
        return [s for s in self.samples if s.contender == contender]

    def median_wall(self, contender: str) -> float | None:
        walls = [s.wall for s in self.of(contender)]
        return statistics.median(walls) if walls else None

    def speedup(self, contender: str, baseline: str) -> float | None:
        """How many times faster ``contender`` is than ``baseline`` (median walls): for equal work,
        its throughput ratio."""
        a, b = self.median_wall(contender), self.median_wall(baseline)
        if a is None or b is None or a <= 0:
            return None
        return b / a

    def peak_rss(self, contender: str) -> float | None:
        values = [s.max_rss_mib for s in self.of(contender)]
        return max(values) if values else None

    def summary(self, contender: str) -> dict[str, Any]:
        samples = self.of(contender)
        walls = [s.wall for s in samples]
        out: dict[str, Any] = {
            "runs": len(samples),
            "median_s": statistics.median(walls),
            "min_s": min(walls),
            "max_s": max(walls),
            "peak_rss_mib": max(s.max_rss_mib for s in samples),
            "median_cpu_s": statistics.median(s.user + s.sys for s in samples),
        }
        server = [s.server_cpu for s in samples if s.server_cpu is not None]
        if server:
            out["median_server_cpu_s"] = statistics.median(server)
        loads = [s.extra["load1"] for s in samples if "load1" in s.extra]
        if loads:
            out["max_load1"] = max(loads)
        if self.work is not None:
            quantity, unit = self.work
            scale = 1 << 20 if unit == "MiB" else 1
            out[f"median_{unit.replace('/', '_')}_per_s"] = quantity / scale / out["median_s"]
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "status": self.status,
            "notes": self.notes,
            "work": list(self.work) if self.work else None,
            "setup_s": round(self.setup_seconds, 2),
            "summary": {c: self.summary(c) for c in self.contenders()},
            "checks": [c.to_json() for c in self.checks],
            "samples": [asdict(s) for s in self.samples],
        }


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def machine_info() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        curl = subprocess.run(["curl", "--version"], capture_output=True, text=True, check=False).stdout
        curl_version = curl.splitlines()[0] if curl else None
    except OSError:
        curl_version = None
    mem = None
    try:
        found = re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text())
        mem = round(int(found.group(1)) / 1024 / 1024, 1) if found else None
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": mem,
        "kernel": platform.release(),
        "os": platform.platform(),
        "python": sys.version.split()[0],
        "libraries": {p: _version(p) for p in ("hc", "aiohttp", "anyio", "yarl", "multidict")},
        "curl": curl_version,
    }


def _fmt_s(seconds: float) -> str:
    return f"{seconds:.2f}s" if seconds < 100 else f"{seconds:.0f}s"


def _fmt_num(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def _markdown(run: dict[str, Any], scenarios: list[ScenarioResult]) -> str:
    m = run["machine"]
    lines = [
        f"# hc benchmarks — {run['started'][:10]}{' (quick)' if run['quick'] else ''}",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB RAM, Linux {m['kernel']}; "
        f"Python {m['python']}; "
        + ", ".join(f"{k} {v}" for k, v in m["libraries"].items() if v)
        + f"; {m['curl']}.",
        "",
        f"Command: `{run['command']}` — {run['runs']} run(s) per contender, alternating; "
        f"total {run['elapsed_s']:.0f} s. Times are whole-process wall times (what a user waits for); "
        "peak RSS is the process's own maximum resident set (GNU time). "
        "“hc vs peer” is the peer's median time over hc's (>1: hc is faster). "
        "CPU columns are medians of user+sys seconds; “load” is the highest 1-minute load average "
        f"seen before a sample (this machine has {m['cores']} cores: above that, other work was "
        "competing with the benchmark).",
        "",
        "## Targets",
        "",
        "| # | scenario | check | measured | target | met |",
        "|---|---|---|---|---|---|",
    ]
    for s in scenarios:
        if not s.checks:
            lines.append(f"| {s.id} | {s.title} | – | {s.status} | – | – |")
        for c in s.checks:
            value = "–" if c.value is None else f"{_fmt_num(c.value)}{c.unit}"
            met = {True: "yes", False: "**no**", None: s.status}[c.met]
            lines.append(
                f"| {s.id} | {s.title} | {c.name} | {value} | {c.op} {_fmt_num(c.target)}{c.unit} | {met} |"
            )
    lines += [
        "",
        "## Measurements",
        "",
        "| # | contender | median | min–max | throughput | peak RSS | client CPU | server CPU | load |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for s in scenarios:
        for name in s.contenders():
            summary = s.summary(name)
            rate = "–"
            if s.work is not None:
                key = next(k for k in summary if k.endswith("_per_s"))
                rate = f"{_fmt_num(summary[key])} {s.work[1]}/s"
            server = summary.get("median_server_cpu_s")
            load = summary.get("max_load1")
            lines.append(
                f"| {s.id} | {name} | {_fmt_s(summary['median_s'])} | "
                f"{_fmt_s(summary['min_s'])}–{_fmt_s(summary['max_s'])} | {rate} | "
                f"{summary['peak_rss_mib']:.0f} MiB | {summary['median_cpu_s']:.2f}s | "
                f"{'–' if server is None else f'{server:.2f}s'} | {'–' if load is None else f'{load:.1f}'} |"
            )
    notes = [(s.id, s.title, n) for s in scenarios for n in s.notes]
    if notes:
        lines += ["", "## Notes", ""]
        lines += [f"- **{sid}. {title}**: {note}" for sid, title, note in notes]
    return "\n".join(lines) + "\n"


def write_results(out_dir: Path, stem: str, run: dict[str, Any], scenarios: list[ScenarioResult]) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    payload = {**run, "scenarios": [s.to_json() for s in scenarios]}
    (out_dir / f"{stem}.json").write_text(json.dumps(payload, indent=2) + "\n")
    md = out_dir / f"{stem}.md"
    md.write_text(_markdown(run, scenarios))
    return md
