"""End to end over HTTP: signed webhooks, sent within about a second of the operation's end.

A real host process, real Azurite and a real receiver on a free port. The receiver reads
the status monitor while it handles each webhook, as a receiver that trusts the webhook
only as a hint would, so the tests see what such a receiver sees.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from azure.storage.blob import BlobServiceClient, ContainerClient

from tests.app.conftest import (
    TERMINAL,
    WEBHOOK_SECRET,
    AppHost,
    eventually,
    json_of,
    run_app_host,
    run_peer,
)
from tests.app.openapi_conformance import Conformance, load_spec
from tests.support.azurite import Azurite
from tests.support.ports import free_port

pytestmark = pytest.mark.e2e


def _verify(headers: dict[str, str], body: bytes) -> bool:
    """What a receiver does, written independently of the app's code."""
    fields = dict(part.split("=", 1) for part in headers["X-Ops-Signature"].split(","))
    timestamp = int(fields["t"])
    expected = hmac.new(
        WEBHOOK_SECRET.encode(), f"{timestamp}.".encode() + body, hashlib.sha256
    ).hexdigest()
    return abs(time.time() - timestamp) < 300 and hmac.compare_digest(expected, fields["v1"])


# ------------------------------------------------------------------- a real receiver


@dataclass
class Delivery:
    """One webhook POST as the receiver got it, with the monitor status it then read."""

    headers: dict[str, str]
    body: bytes
    arrived: float  # time.monotonic()
    monitor_status: str

    @property
    def payload(self) -> dict[str, Any]:
        body: dict[str, Any] = json.loads(self.body)
        return body


@dataclass
class Receiver:
    """Answers webhooks from a script of status codes (the last repeats); before answering
    it GETs the operation's monitor with ?redirect=false and records what it said."""

    url: str
    script: list[int]
    deliveries: list[Delivery] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    # Set to hold the next request unanswered until it is cleared (a receiver mid-request).
    hold: threading.Event | None = None

    def receive(self, headers: dict[str, str], body: bytes) -> int:
        arrived = time.monotonic()
        monitor = json.loads(body)["operation"]["operationUri"]
        seen = httpx.get(monitor, params={"redirect": "false"}, timeout=10).json()["status"]
        with self.lock:
            self.deliveries.append(Delivery(headers, body, arrived, seen))
            index = min(len(self.deliveries), len(self.script)) - 1
            return self.script[index]


@contextmanager
def run_receiver(script: list[int], port: int | None = None) -> Iterator[Receiver]:
    """A webhook receiver on a free (or the given) port until the block exits."""
    port = port or free_port()
    receiver = Receiver(url=f"http://127.0.0.1:{port}/hook", script=script)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            hold = receiver.hold
            status = receiver.receive(dict(self.headers.items()), body)
            if hold is not None:
                receiver.hold = None
                hold.wait(30)
                return  # the connection closes without an answer
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        if receiver.hold is not None:
            receiver.hold.set()
        server.shutdown()
        server.server_close()


class EndWatcher:
    """Polls the monitor every 20 ms from a thread and notes when it first reports the end."""

    def __init__(self, host: AppHost, operation_id: str) -> None:
        self.ended_at: float | None = None
        self.status = ""
        self._url = f"{host.api}/{operation_id}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        with httpx.Client(timeout=10) as http:
            while not self._stop.is_set():
                body = http.get(self._url, params={"redirect": "false"}).json()
                if body["status"] in TERMINAL:
                    self.ended_at, self.status = time.monotonic(), body["status"]
                    return
                self._stop.wait(0.02)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


def _delivery_status(host: AppHost, operation_id: str) -> dict[str, Any] | None:
    """The delivery orchestration's status from the Durable Functions management API."""
    response = host.http.get(
        f"{host.url}/runtime/webhooks/durabletask/instances/webhook-{operation_id}"
    )
    if response.status_code == 404:
        return None
    body: dict[str, Any] = response.json()
    return body


def _state_container(host: AppHost, azurite: Azurite) -> ContainerClient:
    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    return service.get_container_client(host.settings["OPS_STATE_CONTAINER"])


# ------------------------------------------------------------------- on time, after the end


def _start_succeeding(host: AppHost, callback: str) -> dict[str, Any]:
    return json_of(host.start("report", {"rows": 100, "partitions": 2, "callbackUrl": callback}))


