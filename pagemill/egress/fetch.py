"""Fetching a URL through the SSRF guard: pinned addresses, manual redirects, caps on bytes and time.

Every hop (the URL, then each redirect target) is checked by :mod:`pagemill.egress.guard` and resolved
once; the request goes to the address that was checked, written into the request URL, while the ``Host``
header and TLS keep the name: httpcore's ``sni_hostname`` request extension makes the TLS handshake send the
name as SNI and verify the certificate against it. Nothing resolves the name a second time, so DNS
rebinding gains nothing, and no proxy from the environment is used (``trust_env=False``).

The body is streamed raw (``Accept-Encoding: identity``, no decoding: a small compressed answer cannot
inflate past the cap in memory) into a sink, and stopped as soon as it passes ``max_bytes``.
"""

from __future__ import annotations

import contextlib
import hashlib
import ssl
import time
from dataclasses import dataclass
from typing import IO

import httpx

from pagemill import __version__
from pagemill.egress.guard import (
    EgressPolicy,
    IPAddress,
    Resolver,
    check_url,
    ip_literal,
    resolve_checked,
    system_resolver,
)
from pagemill.egress.tls import default_ssl_context
from pagemill.errors import UrlFetchFailed, UrlHttpError, UrlTimeout, UrlTooLarge, UrlUnreachable
from pagemill.settings import EgressSettings

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
USER_AGENT = f"Pagemill/{__version__} (+document fetch)"


@dataclass(frozen=True)
class FetchLimits:
    """Caps of one fetch attempt."""

    max_bytes: int
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 30.0
    total_timeout_s: float = 120.0
    dns_timeout_s: float = 5.0
    max_redirects: int = 5

    @classmethod
    def from_settings(cls, settings: EgressSettings, *, max_bytes: int) -> FetchLimits:
        """The limits of the ``egress`` settings group with a byte cap."""
        return cls(
            max_bytes=max_bytes,
            connect_timeout_s=settings.connect_timeout_s,
            read_timeout_s=settings.read_timeout_s,
            total_timeout_s=settings.total_timeout_s,
            dns_timeout_s=settings.dns_timeout_s,
            max_redirects=settings.max_redirects,
        )


@dataclass(frozen=True)
class Fetched:
    """What a successful fetch wrote to its sink."""

    url: str
    """The URL the body came from (after redirects)."""
    status: int
    content_type: str | None
    size: int
    sha256: str
    redirects: int


def fetch_to(
    raw_url: str,
    sink: IO[bytes],
    *,
    policy: EgressPolicy,
    limits: FetchLimits,
    resolver: Resolver = system_resolver,
    verify: ssl.SSLContext | None = None,
) -> Fetched:
    """GET ``raw_url`` through the guard and write its body to ``sink``; one attempt, no retries.

    Raises a :class:`pagemill.errors.UrlFetchFailed`: UrlForbidden (the URL or a redirect target is not
    allowed), UrlUnreachable (name, connection, TLS), UrlHttpError (a 4xx/5xx answer, ``details.status``;
    too many redirects), UrlTooLarge (over ``limits.max_bytes``) or UrlTimeout. ``transient`` on the error
    says whether another attempt may succeed. ``sink`` may hold a partial body after a failure.

    ``verify`` replaces the default trust store (certifi's CAs) for HTTPS, e.g. with a private CA."""
    deadline = time.monotonic() + limits.total_timeout_s
    url = check_url(raw_url)
    with httpx.Client(
        verify=verify if verify is not None else default_ssl_context(),
        trust_env=False,
        follow_redirects=False,
        headers={"User-Agent": USER_AGENT, "Accept": "*/*", "Accept-Encoding": "identity"},
    ) as client:
        for redirects in range(limits.max_redirects + 1):
            response = _open(client, url, policy, limits, deadline, resolver)
            with contextlib.closing(response):
                location = response.headers.get("location")
                if response.status_code in _REDIRECTS and location:
                    url = _redirect_target(url, location, response.status_code)
                    continue
                _check_status(response)
                size, digest = _stream_body(response, sink, limits.max_bytes, deadline)
                return Fetched(
                    url=str(url),
                    status=response.status_code,
                    content_type=response.headers.get("content-type"),
                    size=size,
                    sha256=digest,
                    redirects=redirects,
                )
    raise UrlHttpError(
        f"The URL redirected more than {limits.max_redirects} times.",
        reason="too_many_redirects",
        max_redirects=limits.max_redirects,
    )


