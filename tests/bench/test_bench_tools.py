"""The bench's own tools: the open-loop generator against a real HTTP server, the
process-tree memory sum over real child processes, and the CLI's refusal of unknown
workloads. No timings are asserted (the machine is shared)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from bench.__main__ import main
from bench.appstack import TreeRssSampler, process_tree, tree_rss_mb
from bench.openloop import RequestFailed, open_loop, percentile, summary_ms


async def _serve(
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
) -> tuple[web.AppRunner, str]:
    app = web.Application()
    app.router.add_post("/start", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"http://127.0.0.1:{port}"


def test_open_loop_sends_every_request_and_counts_wrong_answers() -> None:
    async def scenario() -> dict[str, Any]:
        seen = 0

        async def handler(request: web.Request) -> web.Response:
            nonlocal seen
            seen += 1
            # Every fifth request is refused, as a saturated host would.
            return web.Response(status=503 if seen % 5 == 0 else 202)

        runner, url = await _serve(handler)
        try:
            async with aiohttp.ClientSession() as session:

                async def send() -> None:
                    async with session.post(f"{url}/start") as response:
                        if response.status != 202:
                            raise RequestFailed(f"status {response.status}")

                result = await open_loop(send, rate=200.0, seconds=0.25)
        finally:
            await runner.cleanup()
        assert seen == 50
        return result.figures()

    figures = asyncio.run(scenario())
    assert figures["requests"] == 50
    assert figures["errors"] == {"status 503": 10}
    assert set(figures["client_lag"]) == {"p50_ms", "p90_ms", "p99_ms", "max_ms"}
    assert figures["p50_ms"] <= figures["p99_ms"] <= figures["max_ms"]


def test_percentiles_are_nearest_rank() -> None:
    values = [float(i) for i in range(1, 101)]
    assert percentile(values, 50) == 51.0
    assert percentile(values, 99) == 99.0
    assert summary_ms([0.001, 0.002])["max_ms"] == 2.0
    assert summary_ms([])["p50_ms"] != summary_ms([])["p50_ms"]  # nan when empty


def test_process_tree_sums_the_children() -> None:
    code = "import subprocess, sys; subprocess.run([sys.executable, '-c', 'input()'])"
    parent = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 20
        tree = process_tree(parent.pid)
        while len(tree) < 2 and time.monotonic() < deadline:  # until the grandchild runs
            time.sleep(0.02)
            tree = process_tree(parent.pid)
        assert len(tree) == 2 and tree[0] == parent.pid
        rss, count = tree_rss_mb(parent.pid)
        assert count == 2 and rss > 0
        with TreeRssSampler(parent.pid, interval=0.01) as sampler:
            while sampler.samples < 2 and time.monotonic() < deadline:
                time.sleep(0.01)
        assert sampler.peak_processes == 2 and sampler.peak_mb > 0
    finally:
        parent.communicate(b"\n", timeout=10)


def test_cli_refuses_an_unknown_workload(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["nonesuch"])
    assert exit_info.value.code == 2
    assert "unknown workload nonesuch" in capsys.readouterr().err
