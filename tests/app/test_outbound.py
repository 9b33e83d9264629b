"""The outbound policy and guard (operations/outbound.py, validation.check_url).

Pure unit tests for the address policy and URL parsing, then component tests through
real local HTTP servers on free ports: the guard must connect only where the policy
allows, on the address it checked, and tell a client nothing about what listens where.
"""

from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from operations.errors import InputValidationError
from operations.outbound import (
    IPAddress,
    OutboundPolicy,
    OutboundRefused,
    OutboundUnreachable,
    forbidden_reason,
    literal_address,
    outbound_request,
    parse_outbound_url,
)
from operations.validation import InputSchema, UrlListField, check_url
from tests.support.ports import free_port

LOCAL = OutboundPolicy.parse("127.0.0.0/8")
STRICT = OutboundPolicy()

# ------------------------------------------------------------------ the address policy


@pytest.mark.parametrize(
    ("address", "why"),
    [
        ("127.0.0.1", "loopback"),
        ("127.255.255.254", "loopback"),
        ("::1", "loopback"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("fe80::1%eth0", "link-local"),
        ("10.0.0.1", "private"),
        ("172.16.5.4", "private"),
        ("172.31.255.255", "private"),
        ("192.168.1.1", "private"),
        ("fd12:3456::1", "unique local"),
        ("fc00::1", "unique local"),
        ("100.64.0.1", "carrier-grade NAT"),
        ("100.127.255.255", "carrier-grade NAT"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("0.1.2.3", "unspecified"),
        ("::", "unspecified"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "reserved"),
        ("192.0.2.10", "documentation"),
        ("198.51.100.1", "documentation"),
        ("203.0.113.9", "documentation"),
        ("2001:db8::1", "documentation"),
        ("198.18.0.1", "benchmarking"),
        ("192.0.0.8", "IETF protocol"),
        ("2001::1", "IETF protocol"),  # Teredo
        ("fec0::1", "site-local"),
        ("100::1", "discard-only"),
        # IPv6 spellings of forbidden IPv4 addresses
        ("::ffff:127.0.0.1", "IPv6 form of a loopback"),
        ("::ffff:169.254.169.254", "IPv6 form of a link-local"),
        ("::ffff:10.1.1.1", "IPv6 form of a private"),
        ("::127.0.0.1", "IPv4-compatible"),
        ("64:ff9b::7f00:1", "IPv6 form of a loopback"),  # NAT64
        ("64:ff9b:1::1", "local-use NAT64"),
        ("2002:a9fe:a9fe::1", "IPv6 form of a link-local"),  # 6to4
    ],
)
def test_non_public_addresses_are_refused_with_their_reason(address: str, why: str) -> None:
    reason = STRICT.refusal(ipaddress.ip_address(address))
    assert reason is not None and why in reason


@pytest.mark.parametrize(
    "address",
    ["8.8.8.8", "1.1.1.1", "93.184.216.34", "100.128.0.1", "172.32.0.1", "2606:4700::1111",
     "::ffff:8.8.8.8", "64:ff9b::808:808", "2002:808:808::1"],
)  # fmt: skip
def test_public_addresses_are_allowed(address: str) -> None:
    assert forbidden_reason(ipaddress.ip_address(address)) is None


def test_allowed_ranges_cover_their_ipv6_mapped_forms_and_nothing_else() -> None:
    policy = OutboundPolicy.parse(" 127.0.0.0/8 , 10.1.0.0/16,::1 ,Dev.Local. ")
    assert policy.refusal(ipaddress.ip_address("127.0.0.2")) is None
    assert policy.refusal(ipaddress.ip_address("::ffff:127.0.0.1")) is None
    assert policy.refusal(ipaddress.ip_address("::1")) is None
    assert policy.refusal(ipaddress.ip_address("10.1.200.3")) is None
    assert policy.refusal(ipaddress.ip_address("10.2.0.1")) is not None
    assert policy.refusal(ipaddress.ip_address("169.254.169.254")) is not None
    assert policy.allows_name("dev.local") and policy.allows_name("DEV.LOCAL.")
    assert not policy.allows_name("other.local")


@pytest.mark.parametrize("entry", ["10.0.0.0/33", "not a host", "http://x", "a/b"])
def test_a_malformed_allow_setting_fails_loudly_with_its_name(entry: str) -> None:
    with pytest.raises(ValueError, match="OPS_OUTBOUND_ALLOW"):
        OutboundPolicy.parse(f"127.0.0.0/8,{entry}")


def test_the_policy_reads_the_app_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPS_OUTBOUND_ALLOW", raising=False)
    assert OutboundPolicy.from_settings() == STRICT
    monkeypatch.setenv("OPS_OUTBOUND_ALLOW", "127.0.0.0/8,localhost")
    policy = OutboundPolicy.from_settings()
    assert policy.allows_name("localhost")
    assert policy.refusal(ipaddress.ip_address("127.0.0.1")) is None


@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),  # one decimal number
        ("0x7f000001", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),  # octal
        ("127.1", "127.0.0.1"),
        ("0", "0.0.0.0"),
        ("169.254.169.254.", "169.254.169.254"),  # trailing dot
        ("::1", "::1"),
        ("fe80::1%eth0", "fe80::1"),
        ("example.com", None),
        ("cafe", None),
        ("localhost", None),
    ],
)
def test_literal_addresses_are_read_in_every_form_a_resolver_accepts(
    host: str, address: str | None
) -> None:
    expected = ipaddress.ip_address(address) if address else None
    assert literal_address(host) == expected


