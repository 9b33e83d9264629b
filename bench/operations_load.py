"""Workloads on the real app's own API (`/api/operations`), the path users call.

Each takes the base URL of this repo's function_app.py on durablehost (with Azurite
behind it, bench.appstack) and returns a dict of figures. The client is aiohttp with
keep-alive connections on one event loop in the bench process.

- `operations`: POST /api/operations/report offered open-loop at a fixed rate (latency
  from each request's due time), then a burst of starts from N keep-alive clients timed
  until every operation Succeeded; every operation's status is checked and a sample of
  results is fetched and compared with its input.
- `operations_cpu_bound`: status GETs and starts, both open-loop, idle and then while a
  report's pure-Python partition activity keeps a core busy for about two seconds.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from bench.openloop import RequestFailed, open_loop, summary_ms

__all__ = ["operations", "operations_cpu_bound", "rows_for_seconds"]

REPORT_INPUT: dict[str, int] = {"rows": 100, "partitions": 2}
_RUNNING = "NotStarted,Running"
_DEADLINE = 300.0
# Completions are counted by polling the list every 1% of the time elapsed.
_POLL_FRACTION = 0.01


def _session(connections: int) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(limit=connections, force_close=False)
    return aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(_DEADLINE))


async def _start(session: aiohttp.ClientSession, url: str, body: dict[str, int]) -> str:
    """POST /api/operations/report; the operation id, or RequestFailed."""
    try:
        async with session.post(f"{url}/api/operations/report", json=body) as response:
            payload = await response.read()
            if response.status != 202:
                raise RequestFailed(f"status {response.status}")
    except aiohttp.ClientError as error:
        raise RequestFailed(type(error).__name__) from error
    return str(json.loads(payload)["id"])


async def _running_count(session: aiohttp.ClientSession, url: str) -> int:
    """Operations still NotStarted or Running (0 or 1: the list is asked for one)."""
    params = {"status": _RUNNING, "top": "1"}
    async with session.get(f"{url}/api/operations", params=params) as response:
        response.raise_for_status()
        return len((await response.json())["value"])


async def _wait_none_running(
    session: aiohttp.ClientSession, url: str, since: float | None = None
) -> float:
    """Polls the list until no operation is NotStarted or Running; returns that moment.
    Polls every 1% of the time since `since` (5-50 ms): each poll costs the host ~0.5 ms
    of its event loop, so a fixed 5 ms would load the host it measures."""
    began = time.perf_counter() if since is None else since
    deadline = time.perf_counter() + _DEADLINE
    while await _running_count(session, url):
        now = time.perf_counter()
        if now > deadline:
            raise TimeoutError("operations still running at the deadline")
        await asyncio.sleep(min(max((now - began) * _POLL_FRACTION, 0.005), 0.05))
    return time.perf_counter()


async def _status(session: aiohttp.ClientSession, url: str, operation_id: str) -> dict[str, Any]:
    async with session.get(f"{url}/api/operations/{operation_id}/status") as response:
        body: dict[str, Any] = await response.json()
        return body


async def _wait_while(
    session: aiohttp.ClientSession, url: str, operation_id: str, state: str
) -> None:
    """Polls the operation's status resource every 10 ms while it is in `state`."""
    deadline = time.perf_counter() + _DEADLINE
    while (await _status(session, url, operation_id))["status"] == state:
        if time.perf_counter() > deadline:
            raise TimeoutError(f"{operation_id} still {state} at the deadline")
        await asyncio.sleep(0.01)


async def _check(
    session: aiohttp.ClientSession, url: str, ids: list[str], sample: int
) -> dict[str, Any]:
    """Every operation's status read once; `sample` results fetched and compared with the
    input (rows and the totals' count equal the rows asked for)."""
    limit = asyncio.Semaphore(16)

    async def status_of(operation_id: str) -> str:
        async with limit:
            return str((await _status(session, url, operation_id))["status"])

    states = await asyncio.gather(*(status_of(operation_id) for operation_id in ids))
    by_state: dict[str, int] = {}
    for state in states:
        by_state[state] = by_state.get(state, 0) + 1
    wrong: list[str] = []
    for operation_id in random.Random(0).sample(ids, min(sample, len(ids))):
        async with session.get(f"{url}/api/operations/{operation_id}/result") as response:
            document = await response.json() if response.status == 200 else {}
        rows = REPORT_INPUT["rows"]
        if document.get("rows") != rows or document.get("totals", {}).get("count") != rows:
            wrong.append(operation_id)
    return {
        "operations": len(ids),
        "states": by_state,
        "all_succeeded": by_state.get("Succeeded", 0) == len(ids),
        "results_checked": min(sample, len(ids)),
        "results_wrong": wrong,
    }


async def _open_loop_starts(
    session: aiohttp.ClientSession, url: str, *, rate: float, seconds: float
) -> tuple[dict[str, Any], list[str]]:
    ids: list[str] = []

    async def send() -> None:
        ids.append(await _start(session, url, REPORT_INPUT))

    result = await open_loop(send, rate=rate, seconds=seconds)
    return result.figures(), ids


