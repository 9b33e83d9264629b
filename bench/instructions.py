"""`python -m bench.instructions [--starts N]`: CPU instructions per HelloSequence5.

Wall-clock figures on a shared machine swing by a third within minutes, which hides any
change smaller than that. Instruction counts do not swing: this runs an in-process host
(`durablehost.testing.run_host`, with the CLI host's interpreter settings) under
`valgrind --tool=callgrind`, starts N HelloSequence5 orchestrations twice over real HTTP
from an aiohttp client in the same process, waits for each through the engine (no
polling, whose count would depend on time), and subtracts a run that starts none
(imports and start-up). Repeated runs agree within 0.3%. Counted: the host's work,
commits inline (no writer process), activity threads and the client's side (the same
for any two versions of the host being compared). Not counted: waiting.

Needs valgrind on the PATH; takes about a minute (valgrind runs ~50x slower).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

__all__ = ["main"]

_APP = Path(__file__).resolve().parent / "apps" / "bench_app"
_ROUNDS = 2


async def _serve_rounds(starts: int) -> None:
    import aiohttp

    from durablehost.testing import run_host
    from durablehost.tuning import tune_host_process

    tune_host_process()  # as `durablehost start`
    async with run_host(_APP) as host:
        gc.freeze()  # as `durablehost start` once the app has started
        async with aiohttp.ClientSession() as session:

            async def start() -> str:
                async with session.post(f"{host.url}/api/start/hello_sequence5") as response:
                    response.raise_for_status()
                    return str((await response.json())["id"])

            for _ in range(_ROUNDS if starts else 0):
                ids = await asyncio.gather(*(start() for _ in range(starts)))
                for instance_id in ids:
                    await host.client.wait_for_completion(instance_id, 600)


def _count(starts: int) -> int:
    """Instructions of one child run under callgrind."""
    with tempfile.TemporaryDirectory() as scratch:
        command = [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={scratch}/callgrind.out",
            sys.executable,
            "-m",
            "bench.instructions",
            "--child",
            str(starts),
        ]
        result = subprocess.run(command, capture_output=True, text=True, check=True)
    match = re.search(r"Collected : (\d+)", result.stderr)
    if match is None:
        raise RuntimeError(f"callgrind printed no count:\n{result.stderr[-2000:]}")
    return int(match.group(1))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.instructions", description=__doc__)
    parser.add_argument("--starts", type=int, default=100, help="orchestrations per round")
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        asyncio.run(_serve_rounds(args.child))
        return 0
    if shutil.which("valgrind") is None:
        print("bench.instructions needs valgrind (apt install valgrind)", file=sys.stderr)
        return 2
    os.environ.setdefault("PYTHONHASHSEED", "0")  # same dict layouts in every run
    baseline = _count(0)
    loaded = _count(args.starts)
    orchestrations = _ROUNDS * args.starts
    per = (loaded - baseline) / orchestrations
    print(f"{per / 1e6:.3f} million instructions per HelloSequence5 orchestration")
    print(f"({orchestrations} orchestrations; start-up {baseline / 1e6:.0f} million)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