@pytest.mark.parametrize("ending", ["Succeeded", "Failed", "Canceled"])
def test_the_webhook_leaves_right_after_the_end_and_never_before(
    app_host: AppHost, ending: str
) -> None:
    with run_receiver([200]) as receiver, run_peer([404]) as missing_source:
        body: dict[str, Any]
        if ending == "Succeeded":
            started = _start_succeeding(app_host, receiver.url)
        elif ending == "Failed":
            body = {"urls": [f"{missing_source.url}/gone"], "callbackUrl": receiver.url}
            started = json_of(app_host.start("ingest", body))
        else:
            body = {"subject": "s", "timeoutSeconds": 600, "callbackUrl": receiver.url}
            started = json_of(app_host.start("approval", body))
        watcher = EndWatcher(app_host, started["id"])
        try:
            if ending == "Canceled":
                app_host.wait_for(started["id"], {"Running"})
                assert app_host.http.delete(started["operationUri"]).status_code == 202
            eventually(lambda: receiver.deliveries, timeout=20)
            eventually(lambda: watcher.ended_at, timeout=20)
        finally:
            watcher.stop()
        (delivery,) = receiver.deliveries
    assert watcher.status == ending
    # The receiver asked the monitor while handling the webhook: the end was there.
    assert delivery.monitor_status == ending
    assert delivery.payload["operation"]["status"] == ending
    assert delivery.payload["operation"]["id"] == started["id"]
    assert _verify(delivery.headers, delivery.body)
    assert watcher.ended_at is not None
    gap = delivery.arrived - watcher.ended_at
    print(f"\n{ending}: webhook {gap:.3f} s after the monitor first reported the end")
    assert gap < 3.0


def test_the_webhook_is_signed_and_matches_the_spec(app_host: AppHost) -> None:
    with run_receiver([200]) as receiver:
        started = _start_succeeding(app_host, receiver.url)
        eventually(lambda: receiver.deliveries, timeout=20)
        (delivery,) = receiver.deliveries
    assert _verify(delivery.headers, delivery.body)
    assert not _verify(delivery.headers, delivery.body + b" ")
    assert delivery.headers["X-Ops-Delivery"] == started["id"]
    assert delivery.headers["X-Ops-Event"] == "operation.ended"
    payload = delivery.payload
    Conformance(load_spec()).validate({"$ref": "#/components/schemas/WebhookPayload"}, payload)
    assert payload["event"] == "operation.ended"
    assert payload["operation"]["resultUri"] == started["resultUri"]
    # The receiver is a third party: no function key travels in the links it gets.
    assert "code=" not in json.dumps(payload)


def test_without_a_callback_the_operation_pays_nothing(app_host: AppHost) -> None:
    started = json_of(app_host.start("report", {"rows": 10, "partitions": 1}))
    assert app_host.wait_for(started["id"])["status"] == "Succeeded"
    history = app_host.http.get(started["statusQueryGetUri"], params={"showHistory": "true"})
    # The extension's showHistory shape: each activity call folded into its completion.
    scheduled = [e.get("FunctionName") for e in history.json()["historyEvents"]]
    assert "announce_operation_end" not in scheduled
    assert "report_write" in scheduled  # the history is the one looked at
    assert _delivery_status(app_host, started["id"]) is None


def test_the_operations_list_leaves_deliveries_out(app_host: AppHost) -> None:
    with run_receiver([200]) as receiver:
        started = _start_succeeding(app_host, receiver.url)
        eventually(lambda: receiver.deliveries, timeout=20)
    assert _delivery_status(app_host, started["id"]) is not None
    listed = json_of(app_host.http.get(f"{app_host.api}?top=100"))
    ids = [item["id"] for item in listed["value"]]
    assert started["id"] in ids or listed.get("nextLink")
    assert not [i for i in ids if i.startswith("webhook-")]


# ------------------------------------------------------------------- retries and giving up


def test_a_failing_receiver_gets_retries_with_growing_waits(app_host: AppHost) -> None:
    with run_receiver([500, 500, 200]) as receiver:
        started = _start_succeeding(app_host, receiver.url)
        eventually(lambda: len(receiver.deliveries) >= 3, timeout=30)
        eventually(
            lambda: (
                (_delivery_status(app_host, started["id"]) or {}).get("runtimeStatus")
                == "Completed"
            ),
            timeout=10,
        )
        deliveries = list(receiver.deliveries)
    assert len(deliveries) == 3
    assert {d.headers["X-Ops-Delivery"] for d in deliveries} == {started["id"]}
    assert all(_verify(d.headers, d.body) for d in deliveries)
    first_wait = deliveries[1].arrived - deliveries[0].arrived
    second_wait = deliveries[2].arrived - deliveries[1].arrived
    print(f"\nretry waits: {first_wait:.2f} s, {second_wait:.2f} s (base 1 s, doubling)")
    # Lower bounds only (a busy machine makes waits longer, never shorter): at least half
    # of 1 s, then at least half of 2 s, the jitter's floor.
    assert first_wait >= 0.45
    assert second_wait >= 0.95
    output = _delivery_status(app_host, started["id"])
    assert output is not None
    assert output["output"] == {"delivered": True, "attempts": 3}


def test_a_dead_receiver_neither_blocks_nor_fails_the_operation(app_host: AppHost) -> None:
    dead = f"http://127.0.0.1:{free_port()}/nobody-listens"
    started = _start_succeeding(app_host, dead)
    assert app_host.wait_for(started["id"], timeout=20)["status"] == "Succeeded"
    assert app_host.http.get(started["resultUri"]).status_code == 200

    def failed_attempt() -> dict[str, Any] | None:
        status = _delivery_status(app_host, started["id"])
        custom = (status or {}).get("customStatus") or {}
        return custom if int(custom.get("attempts") or 0) >= 1 else None

    custom = eventually(failed_attempt, timeout=20)
    assert "could not be reached" in custom["lastError"]
    assert custom["nextAttemptAt"]


