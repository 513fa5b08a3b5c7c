"""The SSRF guard: which URLs Pagemill may fetch and which addresses it may connect to.

One module for every outbound request a client can steer (document URLs now, webhook endpoints later):

* :func:`check_url` parses a URL and refuses anything but ``http``/``https`` with a host and no userinfo.
* :func:`ip_literal` reads a host as an IP address the way the C resolver would (``inet_aton``: ``127.1``,
  ``2130706433``, ``0x7f000001``, ``0177.0.0.1``), so an odd spelling never slips past as a "name".
* :func:`address_refusal` says why an address may not be connected to: everything that is not a global
  unicast address (loopback, private, link-local, CGNAT, multicast, reserved, unspecified, documentation,
  benchmarking, cloud metadata, Teredo), IPv4-mapped and -compatible v6 addresses; NAT64 and 6to4 addresses
  are judged by the v4 address inside. ``egress.allow_networks`` opens ranges, except the metadata services.
* :func:`check_submission` is the API's check: syntax and literal addresses only, no DNS (the worker
  resolves, never the API).
* :func:`resolve_checked` is the worker's: resolve the name (bounded in time), refuse it if *any* of its
  addresses is refused, and return the addresses to connect to: the caller connects to those and only
  those (:mod:`pagemill.egress.fetch`), so a name that answers differently the second time (DNS rebinding)
  gains nothing.
"""

from __future__ import annotations

import re
import socket
import string
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network

import httpx

from pagemill.errors import UrlForbidden, UrlTimeout, UrlUnreachable
from pagemill.settings import EgressSettings

IPAddress = IPv4Address | IPv6Address
Network = IPv4Network | IPv6Network
Resolver = Callable[[str, int, float], list[IPAddress]]
"""``(host, port, timeout_s) -> addresses``; raises UrlUnreachable or UrlTimeout."""

ALLOWED_SCHEMES = frozenset({"http", "https"})
MAX_URL_CHARS = 4096

# Refused whatever egress.allow_networks says: credentials live there (AWS, GCP, Azure, OpenStack use
# 169.254.169.254; AWS's IPv6 endpoint is fd00:ec2::254), and "this host" (0.0.0.0/8, ::) reaches local
# services on Linux.
_NEVER: tuple[tuple[Network, str], ...] = tuple(
    (ip_network(cidr), reason)
    for cidr, reason in (
        ("169.254.169.254/32", "metadata"),
        ("fd00:ec2::254/128", "metadata"),
        ("0.0.0.0/8", "unspecified"),
        ("::/128", "unspecified"),
    )
)

# Named explicitly rather than left to ``ipaddress.is_global`` alone, whose lists change between Python
# releases (and which counts multicast as global). IANA special-purpose registries, v4 and v6.
_FORBIDDEN: tuple[tuple[Network, str], ...] = tuple(
    (ip_network(cidr), reason)
    for cidr, reason in (
        ("0.0.0.0/8", "unspecified"),
        ("10.0.0.0/8", "private"),
        ("100.64.0.0/10", "cgnat"),
        ("127.0.0.0/8", "loopback"),
        ("169.254.0.0/16", "link_local"),
        ("172.16.0.0/12", "private"),
        ("192.0.0.0/24", "reserved"),
        ("192.0.2.0/24", "documentation"),
        ("192.88.99.0/24", "reserved"),  # the 6to4 relay anycast
        ("192.168.0.0/16", "private"),
        ("198.18.0.0/15", "benchmarking"),
        ("198.51.100.0/24", "documentation"),
        ("203.0.113.0/24", "documentation"),
        ("224.0.0.0/4", "multicast"),
        ("240.0.0.0/4", "reserved"),  # and 255.255.255.255
        ("::/128", "unspecified"),
        ("::1/128", "loopback"),
        ("100::/64", "reserved"),  # discard-only
        ("64:ff9b:1::/48", "nat64_local"),
        ("2001::/32", "teredo"),  # the client's v4 address is obfuscated inside: refused outright
        ("2001:db8::/32", "documentation"),
        ("3fff::/20", "documentation"),
        ("fc00::/7", "private"),  # unique local, fd00:ec2::254 among them
        ("fe80::/10", "link_local"),
        ("fec0::/10", "link_local"),  # deprecated site-local
        ("ff00::/8", "multicast"),
    )
)
_COMPATIBLE = ip_network("::/96")
_NAT64 = ip_network("64:ff9b::/96")
_HOST_NAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,62})(?:\.[A-Za-z0-9_-]{1,63})*\.?$")


