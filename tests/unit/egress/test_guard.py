"""The SSRF guard without the network: URL syntax, IP spellings, address classes, the allowlist, names
resolved by a stand-in resolver."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address, ip_address, ip_network

import pytest

from pagemill.egress.guard import (
    EgressPolicy,
    IPAddress,
    address_refusal,
    check_submission,
    check_url,
    ip_literal,
    resolve_checked,
)
from pagemill.errors import UrlForbidden, UrlUnreachable
from pagemill.settings import EgressSettings

OPEN = EgressPolicy()


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("0X7F000001", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("0177.0.0.01", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("127.0.1", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("017700000001", "127.0.0.1"),
        ("10.0.0.1.", "10.0.0.1"),
        ("0", "0.0.0.0"),
        ("0x", "0.0.0.0"),
        ("169.254.43518", "169.254.169.254"),
        ("[::1]", "::1"),
        ("::ffff:127.0.0.1", "::ffff:127.0.0.1"),
        ("fe80::1%25eth0", "fe80::1"),
    ],
)
def test_ip_literals_in_every_inet_aton_spelling(host: str, expected: str) -> None:
    assert ip_literal(host) == ip_address(expected)


@pytest.mark.parametrize("host", ["example.com", "localhost", "1.2.3.com", "0x7g.1", "08.1.1.1", "1e3"])
def test_names_are_not_literals(host: str) -> None:
    assert ip_literal(host) is None


@pytest.mark.parametrize("host", ["256.1.1.1", "1.2.3.4.5", "1.16777216", "4294967296", "0x100000000"])
def test_numbers_that_are_no_address_are_refused(host: str) -> None:
    with pytest.raises(UrlForbidden) as info:
        ip_literal(host)
    assert info.value.details["reason"] == "invalid_address"


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("10.0.0.1", "private"),
        ("172.16.5.4", "private"),
        ("192.168.1.1", "private"),
        ("100.64.0.1", "cgnat"),
        ("169.254.1.1", "link_local"),
        ("169.254.169.254", "metadata"),
        ("fd00:ec2::254", "metadata"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("233.1.1.1", "multicast"),
        ("ff0e::1", "multicast"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "reserved"),
        ("192.0.2.1", "documentation"),
        ("198.18.0.1", "benchmarking"),
        ("fc00::1", "private"),
        ("fe80::1", "link_local"),
        ("::ffff:127.0.0.1", "ipv4_mapped"),
        ("::ffff:8.8.8.8", "ipv4_mapped"),
        ("::127.0.0.1", "ipv4_compatible"),
        ("64:ff9b::127.0.0.1", "embedded_ipv4_loopback"),
        ("64:ff9b::169.254.169.254", "embedded_ipv4_metadata"),
        ("64:ff9b:1::a00:1", "nat64_local"),
        ("2002:7f00:1::1", "embedded_ipv4_loopback"),
        ("2002:a00:1::1", "embedded_ipv4_private"),
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "teredo"),
        ("2001:db8::1", "documentation"),
    ],
)
def test_addresses_that_are_not_global_are_refused(address: str, reason: str) -> None:
    assert address_refusal(ip_address(address), OPEN) == reason


@pytest.mark.parametrize(
    "address", ["8.8.8.8", "93.184.216.34", "2606:4700:4700::1111", "64:ff9b::8.8.8.8", "2002:808:808::1"]
)
def test_public_addresses_pass(address: str) -> None:
    assert address_refusal(ip_address(address), OPEN) is None


def test_allow_networks_open_ranges_but_never_the_metadata_service() -> None:
    policy = EgressPolicy.from_settings(
        EgressSettings.model_validate({"allow_networks": ["127.0.0.2/32", "10.0.0.0/8", "169.254.0.0/16"]})
    )
    assert address_refusal(IPv4Address("127.0.0.2"), policy) is None
    assert address_refusal(IPv4Address("10.20.30.40"), policy) is None
    assert address_refusal(IPv4Address("127.0.0.1"), policy) == "loopback"
    assert address_refusal(IPv4Address("169.254.1.1"), policy) is None
    assert address_refusal(IPv4Address("169.254.169.254"), policy) == "metadata"
    # A v6 spelling of an allowed v4 address is judged by what it wraps (NAT64), not opened by accident.
    assert address_refusal(IPv6Address("64:ff9b::a00:1"), policy) is None
    assert address_refusal(IPv6Address("64:ff9b::7f00:1"), policy) == "embedded_ipv4_loopback"
    assert policy.allow_networks == (
        ip_network("127.0.0.2/32"),
        ip_network("10.0.0.0/8"),
        ip_network("169.254.0.0/16"),
    )


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("file:///etc/passwd", "scheme"),
        ("gopher://127.0.0.1:70/_x", "scheme"),
        ("ftp://example.com/a.pdf", "scheme"),
        ("//example.com/a.pdf", "scheme"),
        ("http://user:pw@example.com/a.pdf", "userinfo"),
        ("http://example.com\\@127.0.0.1/", "userinfo"),
        ("http:///a.pdf", "no_host"),
        ("http://ex%61mple.com/", "invalid_host"),
        ("http://exa mple.com/", "invalid_host"),
        ("http://" + "a" * 5000 + ".com/", "too_long"),
    ],
)
def test_urls_refused_by_form(url: str, reason: str) -> None:
    with pytest.raises(UrlForbidden) as info:
        check_url(url)
    assert info.value.details["reason"] == reason


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/",
        "http://[::1]/",
        "http://10.0.0.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::ffff:127.0.0.1]/",
        "http://2130706433/",
        "http://0x7f000001/",
        "http://0177.0.0.1/",
        "http://127.1/",
        "http://localhost/",
        "http://LOCALHOST./",
        "http://api.localhost/",
        "https://[fd00:ec2::254]/",
    ],
)
def test_submission_refuses_literal_and_localhost_hosts_without_dns(url: str) -> None:
    with pytest.raises(UrlForbidden):
        check_submission(url, OPEN)


def test_submission_keeps_names_for_the_worker_and_drops_the_fragment() -> None:
    assert (
        check_submission("https://Example.com/a%20b.pdf?x=1#top", OPEN) == "https://example.com/a%20b.pdf?x=1"
    )
    allowed = EgressPolicy(allow_networks=(ip_network("127.0.0.2/32"),))
    assert check_submission("http://127.0.0.2:8080/d.pdf", allowed) == "http://127.0.0.2:8080/d.pdf"


class FakeResolver:
    """Answers from a table and counts lookups."""

    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table
        self.calls: list[str] = []

    def __call__(self, host: str, port: int, timeout_s: float) -> list[IPAddress]:
        self.calls.append(host)
        if host not in self.table:
            raise UrlUnreachable("no such name", reason="dns", host=host)
        return [ip_address(a) for a in self.table[host]]


def test_a_name_resolving_to_loopback_is_refused() -> None:
    resolver = FakeResolver({"evil.test": ["127.0.0.1"]})
    with pytest.raises(UrlForbidden) as info:
        resolve_checked("evil.test", 80, OPEN, timeout_s=1, resolver=resolver)
    assert info.value.code == "URL_FORBIDDEN"
    assert (info.value.details["reason"], info.value.details["address"]) == ("loopback", "127.0.0.1")


def test_one_forbidden_record_refuses_the_whole_name() -> None:
    resolver = FakeResolver({"mixed.test": ["93.184.216.34", "10.0.0.5"]})
    with pytest.raises(UrlForbidden) as info:
        resolve_checked("mixed.test", 443, OPEN, timeout_s=1, resolver=resolver)
    assert info.value.details["address"] == "10.0.0.5"


def test_public_names_resolve_to_their_checked_addresses_and_literals_skip_dns() -> None:
    resolver = FakeResolver({"docs.test": ["93.184.216.34", "2606:2800:220:1::", "93.184.216.34"]})
    assert resolve_checked("docs.test", 443, OPEN, timeout_s=1, resolver=resolver) == [
        ip_address("93.184.216.34"),
        ip_address("2606:2800:220:1::"),
    ]
    assert resolve_checked("8.8.8.8", 80, OPEN, timeout_s=1, resolver=resolver) == [ip_address("8.8.8.8")]
    with pytest.raises(UrlForbidden):
        resolve_checked("0x7f000001", 80, OPEN, timeout_s=1, resolver=resolver)
    assert resolver.calls == ["docs.test"]