def _redirect_target(current: httpx.URL, location: str, status: int) -> httpx.URL:
    """The next hop, checked like the first URL (a redirect to file:// or to a userinfo URL is refused)."""
    try:
        joined = current.join(location)
    except (httpx.InvalidURL, ValueError) as exc:  # UnicodeError is a ValueError
        raise UrlHttpError(
            "The URL redirected to an invalid location.", status=status, reason="bad_redirect"
        ) from exc
    return check_url(str(joined))


def _remaining(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise UrlTimeout("Fetching the URL took longer than allowed.", transient=True, reason="total")
    return left


def _open(
    client: httpx.Client,
    url: httpx.URL,
    policy: EgressPolicy,
    limits: FetchLimits,
    deadline: float,
    resolver: Resolver,
) -> httpx.Response:
    """Send the GET for ``url`` to its checked addresses in turn (the next one only if connecting failed);
    the streaming response."""
    host = url.raw_host.decode("ascii")
    port = url.port or (443 if url.scheme == "https" else 80)
    addresses = resolve_checked(
        host, port, policy, timeout_s=min(limits.dns_timeout_s, _remaining(deadline)), resolver=resolver
    )
    last: UrlFetchFailed | None = None
    for address in addresses:
        left = _remaining(deadline)
        timeout = httpx.Timeout(
            connect=min(limits.connect_timeout_s, left),
            read=min(limits.read_timeout_s, left),
            write=min(limits.read_timeout_s, left),
            pool=min(limits.connect_timeout_s, left),
        )
        request = client.build_request("GET", _pinned(url, address), timeout=timeout)
        request.headers["Host"] = url.netloc.decode("ascii")
        if url.scheme == "https" and ip_literal(host) is None:
            # TLS to the pinned address, with SNI and certificate checks on the name.
            request.extensions["sni_hostname"] = host
        try:
            return client.send(request, stream=True)
        except httpx.ConnectError as exc:
            last = _connect_failure(exc, address)
        except httpx.ConnectTimeout as exc:
            last = UrlTimeout(
                "Connecting to the URL's server timed out.",
                transient=True,
                reason="connect",
                address=str(address),
            )
            last.__cause__ = exc
        except httpx.TransportError as exc:
            # Connected, then no answer in time or a broken one: the request was sent, so it is not sent
            # again to another address.
            raise _transport_failure(exc) from exc
    assert last is not None  # resolve_checked never returns no address
    raise last


def _pinned(url: httpx.URL, address: IPAddress) -> httpx.URL:
    return url.copy_with(host=str(address), fragment=None)


def _connect_failure(exc: httpx.ConnectError, address: IPAddress) -> UrlFetchFailed:
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ssl.SSLError):
            # A certificate that does not match the name, or an unknown CA, will not fix itself.
            return UrlUnreachable(
                "The URL's server failed the TLS handshake or certificate check.",
                reason="tls",
                address=str(address),
            )
        cause = cause.__cause__ or cause.__context__
    return UrlUnreachable(
        "The URL's server could not be connected to.", transient=True, reason="connect", address=str(address)
    )


def _transport_failure(exc: httpx.TransportError) -> UrlFetchFailed:
    if isinstance(exc, httpx.TimeoutException):
        return UrlTimeout("The URL's server stopped sending.", transient=True, reason="read")
    return UrlUnreachable(
        "The connection to the URL's server failed.", transient=True, reason="connection_lost"
    )


def _check_status(response: httpx.Response) -> None:
    status = response.status_code
    if 200 <= status < 300 and status not in (204, 205):
        return
    # 5xx, 408 and 429 may pass; every other answer is the server's final word.
    transient = status >= 500 or status in (408, 429)
    raise UrlHttpError(
        f"The URL's server answered {status}.", transient=transient, status=status, reason="status"
    )


def _stream_body(
    response: httpx.Response, sink: IO[bytes], max_bytes: int, deadline: float
) -> tuple[int, str]:
    declared = response.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise UrlTooLarge(
            f"The document at the URL is {int(declared)} bytes; at most {max_bytes} are allowed.",
            max_bytes=max_bytes,
            declared_bytes=int(declared),
        )
    digest = hashlib.sha256()
    size = 0
    try:
        # No chunk_size: httpx would gather bytes until a chunk is full, and a server trickling a byte at a
        # time would never reach the total-time check below.
        for chunk in response.iter_raw():
            size += len(chunk)
            if size > max_bytes:
                # Stop reading at once: the rest is never downloaded (closing the response drops it).
                raise UrlTooLarge(
                    f"The document at the URL is larger than {max_bytes} bytes.", max_bytes=max_bytes
                )
            sink.write(chunk)
            digest.update(chunk)
            _remaining(deadline)
    except httpx.TransportError as exc:
        raise _transport_failure(exc) from exc
    return size, digest.hexdigest()
