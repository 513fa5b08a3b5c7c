"""Fetching through the SSRF guard over real sockets: the canary matrix, redirects, TLS to a pinned address,
caps on bytes and time, and retries.

The document server listens on 127.0.0.2 and is the only address allowed (``allow_networks``); the canary
listens on 127.0.0.1 (and ::1) and must see no connection at all.
"""

from __future__ import annotations

import io
import ssl
from collections.abc import Iterator
from ipaddress import ip_address, ip_network
from pathlib import Path

import pytest

from pagemill.egress.fetch import Fetched, FetchLimits, fetch_to
from pagemill.egress.guard import EgressPolicy, IPAddress, Resolver, system_resolver
from pagemill.errors import (
    UrlFetchFailed,
    UrlForbidden,
    UrlHttpError,
    UrlTimeout,
    UrlTooLarge,
    UrlUnreachable,
)
from pagemill.jobs.url_source import fetch_with_retries
from tests.support.egress_servers import (
    DOC_HOST,
    Canary,
    DocServer,
    doc_server,
    ipv6_loopback_available,
    make_certificates,
)

pytestmark = pytest.mark.integration

POLICY = EgressPolicy(allow_networks=(ip_network(f"{DOC_HOST}/32"),))
LIMITS = FetchLimits(max_bytes=256 * 1024, connect_timeout_s=2, read_timeout_s=2, total_timeout_s=10)
PDF = b"%PDF-1.4\n" + b"x" * 1000 + b"\n%%EOF\n"


@pytest.fixture(scope="module")
def canary() -> Iterator[Canary]:
    listener = Canary("127.0.0.1")
    yield listener
    listener.close()


@pytest.fixture(scope="module")
def canary6() -> Iterator[Canary | None]:
    listener = Canary("::1") if ipv6_loopback_available() else None
    yield listener
    if listener is not None:
        listener.close()


@pytest.fixture(scope="module")
def server() -> Iterator[DocServer]:
    with doc_server() as running:
        running.state.documents["a.pdf"] = PDF
        yield running


def fetch(
    url: str, resolver: Resolver = system_resolver, verify: ssl.SSLContext | None = None
) -> tuple[bytes, Fetched]:
    sink = io.BytesIO()
    result = fetch_to(url, sink, policy=POLICY, limits=LIMITS, resolver=resolver, verify=verify)
    return sink.getvalue(), result


def hostile_urls(canary: Canary, canary6: Canary | None, server: DocServer) -> list[str]:
    port = canary.port
    urls = [
        f"http://127.0.0.1:{port}/",
        f"http://10.0.0.1:{port}/",
        "http://169.254.169.254/latest/meta-data/",
        f"http://[::ffff:127.0.0.1]:{port}/",
        f"http://2130706433:{port}/",
        f"http://0x7f000001:{port}/",
        f"http://0177.0.0.1:{port}/",
        f"http://127.1:{port}/",
        # Through the system resolver: localhost is 127.0.0.1 (and ::1).
        f"http://localhost:{port}/",
        server.url(f"/redirect?to=http://127.0.0.1:{port}/"),
        server.url(f"/redirect?to=http://localhost:{port}/x"),
        server.url(f"/redirect?to=http://2130706433:{port}/"),
        server.url("/redirect?to=file:///etc/passwd"),
        f"file://127.0.0.1:{port}/etc/passwd",
        f"gopher://127.0.0.1:{port}/_GET%20/",
        f"http://user:pw@127.0.0.1:{port}/",
    ]
    if canary6 is not None:
        urls += [f"http://[::1]:{canary6.port}/", server.url(f"/redirect?to=http://[::1]:{canary6.port}/")]
    return urls


def test_ssrf_matrix_every_hostile_url_is_refused_and_the_canary_sees_nothing(
    canary: Canary, canary6: Canary | None, server: DocServer
) -> None:
    refused: dict[str, str] = {}
    for url in hostile_urls(canary, canary6, server):
        with pytest.raises(UrlForbidden) as info:
            fetch(url)
        refused[url] = str(info.value.details.get("reason"))
    assert canary.connections == 0
    assert canary6 is None or canary6.connections == 0
    # The redirects were followed as far as the allowed server, and refused at the hop.
    assert sum(1 for path, _ in server.state.requests if path == "/redirect") >= 5
    assert refused[f"http://localhost:{canary.port}/"] == "loopback"
    assert refused[server.url("/redirect?to=file:///etc/passwd")] == "scheme"