async def _burst(
    session: aiohttp.ClientSession, poller: aiohttp.ClientSession, url: str, *, count: int
) -> tuple[dict[str, Any], list[str]]:
    """`count` starts shared by the session's keep-alive connections, as fast as each
    answers; timed from the first POST until the list shows nothing running."""
    clients = session.connector.limit if session.connector else 1
    ids: list[str] = []
    latencies: list[float] = []
    errors: dict[str, int] = {}
    remaining = iter(range(count))

    async def client() -> None:
        for _ in remaining:
            began = time.perf_counter()
            try:
                ids.append(await _start(session, url, REPORT_INPUT))
            except RequestFailed as failure:
                errors[failure.label] = errors.get(failure.label, 0) + 1
                continue
            latencies.append(time.perf_counter() - began)

    began = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    started = time.perf_counter()
    ended = await _wait_none_running(poller, url, since=began)
    return {
        "operations": count,
        "clients": clients,
        "seconds": ended - began,
        "operations_per_s": len(ids) / (ended - began),
        "starts_seconds": started - began,
        "starts_per_s": len(ids) / (started - began),
        "start": summary_ms(latencies),
        "errors": errors,
    }, ids


async def operations(
    url: str,
    *,
    rate: float,
    seconds: float,
    burst: int,
    clients: int,
    sample: int = 20,
    check: bool = True,
    cpu_probe: Callable[[], dict[str, float]] | None = None,
) -> dict[str, Any]:
    """Open-loop starts at `rate`/s for `seconds`, then a burst of `burst` starts from
    `clients` keep-alive clients; with `check`, every operation's status is read and
    `sample` results compared with the input. `cpu_probe` (CPU seconds by process or
    thread, e.g. appstack.cpu_by_part) is read around the burst: its CPU per operation."""
    async with _session(max(clients, 64)) as session, _session(1) as poller:
        warm = await asyncio.gather(*(_start(session, url, REPORT_INPUT) for _ in range(20)))
        await _wait_none_running(poller, url)
        starter, open_ids = await _open_loop_starts(session, url, rate=rate, seconds=seconds)
        sent = time.perf_counter()
        starter["drain_seconds"] = await _wait_none_running(poller, url, since=sent) - sent
        async with _session(clients) as burst_session:
            before = cpu_probe() if cpu_probe else {}
            throughput, burst_ids = await _burst(burst_session, poller, url, count=burst)
            if cpu_probe:
                after = cpu_probe()
                throughput["cpu_ms_per_operation"] = {
                    part: round((after[part] - before.get(part, 0.0)) * 1000 / burst, 2)
                    for part in after
                }
        ids = [*warm, *open_ids, *burst_ids]
        checks = await _check(session, url, ids, sample) if check else {"operations": len(ids)}
    return {"starter": starter, "burst": throughput, "checks": checks}


def rows_for_seconds(seconds: float) -> int:
    """Rows one report partition takes about `seconds` of pure Python to draw, timed
    here (the host runs the same interpreter and code)."""
    from activities.report import generate_partition

    probe = 200_000
    timings = []
    for _ in range(3):  # the fastest of three: the machine is shared
        began = time.perf_counter()
        generate_partition(0, 1, probe)
        timings.append(time.perf_counter() - began)
    return max(probe, round(probe * seconds / min(timings)))


async def _phase(
    status_session: aiohttp.ClientSession,
    start_session: aiohttp.ClientSession,
    status_url: str,
    url: str,
    *,
    status_rate: float,
    start_rate: float,
    seconds: float,
) -> dict[str, Any]:
    async def get_status() -> None:
        try:
            async with status_session.get(status_url) as response:
                await response.read()
                if response.status != 200:
                    raise RequestFailed(f"status {response.status}")
        except aiohttp.ClientError as error:
            raise RequestFailed(type(error).__name__) from error

    async def start() -> None:
        await _start(start_session, url, REPORT_INPUT)

    async def run(send: Callable[[], Awaitable[None]], rate: float) -> dict[str, Any]:
        return (await open_loop(send, rate=rate, seconds=seconds)).figures()

    status, starter = await asyncio.gather(run(get_status, status_rate), run(start, start_rate))
    return {"status_get": status, "starter": starter}


async def operations_cpu_bound(
    url: str,
    *,
    busy_seconds: float = 2.0,
    status_rate: float = 100.0,
    start_rate: float = 20.0,
) -> dict[str, Any]:
    """Status GETs (the running operation's status resource) and starts, both open loop,
    for a second idle, then while one partition of a big report draws its rows in pure
    Python for about `busy_seconds` (holding the GIL in the host's activity thread)."""
    rows = rows_for_seconds(busy_seconds)
    window = max(busy_seconds - 0.6, 0.5)
    async with _session(8) as status_session, _session(16) as start_session:
        warm = await _start(start_session, url, REPORT_INPUT)
        await _wait_none_running(status_session, url)
        idle = await _phase(
            status_session,
            start_session,
            f"{url}/api/operations/{warm}/status",
            url,
            status_rate=status_rate,
            start_rate=start_rate,
            seconds=1.0,
        )
        busy_id = await _start(start_session, url, {"rows": rows, "partitions": 1})
        status_url = f"{url}/api/operations/{busy_id}/status"
        await _wait_while(status_session, url, busy_id, "NotStarted")
        # Running: the orchestrator has scheduled the partition; give its thread a moment.
        await asyncio.sleep(0.2)
        measured_from = time.perf_counter()
        busy = await _phase(
            status_session,
            start_session,
            status_url,
            url,
            status_rate=status_rate,
            start_rate=start_rate,
            seconds=window,
        )
        measured_to = time.perf_counter()
        # Still 0: the partition had not finished when the window closed.
        progress = (await _status(status_session, url, busy_id))["progress"]["fraction"]
        await _wait_while(status_session, url, busy_id, "Running")
        finished = time.perf_counter()
        await _wait_none_running(status_session, url)
    return {
        "busy_rows": rows,
        "busy_operation_seconds_after_window": finished - measured_to,
        "window_seconds": measured_to - measured_from,
        "progress_at_window_end": progress,
        "idle": idle,
        "busy": busy,
    }
