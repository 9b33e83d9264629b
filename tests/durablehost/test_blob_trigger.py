"""Blob triggers: real durablehost processes scanning real Azurite containers.

Each blob version runs `on_blob` once (receipts in `azure-webjobs-hosts`), also across a
host restart; a changed blob runs again; five failures send a message to the
`webjobs-blobtrigger-poison` queue. The app records every call (storage_support).
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from durablehost.process import run_host_process
from durablehost.triggers.blob_trigger import BLOB_POISON_QUEUE, RECEIPTS_CONTAINER
from tests.durablehost.storage_support import STORAGE_APP, StorageNames, eventually, read_attempts
from tests.support.azurite import Azurite

pytestmark = pytest.mark.e2e


def _calls(names: StorageNames, blob: str) -> list[dict[str, object]]:
    path = f"{names.name('inbox')}/{blob}"
    return [a for a in read_attempts(names.attempts) if a.get("name") == path]


def _processed(names: StorageNames, stem: str) -> str | None:
    return names.blob_text("results", f"processed/{stem}.txt")


def test_each_blob_version_runs_once_across_restarts(azurite: Azurite, tmp_path: Path) -> None:
    names = StorageNames.fresh(azurite, tmp_path)
    hub = tmp_path / "hub.sqlite3"
    with run_host_process(STORAGE_APP, hub=hub, env=names.env()) as host:
        names.upload("inbox", "a.txt", "hello")
        assert eventually(lambda: _processed(names, "a"), what="a processed") == "HELLO"
        (call,) = _calls(names, "a.txt")
        assert call["length"] == 5 and call["text"] == "hello"
        assert str(call["uri"]).endswith(f"/{names.name('inbox')}/a.txt")
        # Names the pattern does not match are left alone.
        names.upload("inbox", "skip.json", "{}")
        # b sorts after a: a scan that ran b would have run a again first.
        names.upload("inbox", "b.txt", "world")
        assert eventually(lambda: _processed(names, "b"), what="b processed") == "WORLD"
        assert len(_calls(names, "a.txt")) == 1
        host.stop()

        host.start()
        names.upload("inbox", "c.txt", "again")
        assert eventually(lambda: _processed(names, "c"), what="c processed") == "AGAIN"
        assert len(_calls(names, "a.txt")) == 1
        assert len(_calls(names, "b.txt")) == 1

        names.upload("inbox", "a.txt", "changed")  # a new ETag
        assert eventually(lambda: _processed(names, "a") == "CHANGED", what="a again")
        assert [c["text"] for c in _calls(names, "a.txt")] == ["hello", "changed"]
    assert not _calls(names, "skip.json")
    receipts = names.blobs.get_container_client(RECEIPTS_CONTAINER)
    kept = [b.name for b in receipts.list_blobs(name_starts_with="blobreceipts/")]
    # blobreceipts/<host id>/Host.Functions.on_blob/<etag>/<container>/<blob>
    mine = [n.split("/") for n in kept if f"/{names.name('inbox')}/" in n]
    assert sorted(parts[-1] for parts in mine) == ["a.txt", "a.txt", "b.txt", "c.txt"]
    assert {parts[2] for parts in mine} == {"Host.Functions.on_blob"}


def test_a_blob_failing_five_times_goes_to_the_poison_queue(
    azurite: Azurite, tmp_path: Path
) -> None:
    names = StorageNames.fresh(azurite, tmp_path)
    with run_host_process(STORAGE_APP, env=names.env()):
        names.upload("inbox", "bad.txt", "fail please")

        def poison_message() -> dict[str, str] | None:
            for stored in names.peek(BLOB_POISON_QUEUE):
                message = json.loads(base64.b64decode(stored))
                if message["ContainerName"] == names.name("inbox"):
                    return message
            return None

        message = eventually(poison_message, timeout=60, what="the blob poison message")
        assert message["Type"] == "BlobTrigger"
        assert message["FunctionId"] == "Host.Functions.on_blob"
        assert message["BlobName"] == "bad.txt"
        assert len(_calls(names, "bad.txt")) == 5
        # Poisoned: not tried again, while other blobs still run.
        names.upload("inbox", "good.txt", "fine")
        assert eventually(lambda: _processed(names, "good"), what="good processed") == "FINE"
        assert len(_calls(names, "bad.txt")) == 5
