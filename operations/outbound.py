"""Outbound HTTP: the one way the app fetches or POSTs to a URL a client gave it.

A client names URLs (an ingest source, a webhook `callbackUrl`) that the app then reaches
from inside its network. Unchecked, that lets a client aim the app at itself (its own
management API), at the cloud metadata service (169.254.169.254) or at anything private
behind it (server-side request forgery). So every such request goes through
`outbound_request`, which:

1. parses the URL strictly (`parse_outbound_url`): http(s) only, no userinfo, a valid
   host and port;
2. resolves the host name itself, once, and checks EVERY address against the policy
   (`OutboundPolicy`): loopback, private (RFC 1918, RFC 4193), CGNAT, link-local,
   multicast, unspecified, reserved, documentation and benchmark ranges, and the
   IPv4-mapped/NAT64/6to4 forms of those are refused unless the `OPS_OUTBOUND_ALLOW` app
   setting lists the host name or a range holding the address;
3. connects the socket to one of those checked addresses, never to the name: the
   connection classes below override `connect()` of the standard library's `http.client`,
   so the Host header and the TLS SNI and certificate check still use the name, while no
   second DNS lookup happens between check and connect (DNS rebinding cannot swap the
   address);
4. follows redirects only when the caller asks (ingest: a few; webhooks: none), and each
   hop goes through steps 1 to 3 again.

Why the standard library and not an httpx transport: the app's run-time dependencies are
what Azure installs (requirements.txt has no httpx), and overriding `connect()` is the
smallest place where the checked address can be pinned. Environment proxies are not used
(a proxy would do its own resolution, out of our sight).

What a client may read never says what listens where: a refusal is `OutboundRefused` with
one message, every network failure (refused, reset, timed out, no DNS answer, TLS,
garbage instead of HTTP) is `OutboundUnreachable` with one generic message; the details go
to the log only.

    OperationsError
    └── OutboundError           an outbound request did not produce an HTTP response
        ├── OutboundRefused     the policy forbids the destination (or a redirect's)
        └── OutboundUnreachable nothing usable answered; the cause is in the log only
"""

from __future__ import annotations

import http.client
import ipaddress
import logging
import re
import socket
import ssl
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from urllib.parse import quote, urljoin, urlsplit

from operations.errors import OperationsError
from operations.settings import get_setting

__all__ = [
    "ALLOW_SETTING",
    "IPAddress",
    "OutboundError",
    "OutboundPolicy",
    "OutboundRefused",
    "OutboundResponse",
    "OutboundTarget",
    "OutboundUnreachable",
    "Resolver",
    "forbidden_reason",
    "literal_address",
    "outbound_request",
    "parse_outbound_url",
    "resolve_host",
]

log = logging.getLogger(__name__)

ALLOW_SETTING = "OPS_OUTBOUND_ALLOW"

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], list[IPAddress]]

# Letters, digits, hyphens (and underscores, which some DNS names carry), dot-separated.
_LABEL = r"[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?"
_HOST_NAME = re.compile(rf"(?=.{{1,253}}$){_LABEL}(\.{_LABEL})*", re.IGNORECASE)
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# Sent again only to the same origin after a redirect.
_CREDENTIAL_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})


class OutboundError(OperationsError):
    """An outbound request produced no HTTP response; the message is safe for clients."""


class OutboundRefused(OutboundError):
    """The destination (or a redirect's) is not one the app may connect to."""

    def __init__(self, host: str) -> None:
        self.host = host
        super().__init__(
            f"{host} is refused by the app's outbound policy: it is, or resolves to, a "
            "loopback, private, link-local or otherwise non-public address (an operator "
            f"can allow hosts and ranges with the {ALLOW_SETTING} app setting)"
        )


class OutboundUnreachable(OutboundError):
    """Nothing usable answered; deliberately one message whatever the cause."""

    def __init__(self, url: str) -> None:
        self.url = url
        super().__init__(f"{url} could not be reached")


# ------------------------------------------------------------------ the address policy

