"""Who is calling: the authenticated principal, and the actor recorded in the audit log."""

from __future__ import annotations

import getpass
import re
from dataclasses import dataclass, field

ADMIN_SCOPE = "admin"
"""The scope that opens the admin endpoints (managing any tenant's keys)."""


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: the tenant it acts for, its tier and scopes.

    ``subject`` names it in the audit log (``key:<id>``, ``oidc:<sub>``, ``anonymous``); ``rate_key`` is what
    request rate limits count against (one API key, or one token subject).
    """

    tenant_id: str
    tier: str
    subject: str
    rate_key: str
    scopes: frozenset[str] = field(default_factory=frozenset)

    @property
    def is_admin(self) -> bool:
        """True when the principal holds the admin scope."""
        return ADMIN_SCOPE in self.scopes


@dataclass(frozen=True)
class Actor:
    """Who did something and from where, as the audit log records it."""

    subject: str
    tenant_id: str | None = None
    ip: str | None = None
    user_agent: str | None = None
    request_id: str | None = None

    @classmethod
    def cli(cls) -> Actor:
        """The operator running a `pagemill` command on this machine."""
        try:
            user = getpass.getuser()
        except (KeyError, OSError):
            user = "unknown"
        return cls(subject=f"cli:{user}")


TENANT_ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
"""Tenant ids: lower-case slugs, so they are safe in logs, URLs and storage keys."""
