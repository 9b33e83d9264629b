"""Runs each workload on a fresh host process and returns its figures.

Bench-app workloads get `python -m durablehost start` on bench/apps/bench_app with a new
hub file; the real-app workloads (`operations`, `cpu_bound`'s first half) get this repo's
function_app.py with a real Azurite (bench.appstack). Every workload's figures carry the
load average when it started (the machine is shared) and the peak of the summed RSS of
the host's process tree (host, hub writer, worker processes) sampled while it ran.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import operations_load, workloads
from bench.appstack import TreeRssSampler, cpu_by_part, run_app_host, run_azurite
from bench.hostproc import REPO, bench_host, rss_mb
from bench.seed import seed_finished_instances
from durablehost.process import HostProcess

__all__ = ["WORKLOADS", "Plan", "Settings", "run_dbos", "run_workload"]


@dataclass(frozen=True)
class Plan:
    """How much of each workload to run."""

    hello_batch: int
    hello_clients: int
    hello_rounds: int
    sequence_steps: list[int]
    sequence_repeats: int
    fan_out: list[int]
    latency_seconds: float
    status_seconds: float
    finished_instances: int
    # The real app: open-loop starts (rate, seconds), then a burst from N clients.
    ops_rate: float
    ops_seconds: float
    ops_burst: int
    ops_clients: int


QUICK = Plan(300, 16, 3, [100, 1000], 1, [10_000, 100_000], 5.0, 2.0, 100_000, 150, 5, 500, 50)
FULL = Plan(
    300, 16, 3, [100, 1000, 5000], 3, [10_000, 100_000], 20.0, 5.0, 100_000, 150, 5, 500, 50
)
LATENCY_CLIENTS = 50
# Each client sends about this many starts per second (Poisson): 50 x 5 = 250 offered/s.
LATENCY_RATE_PER_CLIENT = 5.0
STATUS_CONNECTIONS = 16


@dataclass(frozen=True)
class Settings:
    """The plan plus what every host gets: extra environment (e.g. the worker count)."""

    plan: Plan
    workdir: Path
    host_env: Mapping[str, str]


Figures = dict[str, Any]


def _measured(host: HostProcess, run: Callable[[HostProcess], Awaitable[Figures]]) -> Figures:
    load = os.getloadavg()

    async def go() -> Figures:
        return await run(host)

    with TreeRssSampler(host.pid) as sampler:
        figures = asyncio.run(go())
    figures["load_average_at_start"] = [round(value, 2) for value in load]
    figures["host_rss_mb"], figures["host_peak_rss_mb"] = rss_mb(host.pid)
    figures["tree_peak_rss_mb"] = round(sampler.peak_mb, 1)
    figures["tree_processes"] = sampler.peak_processes
    return figures


def _bench_app(
    settings: Settings, name: str, run: Callable[[HostProcess], Awaitable[Figures]]
) -> Figures:
    with bench_host(settings.workdir / f"{name}.sqlite3", env=settings.host_env) as host:
        return _measured(host, run)


def _real_app(
    settings: Settings,
    run: Callable[[HostProcess, Callable[[], dict[str, float]]], Awaitable[Figures]],
) -> Figures:
    """`run(host, cpu_probe)` on the real app; the probe reads the CPU seconds of the
    host's threads and processes, Azurite's and the bench's own."""
    with (
        run_azurite(settings.workdir / "azurite") as azurite,
        run_app_host(settings.workdir, azurite, env=settings.host_env) as host,
    ):

        def cpu_probe() -> dict[str, float]:
            parts = cpu_by_part(host.pid, {"azurite": azurite.pid})
            times = os.times()
            parts["bench client"] = times.user + times.system
            return parts

        return _measured(host, lambda h: run(h, cpu_probe))


def hello(settings: Settings, overrides: Mapping[str, Any]) -> Figures:
    """HelloSequence5 started over HTTP by keep-alive clients (median of the rounds)."""
    plan = settings.plan
    return _bench_app(
        settings,
        "hello",
        lambda h: workloads.hello_sequence5(
            h.url, batch=plan.hello_batch, rounds=plan.hello_rounds, clients=plan.hello_clients
        ),
    )


