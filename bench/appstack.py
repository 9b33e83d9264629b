"""The real app on durablehost with a real Azurite, and the host's process-tree memory.

`run_azurite` is tests/support/azurite.py's, started blob-only (azurite-blob, so Azurite's
measured CPU is the blob service alone);
`run_app_host` starts `python -m durablehost start` on the repo root (this repo's
function_app.py) with its own hub file and its own blob containers, as the e2e tests do.
`TreeRssSampler` sums VmRSS over the host's whole process tree (host, hub writer, any
worker processes) from /proc while a workload runs, and keeps the peak.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from bench.hostproc import REPO
from durablehost.process import HostProcess, run_host_process
from tests.support.azurite import Azurite
from tests.support.azurite import run_azurite as _run_azurite

__all__ = [
    "Azurite",
    "TreeRssSampler",
    "cpu_by_part",
    "cpu_delta",
    "process_tree",
    "run_app_host",
    "run_azurite",
    "tree_rss_mb",
]


@contextmanager
def run_azurite(data_dir: Path) -> Iterator[Azurite]:
    """azurite-blob on a free port with its data in `data_dir`, until the block exits."""
    # The tests' settings (on disk, not --inMemoryPersistence, which would flatter storage).
    with _run_azurite(data_dir, blob_only=True) as azurite:
        yield azurite


@contextmanager
def run_app_host(
    workdir: Path, azurite: Azurite, env: Mapping[str, str | None] | None = None
) -> Iterator[HostProcess]:
    """The repo's Function App on durablehost: own hub file, own containers, until the
    block exits. `env` adds settings (e.g. the worker process count)."""
    tag = uuid.uuid4().hex[:10]
    settings: dict[str, str | None] = {
        "AzureWebJobsStorage": azurite.connection_string,
        "OPS_RESULTS_CONTAINER": f"results-{tag}",
        "OPS_STATE_CONTAINER": f"state-{tag}",
        **(env or {}),
    }
    with run_host_process(REPO, hub=workdir / f"hub-{tag}.sqlite3", env=settings) as host:
        yield host


def _children(pid: int) -> list[int]:
    """Direct children of `pid`, from each of its threads' /proc children list (a few
    small reads; scanning all of /proc took ~15 ms, too much to do ten times a second
    beside the client's event loop)."""
    found: list[int] = []
    try:
        threads = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found  # exited meanwhile
    for tid in threads:
        try:
            found.extend(
                int(child) for child in Path(f"/proc/{pid}/task/{tid}/children").read_text().split()
            )
        except OSError:
            continue
    return found


def process_tree(root: int) -> list[int]:
    """`root` and all its descendants."""
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(_children(pid))
    return tree


def _rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass  # exited meanwhile
    return 0


def tree_rss_mb(root: int) -> tuple[float, int]:
    """(summed VmRSS in MB, number of processes) of `root`'s process tree now."""
    pids = process_tree(root)
    return sum(_rss_kb(pid) for pid in pids) / 1024, len(pids)


class TreeRssSampler:
    """Samples the process tree's summed RSS every `interval` seconds in a thread (the
    bench's event loop may be busy) until stopped; keeps the peak."""

    def __init__(self, root: int, interval: float = 0.1) -> None:
        self._root = root
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self.peak_mb = 0.0
        self.peak_processes = 0
        self.samples = 0

    def _run(self) -> None:
        while not self._stop.is_set():
            rss, count = tree_rss_mb(self._root)
            self.samples += 1
            if rss > self.peak_mb:
                self.peak_mb = rss
            self.peak_processes = max(self.peak_processes, count)
            self._stop.wait(self._interval)

    def __enter__(self) -> TreeRssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _cpu_seconds(stat_path: str) -> tuple[str, float]:
    """(command name, user + system CPU seconds) from a /proc .../stat file."""
    stat = Path(stat_path).read_text()
    name = stat[stat.index("(") + 1 : stat.rindex(")")]
    fields = stat[stat.rindex(")") + 2 :].split()
    # utime and stime are fields 14 and 15 of stat, i.e. 11 and 12 after the name.
    return name, (int(fields[11]) + int(fields[12])) / _TICKS


_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_by_part(root: int, others: Mapping[str, int | None] | None = None) -> dict[str, float]:
    """CPU seconds used so far: the root process's main thread and its other threads
    (by thread name, digits dropped: `asyncio_3` counts as `asyncio_`), each descendant
    process (by its place: `child 1`, ...), and each of `others` (name -> pid; an unknown
    pid, None, is left out like a process that has gone)."""
    parts: dict[str, float] = {}
    tasks = os.listdir(f"/proc/{root}/task")
    for tid in tasks:
        try:
            name, seconds = _cpu_seconds(f"/proc/{root}/task/{tid}/stat")
        except OSError:
            continue  # the thread ended meanwhile
        key = "host main thread" if int(tid) == root else f"host thread {name.rstrip('0123456789')}"
        parts[key] = parts.get(key, 0.0) + seconds
    # Sorted by pid, i.e. by start: the hub writer comes before the worker processes.
    for index, pid in enumerate(sorted(process_tree(root)[1:]), start=1):
        try:
            name, seconds = _cpu_seconds(f"/proc/{pid}/stat")
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        kind = "resource tracker" if b"resource_tracker" in cmdline else "spawned"
        parts[f"child {index} ({kind})"] = seconds
    for label, other in (others or {}).items():
        if other is None:
            continue
        try:
            parts[label] = _cpu_seconds(f"/proc/{other}/stat")[1]
        except OSError:
            continue
    return parts


def cpu_delta(before: Mapping[str, float], after: Mapping[str, float]) -> dict[str, float]:
    """CPU seconds each part used between two `cpu_by_part` readings."""
    return {key: round(after[key] - before.get(key, 0.0), 3) for key in after}