# ----------------------------------------------------------- URLs checked at the edge


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://[::1", "closed brackets"),
        ("http://[::1/hook", "closed brackets"),
        ("http://[zz]/", "closed brackets"),
        ("http://example.com:99999/", "invalid port"),
        ("http://example.com:abc/", "invalid port"),
        ("http://example.com:0/", "invalid port"),
        ("ftp://example.com/file", "http or https"),
        ("file:///etc/passwd", "http or https"),
        ("gopher://127.0.0.1:6379/_", "http or https"),
        ("http:///path", "http or https"),
        ("//example.com/x", "http or https"),
        ("http://user:pw@example.com/", "user name or password"),
        ("http://example.com@127.0.0.1/", "user name or password"),
        ("http://exa mple.com/", "spaces"),
        ("http://example.com/\r\nX-Injected: 1", "control characters"),
        ("http://example.com\\@evil.test/", "backslashes"),
        ("http://:80/", "valid host"),
        ("http://-bad-.example/", "valid host"),
        ("http://127.0.0.1/", "OPS_OUTBOUND_ALLOW"),
        ("http://127.0.0.1:7071/api/operations/x", "loopback"),
        ("http://[::1]:8080/", "loopback"),
        ("http://[::ffff:127.0.0.1]/", "loopback"),
        ("http://[::ffff:7f00:1]/", "loopback"),
        ("http://2130706433/", "loopback"),
        ("http://0x7f.1/", "loopback"),
        ("http://0/", "unspecified"),
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://[fe80::1%25eth0]/", "link-local"),
        ("http://10.0.0.5/", "private"),
        ("https://100.64.0.1/", "carrier-grade NAT"),
    ],
)
def test_check_url_explains_every_unusable_url(url: str, says: str) -> None:
    reason = check_url(url, STRICT)
    assert reason is not None and says in reason, reason


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/hook",
        "http://example.com:8080/a?b=c#frag",
        "https://EXAMPLE.com./x",
        "https://exa_mple.example/x",
        "https://bücher.example/café",
        "http://localhost:8080/",  # a name: judged when resolved, not here
        "http://8.8.8.8/",
        "http://[2606:4700::1111]:443/",
    ],
)
def test_check_url_accepts_usable_urls(url: str) -> None:
    assert check_url(url, STRICT) is None


def test_allowed_literals_pass_the_edge() -> None:
    assert check_url("http://127.0.0.1:7071/x", LOCAL) is None
    assert check_url("http://[::ffff:127.0.0.1]/", LOCAL) is None
    assert check_url("http://[::1]/", LOCAL) is not None
    assert check_url("http://10.0.0.1/", OutboundPolicy.parse("10.0.0.1")) is None


