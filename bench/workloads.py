"""The workloads of issue 5, each against a running host over real HTTP.

Each function takes the host's base URL and returns a dict of figures. The client is
aiohttp on one event loop in the bench process (the host runs in its own process), so on
the 2-core machine the client and the host each get about one core.
"""

from __future__ import annotations

import asyncio
import json
import random
import statistics
import time
from typing import Any

import aiohttp

__all__ = [
    "fan_out",
    "hello_sequence5",
    "sequence",
    "starter_latency",
    "status_rate",
]

MGMT = "/runtime/webhooks/durabletask"
# Every workload has a deadline: a stuck host fails the run instead of hanging it.
_DEADLINE = 300.0


def _session(connections: int) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(limit=connections, force_close=False)
    return aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(_DEADLINE))


async def _start_via_starter(session: aiohttp.ClientSession, url: str, name: str, body: Any) -> str:
    async with session.post(f"{url}/api/start/{name}", json=body) as response:
        if response.status != 202:
            raise RuntimeError(f"starter answered {response.status}: {await response.text()}")
        payload = await response.json()
    return str(payload["id"])


async def _active_count(session: aiohttp.ClientSession, url: str) -> int:
    query = "runtimeStatus=Pending,Running&showInput=false&top=1"
    async with session.get(f"{url}{MGMT}/instances/?{query}") as response:
        response.raise_for_status()
        return len(await response.json())


async def _wait_all_finished(session: aiohttp.ClientSession, url: str) -> float:
    """Polls every 5 ms until no instance is Pending or Running; returns that moment."""
    deadline = time.perf_counter() + _DEADLINE
    while await _active_count(session, url):
        if time.perf_counter() > deadline:
            raise TimeoutError("instances still running at the deadline")
        await asyncio.sleep(0.005)
    return time.perf_counter()


async def _failed_count(session: aiohttp.ClientSession, url: str) -> int:
    query = "runtimeStatus=Failed,Terminated&showInput=false"
    async with session.get(f"{url}{MGMT}/instances/?{query}") as response:
        return len(await response.json())


async def hello_sequence5(url: str, *, batch: int, rounds: int) -> dict[str, Any]:
    """`batch` HelloSequence5 starts at once through the HTTP starter, `rounds` times;
    throughput = completed orchestrations / (last completion - first POST)."""
    rates = []
    async with _session(batch) as session:
        # Warm-up: imports, the SDK's client session, SQLite caches.
        await asyncio.gather(
            *(_start_via_starter(session, url, "hello_sequence5", None) for _ in range(20))
        )
        await _wait_all_finished(session, url)
        for _ in range(rounds):
            began = time.perf_counter()
            await asyncio.gather(
                *(_start_via_starter(session, url, "hello_sequence5", None) for _ in range(batch))
            )
            ended = await _wait_all_finished(session, url)
            rates.append(batch / (ended - began))
        failed = await _failed_count(session, url)
    if failed:
        raise RuntimeError(f"{failed} HelloSequence5 instances did not complete")
    return {
        "orchestrations_per_s": statistics.median(rates),
        "rounds": [round(rate, 1) for rate in rates],
        "batch": batch,
    }


async def _run_to_completion(session: aiohttp.ClientSession, url: str, name: str, n: int) -> float:
    """Start `name` with input n through the management API with ?timeout (the host
    answers when the instance finishes: no polling); returns the seconds it took."""
    began = time.perf_counter()
    start_url = f"{url}{MGMT}/orchestrators/{name}?timeout={int(_DEADLINE)}"
    async with session.post(start_url, data=json.dumps(n)) as response:
        text = await response.text()
        if response.status != 200:
            raise RuntimeError(f"{name}({n}) did not complete: {response.status} {text[:300]}")
    return time.perf_counter() - began


async def sequence(url: str, *, steps: list[int], repeats: int) -> dict[str, Any]:
    """One orchestration of N sequential activities, end to end, for each N (best of
    `repeats`)."""
    runs: dict[str, Any] = {}
    async with _session(4) as session:
        await _run_to_completion(session, url, "sequence", 20)  # warm-up
        for n in steps:
            best = min(
                [await _run_to_completion(session, url, "sequence", n) for _ in range(repeats)]
            )
            runs[str(n)] = {
                "seconds": best,
                "steps_per_s": n / best,
                "us_per_step": best / n * 1e6,
            }
    return {"runs": runs}