_FORBIDDEN_V4: tuple[tuple[str, str], ...] = (
    ("0.0.0.0/8", "an unspecified ('this network') address"),
    ("10.0.0.0/8", "a private (RFC 1918) address"),
    ("100.64.0.0/10", "a carrier-grade NAT (RFC 6598) address"),
    ("127.0.0.0/8", "a loopback address"),
    ("169.254.0.0/16", "a link-local address (where cloud metadata services listen)"),
    ("172.16.0.0/12", "a private (RFC 1918) address"),
    ("192.0.0.0/24", "an IETF protocol assignment"),
    ("192.0.2.0/24", "a documentation address"),
    ("192.168.0.0/16", "a private (RFC 1918) address"),
    ("198.18.0.0/15", "a benchmarking address"),
    ("198.51.100.0/24", "a documentation address"),
    ("203.0.113.0/24", "a documentation address"),
    ("224.0.0.0/4", "a multicast address"),
    ("240.0.0.0/4", "a reserved address"),
)
_FORBIDDEN_V6: tuple[tuple[str, str], ...] = (
    ("::/128", "an unspecified address"),
    ("::1/128", "a loopback address"),
    # Deprecated IPv4-compatible form: nothing legitimate uses it any more.
    ("::/96", "an IPv4-compatible IPv6 address"),
    ("64:ff9b:1::/48", "a local-use NAT64 address"),
    ("100::/64", "a discard-only address"),
    # Teredo, benchmarking (2001:2::/48) and other protocol assignments.
    ("2001::/23", "an IETF protocol assignment"),
    ("2001:db8::/32", "a documentation address"),
    ("3fff::/20", "a documentation address"),
    ("fc00::/7", "a unique local (RFC 4193) address"),
    ("fe80::/10", "a link-local address"),
    ("fec0::/10", "a site-local address"),
    ("ff00::/8", "a multicast address"),
)
_V4_TABLE = tuple((ipaddress.IPv4Network(net), why) for net, why in _FORBIDDEN_V4)
_V6_TABLE = tuple((ipaddress.IPv6Network(net), why) for net, why in _FORBIDDEN_V6)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def _embedded_v4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 form reaches: mapped (::ffff:a.b.c.d), NAT64, 6to4."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address.sixtofour


def forbidden_reason(address: IPAddress) -> str | None:
    """Why the policy refuses `address` by default (e.g. "a loopback address"), or None
    for a public address. Ignores OPS_OUTBOUND_ALLOW."""
    if isinstance(address, ipaddress.IPv6Address):
        address = _unscoped(address)
        inner = _embedded_v4(address)
        if inner is not None:
            why = forbidden_reason(inner)
            return f"an IPv6 form of {why}" if why else None
        for v6_network, why in _V6_TABLE:
            if address in v6_network:
                return why
    else:
        for v4_network, why in _V4_TABLE:
            if address in v4_network:
                return why
    # Whatever else the registries mark as not globally reachable.
    return None if address.is_global else "not a public address"


def _strip_zone(host: str) -> str:
    return host.split("%", 1)[0]


def _unscoped(address: ipaddress.IPv6Address) -> ipaddress.IPv6Address:
    """The address without its zone (fe80::1%eth0): ranges are matched without it."""
    return ipaddress.IPv6Address(_strip_zone(str(address)))


_NUMERIC_V4 = re.compile(r"[0-9a-fx.]+")


