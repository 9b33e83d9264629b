"""Queue triggers and storage output bindings: real durablehost processes on real Azurite.

The app (apps/storage) reads its queue and container names from settings, so the
module's host works on queues of its own; host.json sets batchSize 4, newBatchThreshold 2,
visibilityTimeout 2 s and maxDequeueCount 3.
"""

from __future__ import annotations

import base64
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from durablehost.process import HostProcess, run_host_process
from tests.durablehost.storage_support import (
    STORAGE_APP,
    StorageNames,
    eventually,
    instance_output,
    read_attempts,
)
from tests.support.azurite import Azurite

pytestmark = pytest.mark.e2e

BATCH = 12


@pytest.fixture(scope="module")
def names(azurite: Azurite, tmp_path_factory: pytest.TempPathFactory) -> StorageNames:
    return StorageNames.fresh(azurite, tmp_path_factory.mktemp("queue-trigger"))


@pytest.fixture(scope="module")
def host(names: StorageNames) -> Iterator[HostProcess]:
    # Waiting before the host starts: the first receives get whole batches.
    for number in range(BATCH):
        names.send("work", {"item": f"item-{number}"})
    with run_host_process(STORAGE_APP, env=names.env()) as process:
        yield process


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_the_banner_lists_queue_and_blob_functions(host: HostProcess, names: StorageNames) -> None:
    log = host.logs()
    assert f"start_from_queue: queueTrigger ({names.name('orders')})" in log
    assert f"work_item: queueTrigger ({names.name('work')})" in log
    assert f"on_blob: blobTrigger ({names.name('inbox')}/{{name}}.txt)" in log


def test_a_binding_durablehost_does_not_run_is_named_at_start_and_fails_when_used(
    host: HostProcess,
) -> None:
    assert "to_service_bus has bindings durablehost does not run (serviceBus 'bus')" in (
        host.logs()
    )
    response = httpx.post(f"{host.url}/api/to-service-bus", content=b"x")
    assert response.status_code == 500
    assert "serviceBus output 'bus' is a binding durablehost does not run" in host.logs()


def test_a_queue_message_starts_an_orchestration(host: HostProcess, names: StorageNames) -> None:
    names.send("orders", {"id": "order-1", "qty": 7})
    output = eventually(lambda: instance_output(host.url, "order-1"), what="order-1 completed")
    assert output == {"id": "order-1", "total": 21}
    eventually(lambda: not names.peek(names.name("orders")), what="the orders queue emptied")


def test_a_batch_runs_in_parallel_within_batch_size_plus_threshold(
    host: HostProcess, names: StorageNames
) -> None:
    for number in range(BATCH):
        text = eventually(
            lambda number=number: names.blob_text("results", f"item-{number}.json"),
            what=f"the result blob of item-{number}",
        )
        result = json.loads(text)
        assert result["item"] == f"item-{number}"
        assert result["dequeue_count"] == 1
        assert result["id"] and result["inserted"] and result["has_pop_receipt"]
    attempts = [a for a in read_attempts(names.attempts) if "peak" in a]
    assert sorted(a["item"] for a in attempts) == sorted(f"item-{n}" for n in range(BATCH))
    peak = max(a["peak"] for a in attempts)
    # Several at once, never more than batchSize (4) + newBatchThreshold (2).
    assert 2 <= peak <= 6
    # The queue output binding wrote one base64 message per item.
    done = eventually(
        lambda: len(found := names.peek(names.name("done"))) >= BATCH and found,
        what="the done messages",
    )
    assert sorted(done) == sorted(_b64(f"done item-{n}") for n in range(BATCH))


def test_a_failed_message_comes_back_after_the_visibility_timeout(
    host: HostProcess, names: StorageNames
) -> None:
    names.send("flaky", {"item": "retry-once", "succeed_on": 2})

    def tries() -> list[dict[str, float]]:
        return [a for a in read_attempts(names.attempts) if a.get("item") == "retry-once"]

    first, second = eventually(lambda: len(found := tries()) >= 2 and found, what="a retry")
    assert (first["dequeue_count"], second["dequeue_count"]) == (1, 2)
    # visibilityTimeout is 2 s: the message stayed hidden at least that long (Azurite
    # keeps whole seconds).
    assert second["at"] - first["at"] >= 1.0
    eventually(lambda: not names.peek(names.name("flaky")), what="the retried message deleted")
    assert not names.peek(names.name("flaky") + "-poison")


def test_a_message_failing_max_dequeue_count_times_goes_to_the_poison_queue(
    host: HostProcess, names: StorageNames
) -> None:
    body = {"item": "always-fails", "succeed_on": 99}
    names.send("flaky", body)
    poison = names.name("flaky") + "-poison"
    moved = eventually(lambda: names.peek(poison), what="the poison message")
    # As stored: the same base64 text the producer sent.
    assert moved == [_b64(json.dumps(body))]
    counts = [
        a["dequeue_count"] for a in read_attempts(names.attempts) if a.get("item") == body["item"]
    ]
    assert counts == [1, 2, 3]  # maxDequeueCount 3
    assert not names.peek(names.name("flaky"))


def test_a_message_that_is_not_base64_goes_to_the_poison_queue(
    host: HostProcess, names: StorageNames
) -> None:
    names.send("orders", '{"id": "plain", "qty": 1}', encoding="none")
    poison = names.name("orders") + "-poison"
    assert eventually(lambda: names.peek(poison), what="the poison message") == [
        '{"id": "plain", "qty": 1}'
    ]
    assert "not valid base64" in host.logs()


def test_an_http_function_writes_a_queue_output_and_reads_a_blob_input(
    host: HostProcess, names: StorageNames
) -> None:
    names.upload("results", "config.txt", "cfg-1")
    response = httpx.post(f"{host.url}/api/enqueue", content=b"from-http")
    assert response.status_code == 200, response.text
    assert response.text == "config: cfg-1"
    eventually(lambda: _b64("from-http") in names.peek(names.name("done")), what="the http message")


def test_message_encoding_none_reads_and_writes_plain_text(
    azurite: Azurite, tmp_path: Path
) -> None:
    app = tmp_path / "app"
    shutil.copytree(STORAGE_APP, app, ignore=shutil.ignore_patterns(".durablehost", "__pycache__"))
    settings = json.loads((app / "host.json").read_text())
    settings["extensions"]["queues"]["messageEncoding"] = "none"
    (app / "host.json").write_text(json.dumps(settings))
    names = StorageNames.fresh(azurite, tmp_path)
    with run_host_process(app, env=names.env()) as process:
        names.send("orders", {"id": "plain-order", "qty": 2}, encoding="none")
        output = eventually(
            lambda: instance_output(process.url, "plain-order"), what="plain-order completed"
        )
        assert output == {"id": "plain-order", "total": 6}
        response = httpx.post(f"{process.url}/api/enqueue", content=b"plain text")
        assert response.status_code == 200, response.text
        assert response.text == "config: None"  # no config blob: the input is None
        eventually(lambda: "plain text" in names.peek(names.name("done")), what="the plain message")