async def fan_out(url: str, *, count: int, repeats: int) -> dict[str, Any]:
    """One orchestration fanning out to `count` activities and summing the results."""
    async with _session(4) as session:
        await _run_to_completion(session, url, "fan_out", 100)  # warm-up
        best = min(
            [await _run_to_completion(session, url, "fan_out", count) for _ in range(repeats)]
        )
    return {"count": count, "seconds": best, "activities_per_s": count / best}


async def starter_latency(
    url: str, *, clients: int, seconds: float, rate_per_client: float
) -> dict[str, Any]:
    """POST to the HTTP starter -> 202, from `clients` concurrent clients for `seconds`,
    each sending about `rate_per_client` requests per second (Poisson arrivals, so
    requests from different clients collide as in real traffic; a client waits for its
    answer before its next request, so a slow host lowers the rate it gets)."""
    latencies: list[float] = []
    async with _session(clients) as session:
        await asyncio.gather(*(_start_via_starter(session, url, "noop", 1) for _ in range(clients)))
        stop = time.perf_counter() + seconds

        async def client(seed: int) -> None:
            rng = random.Random(seed)
            await asyncio.sleep(rng.expovariate(rate_per_client))
            while time.perf_counter() < stop:
                began = time.perf_counter()
                await _start_via_starter(session, url, "noop", 1)
                elapsed = time.perf_counter() - began
                latencies.append(elapsed)
                await asyncio.sleep(max(rng.expovariate(rate_per_client) - elapsed, 0))

        began = time.perf_counter()
        await asyncio.gather(*(client(seed) for seed in range(clients)))
        wall = time.perf_counter() - began
        await _wait_all_finished(session, url)
    latencies.sort()
    return {
        "clients": clients,
        "requests": len(latencies),
        "offered_per_s": clients * rate_per_client,
        "achieved_per_s": len(latencies) / wall,
        "p50_ms": _percentile(latencies, 50) * 1000,
        "p90_ms": _percentile(latencies, 90) * 1000,
        "p99_ms": _percentile(latencies, 99) * 1000,
        "max_ms": latencies[-1] * 1000,
    }


async def status_rate(
    url: str, *, instance_id: str | None = None, connections: int, seconds: float
) -> dict[str, Any]:
    """Closed-loop GETs of one finished instance's status for `seconds`; requests/s."""
    async with _session(connections) as session:
        if instance_id is None:
            start_url = f"{url}{MGMT}/orchestrators/hello_sequence5?timeout=60"
            async with session.post(start_url) as response:
                response.raise_for_status()
            async with session.get(f"{url}{MGMT}/instances/?top=1") as response:
                instance_id = str((await response.json())[0]["instanceId"])
        status_url = f"{url}{MGMT}/instances/{instance_id}"
        stop = time.perf_counter() + seconds
        count = 0
        latencies: list[float] = []

        async def worker() -> None:
            nonlocal count
            while time.perf_counter() < stop:
                began = time.perf_counter()
                async with session.get(status_url) as response:
                    await response.read()
                    if response.status != 200:
                        raise RuntimeError(f"status GET answered {response.status}")
                latencies.append(time.perf_counter() - began)
                count += 1

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(connections)))
        wall = time.perf_counter() - began
    latencies.sort()
    return {
        "requests_per_s": count / wall,
        "p50_ms": _percentile(latencies, 50) * 1000,
        "connections": connections,
    }


def _percentile(sorted_values: list[float], percent: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, round(percent / 100 * (len(sorted_values) - 1)))
    return sorted_values[index]


async def cpu_bound_latency(url: str, *, seconds: float) -> dict[str, Any]:
    """Status GET latency from one client, idle and while a CPU-bound sync activity runs
    in the host's thread pool: the HTTP front must stay responsive (issue 2)."""
    async with _session(1) as session:
        status_url = f"{url}{MGMT}/instances/?top=1"

        async def sample() -> list[float]:
            latencies: list[float] = []
            stop = time.perf_counter() + seconds
            while time.perf_counter() < stop:
                began = time.perf_counter()
                async with session.get(status_url) as response:
                    await response.read()
                latencies.append(time.perf_counter() - began)
            return sorted(latencies)

        idle = await sample()
        async with session.post(f"{url}{MGMT}/orchestrators/burn", json=seconds + 1) as response:
            response.raise_for_status()
        await asyncio.sleep(0.3)  # let the activity reach its thread
        busy = await sample()
    return {
        "idle_p50_ms": _percentile(idle, 50) * 1000,
        "idle_p99_ms": _percentile(idle, 99) * 1000,
        "busy_p50_ms": _percentile(busy, 50) * 1000,
        "busy_p99_ms": _percentile(busy, 99) * 1000,
        "busy_max_ms": busy[-1] * 1000,
    }
