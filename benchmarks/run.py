"""Benchmark hc against real peers (curl, the Go CLI's way) on this machine, side by side.

    python benchmarks/run.py [--quick] [--only 1,3] [--runs K]

Starts every server it needs on 127.0.0.1 (``hc server run`` subprocesses, fresh stores), runs
each scenario ``--runs`` times alternating hc and its peer, and writes
``benchmarks/results/<date>.json`` and ``.md`` (``<date>-quick``/``<date>-partial`` for
``--quick``/``--only``). See benchmarks/README.md for the scenarios and what they need.
"""

from __future__ import annotations

import argparse
import compileall
import datetime as dt
import shutil
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from harness.context import Context  # noqa: E402
from harness.report import ScenarioResult, machine_info, write_results  # noqa: E402
from harness.scenarios_big import s8_copy, s10_resume  # noqa: E402
from harness.scenarios_files import (  # noqa: E402
    s1_push_big,
    s2_pull_big,
    s3_push_small,
    s4_push_small_wan,
    s6_repush,
    s7_pull_small,
)
from harness.scenarios_list import s5_list  # noqa: E402
from harness.summary import s9_memory  # noqa: E402

Scenario = Callable[[Context], ScenarioResult]

SCENARIOS: dict[int, Scenario] = {
    1: s1_push_big,
    2: s2_pull_big,
    3: s3_push_small,
    4: s4_push_small_wan,
    5: s5_list,
    6: s6_repush,
    7: s7_pull_small,
    8: s8_copy,
    10: s10_resume,
}
TITLES = {9: "peak RSS of 1, 3 and 5"}


def _parse_only(text: str | None) -> list[int]:
    if not text:
        return [*SCENARIOS, 9]
    wanted = sorted({int(x) for x in text.replace(" ", "").split(",") if x})
    unknown = [x for x in wanted if x not in SCENARIOS and x != 9]
    if unknown:
        raise SystemExit(f"unknown scenario(s): {unknown}; there are 1-10")
    return wanted


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="smaller data, 1 run each (under 3 minutes)")
    parser.add_argument("--only", help="comma-separated scenario numbers (9 needs 1, 3 and 5)")
    parser.add_argument("--runs", type=int, help="runs per contender (default 3, or 1 with --quick)")
    parser.add_argument(
        "--budget",
        type=float,
        default=60.0,
        help="seconds a contender may take in all before it is not repeated (default 60)",
    )
    parser.add_argument("--keep-scratch", action="store_true", help="keep benchmarks/work/scratch")
    args = parser.parse_args(argv)
    if shutil.which("curl") is None:
        raise SystemExit("curl is required: apt-get install -y curl")
    wanted = _parse_only(args.only)
    # Compile hc once up front, as an installed package is: no sample pays for compiling.
    compileall.compile_dir(str(HERE.parent / "src" / "hc"), quiet=1)
    runs = args.runs or (1 if args.quick else 3)
    started = dt.datetime.now()
    stamp = started.strftime("%Y%m%d-%H%M%S")
    ctx = Context(HERE, quick=args.quick, runs=runs, stamp=stamp, budget=args.budget)
    print(
        f"hc benchmarks: scenarios {wanted}, {runs} run(s) each{' (quick)' if args.quick else ''}", flush=True
    )
    results: list[ScenarioResult] = []
    clock = time.perf_counter()
    for number in wanted:
        if number == 9:
            continue
        began = time.perf_counter()
        print(f"[{number}] {SCENARIOS[number].__name__} …", flush=True)
        try:
            result = SCENARIOS[number](ctx)
        except Exception as exc:  # one broken scenario must not lose the others' numbers
            traceback.print_exc()
            result = ScenarioResult(number, SCENARIOS[number].__name__, status="error")
            result.notes.append(
                f"failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            )
        ctx.empty_trash()
        results.append(result)
        for check in result.checks:
            value = "–" if check.value is None else f"{check.value:.2f}"
            verdict = "ok" if check.met else "MISSED"
            print(f"    {check.name}: {value} (target {check.op} {check.target}) {verdict}")
        print(f"    ({time.perf_counter() - began:.0f} s)", flush=True)
    if 9 in wanted:
        results.append(s9_memory(results))
    results.sort(key=lambda r: r.id)
    elapsed = time.perf_counter() - clock
    suffix = ("-quick" if args.quick else "") + ("-partial" if args.only else "")
    run_info = {
        "started": started.isoformat(timespec="seconds"),
        "elapsed_s": round(elapsed, 1),
        "command": "python benchmarks/run.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "quick": args.quick,
        "runs": runs,
        "sizes": vars(ctx.sizes),
        "machine": machine_info(),
        "logs": str(ctx.logs.relative_to(HERE)),
    }
    md = write_results(HERE / "results", started.strftime("%Y-%m-%d") + suffix, run_info, results)
    if not args.keep_scratch:
        shutil.rmtree(ctx.scratch, ignore_errors=True)
    print(f"done in {elapsed:.0f} s: {md.relative_to(HERE.parent)} (and .json)")
    print(md.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
