"""The HelloSequence5 and sequential-steps workloads on DBOS Transact, for comparison.

Run by `python -m bench` as its own process: `python -m bench.dbos_runner --hub FILE
--batch 200 --rounds 3 --steps 1000`; prints one JSON object. DBOS uses a SQLite system
database in WAL mode with synchronous=NORMAL, the durability durablehost's hub has (a
commit survives kill -9). Workflows are started in-process (DBOS has no HTTP front of
its own), so DBOS pays no HTTP cost here while durablehost does.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import sqlalchemy
from dbos import DBOS, DBOSConfig
from sqlalchemy import event

CITIES = ("Tokyo", "Seattle", "London", "Paris", "Lima")


@event.listens_for(sqlalchemy.engine.Engine, "connect")
def _same_durability(connection: Any, _record: Any) -> None:
    # As durablehost's hub: WAL, and NORMAL (a commit is durable against a process crash).
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")


@DBOS.step()
def say_hello(city: str) -> str:
    return f"Hello {city}!"


@DBOS.workflow()
def hello_sequence5() -> list[str]:
    return [say_hello(city) for city in CITIES]


@DBOS.step()
def step(n: int) -> int:
    return n


@DBOS.workflow()
def sequence(count: int) -> int:
    total = 0
    for n in range(count):
        total += step(n)
    return total


def _hello_round(batch: int) -> float:
    began = time.perf_counter()
    handles = [DBOS.start_workflow(hello_sequence5) for _ in range(batch)]
    for handle in handles:
        handle.get_result()
    return batch / (time.perf_counter() - began)


def _sequence(count: int) -> float:
    began = time.perf_counter()
    DBOS.start_workflow(sequence, count).get_result()
    return time.perf_counter() - began


def main(argv: list[str] | None = None) -> int:
    """Run the DBOS workloads and print their figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hub", type=Path, required=True)
    parser.add_argument("--batch", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=1)
    options = parser.parse_args(argv)
    config: DBOSConfig = {"name": "bench", "system_database_url": f"sqlite:///{options.hub}"}
    DBOS(config=config)
    DBOS.launch()
    try:
        _hello_round(20)  # warm-up
        rates = [_hello_round(options.batch) for _ in range(options.rounds)]
        _sequence(20)
        seconds = min(_sequence(options.steps) for _ in range(options.repeats))
    finally:
        DBOS.destroy()
    figures = {
        "hello_sequence5": {
            "orchestrations_per_s": statistics.median(rates),
            "rounds": [round(rate, 1) for rate in rates],
            "batch": options.batch,
        },
        "sequence": {
            "steps": options.steps,
            "seconds": seconds,
            "steps_per_s": options.steps / seconds,
        },
    }
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
