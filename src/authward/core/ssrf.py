"""The one outbound-fetch guard: screen a URL's addresses, then fetch pinned to the checked IP.

Spec: authward spec/stores.md §5.2 (special-use address table, "Python guard", fetch steps 2-9),
§5.3 (back-channel logout URIs use the same guard at delivery time), §7 item 5; RFC 6052 §2.2
(NAT64 address layout), RFC 8215 (64:ff9b:1::/48), RFC 3056 (6to4), RFC 4380 (Teredo),
RFC 9110 §7.2 (Host), RFC 6066 §3 (SNI).

Every server-initiated HTTP request (CIMD documents, a client's ``jwks_uri``, back-channel
logout delivery) goes through :class:`GuardedFetcher`. It resolves the host once per address
family, refuses the whole answer if any address is special-use (:func:`is_blocked`), then
connects to the first checked address (IPv4 first) while the ``Host`` header, the TLS SNI and the
certificate check stay on the hostname, so DNS rebinding between check and connect is
impossible. Redirects are never followed, retries never made, no proxy or environment variable is
consulted, and each fetch uses its own connection (no pooled connection is ever reused under
another hostname). Failures are typed outcomes, never exceptions.
"""

from __future__ import annotations

import asyncio
import functools
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address
from typing import ClassVar, Final, Literal, Protocol
from urllib.parse import urlencode

import httpx

from authward.core.cache_freshness import CacheDirectives, parse_cache_headers
from authward.core.http import Headers

__all__ = [
    "BLOCKED_IPV4",
    "BLOCKED_IPV6",
    "BadContentType",
    "BlockedIp",
    "FetchFailure",
    "FetchOutcome",
    "Fetched",
    "GuardedFetcher",
    "InvalidUrl",
    "Resolver",
    "ScreenOutcome",
    "Screened",
    "SystemResolver",
    "TooLarge",
    "TransportFailure",
    "UnexpectedStatus",
    "Unresolvable",
    "embedded_ipv4",
    "is_blocked",
    "screen",
]

IPAddress = IPv4Address | IPv6Address
Family = Literal[4, 6]

#: Special-use IPv4 ranges (spec §5.2, the single source of truth; 15 ranges).
BLOCKED_IPV4: Final[tuple[IPv4Network, ...]] = tuple(
    IPv4Network(net)
    for net in (
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.0.2.0/24",
        "192.88.99.0/24",
        "192.168.0.0/16",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/4",
        "240.0.0.0/4",
    )
)
#: IPv6 ranges blocked outright (spec §5.2): ULA, link-local, multicast, Teredo, ORCHIDv2,
#: documentation, loopback, unspecified.
BLOCKED_IPV6: Final[tuple[IPv6Network, ...]] = tuple(
    IPv6Network(net)
    for net in (
        "fc00::/7",
        "fe80::/10",
        "ff00::/8",
        "2001::/32",
        "2001:20::/28",
        "2001:db8::/32",
        "::1/128",
        "::/128",
    )
)
_NAT64_WELL_KNOWN: Final = IPv6Network("64:ff9b::/96")
_NAT64_LOCAL_USE: Final = IPv6Network("64:ff9b:1::/48")
_IPV4_COMPATIBLE: Final = IPv6Network("::/96")
#: IANA marks these parts of 2001::/23 "globally reachable". Python before 3.11.10/3.12.4 calls
#: the whole /23 non-global, so the exceptions are restored here (2001:20::/28 stays blocked by
#: the table above).
_IETF_PROTOCOL_ASSIGNMENTS: Final = IPv6Network("2001::/23")
_GLOBAL_IN_IETF_ASSIGNMENTS: Final[tuple[IPv6Network, ...]] = tuple(
    IPv6Network(net)
    for net in ("2001:1::1/128", "2001:1::2/128", "2001:3::/32", "2001:4:112::/48", "2001:30::/28")
)
_LOOPBACK_V4: Final = IPv4Network("127.0.0.0/8")
_LOOPBACK_V6: Final = IPv6Address("::1")

_DEFAULT_ACCEPT: Final = "application/json"
_CHUNK: Final = 16_384


# --- the address check -----------------------------------------------------------------------


