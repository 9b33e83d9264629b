"""`python -m bench.hostprofile [--rate R] [--seconds S] [--burst B]`: where the host's time goes
under the operations workload.

Starts Azurite and the real app on a host process running under cProfile
(bench.profiled_host), drives the `operations` workload at it, takes the profile, and
prints the host main thread's own time grouped by area (HTTP front, engine and store,
Durable Functions SDK, blob client, the app's own code, asyncio, ...) and the top
functions by own time and by cumulative time. cProfile slows function-heavy code about
twofold, so the shares are what to read, not the seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pstats
import signal
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import operations_load, workloads
from bench.appstack import run_azurite
from bench.hostproc import APP_DIR, REPO
from bench.profiled_host import PROFILE_CLOCK_SETTING, PROFILE_OUT_SETTING
from durablehost.process import HostProcess

__all__ = ["area_of", "main"]

# Where a function's file lives -> the area its time is counted in (first match wins).
_AREAS: tuple[tuple[str, str], ...] = (
    ("durablehost/front/", "durablehost HTTP front + management API"),
    ("durablehost/engine/", "durablehost engine"),
    ("durablehost/store/", "durablehost store (SQLite, writer pipe)"),
    ("durablehost/wire/", "durablehost wire (SDK JSON)"),
    ("durablehost/app/", "durablehost app invocation"),
    ("durablehost/workers/", "durablehost workers"),
    ("durablehost/", "durablehost other"),
    ("azure/durable_functions/", "Durable Functions SDK"),
    ("azure/functions/", "azure-functions (HttpRequest/Response)"),
    ("azure/storage/", "blob client (azure-storage-blob)"),
    ("azure/core/", "azure-core pipeline"),
    ("aiohttp/", "aiohttp (server + SDK's client)"),
    ("multidict/", "aiohttp (server + SDK's client)"),
    ("yarl/", "aiohttp (server + SDK's client)"),
    ("/operations/", "app: operations/"),
    ("/activities/", "app: activities/"),
    ("/orchestrators/", "app: orchestrators/"),
    ("dateutil/", "dateutil (the SDK parsing status timestamps)"),
    ("croniter/", "croniter (timer triggers)"),
    ("/uuid.py", "uuid"),
    ("/re/", "re"),
    ("asyncio/", "asyncio"),
    ("json/", "json"),
    ("urllib/", "urllib"),
    ("logging/", "logging"),
    ("sqlite3", "sqlite3"),
)


def area_of(filename: str, function: str) -> str:
    """The area a function belongs to, by where its code lives."""
    for fragment, area in _AREAS:
        if fragment in filename:
            return area
    if filename == "~":  # a builtin: name it by what it is
        if "sqlite3" in function:
            return "sqlite3"
        if "select" in function or "epoll" in function:
            return "waiting (epoll)"
        return "builtins"
    return "other Python"


class _ProfiledHost(HostProcess):
    def command(self) -> list[str]:
        return [sys.executable, "-m", "bench.profiled_host", *super().command()[3:]]


def _report(stats_path: Path, top: int) -> str:
    stats = pstats.Stats(str(stats_path))
    raw = stats.stats  # type: ignore[attr-defined]
    total = sum(entry[2] for entry in raw.values())
    by_area: dict[str, float] = {}
    for (filename, _, function), entry in raw.items():
        area = area_of(filename, function)
        by_area[area] = by_area.get(area, 0.0) + entry[2]
    lines = [f"host main thread, own time by area (total {total:.1f} s under cProfile):"]
    lines.append("  share   share of busy  area")
    busy = total - by_area.get("waiting (epoll)", 0.0)
    for area, seconds in sorted(by_area.items(), key=lambda item: -item[1]):
        lines.append(f"  {seconds / total:6.1%}  {seconds / busy:6.1%} of busy  {area}")
    lines.append(f"\ntop {top} functions by own time:")
    ranked = sorted(raw.items(), key=lambda item: -item[1][2])[:top]
    for (filename, line, function), entry in ranked:
        where = filename.replace(str(REPO) + "/", "").split("site-packages/")[-1]
        lines.append(f"  {entry[2] / total:6.1%}  {entry[1]:>8} calls  {function}  {where}:{line}")
    lines.append(f"\ntop {top} functions by cumulative time:")
    ranked = sorted(raw.items(), key=lambda item: -item[1][3])[:top]
    for (filename, line, function), entry in ranked:
        where = filename.replace(str(REPO) + "/", "").split("site-packages/")[-1]
        lines.append(f"  {entry[3] / total:6.1%}  {entry[1]:>8} calls  {function}  {where}:{line}")
    return "\n".join(lines)


def _profiled(
    app_dir: Path, workdir: Path, env: dict[str, str | None], drive: Callable[[str], Any]
) -> tuple[Any, Path]:
    """Start a profiled host on `app_dir`, run `drive(url)` (a coroutine function), take
    the profile, stop the host; returns what drive returned and the profile's path."""
    out = workdir / "host.prof"
    env = {**env, PROFILE_OUT_SETTING: str(out)}
    host = _ProfiledHost(
        app_dir,
        hub=workdir / "hub.sqlite3",
        port=None,
        env=env,
        args=(),
        log_path=workdir / "host.log",
        start_timeout=120.0,
        stop_timeout=15.0,
    )
    host.start()
    try:
        figures = asyncio.run(drive(host.url))
        os.kill(host.pid, signal.SIGUSR2)
        deadline = time.monotonic() + 60
        while not out.exists():
            if time.monotonic() > deadline:
                raise TimeoutError("the host wrote no profile")
            time.sleep(0.1)
    finally:
        host.stop()
    return figures, out