def literal_address(host: str) -> IPAddress | None:
    """The address `host` spells literally, in any form a resolver accepts: dotted quad,
    IPv6 (with or without zone), and the legacy IPv4 forms (`2130706433`, `0x7f.1`,
    `0177.0.0.1`, `127.1`) that getaddrinfo still reads as addresses; None for a name."""
    host = _strip_zone(host.lower().rstrip("."))
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if _NUMERIC_V4.fullmatch(host) and any(c.isdigit() for c in host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


@dataclass(frozen=True, slots=True)
class OutboundPolicy:
    """Which destinations outbound requests may reach: every public address, plus the
    host names and ranges an operator allowed (OPS_OUTBOUND_ALLOW)."""

    allowed_names: frozenset[str] = frozenset()
    allowed_networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def parse(cls, text: str) -> OutboundPolicy:
        """A policy from `OPS_OUTBOUND_ALLOW`'s syntax: comma-separated host names, IP
        addresses and CIDR ranges; a malformed entry fails loudly with the setting name."""
        names: set[str] = set()
        networks: list[IPNetwork] = []
        for raw in text.split(","):
            entry = raw.strip().lower()
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
                continue
            except ValueError:
                pass
            name = entry.rstrip(".")
            if "/" in name or ":" in name or not _HOST_NAME.fullmatch(name):
                raise ValueError(
                    f"app setting {ALLOW_SETTING} has {raw.strip()!r}, which is neither a "
                    "host name, an IP address nor a CIDR range (e.g. 127.0.0.0/8,localhost)"
                )
            names.add(name)
        return cls(frozenset(names), tuple(networks))

    @classmethod
    def from_settings(cls) -> OutboundPolicy:
        """The policy the app's settings describe (read on every call: cheap, and tests
        and operators can change it without a restart)."""
        return cls.parse(get_setting(ALLOW_SETTING) or "")

    def allows_name(self, host: str) -> bool:
        """True when the operator listed this host name itself."""
        return host.lower().rstrip(".") in self.allowed_names

    def refusal(self, address: IPAddress) -> str | None:
        """Why `address` is refused (see `forbidden_reason`), or None when it may be
        reached: public, or inside an allowed range (also in its IPv4-mapped form)."""
        if isinstance(address, ipaddress.IPv6Address):
            address = _unscoped(address)
        candidates: list[IPAddress] = [address]
        if isinstance(address, ipaddress.IPv6Address) and (inner := _embedded_v4(address)):
            candidates.append(inner)
        for candidate in candidates:
            if any(candidate in network for network in self.allowed_networks):
                return None
        return forbidden_reason(address)

    def literal_refusal(self, host: str) -> str | None:
        """For a URL's host: why it is refused when it spells a forbidden address
        literally (names are only judged once resolved, at request time), else None."""
        if self.allows_name(host):
            return None
        address = literal_address(host)
        return self.refusal(address) if address is not None else None

    def check_resolved(self, host: str, addresses: Sequence[IPAddress]) -> None:
        """Raise OutboundRefused unless every address `host` resolved to may be reached
        (one forbidden answer is enough: which one a connection would use is luck)."""
        if self.allows_name(host):
            return
        for address in addresses:
            why = self.refusal(address)
            if why:
                log.warning("outbound policy: %s resolves to %s, %s", host, address, why)
                raise OutboundRefused(host)


# ------------------------------------------------------------------------- URL parsing

_UNSAFE_URL_CHARS = re.compile(r"[\x00-\x20\x7f\\]")


@dataclass(frozen=True, slots=True)
class OutboundTarget:
    """A parsed http(s) URL: what a connection needs."""

    url: str
    scheme: str
    host: str  # lower-case, IDNA-encoded; an IPv6 literal without brackets
    port: int
    path: str  # path and query, percent-encoded, at least "/"

    @property
    def origin(self) -> tuple[str, str, int]:
        """(scheme, host, port): what decides whether credentials may follow a redirect."""
        return (self.scheme, self.host, self.port)


def parse_outbound_url(url: str) -> OutboundTarget:
    """Parse an absolute http(s) URL strictly; ValueError says, for a person, what is wrong."""
    if _UNSAFE_URL_CHARS.search(url):
        raise ValueError("must not contain spaces, backslashes or control characters")
    try:
        parts = urlsplit(url)
    except ValueError:
        raise ValueError(
            "is not a valid URL (an IPv6 address goes in closed brackets, e.g. "
            "https://[2001:db8::1]:8443/hook)"
        ) from None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("must be an absolute http or https URL, e.g. https://example.com/hook")
    if "@" in parts.netloc:
        raise ValueError(
            "must not carry a user name or password (user@host); the app sends no credentials"
        )
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port == 0:
        raise ValueError("has an invalid port: give a number from 1 to 65535, or none")
    host = parts.hostname or ""
    if parts.netloc.startswith("["):
        host = _strip_zone(host)  # zones are meaningless off this machine
    else:
        try:
            host = host.encode("idna").decode("ascii") if not host.isascii() else host
        except UnicodeError:
            host = ""
        if not _HOST_NAME.fullmatch(host.rstrip(".")):
            raise ValueError("must name a valid host, e.g. https://example.com/hook")
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    # http.client writes the request line as ASCII: percent-encode the rest (an IRI).
    path = quote(path, safe="/?#[]@!$&'()*+,;=%:-._~")
    return OutboundTarget(
        url=url,
        scheme=parts.scheme,
        host=host,
        port=port or (443 if parts.scheme == "https" else 80),
        path=path,
    )


# ------------------------------------------------------------------ connection and I/O


def resolve_host(host: str, port: int) -> list[IPAddress]:
    """Every address getaddrinfo gives for `host` (TCP), in its order; OSError if none."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses: list[IPAddress] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        address = ipaddress.ip_address(_strip_zone(str(sockaddr[0])))
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise OSError(f"no address for {host}")
    return addresses


def _connect_checked(
    addresses: Sequence[IPAddress], port: int, timeout: float | None
) -> socket.socket:
    """A TCP connection to the first of the checked addresses that accepts one."""
    last: OSError | None = None
    for address in addresses:
        try:
            sock = socket.create_connection((str(address), port), timeout)
        except OSError as error:
            last = error
            continue
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock
    raise last or OSError("no address to connect to")


class _CheckedHTTPConnection(http.client.HTTPConnection):
    """`http.client` with the socket pinned to addresses the policy already checked; the
    host name stays in the Host header."""

    def __init__(
        self, target: OutboundTarget, addresses: Sequence[IPAddress], timeout: float
    ) -> None:
        super().__init__(target.host, target.port, timeout=timeout)
        self.checked_addresses = tuple(addresses)

    def connect(self) -> None:
        """Connect to a checked address: never resolve self.host again."""
        self.sock = _connect_checked(self.checked_addresses, self.port, self.timeout)


class _CheckedHTTPSConnection(_CheckedHTTPConnection):
    """The same over TLS: SNI and the certificate check use the host name."""

    default_port = 443

    def __init__(
        self,
        target: OutboundTarget,
        addresses: Sequence[IPAddress],
        timeout: float,
        tls: ssl.SSLContext,
    ) -> None:
        super().__init__(target, addresses, timeout)
        self.tls = tls

    def connect(self) -> None:
        """TCP to a checked address, then TLS for the name."""
        plain = _connect_checked(self.checked_addresses, self.port, self.timeout)
        try:
            self.sock = self.tls.wrap_socket(plain, server_hostname=self.host)
        except BaseException:
            plain.close()
            raise


class OutboundResponse:
    """An HTTP response whose body is read as it arrives; close it (or use `with`)."""

    def __init__(
        self, url: str, response: http.client.HTTPResponse, connection: _CheckedHTTPConnection
    ) -> None:
        self.url = url
        self.status = int(response.status)
        self.headers = response.headers
        self._response = response
        self._connection = connection

    def read(self, size: int = -1) -> bytes:
        """Up to `size` bytes of the body (all with -1); b"" at its end. A broken-off body
        raises OutboundUnreachable."""
        try:
            return self._response.read(size if size >= 0 else None)
        except (OSError, http.client.HTTPException) as error:
            log.warning("outbound: reading %s broke off: %r", self.url, error)
            raise OutboundUnreachable(self.url) from None

    def close(self) -> None:
        """Release the connection."""
        self._response.close()
        self._connection.close()

    def __enter__(self) -> OutboundResponse:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def _send_once(
    method: str,
    target: OutboundTarget,
    body: bytes | None,
    headers: Mapping[str, str],
    timeout: float,
    policy: OutboundPolicy,
    resolver: Resolver,
    tls: ssl.SSLContext | None,
) -> OutboundResponse:
    literal = literal_address(target.host)
    try:
        addresses = [literal] if literal is not None else resolver(target.host, target.port)
    except (OSError, UnicodeError) as error:
        log.warning("outbound: cannot resolve %s: %r", target.host, error)
        raise OutboundUnreachable(target.url) from None
    policy.check_resolved(target.host, addresses)
    connection = (
        _CheckedHTTPSConnection(target, addresses, timeout, tls or ssl.create_default_context())
        if target.scheme == "https"
        else _CheckedHTTPConnection(target, addresses, timeout)
    )
    try:
        connection.request(method, target.path, body=body, headers=dict(headers))
        response = connection.getresponse()
    except (OSError, http.client.HTTPException, ValueError) as error:
        connection.close()
        log.warning("outbound: %s %s failed: %r", method, target.url, error)
        raise OutboundUnreachable(target.url) from None
    return OutboundResponse(target.url, response, connection)


def outbound_request(
    method: str,
    url: str,
    *,
    timeout: float,
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    max_redirects: int = 0,
    policy: OutboundPolicy | None = None,
    resolver: Resolver = resolve_host,
    tls: ssl.SSLContext | None = None,
) -> OutboundResponse:
    """Send one request through the policy; the response of the last hop, whatever its
    status (a 3xx when redirects ran out or are not followed).

    Follows up to `max_redirects` redirects, each checked like the first URL; a 303 (and
    a 301/302 of a POST) continues as a GET without body, and credentials go only to the
    first origin. Raises OutboundRefused or OutboundUnreachable, both with messages a
    client may read; ValueError for a malformed `url`. `resolver` and `tls` (the trust
    store; the system's by default) are for tests.
    """
    policy = policy if policy is not None else OutboundPolicy.from_settings()
    target = parse_outbound_url(url)
    first_origin = target.origin
    sent_headers = dict(headers or {})
    hops = 0
    while True:
        response = _send_once(method, target, body, sent_headers, timeout, policy, resolver, tls)
        location = response.headers.get("Location")
        if response.status not in _REDIRECT_STATUSES or not location or hops == max_redirects:
            return response
        try:
            next_target = parse_outbound_url(urljoin(target.url, location))
        except ValueError:
            log.warning("outbound: %s redirected to an unusable URL %r", target.url, location)
            return response  # the caller sees the 3xx it cannot follow
        response.close()
        hops += 1
        if response.status == 303 or (response.status in (301, 302) and method == "POST"):
            method, body = "GET", None
            sent_headers = {k: v for k, v in sent_headers.items() if k.lower() != "content-type"}
        if next_target.origin != first_origin:
            sent_headers = {
                k: v for k, v in sent_headers.items() if k.lower() not in _CREDENTIAL_HEADERS
            }
        target = next_target
