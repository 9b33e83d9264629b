"""`python -m bench [WORKLOAD ...] [options]`: durablehost's benchmark.

Workloads (all of them when none is named):
  operations  the real app (function_app.py + Azurite): POST /api/operations/report
              offered open-loop at --rate for --seconds, then a --burst of starts from
              --clients keep-alive clients until all Succeeded; every operation checked
  cpu_bound   status GETs and starts while a pure-Python activity runs (real app, then
              the bench app)
  hello       HelloSequence5 over the HTTP starter, 300 by 16 keep-alive clients
  sequence    N sequential activities, end to end
  fanout      fan-out/fan-in of 10,000 and 100,000 activities (--n for one count), with
              the host's process-tree peak RSS
  starter     the bench app's HTTP starter latency
  status      status GETs with 10 and 100,000 finished instances
and the DBOS comparison (when every workload runs; --no-dbos skips it).

Each workload gets its own host process (fresh hub file, free port). Prints a table and,
with --json, the figures as JSON; --out writes the JSON to a file.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.runner import FULL, QUICK, WORKLOADS, Settings, run_dbos, run_workload
from bench.table import table

__all__ = ["main"]

WORKER_COUNT_SETTING = "FUNCTIONS_WORKER_PROCESS_COUNT"


def _machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        # Which build: the same version runs ~20% apart between builds (docs/performance.md).
        "python_executable": os.path.realpath(sys.executable),
        "platform": platform.platform(),
        "load_average_at_start": [round(value, 2) for value in os.getloadavg()],
    }


def _ratios(ours: dict[str, Any], dbos: dict[str, Any]) -> dict[str, float]:
    if "error" in dbos or "hello" not in ours:
        return {}
    ratios = {
        "hello_sequence5": ours["hello"]["orchestrations_per_s"]
        / dbos["hello_sequence5"]["orchestrations_per_s"],
    }
    seq = ours.get("sequence", {}).get("runs", {}).get("1000")
    if seq is not None:
        ratios["sequence_1000"] = seq["steps_per_s"] / dbos["sequence"]["steps_per_s"]
    return ratios


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("workloads", nargs="*", metavar="WORKLOAD", help="workloads to run")
    parser.add_argument("--quick", action="store_true", help="smaller runs")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--out", type=Path, help="write the figures as JSON to this file")
    parser.add_argument("--no-dbos", action="store_true", help="skip the DBOS comparison")
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help=f"worker processes for activities: sets {WORKER_COUNT_SETTING} for every host "
        "(0: activities in the host process; default: the host's own default)",
    )
    parser.add_argument("--n", type=int, help="fanout: one fan-out of N activities")
    parser.add_argument("--rate", type=float, help="operations: starts offered per second")
    parser.add_argument("--seconds", type=float, help="operations: how long they are offered")
    parser.add_argument("--burst", type=int, help="operations: starts in the burst")
    parser.add_argument("--clients", type=int, help="operations: keep-alive clients of the burst")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; prints a table or JSON."""
    parser = _parser()
    options = parser.parse_args(argv)
    unknown = [name for name in options.workloads if name not in WORKLOADS]
    if unknown:
        parser.error(f"unknown workload {', '.join(unknown)}; pick from {', '.join(WORKLOADS)}")
    names = options.workloads or list(WORKLOADS)
    plan = QUICK if options.quick else FULL
    host_env = {} if options.workers is None else {WORKER_COUNT_SETTING: str(options.workers)}
    overrides = {key: getattr(options, key) for key in ("n", "rate", "seconds", "burst", "clients")}

    def log(text: str) -> None:
        print(f"[bench] {text}", file=sys.stderr, flush=True)

    began = time.perf_counter()
    report: dict[str, Any] = {
        "machine": _machine(),
        "mode": "quick" if options.quick else "full",
        "workers": "host default" if options.workers is None else options.workers,
        "durablehost": {},
    }
    with tempfile.TemporaryDirectory(prefix="durablehost-bench-") as tmp:
        settings = Settings(plan=plan, workdir=Path(tmp), host_env=host_env)
        for name in names:
            log(f"{name} ...")
            report["durablehost"][name] = run_workload(name, settings, overrides)
        if not options.workloads and not options.no_dbos:
            log("DBOS (SQLite) ...")
            report["dbos"] = run_dbos(plan, Path(tmp))
            report["ratios"] = _ratios(report["durablehost"], report["dbos"])
    report["seconds"] = time.perf_counter() - began
    if options.out:
        options.out.parent.mkdir(parents=True, exist_ok=True)
        options.out.write_text(json.dumps(report, indent=2))
    if options.json:
        print(json.dumps(report, indent=2))
    else:
        print(table(report))
        print(
            f"\n{report['mode']} run in {report['seconds']:.0f} s, workers: {report['workers']}; "
            f"machine: {report['machine']}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
