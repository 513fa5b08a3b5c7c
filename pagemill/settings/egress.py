"""Settings of outbound HTTP: where Pagemill may connect to fetch document URLs (and, later, webhooks)."""

from __future__ import annotations

from ipaddress import IPv4Network, IPv6Network

from pydantic import BaseModel, Field


class EgressSettings(BaseModel):
    """The SSRF guard (pagemill.egress) and the limits of every outbound fetch."""

    allow_networks: list[IPv4Network | IPv6Network] = Field(
        default_factory=list,
        description="CIDRs Pagemill may connect to although they are not public (loopback, private, "
        'link-local, CGNAT...), e.g. ["10.20.0.0/16"] for an on-premise document server; for document URLs '
        "and webhook endpoints alike. Empty: only public addresses. Cloud metadata addresses "
        "(169.254.169.254, fd00:ec2::254) and unspecified addresses stay refused whatever this says.",
    )
    connect_timeout_s: float = Field(
        default=10.0, gt=0, description="Longest wait for a TCP (and TLS) connection to a URL's server."
    )
    read_timeout_s: float = Field(
        default=30.0, gt=0, description="Longest wait for the next bytes of a URL's answer."
    )
    total_timeout_s: float = Field(
        default=120.0,
        gt=0,
        description="Longest time one fetch attempt may take, name lookup, redirects and body included; "
        "then URL_TIMEOUT. Keep fetch_attempts times this well below worker.lease_s, or the sweeper takes "
        "a long fetch for a stalled job and starts a second one.",
    )
    dns_timeout_s: float = Field(
        default=5.0, gt=0, description="Longest wait for a URL's host name to resolve."
    )
    max_redirects: int = Field(
        default=5, ge=0, le=20, description="Redirects a fetch follows (each target checked again)."
    )
    fetch_attempts: int = Field(
        default=3,
        ge=1,
        le=10,
        description="Attempts of a fetch that failed transiently (connection refused, 5xx, timeouts) "
        "before the job fails with the error.",
    )
    retry_backoff_s: float = Field(
        default=2.0,
        ge=0,
        description="Wait before the second attempt of a fetch; doubled for each further one, with jitter.",
    )
