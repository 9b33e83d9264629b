"""Nothing accepted is lost, nothing is started twice, while the host is SIGKILLed.

A client starts reports one after another, each with its own Idempotency-Key, and retries
a start that got no answer (connection refused or reset, or a 503 while the host stops)
with the same key, as a careful client does. Meanwhile the host is killed with SIGKILL
several times and restarted on the same port and task hub. Afterwards every operation
that was accepted must have Succeeded with its own result, and the task hub must hold
exactly one operation per key.

`OPS_KILL_TEST_OPERATIONS` and `OPS_KILL_TEST_KILLS` scale it up (the figures in
docs/durablehost.md come from 300 operations and 3 kills).
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.app.conftest import AppHost, eventually, json_of, run_app_host
from tests.support.azurite import Azurite

OPERATIONS = int(os.environ.get("OPS_KILL_TEST_OPERATIONS", "60"))
KILLS = int(os.environ.get("OPS_KILL_TEST_KILLS", "2"))


def _rows(index: int) -> int:
    return 100 + index


def _start_until_accepted(http: httpx.Client, api: str, index: int) -> tuple[str, bool]:
    """POST one report until it is accepted; its id, and whether a replay answered."""
    deadline = time.monotonic() + 60
    while True:
        try:
            response = http.post(
                f"{api}/report",
                json={"rows": _rows(index), "partitions": 2},
                headers={"Idempotency-Key": f"kill-test-{index}"},
            )
        except httpx.TransportError:
            response = None
        if response is not None and response.status_code == 202:
            return json_of(response)["id"], "Idempotent-Replayed" in response.headers
        if response is not None and response.status_code != 503:
            raise AssertionError(f"start {index}: {response.status_code} {response.text[:300]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"start {index} was never accepted")
        time.sleep(0.05)


@pytest.mark.e2e
def test_sigkills_lose_and_duplicate_no_operation(tmp_path: Path, azurite: Azurite) -> None:
    with run_app_host(tmp_path, azurite) as host, httpx.Client(timeout=10) as http:
        accepted: dict[int, str] = {}
        replays = 0
        client_failure: list[BaseException] = []
        progress = threading.Condition()

        def client() -> None:
            nonlocal replays
            try:
                for index in range(OPERATIONS):
                    operation_id, replayed = _start_until_accepted(http, host.api, index)
                    with progress:
                        replays += replayed
                        accepted[index] = operation_id
                        progress.notify_all()
            except BaseException as error:
                with progress:
                    client_failure.append(error)
                    progress.notify_all()

        # The client runs in a thread; kills and restarts stay on the main thread, which
        # must outlive the host processes it starts (durablehost.process).
        thread = threading.Thread(target=client, daemon=True)
        thread.start()
        for kill in range(1, KILLS + 1):
            with progress:
                progress.wait_for(
                    lambda k=kill: (
                        bool(client_failure) or len(accepted) >= OPERATIONS * k // (KILLS + 1)
                    ),
                    timeout=120,
                )
            assert not client_failure, client_failure
            host.process.kill()  # SIGKILL: nothing gets to clean up
            host.process.start()  # same port, same task hub, same containers
        thread.join(timeout=120)
        assert not client_failure, client_failure
        assert len(accepted) == OPERATIONS

        restarted = AppHost(url=host.url, http=http, settings=host.settings, process=host.process)
        finals = {index: restarted.wait_for(oid, timeout=120) for index, oid in accepted.items()}
        failed = {i: body for i, body in finals.items() if body["status"] != "Succeeded"}
        assert not failed, failed

        for index, operation_id in accepted.items():
            report = json_of(http.get(f"{host.api}/{operation_id}/result"))
            assert report["rows"] == _rows(index), operation_id

        def every_report() -> list[str]:
            ids: list[str] = []
            url: str | None = f"{host.api}?kind=report&top=1000"
            while url:
                page = json_of(http.get(url))
                ids.extend(item["id"] for item in page["value"])
                url = page["nextLink"]
            return ids

        in_hub = eventually(every_report)
        assert sorted(in_hub) == sorted(accepted.values()), "a key started two operations"
        assert len(set(accepted.values())) == OPERATIONS
        print(
            f"\n{OPERATIONS} operations, {KILLS} SIGKILLs: {OPERATIONS} Succeeded, "
            f"0 lost, 0 duplicated; {replays} starts answered by an Idempotency-Key replay"
        )
