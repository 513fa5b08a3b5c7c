"""Bearer JWTs from an OpenID Connect issuer, verified against its JWKS and mapped to a :class:`Principal`.

Signing keys come from ``oidc.jwks_url`` or else the ``jwks_uri`` of the issuer's discovery document.
PyJWT's :class:`jwt.PyJWKClient` caches the key set for ``jwks_cache_s`` and refetches it when a token
names an unknown ``kid`` (key rotation). A bad token is a 401; an unreachable identity provider a 503.
"""

from __future__ import annotations

import json
import logging
import threading
import urllib.request
from typing import Any
from urllib.error import HTTPError

import jwt

from pagemill.errors import DependencyUnavailable, Unauthorized
from pagemill.settings import TIER_NAMES, OidcSettings
from pagemill.tenancy.principal import ADMIN_SCOPE, TENANT_ID_PATTERN, Principal

log = logging.getLogger(__name__)


KID_REFRESH_COOLDOWN_S = 10.0
"""Least time between JWKS refetches forced by unknown kids (capped at ``jwks_cache_s``): tokens with
made-up kids must not hammer the identity provider, nor stall verification behind the client's lock."""

_UNAVAILABLE = "The identity provider's signing keys could not be fetched; try again shortly."

# Checked in order, so subclasses come first (InvalidSignatureError is a DecodeError).
_REASONS: tuple[tuple[type[Exception], str], ...] = (
    (jwt.ExpiredSignatureError, "expired"),
    (jwt.ImmatureSignatureError, "not_yet_valid"),
    (jwt.InvalidIssuerError, "issuer"),
    (jwt.InvalidAudienceError, "audience"),
    (jwt.InvalidSignatureError, "signature"),
    (jwt.InvalidAlgorithmError, "algorithm"),
    (jwt.MissingRequiredClaimError, "missing_claim"),
    (jwt.InvalidKeyError, "key"),  # e.g. an RSA key below 2048 bits
    (jwt.PyJWKClientError, "unknown_kid"),  # fetch failures never get here: _JwksClient made them 503s
)


def _invalid(reason: str) -> Unauthorized:
    return Unauthorized(f"The bearer token is not valid: {reason.replace('_', ' ')}.", reason=reason)


def _reason(exc: jwt.PyJWTError) -> str:
    if isinstance(exc, jwt.MissingRequiredClaimError) and exc.claim == "aud":
        return "audience"  # PyJWT reports a missing aud as a missing claim
    return next((reason for cls, reason in _REASONS if isinstance(exc, cls)), "malformed")


class _JwksClient(jwt.PyJWKClient):
    """A PyJWKClient whose every fetch failure is a 503, never mistaken for a bad token."""

    def fetch_data(self) -> Any:
        # PyJWT wraps only network errors (PyJWKClientConnectionError): bad JSON escapes as a ValueError,
        # and a non-object or a set without usable keys would pass for token errors (PyJWKClientError...).
        try:
            return super().fetch_data()
        except (jwt.PyJWKClientError, jwt.PyJWKSetError, ValueError, OSError) as exc:
            log.warning("OIDC: fetching the JWKS from %s failed: %s", self.uri, exc)
            raise DependencyUnavailable(_UNAVAILABLE) from exc