def test_a_url_list_names_each_bad_item(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPS_OUTBOUND_ALLOW", raising=False)
    schema = InputSchema((UrlListField("urls"),))
    bad = ["https://ok.example/a", "http://127.0.0.1:1/", "http://[::1", "http://a:b@c.example/"]
    with pytest.raises(InputValidationError) as raised:
        schema.validate({"urls": bad})
    assert [p.field for p in raised.value.problems] == ["urls/1", "urls/2", "urls/3"]


def test_parsed_targets_keep_the_name_and_encode_the_path() -> None:
    target = parse_outbound_url("https://Bücher.Example/café?q=ä b#x".replace(" ", "%20"))
    assert target.host == "xn--bcher-kva.example"
    assert target.port == 443
    assert target.path == "/caf%C3%A9?q=%C3%A4%20b"
    ipv6 = parse_outbound_url("http://[2606:4700::1111]:8080")
    assert (ipv6.host, ipv6.port, ipv6.path) == ("2606:4700::1111", 8080, "/")


# ------------------------------------------------------------- real local HTTP servers


@dataclass
class Seen:
    """What a local server received."""

    method: str
    path: str
    host: str
    body: bytes


@dataclass
class LocalServer:
    """A real HTTP server on 127.0.0.1 and a free port."""

    port: int
    requests: list[Seen] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


Answer = Callable[[Seen], tuple[int, dict[str, str], bytes]]


def _ok(seen: Seen) -> tuple[int, dict[str, str], bytes]:
    return 200, {"Content-Type": "text/plain"}, b"hello from " + seen.path.encode()


@contextmanager
def local_server(answer: Answer = _ok, tls: ssl.SSLContext | None = None) -> Iterator[LocalServer]:
    """Serve `answer` for GET and POST (over TLS with `tls`) until the block exits."""
    server_state = LocalServer(port=free_port())

    class Handler(BaseHTTPRequestHandler):
        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            seen = Seen(
                self.command,
                self.path,
                self.headers.get("Host") or "",
                self.rfile.read(length) if length else b"",
            )
            server_state.requests.append(seen)
            status, headers, body = answer(seen)
            self.send_response(status)
            for name, value in {**headers, "Content-Length": str(len(body))}.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        do_GET = _handle
        do_POST = _handle

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", server_state.port), Handler)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server_state
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def raw_listener(behaviour: Callable[[socket.socket], None]) -> Iterator[int]:
    """A TCP port whose every connection gets `behaviour` (not HTTP); yields the port."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            with connection:
                behaviour(connection)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield port
    finally:
        stop.set()
        listener.close()


class NamesResolver:
    """A resolver hook answering from a table, counting lookups (no DNS involved)."""

    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table
        self.lookups: list[str] = []

    def __call__(self, host: str, port: int) -> list[IPAddress]:
        self.lookups.append(host)
        if host not in self.table:
            raise OSError(f"no such name {host}")
        return [ipaddress.ip_address(a) for a in self.table[host]]


def test_a_loopback_server_is_reached_only_when_allowed() -> None:
    with local_server() as server:
        with pytest.raises(OutboundRefused) as refused:
            outbound_request("GET", f"{server.url}/x", timeout=5, policy=STRICT)
        assert "OPS_OUTBOUND_ALLOW" in str(refused.value)
        assert server.requests == []

        with outbound_request("GET", f"{server.url}/x?y=1", timeout=5, policy=LOCAL) as response:
            assert response.status == 200
            assert response.read() == b"hello from /x?y=1"
    assert server.requests[0].host == f"127.0.0.1:{server.port}"


def test_a_post_carries_its_body_and_headers() -> None:
    with (
        local_server() as server,
        outbound_request(
            "POST",
            f"{server.url}/hook",
            body=b'{"a": 1}',
            headers={"Content-Type": "application/json"},
            timeout=5,
            policy=LOCAL,
        ) as response,
    ):
        assert response.status == 200
    (seen,) = server.requests
    assert (seen.method, seen.path, seen.body) == ("POST", "/hook", b'{"a": 1}')


def test_the_os_resolver_sends_localhost_to_loopback_which_is_refused() -> None:
    with local_server() as server:
        with pytest.raises(OutboundRefused, match="localhost is refused"):
            outbound_request("GET", f"http://localhost:{server.port}/", timeout=5, policy=STRICT)
        assert server.requests == []
        allowed = OutboundPolicy.parse("localhost")
        with outbound_request(
            "GET", f"http://localhost:{server.port}/", timeout=5, policy=allowed
        ) as response:
            assert response.status == 200


def test_a_name_resolving_to_loopback_is_refused_and_the_checked_address_is_the_one_used() -> None:
    resolver = NamesResolver({"innocent.example": ["127.0.0.1"]})
    with local_server() as server:
        url = f"http://innocent.example:{server.port}/data"
        with pytest.raises(OutboundRefused, match=r"innocent\.example"):
            outbound_request("GET", url, timeout=5, policy=STRICT, resolver=resolver)
        assert server.requests == []
        # Allowed: the connection goes to the resolved address, the Host header keeps the
        # name, and the name is resolved once (nothing to rebind between check and use).
        resolver.lookups.clear()
        with outbound_request("GET", url, timeout=5, policy=LOCAL, resolver=resolver) as response:
            assert response.read() == b"hello from /data"
    assert resolver.lookups == ["innocent.example"]
    assert server.requests[0].host == f"innocent.example:{server.port}"


def test_one_forbidden_answer_among_public_ones_refuses_the_name() -> None:
    resolver = NamesResolver({"mixed.example": ["93.184.216.34", "169.254.169.254"]})
    with pytest.raises(OutboundRefused):
        outbound_request("GET", "http://mixed.example/", timeout=5, resolver=resolver)


def test_redirects_are_not_followed_unless_asked() -> None:
    def redirect(seen: Seen) -> tuple[int, dict[str, str], bytes]:
        return 302, {"Location": "/elsewhere"}, b""

    with (
        local_server(redirect) as server,
        outbound_request("POST", server.url, body=b"x", timeout=5, policy=LOCAL) as response,
    ):
        assert response.status == 302
    assert len(server.requests) == 1


def test_a_redirect_to_a_forbidden_address_is_refused() -> None:
    resolver = NamesResolver({"public.example": ["127.0.0.1"]})
    only_the_name = OutboundPolicy.parse("public.example")
    with local_server() as target:

        def redirect(seen: Seen) -> tuple[int, dict[str, str], bytes]:
            return 302, {"Location": f"{target.url}/secret"}, b""

        with local_server(redirect) as source:
            url = f"http://public.example:{source.port}/start"
            with pytest.raises(OutboundRefused, match=r"127\.0\.0\.1 is refused"):
                outbound_request(
                    "GET", url, timeout=5, max_redirects=5, policy=only_the_name, resolver=resolver
                )
            assert len(source.requests) == 1
        assert target.requests == []


def test_a_redirect_to_a_name_of_a_forbidden_address_is_refused() -> None:
    resolver = NamesResolver({"public.example": ["127.0.0.1"], "inside.example": ["10.0.0.7"]})
    policy = OutboundPolicy.parse("public.example")

    def redirect(seen: Seen) -> tuple[int, dict[str, str], bytes]:
        return 307, {"Location": "http://inside.example/admin"}, b""

    with local_server(redirect) as source, pytest.raises(OutboundRefused, match=r"inside\.example"):
        outbound_request(
            "GET",
            f"http://public.example:{source.port}/",
            timeout=5,
            max_redirects=3,
            policy=policy,
            resolver=resolver,
        )


def test_allowed_redirects_are_followed_up_to_the_bound() -> None:
    def hop(seen: Seen) -> tuple[int, dict[str, str], bytes]:
        number = int(seen.path.strip("/") or 0)
        if number < 3:
            return 301, {"Location": f"/{number + 1}"}, b""
        return 200, {}, b"arrived"

    with local_server(hop) as server:
        with outbound_request("GET", server.url, timeout=5, max_redirects=3, policy=LOCAL) as r:
            assert (r.status, r.read(), r.url) == (200, b"arrived", f"{server.url}/3")
        with outbound_request("GET", server.url, timeout=5, max_redirects=2, policy=LOCAL) as r:
            assert r.status == 301  # the bound ran out: the caller sees the redirect


def test_a_303_after_a_post_continues_as_a_get_without_the_body() -> None:
    def see_other(seen: Seen) -> tuple[int, dict[str, str], bytes]:
        if seen.path == "/form":
            return 303, {"Location": "/done"}, b""
        return 200, {}, b"ok"

    with (
        local_server(see_other) as server,
        outbound_request(
            "POST", f"{server.url}/form", body=b"data", timeout=5, max_redirects=1, policy=LOCAL
        ) as response,
    ):
        assert response.read() == b"ok"
    assert [(s.method, s.path, s.body) for s in server.requests] == [
        ("POST", "/form", b"data"),
        ("GET", "/done", b""),
    ]


def _unreachable_text(url: str, port: int, policy: OutboundPolicy, timeout: float = 5) -> str:
    with pytest.raises((OutboundUnreachable, OutboundRefused)) as raised:
        outbound_request("GET", url, timeout=timeout, policy=policy)
    return str(raised.value).replace(str(port), "<port>")


def _close_at_once(connection: socket.socket) -> None:
    pass


def _speak_ssh(connection: socket.socket) -> None:
    connection.sendall(b"SSH-2.0-OpenSSH_9.2\r\n")


def test_closed_and_open_ports_read_the_same() -> None:
    closed = free_port()
    with (
        raw_listener(_close_at_once) as hangs_up,
        raw_listener(_speak_ssh) as not_http,
        local_server(lambda seen: (500, {}, b"")) as http_server,
    ):
        ports = [closed, hangs_up, not_http]
        texts = {_unreachable_text(f"http://127.0.0.1:{p}/", p, LOCAL) for p in ports}
        assert texts == {"http://127.0.0.1:<port>/ could not be reached"}
        # Without the allowance, nothing is even tried: one refusal for all of them.
        ports.append(http_server.port)
        refusals = {_unreachable_text(f"http://127.0.0.1:{p}/", p, STRICT) for p in ports}
        assert len(refusals) == 1 and "refused by the app's outbound policy" in refusals.pop()
        assert http_server.requests == []


def test_a_silent_port_times_out_with_the_same_text() -> None:
    def stay_silent(connection: socket.socket) -> None:
        connection.recv(65536)  # read the request, never answer, until the client leaves

    with raw_listener(stay_silent) as silent:
        text = _unreachable_text(f"http://127.0.0.1:{silent}/", silent, LOCAL, timeout=0.3)
    assert text == "http://127.0.0.1:<port>/ could not be reached"


def test_an_unknown_name_reads_like_any_unreachable_host() -> None:
    resolver = NamesResolver({})
    with pytest.raises(OutboundUnreachable) as raised:
        outbound_request("GET", "https://nowhere.example/x", timeout=5, resolver=resolver)
    assert str(raised.value) == "https://nowhere.example/x could not be reached"


# ------------------------------------------------------------------------------- TLS


def _self_signed(directory: Path, name: str) -> Path:
    """A self-signed certificate (and its key) for `name`, in one PEM file."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    pem = directory / f"{name}.pem"
    pem.write_bytes(
        certificate.public_bytes(serialization.Encoding.PEM)
        + key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return pem


def test_https_to_a_pinned_address_keeps_the_name_for_sni_and_the_certificate(
    tmp_path: Path,
) -> None:
    pem = _self_signed(tmp_path, "innocent.example")
    trust = ssl.create_default_context(cafile=str(pem))
    resolver = NamesResolver({"innocent.example": ["127.0.0.1"]})
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(pem)
    sni: list[str | None] = []

    def remember(sock: ssl.SSLObject, name: str, context: ssl.SSLContext) -> None:
        sni.append(name)

    server_tls.sni_callback = remember
    with local_server(tls=server_tls) as server:
        url = f"https://innocent.example:{server.port}/secure"
        with outbound_request(
            "GET", url, timeout=5, policy=LOCAL, resolver=resolver, tls=trust
        ) as response:
            assert response.read() == b"hello from /secure"
        # Reached by its address, the certificate (issued to the name) does not match.
        with pytest.raises(OutboundUnreachable):
            outbound_request(
                "GET", f"https://127.0.0.1:{server.port}/", timeout=5, policy=LOCAL, tls=trust
            )
    assert sni[0] == "innocent.example"
    assert server.requests[0].host == f"innocent.example:{server.port}"
