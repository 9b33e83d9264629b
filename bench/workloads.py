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

from bench.openloop import open_loop

__all__ = [
    "cpu_bound_latency",
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
    # Paged: a list without top answers the extension's first page (100) only.
    query = "runtimeStatus=Failed,Terminated&showInput=false&top=1000"
    count, token = 0, None
    while True:
        headers: dict[str, str] = {"x-ms-continuation-token": token} if token else {}
        async with session.get(f"{url}{MGMT}/instances/?{query}", headers=headers) as response:
            count += len(await response.json())
            token = response.headers.get("x-ms-continuation-token")
        if not token:
            return count


async def hello_sequence5(url: str, *, batch: int, rounds: int, clients: int) -> dict[str, Any]:
    """`batch` HelloSequence5 starts at once through the HTTP starter, shared by
    `clients` keep-alive connections (each sends its next POST when its 202 arrives),
    `rounds` times; throughput = completed orchestrations / (last completion - first POST)."""
    rates = []
    async with _session(clients) as session:

        async def start_all(count: int) -> None:
            remaining = iter(range(count))

            async def client() -> None:
                for _ in remaining:
                    await _start_via_starter(session, url, "hello_sequence5", None)

            await asyncio.gather(*(client() for _ in range(clients)))

        # Warm-up: imports, the SDK's client session, SQLite caches.
        await start_all(20)
        await _wait_all_finished(session, url)
        for _ in range(rounds):
            began = time.perf_counter()
            await start_all(batch)
            ended = await _wait_all_finished(session, url)
            rates.append(batch / (ended - began))
        failed = await _failed_count(session, url)
    if failed:
        raise RuntimeError(f"{failed} HelloSequence5 instances did not complete")
    return {
        "orchestrations_per_s": statistics.median(rates),
        "rounds": [round(rate, 1) for rate in rates],
        "batch": batch,
        "clients": clients,
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
    (issue 2), and the HTTP starter's latency (POST -> 202, open loop at 20/s, latency
    from each request's due time) beside it: the HTTP front must stay responsive."""
    async with _session(1) as session, _session(8) as starts:
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

        async def start() -> None:
            await _start_via_starter(starts, url, "noop", 1)

        async def sample_both() -> tuple[list[float], dict[str, Any]]:
            status, starter = await asyncio.gather(
                sample(), open_loop(start, rate=20.0, seconds=seconds)
            )
            return status, starter.figures()

        idle, idle_starter = await sample_both()
        async with session.post(f"{url}{MGMT}/orchestrators/burn", json=seconds + 1) as response:
            response.raise_for_status()
        await asyncio.sleep(0.3)  # let the activity reach its thread (or worker)
        busy, busy_starter = await sample_both()
    return {
        "idle_p50_ms": _percentile(idle, 50) * 1000,
        "idle_p99_ms": _percentile(idle, 99) * 1000,
        "busy_p50_ms": _percentile(busy, 50) * 1000,
        "busy_p99_ms": _percentile(busy, 99) * 1000,
        "busy_max_ms": busy[-1] * 1000,
        "idle_starter": idle_starter,
        "busy_starter": busy_starter,
    }
