"""Scripted HTTP exchanges and a skipping clock, for driving both clients identically."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from opsclient import AsyncOperationsClient, OperationsClient

BASE = "http://ops.test"
EPOCH = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)

Reply = httpx.Response | Exception | Callable[[httpx.Request], httpx.Response]


def reply(
    status: int = 200,
    json: Any = None,
    *,
    headers: dict[str, str] | None = None,
    content: bytes | None = None,
) -> httpx.Response:
    """A canned answer."""
    if json is not None:
        return httpx.Response(status, json=json, headers=headers)
    return httpx.Response(status, content=content or b"", headers=headers)


@dataclass
class Step:
    method: str
    path: str
    answer: Reply


class Script:
    """Answers requests in a fixed order, checking each is the one expected.

    Each step is `(method, path-or-url, answer)`; an Exception answer is raised (e.g.
    `httpx.ConnectError` for a dropped connection). Every request is recorded.
    """

    def __init__(self, *steps: tuple[str, str, Reply]) -> None:
        self.steps = [Step(*s) for s in steps]
        self.requests: list[httpx.Request] = []
        self._lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        with self._lock:
            request.read()
            self.requests.append(request)
            assert self.steps, f"unexpected extra request {request.method} {request.url}"
            step = self.steps.pop(0)
        if "?" in step.path:
            target = str(request.url)
        elif step.path.startswith("http"):
            target = str(request.url.copy_with(query=None))
        else:
            target = request.url.path
        assert (request.method, target) == (step.method, step.path), (
            f"expected {step.method} {step.path}, got {request.method} {request.url}"
        )
        if isinstance(step.answer, Exception):
            raise step.answer
        if isinstance(step.answer, httpx.Response):
            # A fresh copy: one canned answer may be replayed, and by either client.
            canned = step.answer
            return httpx.Response(
                canned.status_code, headers=canned.headers, content=canned.content
            )
        return step.answer(request)

    @property
    def exhausted(self) -> bool:
        return not self.steps

    def trace(self) -> list[tuple[str, str]]:
        """(method, url) of every request, for comparing runs."""
        return [(r.method, str(r.url)) for r in self.requests]


@dataclass
class FakeClock:
    """Time that only moves when someone sleeps: waits are recorded, never slept."""

    now: float = 0.0
    sleeps: list[float] = field(default_factory=list)
    on_sleep: Callable[[float], None] | None = None

    def monotonic(self) -> float:
        return self.now

    def wall(self) -> datetime:
        return EPOCH + timedelta(seconds=self.now)

    def sleep(self, seconds: float, cancel: threading.Event | None = None) -> bool:
        if cancel is not None and cancel.is_set():
            return True
        self._advance(seconds)
        return cancel.is_set() if cancel is not None else False

    async def sleep_async(self, seconds: float, cancel: asyncio.Event | None = None) -> bool:
        await asyncio.sleep(0)  # stay a real suspension point, so task cancellation lands
        if cancel is not None and cancel.is_set():
            return True
        self._advance(seconds)
        return cancel.is_set() if cancel is not None else False

    def _advance(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        if self.on_sleep is not None:
            self.on_sleep(seconds)


@dataclass
class Harness:
    """Runs one client method against a script, with the sync or the async client."""

    flavor: str
    clock: FakeClock = field(default_factory=FakeClock)

    def call(
        self,
        script: Script,
        method: str,
        *args: Any,
        client_options: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> Any:
        options: dict[str, Any] = {"clock": self.clock, **(client_options or {})}
        options.setdefault("base_url", BASE)
        transport = httpx.MockTransport(script)
        if self.flavor == "sync":
            with OperationsClient(transport=transport, **options) as client:
                outcome = getattr(client, method)(*args, **kwargs)
                return list(outcome) if method == "list" else outcome

        async def go() -> Any:
            async with AsyncOperationsClient(transport=transport, **options) as client:
                if method == "list":
                    return [item async for item in client.list(**kwargs)]
                return await getattr(client, method)(*args, **kwargs)

        return asyncio.run(go())
