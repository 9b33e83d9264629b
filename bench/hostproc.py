"""The bench app, and a durablehost process for one workload (durablehost.process)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from durablehost.process import HostProcess, run_host_process

__all__ = ["APP_DIR", "REPO", "bench_host", "rss_mb"]

REPO = Path(__file__).resolve().parents[1]
APP_DIR = Path(__file__).resolve().parent / "apps" / "bench_app"


@contextmanager
def bench_host(hub: Path, env: Mapping[str, str | None] | None = None) -> Iterator[HostProcess]:
    """`python -m durablehost start` on the bench app with its own hub file, on a free
    port, with `env` added to its environment; stopped when the block ends."""
    with run_host_process(APP_DIR, hub=hub, env=env) as host:
        yield host


def rss_mb(pid: int) -> tuple[float, float]:
    """(current, peak) resident memory of a process in MB, from /proc."""
    fields: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) / 1024
    return fields.get("VmRSS", 0.0), fields.get("VmHWM", 0.0)