class OidcVerifier:
    """Verifies bearer JWTs of one issuer; safe to share between threads."""

    def __init__(self, settings: OidcSettings) -> None:
        if not settings.issuer:
            raise ValueError("OIDC needs an issuer")
        self.settings, self.issuer = settings, settings.issuer
        self._client: _JwksClient | None = None
        self._lock = threading.Lock()
        options = {"require": ["exp", "iss", "sub"], "verify_aud": settings.audience is not None}
        # Without enforce_minimum_key_length (missing from PyJWT's Options type) a short key only warns.
        self._checks: dict[str, Any] = {
            "algorithms": settings.algorithms,
            "options": options | {"enforce_minimum_key_length": True},
            "issuer": settings.issuer,
            "audience": settings.audience,
            "leeway": settings.leeway_s,
        }

    def _jwks_client(self) -> _JwksClient:
        """The JWKS client, made on first use; discovery is retried until it once succeeds."""
        with self._lock:
            if self._client is None:
                s, url = self.settings, self.settings.jwks_url
                try:
                    url = url or self._discover_jwks_uri()
                    # Not cache_keys: that LRU never expires, so a key the issuer withdrew would stay trusted.
                    cooldown = min(KID_REFRESH_COOLDOWN_S, s.jwks_cache_s)
                    self._client = _JwksClient(
                        url, lifespan=s.jwks_cache_s, timeout=s.timeout_s, cooldown_duration=cooldown
                    )
                except (OSError, ValueError, jwt.PyJWKClientError) as exc:  # PyJWKClientError: not http(s)
                    if isinstance(exc, HTTPError):
                        exc.close()  # its response would leak otherwise
                    log.warning("OIDC: no JWKS URL for %s: %s", self.issuer, exc)
                    raise DependencyUnavailable(_UNAVAILABLE) from exc
            return self._client

    def _discover_jwks_uri(self) -> str:
        url = self.issuer.rstrip("/") + "/.well-known/openid-configuration"
        if not url.startswith(("https://", "http://")):  # urlopen would also read file:// and ftp://
            raise ValueError(f"{url} is not an http(s) URL")
        with urllib.request.urlopen(url, timeout=self.settings.timeout_s) as response:  # noqa: S310
            document = json.load(response)
        jwks_uri = document.get("jwks_uri") if isinstance(document, dict) else None
        if not isinstance(jwks_uri, str):
            raise ValueError("the discovery document has no jwks_uri")
        return jwks_uri

    def verify(self, token: str) -> Principal:
        """The principal a valid token stands for.

        Raises :class:`Unauthorized` for any invalid token, :class:`DependencyUnavailable` when the
        identity provider's keys cannot be fetched.
        """
        try:
            # A foreign alg or a missing kid is refused before any key lookup: such tokens cost no fetch.
            header = jwt.get_unverified_header(token)
            if header.get("alg") not in self.settings.algorithms:
                raise jwt.InvalidAlgorithmError("alg not accepted")
            if not header.get("kid"):
                raise jwt.PyJWKClientError("no kid")
            key = self._jwks_client().get_signing_key(header["kid"])
            # Passing the PyJWK (not key.key) pins the algorithm of its JWK, so an HS256 token "signed"
            # with the public key fails even when HS256 is listed.
            claims = jwt.decode(token, key, **self._checks)
        except jwt.PyJWTError as exc:
            raise _invalid(_reason(exc)) from None  # from None: PyJWT's messages may quote the token
        return self._principal(claims)

    def _principal(self, claims: dict[str, Any]) -> Principal:
        s, sub = self.settings, claims["sub"]  # PyJWT checked sub is a str, but "" passes its `require`
        if not sub:
            raise _invalid("missing_claim")
        tenant = claims.get(s.tenant_claim)
        # fullmatch: the pattern's `$` also matches before a trailing newline.
        if not isinstance(tenant, str) or not TENANT_ID_PATTERN.fullmatch(tenant):
            raise _invalid("tenant_claim")
        tier = claims.get(s.tier_claim)
        if tier is None:
            tier = s.default_tier
        elif tier not in TIER_NAMES:
            raise _invalid("tier_claim")
        granted: set[str] = set()
        for claim in (claims.get("scope"), claims.get("scp")):
            values = claim.split() if isinstance(claim, str) else claim if isinstance(claim, list) else []
            granted.update(v for v in values if isinstance(v, str))
        # Only the configured scope maps to ours: an IdP scope that happens to be called "admin" does not.
        scopes = frozenset({ADMIN_SCOPE}) if s.admin_scope in granted else frozenset()
        subject, rate_key = f"oidc:{sub}"[:160], f"oidc:{tenant}:{sub}"[:160]
        return Principal(tenant_id=tenant, tier=tier, subject=subject, rate_key=rate_key, scopes=scopes)


_verifiers: dict[str, OidcVerifier] = {}
_verifiers_lock = threading.Lock()


def get_verifier(settings: OidcSettings) -> OidcVerifier | None:
    """The process's verifier for these settings (one per distinct settings JSON); None when OIDC is off."""
    if not settings.issuer:
        return None
    key = settings.model_dump_json()
    with _verifiers_lock:
        if key not in _verifiers:
            _verifiers[key] = OidcVerifier(settings)
        return _verifiers[key]
