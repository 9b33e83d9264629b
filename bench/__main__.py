"""`python -m bench [--quick] [--json] [--no-dbos]`: the issue-5 benchmark.

Each workload gets its own host process (fresh hub file, free port, bench app); the DBOS
comparison runs in its own process. Prints a table (or, with --json, one JSON object).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import workloads
from bench.hostproc import REPO, bench_host, rss_mb
from bench.seed import seed_finished_instances
from durablehost.process import HostProcess

__all__ = ["main"]


@dataclass(frozen=True)
class Plan:
    """How much of each workload to run."""

    hello_batch: int
    hello_rounds: int
    sequence_steps: list[int]
    sequence_repeats: int
    fan_out: int
    latency_seconds: float
    status_seconds: float
    finished_instances: int


QUICK = Plan(200, 2, [100, 1000], 1, 10_000, 5.0, 2.0, 100_000)
FULL = Plan(200, 5, [100, 1000, 5000], 3, 10_000, 20.0, 5.0, 100_000)
LATENCY_CLIENTS = 50
# Each client sends about this many starts per second (Poisson): 50 x 5 = 250 offered/s.
LATENCY_RATE_PER_CLIENT = 5.0
STATUS_CONNECTIONS = 16


def _machine() -> dict[str, Any]:
    load = os.getloadavg()
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        # Which build: the same version runs ~20% apart between builds (docs/performance.md).
        "python_executable": os.path.realpath(sys.executable),
        "platform": platform.platform(),
        "load_average_at_start": [round(value, 2) for value in load],
    }


def _with_host(
    workdir: Path, name: str, run: Callable[[HostProcess], Awaitable[dict[str, Any]]]
) -> dict[str, Any]:
    async def go() -> dict[str, Any]:
        with bench_host(workdir / f"{name}.sqlite3") as host:
            figures = await run(host)
            figures["host_rss_mb"], figures["host_peak_rss_mb"] = rss_mb(host.pid)
            return figures

    return asyncio.run(go())


def run_durablehost(plan: Plan, workdir: Path, log: Callable[[str], None]) -> dict[str, Any]:
    """Every durablehost workload; returns their figures by name."""
    results: dict[str, Any] = {}
    log("HelloSequence5 over HTTP ...")
    results["hello_sequence5"] = _with_host(
        workdir,
        "hello",
        lambda h: workloads.hello_sequence5(
            h.url, batch=plan.hello_batch, rounds=plan.hello_rounds
        ),
    )
    log("sequential activities ...")
    results["sequence"] = _with_host(
        workdir,
        "sequence",
        lambda h: workloads.sequence(
            h.url, steps=plan.sequence_steps, repeats=plan.sequence_repeats
        ),
    )
    log("fan-out/fan-in ...")
    results["fan_out"] = _with_host(
        workdir, "fan_out", lambda h: workloads.fan_out(h.url, count=plan.fan_out, repeats=1)
    )
    log("HTTP starter latency ...")
    results["starter_latency"] = _with_host(
        workdir,
        "latency",
        lambda h: workloads.starter_latency(
            h.url,
            clients=LATENCY_CLIENTS,
            seconds=plan.latency_seconds,
            rate_per_client=LATENCY_RATE_PER_CLIENT,
        ),
    )
    log("HTTP latency while a CPU-bound activity runs ...")
    results["cpu_bound"] = _with_host(
        workdir,
        "cpu",
        lambda h: workloads.cpu_bound_latency(h.url, seconds=plan.status_seconds),
    )
    for label, count in (("hub_10", 10), ("hub_many", plan.finished_instances)):
        log(f"status GET with {count} finished instances in the hub ...")
        hub = workdir / f"{label}.sqlite3"
        instance_id = seed_finished_instances(hub, count)

        async def status(host: HostProcess, instance_id: str = instance_id) -> dict[str, Any]:
            figures = await workloads.status_rate(
                host.url,
                instance_id=instance_id,
                connections=STATUS_CONNECTIONS,
                seconds=plan.status_seconds,
            )
            return figures

        figures = _with_host(workdir, label, status)
        figures["finished_instances"] = count
        results[f"status_{label}"] = figures
    return results


def run_dbos(plan: Plan, workdir: Path) -> dict[str, Any]:
    """The DBOS comparison, in its own process."""
    command = [
        sys.executable,
        "-m",
        "bench.dbos_runner",
        "--hub",
        str(workdir / "dbos.sqlite3"),
        "--batch",
        str(plan.hello_batch),
        "--rounds",
        str(plan.hello_rounds),
        "--steps",
        "1000",
        "--repeats",
        str(plan.sequence_repeats),
    ]
    done = subprocess.run(
        command, cwd=REPO, capture_output=True, text=True, timeout=600, check=False
    )
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1:] or ["failed"]}
    figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def _ratios(ours: dict[str, Any], dbos: dict[str, Any]) -> dict[str, float]:
    if "error" in dbos:
        return {}
    seq = ours["sequence"]["runs"].get("1000")
    ratios = {
        "hello_sequence5": ours["hello_sequence5"]["orchestrations_per_s"]
        / dbos["hello_sequence5"]["orchestrations_per_s"],
    }
    if seq is not None:
        ratios["sequence_1000"] = seq["steps_per_s"] / dbos["sequence"]["steps_per_s"]
    return ratios


def _table(report: dict[str, Any]) -> str:
    ours, dbos, ratios = report["durablehost"], report.get("dbos", {}), report.get("ratios", {})
    rows: list[tuple[str, str, str, str]] = []
    hello = ours["hello_sequence5"]
    dbos_hello = dbos.get("hello_sequence5", {}).get("orchestrations_per_s")
    rows.append(
        (
            f"HelloSequence5, {hello['batch']} at once over HTTP",
            f"{hello['orchestrations_per_s']:.0f} orch/s",
            ">= 500 orch/s",
            f"{dbos_hello:.0f} orch/s (x{ratios['hello_sequence5']:.2f})" if dbos_hello else "-",
        )
    )
    for steps, figures in ours["sequence"]["runs"].items():
        dbos_seq = dbos.get("sequence", {}) if steps == "1000" else {}
        rows.append(
            (
                f"{steps} sequential activities",
                f"{figures['seconds']:.2f} s ({figures['us_per_step']:.0f} us/step)",
                "<= 1 s" if steps == "1000" else "linear",
                f"{dbos_seq['seconds']:.2f} s (x{ratios['sequence_1000']:.2f})"
                if dbos_seq
                else "-",
            )
        )
    fan = ours["fan_out"]
    rows.append(
        (
            f"fan-out/fan-in of {fan['count']}",
            f"{fan['seconds']:.2f} s ({fan['activities_per_s']:.0f}/s)",
            "<= 5 s",
            "-",
        )
    )
    lat = ours["starter_latency"]
    rows.append(
        (
            f"starter POST -> 202, {lat['clients']} clients, {lat['offered_per_s']:.0f}/s offered",
            f"p50 {lat['p50_ms']:.1f} ms, p99 {lat['p99_ms']:.1f} ms "
            f"({lat['achieved_per_s']:.0f}/s done)",
            "p50 <= 3, p99 <= 15 ms",
            "-",
        )
    )
    cpu = ours.get("cpu_bound")
    if cpu:
        rows.append(
            (
                "status GET while a CPU-bound activity runs",
                f"p50 {cpu['busy_p50_ms']:.1f} ms, p99 {cpu['busy_p99_ms']:.1f} ms "
                f"(idle p50 {cpu['idle_p50_ms']:.1f}, p99 {cpu['idle_p99_ms']:.1f})",
                "stays responsive",
                "-",
            )
        )
    for key in ("status_hub_10", "status_hub_many"):
        status = ours[key]
        rows.append(
            (
                f"status GET, {status['finished_instances']} finished instances",
                f"{status['requests_per_s']:.0f} req/s, RSS {status['host_rss_mb']:.0f} MB "
                f"(peak {status['host_peak_rss_mb']:.0f})",
                ">= 3000 req/s, < 300 MB",
                "-",
            )
        )
    widths = [
        max(len(row[i]) for row in [*rows, ("workload", "durablehost", "target", "DBOS")])
        for i in range(4)
    ]
    header = ("workload", "durablehost", "target", "DBOS (ratio)")
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(header, widths, strict=True))]
    lines.append("  ".join("-" * width for width in widths))
    lines += [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        for row in rows
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; prints a table or JSON."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller runs (about a minute)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--no-dbos", action="store_true", help="skip the DBOS comparison")
    options = parser.parse_args(argv)
    plan = QUICK if options.quick else FULL

    def log(text: str) -> None:
        print(f"[bench] {text}", file=sys.stderr, flush=True)

    began = time.perf_counter()
    report: dict[str, Any] = {"machine": _machine(), "mode": "quick" if options.quick else "full"}
    with tempfile.TemporaryDirectory(prefix="durablehost-bench-") as tmp:
        workdir = Path(tmp)
        report["durablehost"] = run_durablehost(plan, workdir, log)
        if not options.no_dbos:
            log("DBOS (SQLite) ...")
            report["dbos"] = run_dbos(plan, workdir)
            report["ratios"] = _ratios(report["durablehost"], report["dbos"])
    report["seconds"] = time.perf_counter() - began
    if options.json:
        print(json.dumps(report, indent=2))
    else:
        print(_table(report))
        print(f"\n{report['mode']} run in {report['seconds']:.0f} s; machine: {report['machine']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
