"""Scenario 9: hc's peak RSS in scenarios 1, 3 and 5 (measured there, checked here)."""

from __future__ import annotations

from .report import Check, Sample, ScenarioResult

__all__ = ["s9_memory"]

LIMIT_MIB = 150.0


def s9_memory(results: list[ScenarioResult]) -> ScenarioResult:
    result = ScenarioResult(9, "peak RSS of hc in 1, 3 and 5")
    by_id = {r.id: r for r in results}
    for sid in (1, 3, 5):
        source = by_id.get(sid)
        peak = source.peak_rss("hc") if source is not None else None
        if source is None or peak is None:
            result.checks.append(Check(f"scenario {sid}: not run", None, "<=", LIMIT_MIB, unit=" MiB"))
            continue
        result.checks.append(Check(f"scenario {sid} ({source.title})", peak, "<=", LIMIT_MIB, unit=" MiB"))
        for s in source.of("hc"):
            result.samples.append(Sample(f"hc in {sid}", s.run, s.wall, s.max_rss_mib, s.user, s.sys))
    if any(c.value is None for c in result.checks):
        result.status = "partial"
    return result
