"""Property: whatever a caller sends the management API of a real host process (paths,
methods, query strings, headers, bodies, with and without keys), the answer is never a
5xx, and every error is application/problem+json with `message` = `detail`.

Bounded (a fixed number of derandomized examples, no example database, Hypothesis'
storage outside the work tree via tests/app/hypothesis_setup) so it runs in seconds.
"""

from __future__ import annotations

import json
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.app.hypothesis_setup import BOUNDED
from tests.support.hostproc import HostProcess, run_host_process

MGMT_APP = Path(__file__).parent / "apps" / "mgmt_basic"
HOOK = "/runtime/webhooks/durabletask"
SYSTEM_KEY = "fuzz-system-" + "s" * 30
EXAMPLES = 400
# Filled as the test runs; docs/durablehost.md "Hardening figures" quotes a run.
SEEN: dict[str, int] = {"requests": 0, "5xx": 0}

SEGMENTS = [
    "orchestrators",
    "instances",
    "entities",
    "hello_orchestrator",
    "approval_orchestrator",
    "no_such_function",
    "raiseEvent",
    "terminate",
    "suspend",
    "resume",
    "rewind",
    "restart",
    "Approval",
    "known-id",
    "",
    ".",
    "..",
    "@entity",
]
PARAMETERS = [
    "top",
    "timeout",
    "pollingInterval",
    "createdTimeFrom",
    "createdTimeTo",
    "runtimeStatus",
    "instanceIdPrefix",
    "showInput",
    "showHistory",
    "showHistoryOutput",
    "returnInternalServerErrorOnFailure",
    "taskHub",
    "connection",
    "reason",
    "restartWithNewInstanceId",
    "code",
]
ODD_TEXT = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=40
) | st.sampled_from(
    [
        "9" * 5_000,
        "\u0661\u0662",
        "-1",
        "1e400",
        "nan",
        "9999-12-31T23:59:59-14:00",
        "0001-01-01T00:00:00+14:00",
        "Running,Sleeping",
        "true",
        SYSTEM_KEY,
    ]
)
RAW_BYTES = st.binary(max_size=60)


def _percent(text: str) -> str:
    return quote(text, safe="")


@st.composite
def paths(draw: st.DrawFn) -> str:
    """A path under the webhook: known segments mixed with odd text and raw escapes."""
    parts = draw(
        st.lists(
            st.sampled_from(SEGMENTS).map(_percent)
            | ODD_TEXT.map(_percent)
            | RAW_BYTES.map(lambda raw: "".join(f"%{byte:02X}" for byte in raw)),
            min_size=0,
            max_size=5,
        )
    )
    return HOOK + "/" + "/".join(parts)


@st.composite
def query_strings(draw: st.DrawFn) -> str:
    pairs = draw(st.lists(st.tuples(st.sampled_from(PARAMETERS) | ODD_TEXT, ODD_TEXT), max_size=5))
    return "&".join(f"{_percent(name)}={_percent(value)}" for name, value in pairs)


HEADER_VALUES = st.binary(max_size=80).map(
    lambda raw: bytes(b for b in raw if b not in b"\r\n\x00")
) | st.sampled_from([SYSTEM_KEY.encode(), b"application/json", b"text/plain; charset=latin1"])
HEADERS = st.dictionaries(
    st.sampled_from(
        [
            b"Content-Type",
            b"x-ms-continuation-token",
            b"x-functions-key",
            b"X-Forwarded-Host",
            b"X-Forwarded-Proto",
            b"Forwarded",
            b"Accept",
        ]
    ),
    HEADER_VALUES,
    max_size=4,
)
BODIES = (
    st.binary(max_size=200)
    | st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
        lambda children: (
            st.lists(children, max_size=4)
            | st.dictionaries(st.text(max_size=8), children, max_size=4)
        ),
        max_leaves=20,
    ).map(lambda value: json.dumps(value).encode())
    | st.integers(min_value=60, max_value=3_000).map(lambda depth: b"[" * depth + b"]" * depth)
)
METHODS = st.sampled_from(["GET", "POST", "DELETE", "PUT", "PATCH", "OPTIONS", "HEAD"])


def _exchange(port: int, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """One request as raw bytes over a fresh socket (no client tidying it up)."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {
        name.lower(): value for name, _, value in (line.partition(": ") for line in lines[1:])
    }
    return int(lines[0].split()[1]), headers, body


@pytest.fixture(scope="module", params=["open", "keyed"])
def host(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[HostProcess]:
    app = tmp_path_factory.mktemp(f"fuzz-{request.param}") / "app"
    shutil.copytree(MGMT_APP, app, ignore=shutil.ignore_patterns("__pycache__"))
    args: list[str] = []
    if request.param == "keyed":
        (app / ".durablehost").mkdir()
        keys = {"masterKey": "m" * 40, "systemKeys": {"durabletask_extension": SYSTEM_KEY}}
        (app / ".durablehost" / "keys.json").write_text(json.dumps(keys))
        args = ["--enforce-keys"]
    with run_host_process(app, args=args) as process:
        yield process


def test_no_input_gets_a_5xx_and_every_error_is_a_problem(host: HostProcess) -> None:
    port = int(host.url.rsplit(":", 1)[1])

    @settings(BOUNDED, max_examples=EXAMPLES // 2)
    @given(METHODS, paths(), query_strings(), HEADERS, BODIES)
    def exchange(
        method: str, path: str, query: str, headers: dict[bytes, bytes], body: bytes
    ) -> None:
        target = path + (f"?{query}" if query else "")
        head = [f"{method} {target} HTTP/1.1".encode(), b"Host: 127.0.0.1", b"Connection: close"]
        head += [name + b": " + value for name, value in headers.items()]
        head.append(f"Content-Length: {len(body)}".encode())
        status, answer_headers, answer = _exchange(port, b"\r\n".join(head) + b"\r\n\r\n" + body)
        SEEN["requests"] += 1
        if status >= 500:
            SEEN["5xx"] += 1
        assert status < 500, (method, target, headers, body[:200], answer[:500])
        if status >= 400 and method != "HEAD":
            assert answer_headers["content-type"].startswith("application/problem+json"), answer
            problem = json.loads(answer)
            assert problem["status"] == status and problem["message"] == problem["detail"]

    exchange()
    assert host.running


def test_the_fuzz_ran_its_examples() -> None:
    # Both hosts were fuzzed (runs after the parametrised test above in file order).
    assert SEEN["requests"] >= EXAMPLES * 0.9 and SEEN["5xx"] == 0, SEEN
    print(f"management API fuzz: {SEEN['requests']} requests, {SEEN['5xx']} answered 5xx")