@dataclass(frozen=True)
class EgressPolicy:
    """What the guard allows beyond public addresses: ``egress.allow_networks``."""

    allow_networks: tuple[Network, ...] = ()

    @classmethod
    def from_settings(cls, settings: EgressSettings) -> EgressPolicy:
        """The policy of the ``egress`` settings group."""
        return cls(allow_networks=tuple(settings.allow_networks))

    def allows(self, address: IPAddress) -> bool:
        """Whether ``address`` lies in one of the explicitly allowed networks."""
        return any(address.version == net.version and address in net for net in self.allow_networks)


def check_url(raw: str) -> httpx.URL:
    """Parse ``raw`` and refuse (UrlForbidden) anything but an http(s) URL with a host and no userinfo.

    A URL the parser rejects is refused too, and if its host is an IP literal in a spelling the parser does
    not take (``0177.0.0.1``), the refusal names the address it stands for."""
    if len(raw) > MAX_URL_CHARS:
        raise UrlForbidden(f"The URL is longer than {MAX_URL_CHARS} characters.", reason="too_long")
    try:
        url = httpx.URL(raw.strip())
    except httpx.InvalidURL as exc:
        _refuse_unparsed_literal(raw)
        raise UrlForbidden("This is not a valid URL.", reason="invalid_url") from exc
    if url.scheme not in ALLOWED_SCHEMES:
        raise UrlForbidden(
            "Only http and https URLs can be fetched.", reason="scheme", scheme=url.scheme or None
        )
    if url.userinfo:
        # Credentials in a URL end up in logs and Referer headers, and user@host tricks readers about the
        # host. A server that needs them is not one Pagemill should log into.
        raise UrlForbidden("URLs with a user name or password cannot be fetched.", reason="userinfo")
    host = url.raw_host.decode("ascii")
    if not host:
        raise UrlForbidden("The URL has no host.", reason="no_host")
    if url.port is not None and not 0 < url.port < 65536:
        raise UrlForbidden("The URL's port is not valid.", reason="invalid_port")
    if ip_literal(host) is None and not _HOST_NAME.match(host):
        raise UrlForbidden("The URL's host is not a valid host name.", reason="invalid_host")
    return url


def _refuse_unparsed_literal(raw: str) -> None:
    """Raise UrlForbidden naming the address if the host of an unparseable URL is a refused IP literal."""
    from urllib.parse import urlsplit

    try:
        host = urlsplit(raw.strip()).hostname
    except ValueError:
        return
    address = ip_literal(host) if host else None
    if address is not None:
        check_address(address, EgressPolicy())


def ip_literal(host: str) -> IPAddress | None:
    """The address ``host`` names if it is an IP literal in any spelling a resolver accepts, else None.

    IPv6 with or without brackets (a zone ``%eth0`` is dropped); IPv4 in every ``inet_aton`` form: one to
    four parts, each decimal, octal (leading 0) or hex (0x), the last filling the remaining bytes. A host
    made of numeric parts that do not form an address (``256.1.1.1``, ``1.2.3.4.5``) is refused
    (UrlForbidden) rather than taken for a name, as the URL standard does.
    """
    text = host.strip("[]")
    if ":" in text:
        try:
            return IPv6Address(text.split("%", 1)[0])
        except ValueError:
            return None
    text = text.removesuffix(".")
    parts = text.split(".")
    values: list[int] = []
    for part in parts:
        value = _inet_aton_part(part)
        if value is None:
            return None  # a name (some part is not a number)
        values.append(value)
    if len(values) > 4 or any(value > 255 for value in values[:-1]) or values[-1] >= 256 ** (5 - len(values)):
        raise UrlForbidden(
            "The URL's host is a number that is not a valid IPv4 address.", reason="invalid_address"
        )
    number = values[-1]
    for position, value in enumerate(values[:-1]):
        number += value << (8 * (3 - position))
    return IPv4Address(number)


def _inet_aton_part(part: str) -> int | None:
    """One dotted part as ``inet_aton`` reads it, or None if it is not a number (then the host is a name)."""
    if part[:2].lower() == "0x":
        digits = part[2:]
        if not digits:
            return 0  # "0x" alone is 0 to inet_aton and to the URL standard
        return int(digits, 16) if all(c in string.hexdigits for c in digits) else None
    if not part.isascii() or not part.isdigit():
        return None
    if len(part) > 1 and part.startswith("0"):
        return int(part, 8) if all(c in string.octdigits for c in part) else None
    return int(part)