def test_a_webhook_is_abandoned_after_its_last_attempt(tmp_path: Path, azurite: Azurite) -> None:
    dead = f"http://127.0.0.1:{free_port()}/nobody-listens"
    with run_app_host(tmp_path, azurite, OPS_WEBHOOK_MAX_ATTEMPTS="2") as host:
        started = json_of(host.start("report", {"rows": 10, "callbackUrl": dead}))
        assert host.wait_for(started["id"])["status"] == "Succeeded"
        state = _state_container(host, azurite)
        abandoned = state.get_blob_client(f"webhooks-abandoned/{started['id']}.json")
        eventually(abandoned.exists, timeout=30)
        entry = json.loads(abandoned.download_blob().readall())
        assert entry["attempts"] == 2
        assert "could not be reached" in entry["lastError"]
        assert entry["callbackUrl"] == dead
        assert not state.get_blob_client(f"webhooks/{started['id']}.json").exists()
        assert not state.get_blob_client(f"webhooks-due/{started['id']}.json").exists()
        delivery = _delivery_status(host, started["id"])
        assert delivery is not None
        assert delivery["runtimeStatus"] == "Completed"
        assert delivery["output"]["delivered"] is False


# ------------------------------------------------------------------- crashes


def test_a_kill_while_the_receiver_is_down_loses_nothing(tmp_path: Path, azurite: Azurite) -> None:
    port = free_port()
    with run_app_host(tmp_path, azurite, OPS_WEBHOOK_MAX_ATTEMPTS="20") as host:
        started = _start_succeeding(host, f"http://127.0.0.1:{port}/hook")
        assert host.wait_for(started["id"])["status"] == "Succeeded"
        eventually(
            lambda: ((_delivery_status(host, started["id"]) or {}).get("customStatus") or {}).get(
                "attempts"
            ),
            timeout=20,
        )
        host.process.kill()
        with run_receiver([200], port=port) as receiver:
            host.process.start()
            eventually(lambda: receiver.deliveries, timeout=60)
            assert receiver.deliveries[0].payload["operation"]["status"] == "Succeeded"
            assert receiver.deliveries[0].monitor_status == "Succeeded"


def test_a_kill_in_the_middle_of_a_delivery_sends_it_again(
    tmp_path: Path, azurite: Azurite
) -> None:
    with (
        run_app_host(tmp_path, azurite) as host,
        run_receiver([200]) as receiver,
    ):
        receiver.hold = threading.Event()
        held = receiver.hold
        started = _start_succeeding(host, receiver.url)
        eventually(lambda: receiver.deliveries, timeout=20)
        host.process.kill()  # the POST is in flight: its activity never finished
        held.set()
        host.process.start()
        eventually(lambda: len(receiver.deliveries) >= 2, timeout=60)
        eventually(
            lambda: (
                (_delivery_status(host, started["id"]) or {}).get("runtimeStatus") == "Completed"
            ),
            timeout=20,
        )
    assert {d.headers["X-Ops-Delivery"] for d in receiver.deliveries} == {started["id"]}
    assert all(d.monitor_status == "Succeeded" for d in receiver.deliveries)


# ------------------------------------------------------------------- the safety net


def test_an_end_nobody_announced_is_found_by_the_sweep(tmp_path: Path, azurite: Azurite) -> None:
    with (
        run_app_host(tmp_path, azurite, OPS_WEBHOOK_SWEEP_SCHEDULE="*/2 * * * * *") as host,
        run_receiver([200]) as receiver,
    ):
        body = {"subject": "s", "timeoutSeconds": 600, "callbackUrl": receiver.url}
        started = json_of(host.start("approval", body))
        host.wait_for(started["id"], {"Running"})
        # The built-in terminate URL goes around DELETE: nothing announces this end.
        terminate = started["terminatePostUri"].replace("{text}", "by-hand")
        assert host.http.post(terminate).status_code == 202
        eventually(lambda: receiver.deliveries, timeout=30)
    assert receiver.deliveries[0].payload["operation"]["status"] == "Canceled"
    assert receiver.deliveries[0].monitor_status == "Canceled"


# ------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "callback", ["not a url", "ftp://example.com/hook", "/relative/hook", 42, "https://"]
)
def test_a_bad_callback_url_is_a_400_problem(app_host: AppHost, callback: Any) -> None:
    response = app_host.start("report", {"rows": 10, "callbackUrl": callback})
    assert response.status_code == 400
    assert response.headers["Content-Type"].startswith("application/problem+json")
    problem = json_of(response)
    assert problem["message"] == problem["detail"]
    assert [e["field"] for e in problem["errors"]] == ["callbackUrl"]


def test_callback_url_without_a_secret_is_refused(tmp_path: Path, azurite: Azurite) -> None:
    with run_app_host(tmp_path, azurite, OPS_WEBHOOK_SECRET="") as host:
        response = host.start("report", {"callbackUrl": "https://example.com/hook"})
    assert response.status_code == 400
    assert response.headers["Content-Type"].startswith("application/problem+json")
    assert json_of(response)["errors"][0]["field"] == "callbackUrl"