def test_an_allowed_server_is_fetched_with_its_name_in_the_host_header(server: DocServer) -> None:
    body, result = fetch(server.url("/doc/a.pdf"))
    assert body == PDF
    assert result.size == len(PDF) and result.status == 200 and result.redirects == 0
    assert server.state.requests[-1] == ("/doc/a.pdf", f"{DOC_HOST}:{server.port}")


def test_redirects_are_followed_to_allowed_hosts_and_capped(server: DocServer) -> None:
    body, result = fetch(server.url(f"/redirect?to={server.url('/doc/a.pdf')}"))
    assert body == PDF and result.redirects == 1
    chain = server.url("/doc/a.pdf")
    for _ in range(LIMITS.max_redirects + 1):
        chain = server.url(f"/redirect?to={chain.replace('?', '%3F').replace('=', '%3D')}")
    with pytest.raises(UrlHttpError) as info:
        fetch(chain)
    assert info.value.details["reason"] == "too_many_redirects"


def test_a_name_is_resolved_once_and_the_checked_address_is_used(canary: Canary, server: DocServer) -> None:
    # DNS rebinding: the first answer is the allowed server, every later one the canary. The fetch must
    # connect to the first answer and never ask again.
    answers = [[ip_address(DOC_HOST)]]
    calls: list[str] = []

    def rebinding(host: str, port: int, timeout_s: float) -> list[IPAddress]:
        calls.append(host)
        return answers.pop(0) if answers else [ip_address("127.0.0.1")]

    body, _ = fetch(f"http://rebind.test:{server.port}/doc/a.pdf", resolver=rebinding)
    assert body == PDF and calls == ["rebind.test"] and canary.connections == 0
    assert server.state.requests[-1] == ("/doc/a.pdf", f"rebind.test:{server.port}")


def test_https_to_the_pinned_address_keeps_sni_and_certificate_checks_on_the_name(tmp_path: Path) -> None:
    certs = make_certificates(tmp_path, "docs.test")
    sni: list[str] = []
    table = {"docs.test": [ip_address(DOC_HOST)], "other.test": [ip_address(DOC_HOST)]}

    def resolver(host: str, port: int, timeout_s: float) -> list[IPAddress]:
        return table[host] if host in table else system_resolver(host, port, timeout_s)

    with doc_server(tls=certs.server_context(sni), name="docs.test") as tls_server:
        tls_server.state.documents["a.pdf"] = PDF
        body, _ = fetch(tls_server.url("/doc/a.pdf"), resolver=resolver, verify=certs.client_context())
        assert body == PDF and sni == ["docs.test"]
        # The same address under a name the certificate does not cover fails the check: no silent trust.
        with pytest.raises(UrlUnreachable) as info:
            fetch(
                f"https://other.test:{tls_server.port}/doc/a.pdf",
                resolver=resolver,
                verify=certs.client_context(),
            )
        assert info.value.details["reason"] == "tls" and not info.value.transient
        # And the default trust store does not know the test CA.
        with pytest.raises(UrlUnreachable):
            fetch(tls_server.url("/doc/a.pdf"), resolver=resolver)


def test_http_errors_carry_the_status(server: DocServer) -> None:
    with pytest.raises(UrlHttpError) as info:
        fetch(server.url("/status/404"))
    assert info.value.details["status"] == 404 and not info.value.transient
    with pytest.raises(UrlHttpError) as info:
        fetch(server.url("/status/502"))
    assert info.value.details["status"] == 502 and info.value.transient


