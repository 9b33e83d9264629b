"""Nothing accepted is lost: SIGKILL the host with work in flight, restart, finish.

100 instances with activities and durable timers in flight; the host process is
killed with SIGKILL; the results committed at that moment are read from the task hub
file; after a restart every instance completes with the right output, and no activity
whose result was committed ran again (activities are at-least-once, results never
recomputed).
"""

from __future__ import annotations

import sqlite3
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from durablehost.model.history import EventType
from durablehost.store.rows import event_from_json
from tests.support.hostproc import run_host_process

pytestmark = pytest.mark.e2e

APP = Path(__file__).parent / "apps" / "crash"
MGMT = "runtime/webhooks/durabletask"
INSTANCES = 100


def _log_keys(log: Path) -> Counter[str]:
    if not log.exists():
        return Counter()
    return Counter(line for line in log.read_text(encoding="utf-8").splitlines() if line)


def _committed_results(hub: Path) -> set[str]:
    """Keys of activities whose result the hub holds (in history or still queued)."""
    db = sqlite3.connect(hub)
    try:
        rows = db.execute("SELECT event FROM history UNION ALL SELECT event FROM messages")
        keys = set()
        for (text,) in rows:
            event = event_from_json(text)
            if event.event_type is EventType.TASK_COMPLETED and event.result:
                keys.add(event.result.strip('"').removeprefix("done:"))
        return keys
    finally:
        db.close()


def _wait_until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def test_sigkill_with_work_in_flight_loses_nothing(tmp_path: Path) -> None:
    log = tmp_path / "invocations.log"
    hub = tmp_path / "hub.sqlite3"
    with run_host_process(APP, hub=hub, env={"CRASH_LOG": str(log)}) as host:
        ids = []
        with httpx.Client(base_url=host.url, timeout=30) as client:
            for tag in range(INSTANCES):
                response = client.post(f"/{MGMT}/orchestrators/crash_flow", json={"tag": tag})
                assert response.status_code == 202, response.text
                ids.append(response.json()["id"])
        # Kill while a good part of the work is done and the rest is in flight.
        _wait_until(lambda: sum(_log_keys(log).values()) >= INSTANCES * 2, 60, "work to start")
        host.kill()

        committed = _committed_results(hub)
        before = _log_keys(log)
        assert committed, "nothing was committed before the kill; the test proves nothing"
        assert len(committed) < INSTANCES * 5, "everything finished before the kill"

        host.start()
        outputs = {}
        with httpx.Client(base_url=host.url, timeout=30) as client:

            def all_done() -> bool:
                for instance_id in ids:
                    if instance_id in outputs:
                        continue
                    response = client.get(f"/{MGMT}/instances/{instance_id}")
                    if response.status_code == 200:
                        outputs[instance_id] = response.json()
                return len(outputs) == len(ids)

            _wait_until(all_done, 120, "every instance to finish after the restart")

    after = _log_keys(log)
    for tag, instance_id in enumerate(ids):
        status = outputs[instance_id]
        assert status["runtimeStatus"] == "Completed", status
        keys = [f"{tag}/a", f"{tag}/p0", f"{tag}/p1", f"{tag}/p2", f"{tag}/b"]
        assert status["output"] == [f"done:{key}" for key in keys]
    rerun = {key for key in committed if after[key] != before[key]}
    assert not rerun, f"activities whose results were committed ran again: {sorted(rerun)}"
    expected = {
        f"{tag}/{step}" for tag in range(INSTANCES) for step in ("a", "p0", "p1", "p2", "b")
    }
    assert set(after) == expected
