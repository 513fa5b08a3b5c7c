"""One HTTP attempt of a webhook delivery, through the SSRF guard (pagemill.egress.guard).

The URL is checked and its name resolved at every attempt, and the request goes to an address that was
checked (the name stays in ``Host`` and, for https, in SNI and the certificate check), as document fetches
do (pagemill.egress.fetch): a name that resolves elsewhere the second time gains nothing. Redirects are never
followed (a 3xx is a failed attempt), no proxy from the environment is used, and only the first KiB of
the answer is read.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import httpx

from pagemill import __version__
from pagemill.egress.guard import EgressPolicy, IPAddress, check_url, ip_literal, resolve_checked
from pagemill.egress.tls import default_ssl_context
from pagemill.errors import UrlFetchFailed

RESPONSE_BYTES = 1024
USER_AGENT = f"Pagemill-Webhooks/{__version__}"


@dataclass(frozen=True)
class Outcome:
    """What one attempt got: a status (and the first KiB of the body), or an error and no status."""

    status: int | None
    latency_ms: float
    response: str | None = None
    error: str | None = None
    retry_after: str | None = None

    @property
    def succeeded(self) -> bool:
        """Only a 2xx answer is a success (a redirect is not followed, and fails)."""
        return self.status is not None and 200 <= self.status < 300


def post(
    url: str,
    body: bytes,
    headers: dict[str, str],
    *,
    policy: EgressPolicy,
    timeout_s: float,
    dns_timeout_s: float,
) -> Outcome:
    """POST ``body`` to ``url`` once; never raises for a failure of the receiver or the network."""
    started = time.monotonic()

    def failed(error: str) -> Outcome:
        return Outcome(status=None, latency_ms=(time.monotonic() - started) * 1000, error=error)

    try:
        parsed = check_url(url)
        host = parsed.raw_host.decode("ascii")
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        addresses = resolve_checked(host, port, policy, timeout_s=dns_timeout_s)
    except UrlFetchFailed as exc:
        return failed(f"{exc.code}: {exc.message}")
    timeout = httpx.Timeout(timeout_s)
    last_error = "no address"
    with httpx.Client(
        timeout=timeout, verify=default_ssl_context(), follow_redirects=False, trust_env=False
    ) as client:
        for address in addresses:
            request = client.build_request(
                "POST",
                _pinned(parsed, address),
                content=body,
                headers={
                    **headers,
                    "content-type": "application/json",
                    "user-agent": USER_AGENT,
                    "accept-encoding": "identity",
                },
            )
            request.headers["host"] = parsed.netloc.decode("ascii")
            if parsed.scheme == "https" and ip_literal(host) is None:
                request.extensions["sni_hostname"] = host
            try:
                response = client.send(request, stream=True)
            except httpx.ConnectTimeout:
                last_error = f"connect timeout ({address})"
                continue
            except httpx.ConnectError as exc:
                last_error = f"connection failed ({address}): {_reason(exc)}"
                continue
            except httpx.TimeoutException:
                # Connected and sent: no answer in time. Not sent again to another address.
                return failed(f"timeout: no answer within {timeout_s:g} s")
            except httpx.HTTPError as exc:
                return failed(f"connection lost: {_reason(exc)}")
            latency_ms = (time.monotonic() - started) * 1000
            try:
                text = _read_head(response)
            finally:
                response.close()
            return Outcome(
                status=response.status_code,
                latency_ms=latency_ms,
                response=text,
                error=None if 200 <= response.status_code < 300 else _status_error(response),
                retry_after=response.headers.get("retry-after"),
            )
    return failed(last_error)


def _pinned(url: httpx.URL, address: IPAddress) -> httpx.URL:
    return url.copy_with(host=str(address), fragment=None)


def _read_head(response: httpx.Response) -> str:
    """The first RESPONSE_BYTES of the body as text; a body cut short or slow is what arrived so far."""
    head = b""
    try:
        for chunk in response.iter_raw():
            head += chunk
            if len(head) >= RESPONSE_BYTES:
                break
    except httpx.HTTPError:
        pass
    return head[:RESPONSE_BYTES].decode("utf-8", errors="replace")


def _status_error(response: httpx.Response) -> str:
    if 300 <= response.status_code < 400:
        location = response.headers.get("location")
        return f"redirect {response.status_code} not followed" + (f" (to {location})" if location else "")
    return f"status {response.status_code}"


def _reason(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__
