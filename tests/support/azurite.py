"""Start the real Azurite blob and queue services (from node_modules) on free ports."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.ports import free_port, wait_for_port

__all__ = ["AZURITE_ACCOUNT", "AZURITE_KEY", "Azurite", "run_azurite"]

REPO = Path(__file__).resolve().parents[2]
# The combined emulator: blob and queue in one process (its table service gets a port too).
AZURITE_BIN = REPO / "node_modules" / ".bin" / "azurite"
# The blob service alone, for runs that measure Azurite and want nothing else in it (bench).
AZURITE_BLOB_BIN = REPO / "node_modules" / ".bin" / "azurite-blob"
# The well-known development account of the storage emulator (public, not a secret).
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)


@dataclass(frozen=True, slots=True)
class Azurite:
    """A running Azurite: its blob endpoint and, when started with it, its queue endpoint;
    `pid` is its process (None for an Azurite described but not started here)."""

    blob_port: int
    queue_port: int | None = None
    pid: int | None = None

    @property
    def blob_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.blob_port}/{AZURITE_ACCOUNT}"

    @property
    def queue_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.queue_port}/{AZURITE_ACCOUNT}"

    @property
    def connection_string(self) -> str:
        queue = f"QueueEndpoint={self.queue_endpoint};" if self.queue_port else ""
        return (
            f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};"
            f"AccountKey={AZURITE_KEY};BlobEndpoint={self.blob_endpoint};{queue}"
        )


@contextmanager
def run_azurite(
    data_dir: Path,
    port: int | None = None,
    queue_port: int | None = None,
    *,
    blob_only: bool = False,
) -> Iterator[Azurite]:
    """Run Azurite (blob and queue) with its data in `data_dir` until the block exits;
    `port` / `queue_port` restart one on the ports it had (default: free ports).
    `blob_only` runs azurite-blob alone (no queue endpoint)."""
    binary = AZURITE_BLOB_BIN if blob_only else AZURITE_BIN
    if not binary.exists():
        raise RuntimeError(f"{binary} is missing: run `make install` (npm ci) first")
    port = port or free_port()
    args = [str(binary), "--blobHost", "127.0.0.1", "--blobPort", str(port)]
    if blob_only:
        queue_port = None
    else:
        queue_port = queue_port or free_port()
        args += ["--queueHost", "127.0.0.1", "--queuePort", str(queue_port)]
        args += ["--tableHost", "127.0.0.1", "--tablePort", str(free_port())]
    data_dir.mkdir(parents=True, exist_ok=True)
    # --skipApiVersionCheck: the current storage SDKs send newer API versions than Azurite knows.
    args += ["--location", str(data_dir), "--skipApiVersionCheck", "--disableTelemetry", "--silent"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for_port(port, timeout=60)
        if queue_port is not None:
            wait_for_port(queue_port, timeout=60)
        yield Azurite(blob_port=port, queue_port=queue_port, pid=proc.pid)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
