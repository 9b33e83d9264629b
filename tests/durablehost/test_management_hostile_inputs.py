"""The management API against inputs meant to break it, on a real host process over HTTP:
each is answered 4xx application/problem+json (with `message` = `detail`), never 5xx.

Instance ids follow the extension's rules; an id in use by an active instance is refused,
a finished one is replaced (the extension's default overridable states). Bodies over the
limit answer 413 and leave the host's memory where it was.
"""

from __future__ import annotations

import base64
import json
import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from durablehost.front.management_guards import MAX_INSTANCE_ID_LENGTH, MAX_PAYLOAD_BYTES
from durablehost.wire.client_input import MAX_JSON_DEPTH
from tests.support.hostproc import HostProcess, run_host_process

MGMT_APP = Path(__file__).parent / "apps" / "mgmt_basic"
HOOK = "/runtime/webhooks/durabletask"
MIB = 1024 * 1024


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostProcess]:
    app = tmp_path_factory.mktemp("hostile") / "app"
    shutil.copytree(MGMT_APP, app, ignore=shutil.ignore_patterns("__pycache__"))
    with run_host_process(app) as process:
        yield process


@pytest.fixture
def http(host: HostProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=host.url + HOOK, timeout=60) as client:
        yield client


def assert_problem(response: httpx.Response, status: int, *fragments: str) -> dict[str, Any]:
    """An RFC 9457 problem with this status, `message` = `detail`, naming `fragments`."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status and body["title"]
    assert body["message"] == body["detail"]
    for fragment in fragments:
        assert fragment in body["detail"], body
    return body


def wait_status(http: httpx.Client, instance_id: str, *wanted: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while True:
        body: dict[str, Any] = http.get(f"/instances/{instance_id}").json()
        if body["runtimeStatus"] in wanted:
            return body
        assert time.monotonic() < deadline, body
        time.sleep(0.05)


# --- instance ids -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw_id", "fragment"),
    [
        ("%40entity", "reserved for entities"),
        ("a%23b", "'#'"),
        ("a%3Fb", "'?'"),
        ("a%5Cb", "'\\'"),
        ("a%0Ab", "control character"),
        ("a%00b", "control character"),
        ("a%7Fb", "control character"),
        ("a%C2%85b", "control character"),  # U+0085, a C1 control (.NET char.IsControl)
        ("x" * (MAX_INSTANCE_ID_LENGTH + 1), "the limit is 256"),
        ("%2E", "cannot appear in a URL path"),
        ("%2E%2E", "cannot appear in a URL path"),
    ],
)
def test_ids_the_extension_refuses_are_refused(
    http: httpx.Client, raw_id: str, fragment: str
) -> None:
    response = http.post(f"/orchestrators/hello_orchestrator/{raw_id}", json={})
    body = assert_problem(response, 400, fragment)
    # The SDK's start_new reads ExceptionMessage from a 400.
    assert body["ExceptionMessage"] == body["detail"]


def test_the_longest_id_and_unicode_ids_are_taken(http: httpx.Client) -> None:
    for instance_id in ("x" * MAX_INSTANCE_ID_LENGTH, "zürich-東京-é"):
        response = http.post(
            f"/orchestrators/hello_orchestrator/{quote(instance_id, safe='')}", json={}
        )
        assert response.status_code == 202, response.text
        assert response.json()["id"] == instance_id


def test_an_active_id_is_refused_and_a_finished_one_replaced(http: httpx.Client) -> None:
    waiting = http.post("/orchestrators/approval_orchestrator/reused-id", json="first")
    assert waiting.status_code == 202
    wait_status(http, "reused-id", "Running")
    refused = http.post("/orchestrators/hello_orchestrator/reused-id", json={"cities": ["X"]})
    assert_problem(refused, 409, "reused-id")
    assert http.get("/instances/reused-id").json()["input"] == "first"

    raised = http.post(
        "/instances/reused-id/raiseEvent/Approval", json={"ok": True}, params={"x": "y"}
    )
    assert raised.status_code == 202
    wait_status(http, "reused-id", "Completed")
    # Finished: the extension's default (NonRunningStates) replaces it.
    replaced = http.post("/orchestrators/hello_orchestrator/reused-id", json={"cities": ["Y"]})
    assert replaced.status_code == 202
    done = wait_status(http, "reused-id", "Completed")
    assert done["name"] == "hello_orchestrator" and done["output"] == ["Hello Y!"]


# --- bodies -------------------------------------------------------------------------------


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 5_000, 200_000])
def test_json_nested_too_deep_is_refused(http: httpx.Client, depth: int) -> None:
    headers = {"Content-Type": "application/json"}
    started = http.post(
        "/orchestrators/hello_orchestrator", content=_nested(depth), headers=headers
    )
    assert_problem(started, 400, "deep")
    # Also inside the JSON string the SDK double-encodes its input into.
    wrapped = json.dumps(_nested(depth))
    inner = http.post("/orchestrators/hello_orchestrator", content=wrapped, headers=headers)
    assert inner.status_code in (202, 400), inner.text

    waiting = http.post("/orchestrators/approval_orchestrator", json=None)
    instance_id = waiting.json()["id"]
    event = http.post(
        f"/instances/{instance_id}/raiseEvent/Approval", content=_nested(depth), headers=headers
    )
    assert_problem(event, 400, "deep")


def test_json_at_the_depth_limit_is_taken(http: httpx.Client) -> None:
    response = http.post(
        "/orchestrators/hello_orchestrator",
        content=json.dumps({"cities": json.loads(_nested(MAX_JSON_DEPTH - 1))}),
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 202, response.text


@pytest.mark.parametrize(
    "body",
    [b"\xff\xfe not utf-8", b"{", b"1" * 5_000, b"NaN-ish", b'"\\ud800"x'],
)
def test_bodies_that_are_not_json_are_refused(http: httpx.Client, body: bytes) -> None:
    response = http.post(
        "/orchestrators/hello_orchestrator",
        content=body,
        headers={"Content-Type": "application/json"},
    )
    assert_problem(response, 400)


def test_a_body_over_the_limit_is_413_declared_or_chunked(http: httpx.Client) -> None:
    big = b'"' + b"x" * MAX_PAYLOAD_BYTES + b'"'
    declared = http.post("/orchestrators/hello_orchestrator", content=big)
    assert_problem(declared, 413, str(MAX_PAYLOAD_BYTES))

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(big), MIB):
            yield big[start : start + MIB]

    chunked = http.post("/orchestrators/hello_orchestrator", content=chunks())
    assert_problem(chunked, 413, str(MAX_PAYLOAD_BYTES))


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc/<pid>/status")
def test_large_bodies_leave_memory_where_it_was(host: HostProcess, http: httpx.Client) -> None:
    http.get("/instances/")
    baseline = _rss_mib(host.pid)
    forty = b'"' + b"x" * (40 * MIB) + b'"'
    for _ in range(3):
        assert_problem(http.post("/orchestrators/hello_orchestrator", content=forty), 413)
    # Accepted ones of a few MiB, orchestrations that finish and are purged.
    under = json.dumps({"cities": [], "ballast": "y" * (2 * MIB)})
    for _ in range(3):
        started = http.post("/orchestrators/hello_orchestrator", content=under)
        assert started.status_code == 202, started.text
        wait_status(http, started.json()["id"], "Completed")
        http.delete(f"/instances/{started.json()['id']}")
    after = _rss_mib(host.pid)
    assert after - baseline < 60, f"RSS went from {baseline:.0f} MiB to {after:.0f} MiB"


# --- query parameters ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "fragment"),
    [
        # Arabic-Indic digits pass str.isdigit().
        ({"top": "\u0661\u0662"}, "positive whole number"),
        ({"top": "²"}, "positive whole number"),
        ({"top": "0"}, "positive whole number"),
        ({"top": "-1"}, "positive whole number"),
        ({"createdTimeFrom": "9999-12-31T23:59:59-14:00"}, "between years 1 and 9999"),
        ({"createdTimeTo": "0001-01-01T00:00:00+14:00"}, "between years 1 and 9999"),
        ({"createdTimeFrom": "not a date"}, "ISO 8601"),
        ({"runtimeStatus": "Sleeping"}, "unknown runtime status"),
        ({"showInput": "maybe"}, "boolean"),
    ],
)
def test_bad_listing_parameters_are_400(
    http: httpx.Client, query: dict[str, str], fragment: str
) -> None:
    assert_problem(http.get("/instances/", params=query), 400, fragment)


def test_a_top_of_any_length_is_clamped(http: httpx.Client) -> None:
    for top in ("9" * 5_000, str(2**63), "0" * 4_999 + "1"):
        response = http.get("/instances/", params={"top": top})
        assert response.status_code == 200, response.text[:300]


@pytest.mark.parametrize("timeout", ["1e400", "nan", "-1", "9" * 5_000, "\u0661\u0660", "0x10"])
def test_bad_timeouts_are_400(http: httpx.Client, timeout: str) -> None:
    response = http.post(
        "/orchestrators/hello_orchestrator", params={"timeout": timeout}, json={"cities": []}
    )
    assert_problem(response, 400, "seconds")


def test_a_huge_finite_timeout_is_clamped(http: httpx.Client) -> None:
    response = http.post(
        "/orchestrators/hello_orchestrator",
        params={"timeout": "1e300", "pollingInterval": "1"},
        json={"cities": []},
    )
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    "token",
    ids=["deep-json", "list-of-lists", "not-base64", "too-long", "not-json"],
    argvalues=[
        base64.urlsafe_b64encode(_nested(3_000).encode()).decode(),
        base64.urlsafe_b64encode(b'["a", "b", ' + b"[" * 50 + b"]" * 50 + b"]").decode(),
        "not base64 !!",
        "A" * 5_000,  # over the token limit, under aiohttp's 8,190-byte header line
        base64.urlsafe_b64encode(b"\xff\xfe").decode(),
    ],
)
def test_bad_continuation_tokens_are_400(http: httpx.Client, token: str) -> None:
    response = http.get("/instances/", headers={"x-ms-continuation-token": token})
    assert_problem(response, 400, "continuation token")


def test_a_continuation_token_that_is_not_utf8_is_400(http: httpx.Client) -> None:
    response = http.get("/instances/", headers={b"x-ms-continuation-token": b"\xff\xfe\xfd"})
    assert_problem(response, 400, "continuation token")


# --- paths and methods --------------------------------------------------------------------


def _raw_request(host: HostProcess, request_line: str) -> tuple[int, dict[str, str], bytes]:
    """Send one request line as bytes (no client normalising it) and read the answer."""
    port = int(host.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(request_line.encode("latin-1") + b"\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    return int(lines[0].split()[1]), {k.lower(): v for k, v in headers.items()}, body


@pytest.mark.parametrize(
    "path",
    [
        f"{HOOK}/instances/a%0Ab/nowhere/else",
        f"{HOOK}/no%0Asuch",
        f"{HOOK}/%FF%FE",
        f"{HOOK}/orchestrators",
        f"{HOOK}/instances/x/raiseEvent",
        f"{HOOK}/instances/x/explode",
    ],
)
def test_odd_paths_answer_problem_json(host: HostProcess, path: str) -> None:
    status, headers, body = _raw_request(host, f"POST {path} HTTP/1.1")
    assert 400 <= status < 500, body
    assert headers["content-type"].startswith("application/problem+json")
    problem = json.loads(body)
    assert problem["message"] == problem["detail"]


def test_a_wrong_method_is_405_with_allow(http: httpx.Client) -> None:
    response = http.put("/instances/some-id")
    body = assert_problem(response, 405)
    assert "GET" in response.headers["Allow"] and "PUT" in body["detail"]


def test_a_raw_instance_id_with_a_newline_is_a_plain_404(host: HostProcess) -> None:
    status, _, body = _raw_request(host, f"GET {HOOK}/instances/a%0Ab HTTP/1.1")
    assert status == 404
    assert json.loads(body)["message"] == json.loads(body)["detail"]