def embedded_ipv4(address: IPv6Address) -> tuple[IPv4Address, ...]:
    """The IPv4 addresses an IPv6 address carries, in a fixed order; empty if none.

    IPv4-mapped ``::ffff:0:0/96``, 6to4 ``2002::/16`` (bits 16-47), Teredo (server and
    client), NAT64 ``64:ff9b::/96`` (low 32 bits), NAT64 local use ``64:ff9b:1::/48`` (RFC 6052
    /48 layout: bits 48-63 and 72-87, skipping the "u" octet) and IPv4-compatible ``::/96``.
    """
    found: list[IPv4Address] = []
    if address.ipv4_mapped is not None:
        found.append(address.ipv4_mapped)
    if address.sixtofour is not None:
        found.append(address.sixtofour)
    if address.teredo is not None:
        found.extend(address.teredo)
    value = int(address)
    if address in _NAT64_WELL_KNOWN or address in _IPV4_COMPATIBLE:
        found.append(IPv4Address(value & 0xFFFF_FFFF))
    if address in _NAT64_LOCAL_USE:
        high = (value >> 64) & 0xFFFF
        low = (value >> 40) & 0xFFFF
        found.append(IPv4Address((high << 16) | low))
    return tuple(found)


def _ipv4_blocked(address: IPv4Address) -> bool:
    return any(address in net for net in BLOCKED_IPV4) or not address.is_global


def _ipv6_global(address: IPv6Address) -> bool:
    if address in _IETF_PROTOCOL_ASSIGNMENTS:
        return any(address in net for net in _GLOBAL_IN_IETF_ASSIGNMENTS)
    return address.is_global


def _loopback_exempt(address: IPAddress) -> bool:
    if isinstance(address, IPv4Address):
        return address in _LOOPBACK_V4
    mapped = address.ipv4_mapped
    return address == _LOOPBACK_V6 or (mapped is not None and mapped in _LOOPBACK_V4)


def _parse(ip: str | IPAddress) -> IPAddress:
    if isinstance(ip, IPv4Address | IPv6Address):
        return ip
    return ip_address(ip.strip("[]"))


def is_blocked(ip: str | IPAddress, *, allow_loopback: bool = False) -> bool:
    """True when ``ip`` is special-use and must never be connected to.

    Blocked: anything in :data:`BLOCKED_IPV4` / :data:`BLOCKED_IPV6`, anything that is not
    globally reachable (``is_global``, corrected for the IANA exceptions older Pythons miss), and
    any IPv6 form carrying an IPv4 address (:func:`embedded_ipv4`) whose IPv4 is blocked; such a
    form is judged by its IPv4 alone. ``allow_loopback`` (development and tests) exempts exactly
    127.0.0.0/8, ``::1`` and ``::ffff:127.x.y.z``; every other class, NAT64 or 6to4 forms of
    loopback included, stays blocked. A string that is not an IP address raises ValueError.
    """
    address = _parse(ip)
    if allow_loopback and _loopback_exempt(address):
        return False
    if isinstance(address, IPv4Address):
        return _ipv4_blocked(address)
    bare = IPv6Address(int(address))  # drop any %scope before comparing
    if any(bare in net for net in BLOCKED_IPV6):
        return True
    carried = embedded_ipv4(bare)
    if carried:
        return any(_ipv4_blocked(v4) for v4 in carried)
    return not _ipv6_global(bare)


# --- resolving -------------------------------------------------------------------------------


class Resolver(Protocol):
    """Look up one address family of a host name: 4 (A records) or 6 (AAAA records).

    Return the addresses as strings, possibly none. The guard calls it exactly once per family
    per fetch; an exception counts as an empty answer for that family.
    """

    def __call__(self, hostname: str, family: Family) -> Awaitable[Sequence[str]]: ...


class SystemResolver:
    """The default :class:`Resolver`: the event loop's ``getaddrinfo`` (the system resolver)."""

    async def __call__(self, hostname: str, family: Family) -> Sequence[str]:
        """Return the addresses of ``hostname`` in ``family``; a lookup failure is empty."""
        loop = asyncio.get_running_loop()
        af = socket.AF_INET if family == 4 else socket.AF_INET6
        try:
            infos = await loop.getaddrinfo(hostname, None, family=af, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError):
            return ()
        return tuple(dict.fromkeys(str(info[4][0]) for info in infos))


# --- outcomes --------------------------------------------------------------------------------

InvalidUrlReason = Literal["not_a_url", "not_https", "has_userinfo", "no_host"]


