"""What the queue and blob trigger tests share: names of their own per test, the host's
environment, storage clients on the session's Azurite, and polling with a deadline."""

from __future__ import annotations

import base64
import contextlib
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
from azure.core.exceptions import ResourceExistsError
from azure.storage.blob import BlobServiceClient
from azure.storage.queue import QueueServiceClient

from tests.support.azurite import Azurite

__all__ = ["STORAGE_APP", "StorageNames", "eventually", "read_attempts"]

STORAGE_APP = Path(__file__).parent / "apps" / "storage"
T = TypeVar("T")


def eventually(check: Callable[[], T | None], *, timeout: float = 45.0, what: str) -> T:
    """Poll `check` until it returns something truthy; AssertionError after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def read_attempts(path: Path) -> list[dict[str, Any]]:
    """The calls the storage app recorded, in order."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@dataclass
class StorageNames:
    """Queues and containers of one test, and clients on them."""

    azurite: Azurite
    attempts: Path
    suffix: str

    @classmethod
    def fresh(cls, azurite: Azurite, tmp_path: Path) -> StorageNames:
        return cls(azurite, tmp_path / "attempts.jsonl", uuid.uuid4().hex[:10])

    def name(self, kind: str) -> str:
        return f"{kind}-{self.suffix}"

    def env(self) -> dict[str, str | None]:
        """The host's settings: the storage connection (twice, under two names)."""
        return {
            "AzureWebJobsStorage": self.azurite.connection_string,
            "WorkStorage": self.azurite.connection_string,
            "ORDERS_QUEUE": self.name("orders"),
            "WORK_QUEUE": self.name("work"),
            "DONE_QUEUE": self.name("done"),
            "FLAKY_QUEUE": self.name("flaky"),
            "RESULTS_CONTAINER": self.name("results"),
            "INBOX_CONTAINER": self.name("inbox"),
            "ATTEMPTS_FILE": str(self.attempts),
        }

    @property
    def queues(self) -> QueueServiceClient:
        return QueueServiceClient.from_connection_string(self.azurite.connection_string)

    @property
    def blobs(self) -> BlobServiceClient:
        return BlobServiceClient.from_connection_string(self.azurite.connection_string)

    def send(self, kind: str, body: Any, *, encoding: str = "base64") -> None:
        """Send a message (a dict as JSON) the way a producer using that encoding does."""
        text = body if isinstance(body, str) else json.dumps(body)
        if encoding == "base64":
            text = base64.b64encode(text.encode()).decode()
        queue = self.queues.get_queue_client(self.name(kind))
        with contextlib.suppress(ResourceExistsError):
            queue.create_queue()
        queue.send_message(text)

    def peek(self, queue_name: str) -> list[str]:
        """Up to 32 messages of a queue as stored, without taking them."""
        try:
            return [m.content for m in self.queues.get_queue_client(queue_name).peek_messages(32)]
        except Exception:  # the queue does not exist (yet)
            return []

    def blob_text(self, kind: str, name: str) -> str | None:
        client = self.blobs.get_blob_client(self.name(kind), name)
        try:
            return client.download_blob().readall().decode()
        except Exception:  # not written (yet)
            return None

    def upload(self, kind: str, name: str, text: str) -> None:
        container = self.blobs.get_container_client(self.name(kind))
        if not container.exists():
            container.create_container()
        container.upload_blob(name, text.encode(), overwrite=True)


def instance_output(url: str, instance_id: str) -> Any:
    """The output of a Completed orchestration, else None."""
    response = httpx.get(f"{url}/runtime/webhooks/durabletask/instances/{instance_id}")
    if response.status_code != 200:
        return None
    body = response.json()
    return body["output"] if body.get("runtimeStatus") == "Completed" else None