def main(argv: list[str] | None = None) -> int:
    """Profile the host under the operations workload (or a fan-out); prints the report."""
    parser = argparse.ArgumentParser(prog="python -m bench.hostprofile", description=__doc__)
    parser.add_argument("--rate", type=float, default=150.0)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--burst", type=int, default=500)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument(
        "--fanout", type=int, help="instead: one fan-out of N activities on the bench app"
    )
    parser.add_argument("--workers", type=int, default=None, help="FUNCTIONS_WORKER_PROCESS_COUNT")
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument(
        "--wall", action="store_true", help="wall-clock time instead of the main thread's CPU"
    )
    parser.add_argument("--keep", type=Path, help="also copy the raw profile here")
    options = parser.parse_args(argv)
    env: dict[str, str | None] = {PROFILE_CLOCK_SETTING: "wall" if options.wall else "cpu"}
    if options.workers is not None:
        env["FUNCTIONS_WORKER_PROCESS_COUNT"] = str(options.workers)
    with tempfile.TemporaryDirectory(prefix="durablehost-profile-") as tmp:
        workdir = Path(tmp)
        if options.fanout:
            count = options.fanout
            figures, out = _profiled(
                APP_DIR, workdir, env, lambda url: workloads.fan_out(url, count=count, repeats=1)
            )
            summary = f"fan-out of {count} in {figures['seconds']:.2f} s"
        else:
            tag = uuid.uuid4().hex[:10]
            with run_azurite(workdir / "azurite") as azurite:
                env["AzureWebJobsStorage"] = azurite.connection_string
                env["OPS_RESULTS_CONTAINER"] = f"results-{tag}"
                env["OPS_STATE_CONTAINER"] = f"state-{tag}"
                figures, out = _profiled(
                    REPO,
                    workdir,
                    env,
                    lambda url: operations_load.operations(
                        url,
                        rate=options.rate,
                        seconds=options.seconds,
                        burst=options.burst,
                        clients=options.clients,
                        check=False,  # the checks' GETs are not the load being profiled
                    ),
                )
            summary = (
                f"open loop p50 {figures['starter']['p50_ms']:.0f} ms, "
                f"burst {figures['burst']['operations_per_s']:.0f} ops/s"
            )
        print(f"(under cProfile) {summary}\n")
        print(_report(out, options.top))
        if options.keep:
            options.keep.write_bytes(out.read_bytes())
    return 0


if __name__ == "__main__":
    sys.exit(main())