@dataclass(frozen=True, slots=True)
class Screened:
    """A URL whose every resolved address passed: connect to ``ip``, present ``hostname``.

    ``hostname`` is the ASCII (IDNA) host used for SNI and the certificate check; ``authority``
    is ``host[:port]`` for the ``Host`` header (the port only when not the scheme default).
    """

    ip: IPAddress
    hostname: str
    authority: str
    url: httpx.URL


@dataclass(frozen=True, slots=True)
class InvalidUrl:
    """The URL is not one the guard fetches (spec: ``{invalid_url, reason}``)."""

    kind: ClassVar[str] = "invalid_url"
    reason: InvalidUrlReason


@dataclass(frozen=True, slots=True)
class Unresolvable:
    """Neither family resolved to any address."""

    kind: ClassVar[str] = "unresolvable"
    hostname: str


@dataclass(frozen=True, slots=True)
class BlockedIp:
    """A resolved address is special-use; ``ip`` is the first blocked one (IPv4 first)."""

    kind: ClassVar[str] = "blocked_ip"
    ip: str


@dataclass(frozen=True, slots=True)
class UnexpectedStatus:
    """The response status was not the expected one (3xx included: no redirect is followed)."""

    kind: ClassVar[str] = "status"
    status: int


@dataclass(frozen=True, slots=True)
class BadContentType:
    """The response is not JSON (``application/json`` or ``application/*+json``), or encoded."""

    kind: ClassVar[str] = "bad_content_type"
    content_type: str | None


@dataclass(frozen=True, slots=True)
class TooLarge:
    """The body exceeded ``limit`` bytes; reading stopped there."""

    kind: ClassVar[str] = "too_large"
    limit: int


@dataclass(frozen=True, slots=True)
class TransportFailure:
    """Connecting, TLS, sending or receiving failed, or a timeout or the deadline passed."""

    kind: ClassVar[str] = "transport"
    reason: str


@dataclass(frozen=True, slots=True)
class Fetched:
    """A response that passed every check. ``body`` is raw and not yet trusted."""

    status: int
    headers: Headers
    body: bytes
    ip: str

    @property
    def content_type(self) -> str | None:
        """The media type, trimmed and lower-cased, without parameters; None when absent."""
        return _media_type(self.headers.get("content-type"))

    def cache_directives(self) -> CacheDirectives:
        """The response's ``Cache-Control`` / ``Expires`` freshness inputs (spec §3.8)."""
        return parse_cache_headers(
            self.headers.get_all("cache-control"), self.headers.get_all("expires")
        )


ScreenOutcome = Screened | InvalidUrl | Unresolvable | BlockedIp
FetchFailure = (
    InvalidUrl
    | Unresolvable
    | BlockedIp
    | UnexpectedStatus
    | BadContentType
    | TooLarge
    | TransportFailure
)
FetchOutcome = Fetched | FetchFailure


# --- screening -------------------------------------------------------------------------------


async def screen(
    url: str,
    *,
    resolver: Resolver | None = None,
    allow_loopback: bool = False,
    allow_http_loopback: bool = False,
) -> ScreenOutcome:
    """Check ``url`` and every address its host resolves to, before any connection.

    The URL must be ``https`` with a host and no userinfo. ``allow_http_loopback`` (tests and
    local development only) also admits ``http`` when every resolved address is an exempt
    loopback address. An IP-literal host is screened as it is; a name is resolved through
    ``resolver`` (default :class:`SystemResolver`) exactly once for A and once for AAAA. An
    empty union is :class:`Unresolvable`; any blocked address makes the whole answer
    :class:`BlockedIp` (the first blocked, IPv4 results first). Otherwise the first address,
    IPv4 first, is the one to connect to.
    """
    try:
        parsed = httpx.URL(url)
        host = parsed.raw_host.decode("ascii")
    except (httpx.InvalidURL, UnicodeError, TypeError):
        return InvalidUrl("not_a_url")
    if parsed.port is not None and not 0 < parsed.port < 65_536:
        return InvalidUrl("not_a_url")
    scheme = parsed.scheme
    if scheme not in ("https", "http") or (scheme == "http" and not allow_http_loopback):
        return InvalidUrl("not_https")
    if not host:
        return InvalidUrl("no_host")
    if parsed.userinfo:
        return InvalidUrl("has_userinfo")
    literal = _literal(host)
    if literal is not None:
        addresses: list[IPAddress] = [literal]
    else:
        resolved = await _resolve(resolver or SystemResolver(), host)
        if isinstance(resolved, BlockedIp):
            return resolved
        addresses = resolved
        if not addresses:
            return Unresolvable(host)
    for address in addresses:
        if is_blocked(address, allow_loopback=allow_loopback):
            return BlockedIp(str(address))
    if scheme == "http" and not all(_loopback_exempt(a) for a in addresses):
        return InvalidUrl("not_https")
    netloc = f"[{host}]" if ":" in host else host
    authority = netloc if parsed.port is None else f"{netloc}:{parsed.port}"
    return Screened(ip=addresses[0], hostname=host, authority=authority, url=parsed)