def sequence(settings: Settings, overrides: Mapping[str, Any]) -> Figures:
    """N sequential activities, end to end."""
    plan = settings.plan
    return _bench_app(
        settings,
        "sequence",
        lambda h: workloads.sequence(
            h.url, steps=plan.sequence_steps, repeats=plan.sequence_repeats
        ),
    )


def fanout(settings: Settings, overrides: Mapping[str, Any]) -> Figures:
    """Fan-out/fan-in of each N (its own host each, so each peak RSS is its own)."""
    counts = [overrides["n"]] if overrides.get("n") else settings.plan.fan_out
    runs: Figures = {}
    for count in counts:

        async def run(host: HostProcess, count: int = count) -> Figures:
            return await workloads.fan_out(host.url, count=count, repeats=1)

        runs[str(count)] = _bench_app(settings, f"fan_out_{count}", run)
    return {"runs": runs}


def starter(settings: Settings, overrides: Mapping[str, Any]) -> Figures:
    """The bench app's HTTP starter latency (closed loop per client, Poisson gaps)."""
    return _bench_app(
        settings,
        "latency",
        lambda h: workloads.starter_latency(
            h.url,
            clients=LATENCY_CLIENTS,
            seconds=settings.plan.latency_seconds,
            rate_per_client=LATENCY_RATE_PER_CLIENT,
        ),
    )


def cpu_bound(settings: Settings, overrides: Mapping[str, Any]) -> Figures:
    """Status GETs and starts while a pure-Python activity runs: the real app (a big
    report partition), then the bench app (`spin`)."""
    real = _real_app(settings, lambda h, _: operations_load.operations_cpu_bound(h.url))
    bench_app = _bench_app(
        settings,
        "cpu",
        lambda h: workloads.cpu_bound_latency(h.url, seconds=settings.plan.status_seconds),
    )
    return {"real_app": real, "bench_app": bench_app}


def status(settings: Settings, overrides: Mapping[str, Any]) -> Figures:
    """Status GETs with 10 and with many finished instances in the hub."""
    results: Figures = {}
    for label, count in (("hub_10", 10), ("hub_many", settings.plan.finished_instances)):
        hub = settings.workdir / f"{label}.sqlite3"
        instance_id = seed_finished_instances(hub, count)

        async def rate(host: HostProcess, instance_id: str = instance_id) -> Figures:
            return await workloads.status_rate(
                host.url,
                instance_id=instance_id,
                connections=STATUS_CONNECTIONS,
                seconds=settings.plan.status_seconds,
            )

        figures = _bench_app(settings, label, rate)
        figures["finished_instances"] = count
        results[label] = figures
    return results


def operations(settings: Settings, overrides: Mapping[str, Any]) -> Figures:
    """The real app: open-loop report starts, a burst to all Succeeded, checks."""
    plan = settings.plan
    return _real_app(
        settings,
        lambda h, cpu_probe: operations_load.operations(
            h.url,
            cpu_probe=cpu_probe,
            rate=overrides.get("rate") or plan.ops_rate,
            seconds=overrides.get("seconds") or plan.ops_seconds,
            burst=overrides.get("burst") or plan.ops_burst,
            clients=overrides.get("clients") or plan.ops_clients,
        ),
    )


WORKLOADS: dict[str, Callable[[Settings, Mapping[str, Any]], Figures]] = {
    "operations": operations,
    "cpu_bound": cpu_bound,
    "hello": hello,
    "sequence": sequence,
    "fanout": fanout,
    "starter": starter,
    "status": status,
}


def run_workload(name: str, settings: Settings, overrides: Mapping[str, Any]) -> Figures:
    """One workload by name."""
    return WORKLOADS[name](settings, overrides)


def run_dbos(plan: Plan, workdir: Path) -> Figures:
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
    figures: Figures = json.loads(done.stdout.strip().splitlines()[-1])
    return figures