def embedded_ipv4(address: IPv6Address) -> IPv4Address | None:
    """The v4 address a v6 address stands for: IPv4-mapped, IPv4-compatible, NAT64 (64:ff9b::/96) or
    6to4 (2002::/16); None for a plain v6 address."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64 or (address in _COMPATIBLE and int(address) > 1):
        return IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def address_refusal(address: IPAddress, policy: EgressPolicy) -> str | None:
    """Why ``address`` may not be connected to (a short reason such as ``loopback``), or None."""
    for network, reason in _NEVER:
        if address.version == network.version and address in network:
            return reason
    if policy.allows(address):
        return None
    if isinstance(address, IPv6Address):
        # Mapped and compatible forms have no business in a URL or a DNS answer: whatever they wrap, they
        # are refused. NAT64 and 6to4 are real routes to the v4 address inside, judged by it.
        if address.ipv4_mapped is not None:
            return "ipv4_mapped"
        if address in _COMPATIBLE and int(address) > 1:  # ::1 is loopback, below
            return "ipv4_compatible"
        inner = embedded_ipv4(address)
        if inner is not None:
            inner_refusal = address_refusal(inner, policy)
            return None if inner_refusal is None else f"embedded_ipv4_{inner_refusal}"
    for network, reason in _FORBIDDEN:
        if address.version == network.version and address in network:
            return reason
    if not address.is_global or address.is_multicast:
        return "not_global"
    return None


def check_address(address: IPAddress, policy: EgressPolicy) -> None:
    """Raise UrlForbidden if ``address`` may not be connected to."""
    reason = address_refusal(address, policy)
    if reason is not None:
        raise UrlForbidden(
            "The URL's host is, or resolves to, an address Pagemill may not connect to "
            f"({reason.replace('_', ' ')}).",
            reason=reason,
            address=str(address),
        )


def check_submission(raw: str, policy: EgressPolicy) -> str:
    """The API's check of a document URL, without DNS: the URL as it will be fetched, or UrlForbidden.

    Refuses a bad scheme, userinfo, a literal address that is not allowed, and ``localhost`` names (RFC 6761:
    always loopback). Other names are resolved and checked by the worker before it connects."""
    url = check_url(raw)
    host = url.raw_host.decode("ascii")
    address = ip_literal(host)
    if address is not None:
        check_address(address, policy)
    elif host.lower().rstrip(".") == "localhost" or host.lower().rstrip(".").endswith(".localhost"):
        raise UrlForbidden(
            "The URL's host is, or resolves to, an address Pagemill may not connect to (loopback).",
            reason="loopback",
            host=host,
        )
    return str(url.copy_with(fragment=None))


def system_resolver(host: str, port: int, timeout_s: float) -> list[IPAddress]:
    """The addresses the system resolver gives ``host``, within ``timeout_s``.

    ``getaddrinfo`` has no timeout of its own: it runs in a daemon thread that is abandoned (not waited for)
    when time is up, so a slow DNS server costs this fetch ``timeout_s`` at most."""
    outcome: list[list[IPAddress] | BaseException] = []

    def lookup() -> None:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
            outcome.append([ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos])
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=lookup, name=f"resolve-{host}", daemon=True)
    thread.start()
    thread.join(timeout_s)
    if not outcome:
        raise UrlTimeout(
            "The URL's host name did not resolve in time.", transient=True, reason="dns", host=host
        )
    result = outcome[0]
    if isinstance(result, socket.gaierror):
        # EAI_AGAIN: the DNS server failed for now; anything else (no such name) will not pass by itself.
        transient = result.errno == socket.EAI_AGAIN
        raise UrlUnreachable(
            "The URL's host name could not be resolved.", transient=transient, reason="dns", host=host
        ) from result
    if isinstance(result, BaseException):
        raise UrlUnreachable(
            "The URL's host name could not be resolved.", transient=True, reason="dns", host=host
        ) from result
    return result


def resolve_checked(
    host: str,
    port: int,
    policy: EgressPolicy,
    *,
    timeout_s: float,
    resolver: Resolver = system_resolver,
) -> list[IPAddress]:
    """The addresses to connect to for ``host``: the literal itself, or the name's addresses if every one of
    them is allowed (UrlForbidden if any is not: a name with one public and one private record is refused,
    not filtered, so which one a connection uses can never matter). Deduplicated, in resolver order."""
    literal = ip_literal(host)
    addresses: Sequence[IPAddress] = [literal] if literal is not None else resolver(host, port, timeout_s)
    if not addresses:
        raise UrlUnreachable("The URL's host name has no address.", reason="dns", host=host)
    for address in addresses:
        check_address(address, policy)
    return list(dict.fromkeys(addresses))