def _literal(host: str) -> IPAddress | None:
    try:
        return ip_address(host.strip("[]"))
    except ValueError:
        return None


async def _resolve(resolver: Resolver, host: str) -> list[IPAddress] | BlockedIp:
    answers: list[IPAddress] = []
    family: Family
    for family in (4, 6):
        try:
            raw = await resolver(host, family)
        except Exception:  # a failing family counts as empty (spec §5.2 step 2)
            raw = ()
        for text in raw:
            try:
                address = _parse(text)
            except ValueError:
                return BlockedIp(str(text))  # an answer that is no address is never connected to
            if address not in answers:
                answers.append(address)
    return answers


# --- fetching --------------------------------------------------------------------------------


TransportFactory = Callable[[], httpx.AsyncBaseTransport]


@functools.cache
def default_tls() -> ssl.SSLContext:
    """The certificate-verifying TLS context every fetch shares (httpx's default: the certifi
    CA bundle, hostname checks on). Built once per process: building one reads the whole CA
    bundle, which costs tens of milliseconds, far more than the fetch it would serve."""
    return httpx.create_ssl_context()


class GuardedFetcher:
    """The SSRF-guarded HTTP client for every outbound request the server makes.

    ``resolver`` defaults to the system resolver. ``allow_loopback`` admits loopback addresses
    only (development); ``allow_http_loopback`` additionally admits ``http`` URLs whose host
    resolves to loopback only (tests). ``ssl_context`` replaces the default certificate store
    (tests with their own CA). ``transport_factory`` builds the transport for one fetch (tests
    inject ``httpx.MockTransport``); the default opens a fresh connection per fetch without
    retries, proxies or environment lookups.
    """

    def __init__(
        self,
        *,
        resolver: Resolver | None = None,
        allow_loopback: bool = False,
        allow_http_loopback: bool = False,
        ssl_context: ssl.SSLContext | None = None,
        transport_factory: TransportFactory | None = None,
        user_agent: str = "authward",
    ) -> None:
        self._resolver: Resolver = resolver or SystemResolver()
        self._allow_loopback = allow_loopback
        self._allow_http_loopback = allow_http_loopback
        self._ssl_context = ssl_context
        self._transport_factory = transport_factory
        self._user_agent = user_agent

    def with_loopback(self, allow_loopback: bool) -> GuardedFetcher:
        """A fetcher like this one (same resolver, TLS context and transport) whose loopback
        exemption is ``allow_loopback``: loopback addresses only, and ``http`` to them as well
        (development and tests only; the CIMD and back-channel logout ``allow_loopback``
        settings). ``False`` returns this fetcher unchanged."""
        if not allow_loopback:
            return self
        return GuardedFetcher(
            resolver=self._resolver,
            allow_loopback=True,
            allow_http_loopback=True,
            ssl_context=self._ssl_context,
            transport_factory=self._transport_factory,
            user_agent=self._user_agent,
        )

    async def get_json(
        self,
        url: str,
        *,
        max_bytes: int,
        timeout_seconds: float,
        deadline_seconds: float | None = None,
    ) -> FetchOutcome:
        """GET a JSON document (CIMD documents, a client's ``jwks_uri``).

        Sends ``Accept: application/json``. Success needs status exactly 200, a media type of
        ``application/json`` or ``application/*+json``, no content coding, and at most
        ``max_bytes`` of body (a body of exactly ``max_bytes`` passes). ``timeout_seconds``
        bounds connecting and each read; ``deadline_seconds`` (default: ``timeout_seconds``)
        bounds the whole fetch.
        """
        return await self._fetch(
            "GET",
            url,
            content=None,
            content_type=None,
            json_only=True,
            max_bytes=max_bytes,
            timeout_seconds=timeout_seconds,
            deadline_seconds=deadline_seconds,
        )

    async def post_form(
        self,
        url: str,
        form: Iterable[tuple[str, str]],
        *,
        max_bytes: int,
        timeout_seconds: float,
        deadline_seconds: float | None = None,
    ) -> FetchOutcome:
        """POST ``application/x-www-form-urlencoded`` fields (back-channel logout delivery).

        Any 2xx status is success and the body (at most ``max_bytes``) is returned whatever its
        type; anything else is :class:`UnexpectedStatus`. Timeouts as in :meth:`get_json`.
        """
        body = urlencode(list(form)).encode("ascii")
        return await self._fetch(
            "POST",
            url,
            content=body,
            content_type="application/x-www-form-urlencoded",
            json_only=False,
            max_bytes=max_bytes,
            timeout_seconds=timeout_seconds,
            deadline_seconds=deadline_seconds,
        )

    async def _fetch(
        self,
        method: Literal["GET", "POST"],
        url: str,
        *,
        content: bytes | None,
        content_type: str | None,
        json_only: bool,
        max_bytes: int,
        timeout_seconds: float,
        deadline_seconds: float | None,
    ) -> FetchOutcome:
        if max_bytes < 0 or timeout_seconds <= 0:
            raise ValueError("max_bytes must be >= 0 and timeout_seconds positive")
        screened = await screen(
            url,
            resolver=self._resolver,
            allow_loopback=self._allow_loopback,
            allow_http_loopback=self._allow_http_loopback,
        )
        if not isinstance(screened, Screened):
            return screened
        headers = {
            "Host": screened.authority,
            "Accept": _DEFAULT_ACCEPT,
            "Accept-Encoding": "identity",
            "User-Agent": self._user_agent,
        }
        if content_type is not None:
            headers["Content-Type"] = content_type
        target = screened.url.copy_with(host=str(screened.ip), fragment=None)
        extensions = {"sni_hostname": screened.hostname}
        deadline = timeout_seconds if deadline_seconds is None else deadline_seconds
        try:
            async with asyncio.timeout(deadline), self._client(timeout_seconds) as client:
                request = client.build_request(
                    method, target, headers=headers, content=content, extensions=extensions
                )
                response = await client.send(request, stream=True)
                try:
                    return await self._read(
                        response, screened, json_only=json_only, max_bytes=max_bytes
                    )
                finally:
                    await response.aclose()
        except TimeoutError:
            return TransportFailure("deadline")
        except httpx.TimeoutException as error:
            return TransportFailure(f"timeout ({type(error).__name__})")
        except httpx.HTTPError as error:
            return TransportFailure(type(error).__name__)
        except (OSError, ssl.SSLError) as error:
            return TransportFailure(type(error).__name__)

    def _client(self, timeout_seconds: float) -> httpx.AsyncClient:
        transport = (
            self._transport_factory()
            if self._transport_factory is not None
            else httpx.AsyncHTTPTransport(
                verify=self._ssl_context if self._ssl_context is not None else default_tls(),
                trust_env=False,
                retries=0,
                limits=httpx.Limits(max_connections=1, max_keepalive_connections=0),
            )
        )
        return httpx.AsyncClient(
            transport=transport,
            follow_redirects=False,
            trust_env=False,
            timeout=httpx.Timeout(timeout_seconds),
        )

    @staticmethod
    async def _read(
        response: httpx.Response, screened: Screened, *, json_only: bool, max_bytes: int
    ) -> FetchOutcome:
        status = response.status_code
        if (json_only and status != 200) or not 200 <= status <= 299:
            return UnexpectedStatus(status)
        if json_only:
            media = _media_type(response.headers.get("content-type"))
            if media is None or not (
                media == "application/json"
                or (media.startswith("application/") and media.endswith("+json"))
            ):
                return BadContentType(media)
        coding = response.headers.get("content-encoding", "identity").strip().lower()
        if coding not in ("", "identity"):
            return BadContentType(f"content-encoding {coding}")
        declared = response.headers.get("content-length")
        if declared is not None and declared.strip().isdigit() and int(declared) > max_bytes:
            return TooLarge(max_bytes)
        body = bytearray()
        async for chunk in response.aiter_bytes(_CHUNK):
            body.extend(chunk)
            if len(body) > max_bytes:
                return TooLarge(max_bytes)
        return Fetched(
            status=status,
            headers=Headers(response.headers.multi_items()),
            body=bytes(body),
            ip=str(screened.ip),
        )


def _media_type(value: str | None) -> str | None:
    if value is None:
        return None
    media = value.split(";", 1)[0].strip().lower()
    return media or None