def test_a_body_over_the_cap_stops_early(server: DocServer) -> None:
    with pytest.raises(UrlTooLarge) as info:
        fetch(server.url("/endless"))
    assert info.value.details["max_bytes"] == LIMITS.max_bytes
    # The server could write at most the cap plus what socket buffers held when the client hung up.
    sent = server.state.bytes_sent.get("/endless", 0)
    assert sent < LIMITS.max_bytes + 16 * 1024 * 1024, sent
    with pytest.raises(UrlTooLarge) as info:
        fetch(server.url("/declared"))
    assert info.value.details["declared_bytes"] == 10**12


def test_slow_servers_time_out(server: DocServer) -> None:
    quick = FetchLimits(max_bytes=LIMITS.max_bytes, read_timeout_s=0.3, total_timeout_s=5)
    with pytest.raises(UrlTimeout) as info:
        fetch_to(server.url("/slow"), io.BytesIO(), policy=POLICY, limits=quick)
    assert info.value.details["reason"] == "read" and info.value.transient
    with pytest.raises(UrlTimeout) as info:
        fetch_to(server.url("/silent"), io.BytesIO(), policy=POLICY, limits=quick)
    assert info.value.details["reason"] == "read"
    # Each read is quick, the whole is not: the total cap ends it.
    short = FetchLimits(max_bytes=LIMITS.max_bytes, read_timeout_s=2, total_timeout_s=0.5)
    with pytest.raises(UrlTimeout) as info:
        fetch_to(server.url("/trickle"), io.BytesIO(), policy=POLICY, limits=short)
    assert info.value.details["reason"] == "total"


def test_transient_failures_are_retried_with_backoff_then_succeed_or_give_up(server: DocServer) -> None:
    server.state.documents["flaky.pdf"] = PDF
    server.state.failures_left["flaky.pdf"] = 2
    delays: list[float] = []
    spool = io.BytesIO()
    result = fetch_with_retries(
        server.url("/flaky/flaky.pdf"),
        spool,
        policy=POLICY,
        limits=LIMITS,
        attempts=3,
        backoff_s=1.0,
        sleep=delays.append,
    )
    assert spool.getvalue() == PDF and result.size == len(PDF)
    assert len(delays) == 2 and 0.5 <= delays[0] <= 1.5 and 1.0 <= delays[1] <= 3.0

    # Nothing listens on this port of the allowed address: refused, retried, then given up.
    closed = f"http://{DOC_HOST}:1/"
    delays.clear()
    with pytest.raises(UrlUnreachable) as info:
        fetch_with_retries(
            closed, io.BytesIO(), policy=POLICY, limits=LIMITS, attempts=2, backoff_s=0, sleep=delays.append
        )
    assert info.value.details["attempts"] == 2 and len(delays) == 1

    # Permanent failures are not retried.
    delays.clear()
    with pytest.raises(UrlFetchFailed) as failed:
        fetch_with_retries(
            server.url("/status/404"),
            io.BytesIO(),
            policy=POLICY,
            limits=LIMITS,
            attempts=3,
            backoff_s=0,
            sleep=delays.append,
        )
    assert failed.value.details["attempts"] == 1 and delays == []


@pytest.mark.skipif(not ipv6_loopback_available(), reason="no IPv6 loopback on this machine")
def test_an_ipv6_address_is_pinned_too(canary: Canary) -> None:
    allowed = EgressPolicy(allow_networks=(ip_network("::1/128"),))
    with doc_server(host="::1") as v6:
        v6.state.documents["a.pdf"] = PDF
        sink = io.BytesIO()
        fetch_to(
            f"http://v6.test:{v6.port}/doc/a.pdf",
            sink,
            policy=allowed,
            limits=LIMITS,
            resolver=lambda host, port, timeout_s: [ip_address("::1")],
        )
        assert sink.getvalue() == PDF and v6.state.requests == [("/doc/a.pdf", f"v6.test:{v6.port}")]
    # Allowing ::1 opens neither 127.0.0.1 nor its mapped spelling.
    for url in (f"http://127.0.0.1:{canary.port}/", f"http://[::ffff:127.0.0.1]:{canary.port}/"):
        with pytest.raises(UrlForbidden):
            fetch_to(url, io.BytesIO(), policy=allowed, limits=LIMITS)
    assert canary.connections == 0
