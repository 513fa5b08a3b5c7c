"""OIDC bearer tokens: a real local HTTP identity provider, tokens signed with keys made at test time."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from pagemill.errors import DependencyUnavailable, Unauthorized
from pagemill.settings import OidcSettings
from pagemill.tenancy import oidc
from pagemill.tenancy.oidc import OidcVerifier, get_verifier
from pagemill.tenancy.principal import ADMIN_SCOPE

AUDIENCE = "pagemill-api"


class IdentityProvider:
    """Serves ``routes[path]`` (a JSON-able object, or raw bytes) on 127.0.0.1; 404 for other paths."""

    def __init__(self) -> None:
        self.routes: dict[str, Any] = {}
        self.hits: list[str] = []
        idp = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                idp.hits.append(self.path)
                body = idp.routes.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()

    def publish(self, *keys: tuple[str, Any]) -> None:
        """Serve the discovery document and a JWKS holding these (kid, private key) pairs' public keys."""
        self.routes["/.well-known/openid-configuration"] = {"issuer": self.url, "jwks_uri": self.jwks_url}
        self.routes["/jwks.json"] = {"keys": [public_jwk(kid, key) for kid, key in keys]}

    @property
    def jwks_url(self) -> str:
        return self.url + "/jwks.json"


def public_jwk(kid: str, private_key: Any) -> dict[str, Any]:
    if isinstance(private_key, rsa.RSAPrivateKey):
        jwk: Any = RSAAlgorithm.to_jwk(private_key.public_key(), as_dict=True)
    else:
        jwk = ECAlgorithm.to_jwk(private_key.public_key(), as_dict=True)
    return {**jwk, "kid": kid, "use": "sig"}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
    return f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}.{b64(signature)}"


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def other_rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def idp(rsa_key: rsa.RSAPrivateKey) -> Iterator[IdentityProvider]:
    server = IdentityProvider()
    server.publish(("k1", rsa_key))
    yield server
    server.close()


def settings_for(idp: IdentityProvider, **overrides: Any) -> OidcSettings:
    values: dict[str, Any] = {"issuer": idp.url, "audience": AUDIENCE, "jwks_url": idp.jwks_url}
    return OidcSettings(**(values | overrides))


@pytest.fixture
def verifier(idp: IdentityProvider) -> OidcVerifier:
    return OidcVerifier(settings_for(idp))


def claims_for(idp: IdentityProvider, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "iss": idp.url,
        "aud": AUDIENCE,
        "sub": "user-1",
        "tenant": "acme",
        "iat": now,
        "exp": now + 300,
    }
    return {k: v for k, v in (claims | overrides).items() if v is not None}


def sign(claims: dict[str, Any], key: Any, kid: str = "k1", algorithm: str = "RS256") -> str:
    return jwt.encode(claims, key, algorithm=algorithm, headers={"kid": kid})


def refused(verifier: OidcVerifier, token: str) -> str:
    """The reason the verifier gives for refusing the token (after checking the message is client-safe)."""
    with pytest.raises(Unauthorized) as caught:
        verifier.verify(token)
    assert caught.value.message.startswith("The bearer token is not valid: ")
    if token:
        assert token not in caught.value.message
    return str(caught.value.details["reason"])


# --- valid tokens ---


def test_valid_token_gives_the_tenant_tier_and_subject(
    idp: IdentityProvider, verifier: OidcVerifier, rsa_key: rsa.RSAPrivateKey
) -> None:
    principal = verifier.verify(sign(claims_for(idp, tier="enterprise"), rsa_key))
    assert principal.tenant_id == "acme"
    assert principal.tier == "enterprise"
    assert principal.subject == "oidc:user-1"
    assert principal.rate_key == "oidc:acme:user-1"
    assert principal.scopes == frozenset()
    assert not principal.is_admin


def test_token_without_tier_gets_the_default_tier(idp: IdentityProvider, rsa_key: rsa.RSAPrivateKey) -> None:
    verifier = OidcVerifier(settings_for(idp, default_tier="free"))
    assert verifier.verify(sign(claims_for(idp), rsa_key)).tier == "free"


@pytest.mark.parametrize(
    "scopes",
    [
        {"scope": "openid pagemill:admin profile"},
        {"scp": ["openid", "pagemill:admin"]},
        {"scp": "pagemill:admin"},
    ],
)
def test_admin_scope_maps_to_the_admin_scope(
    idp: IdentityProvider, verifier: OidcVerifier, rsa_key: rsa.RSAPrivateKey, scopes: dict[str, Any]
) -> None:
    principal = verifier.verify(sign(claims_for(idp, **scopes), rsa_key))
    assert principal.scopes == frozenset({ADMIN_SCOPE})
    assert principal.is_admin


@pytest.mark.parametrize(
    "scopes",
    [
        {"scope": "openid admin"},  # the IdP's own "admin" is not the configured admin scope
        {"scope": "pagemill:admins"},
        {"scp": [{"pagemill:admin": True}, 7]},
        {"scope": 42},
    ],
)
def test_other_scopes_grant_nothing(
    idp: IdentityProvider, verifier: OidcVerifier, rsa_key: rsa.RSAPrivateKey, scopes: dict[str, Any]
) -> None:
    assert verifier.verify(sign(claims_for(idp, **scopes), rsa_key)).scopes == frozenset()


def test_custom_claim_names_and_admin_scope(idp: IdentityProvider, rsa_key: rsa.RSAPrivateKey) -> None:
    settings = settings_for(idp, tenant_claim="org", tier_claim="plan", admin_scope="ops")
    claims = claims_for(idp, tenant=None, org="globex", plan="free", scope="ops")
    principal = OidcVerifier(settings).verify(sign(claims, rsa_key))
    assert (principal.tenant_id, principal.tier, principal.is_admin) == ("globex", "free", True)


def test_long_subjects_are_truncated(idp: IdentityProvider, verifier: OidcVerifier, rsa_key: Any) -> None:
    principal = verifier.verify(sign(claims_for(idp, sub="x" * 500), rsa_key))
    assert len(principal.subject) == 160
    assert len(principal.rate_key) == 160
    assert principal.rate_key.startswith("oidc:acme:xxx")


def test_es256_token(idp: IdentityProvider, rsa_key: rsa.RSAPrivateKey) -> None:
    ec_key = ec.generate_private_key(ec.SECP256R1())
    idp.publish(("k1", rsa_key), ("ec1", ec_key))
    verifier = OidcVerifier(settings_for(idp))
    principal = verifier.verify(sign(claims_for(idp), ec_key, kid="ec1", algorithm="ES256"))
    assert principal.tenant_id == "acme"


def test_audience_is_not_checked_when_unset(idp: IdentityProvider, rsa_key: rsa.RSAPrivateKey) -> None:
    verifier = OidcVerifier(settings_for(idp, audience=None))
    assert verifier.verify(sign(claims_for(idp, aud="someone-else"), rsa_key)).tenant_id == "acme"
    assert verifier.verify(sign(claims_for(idp, aud=None), rsa_key)).tenant_id == "acme"


def test_expiry_within_leeway_is_accepted(idp: IdentityProvider, rsa_key: rsa.RSAPrivateKey) -> None:
    verifier = OidcVerifier(settings_for(idp, leeway_s=60))
    assert verifier.verify(sign(claims_for(idp, exp=int(time.time()) - 30), rsa_key)).subject == "oidc:user-1"


# --- invalid tokens ---


def test_expired_token(idp: IdentityProvider, verifier: OidcVerifier, rsa_key: rsa.RSAPrivateKey) -> None:
    token = sign(claims_for(idp, exp=int(time.time()) - 120), rsa_key)  # past the 30 s leeway
    assert refused(verifier, token) == "expired"


def test_token_not_yet_valid(idp: IdentityProvider, verifier: OidcVerifier, rsa_key: Any) -> None:
    assert refused(verifier, sign(claims_for(idp, nbf=int(time.time()) + 600), rsa_key)) == "not_yet_valid"


@pytest.mark.parametrize("issuer", ["https://evil.example", "IDP_URL/"])
def test_wrong_issuer(
    idp: IdentityProvider, verifier: OidcVerifier, rsa_key: rsa.RSAPrivateKey, issuer: str
) -> None:
    token = sign(claims_for(idp, iss=issuer.replace("IDP_URL", idp.url)), rsa_key)
    assert refused(verifier, token) == "issuer"


@pytest.mark.parametrize("audience", ["someone-else", ["a", "b"], None])
def test_wrong_or_missing_audience(
    idp: IdentityProvider, verifier: OidcVerifier, rsa_key: rsa.RSAPrivateKey, audience: Any
) -> None:
    assert refused(verifier, sign(claims_for(idp, aud=audience), rsa_key)) == "audience"


@pytest.mark.parametrize("claim", ["exp", "iss", "sub"])
def test_required_claims(idp: IdentityProvider, verifier: OidcVerifier, rsa_key: Any, claim: str) -> None:
    assert refused(verifier, sign(claims_for(idp, **{claim: None}), rsa_key)) == "missing_claim"


def test_empty_subject(idp: IdentityProvider, verifier: OidcVerifier, rsa_key: rsa.RSAPrivateKey) -> None:
    assert refused(verifier, sign(claims_for(idp, sub=""), rsa_key)) == "missing_claim"


def test_token_signed_by_another_key_with_the_same_kid(
    idp: IdentityProvider, verifier: OidcVerifier, other_rsa_key: rsa.RSAPrivateKey
) -> None:
    assert refused(verifier, sign(claims_for(idp), other_rsa_key, kid="k1")) == "signature"


def test_tampered_claims(idp: IdentityProvider, verifier: OidcVerifier, rsa_key: rsa.RSAPrivateKey) -> None:
    header, _, signature = sign(claims_for(idp), rsa_key).split(".")
    forged = b64(json.dumps(claims_for(idp, tenant="globex")).encode())
    assert refused(verifier, f"{header}.{forged}.{signature}") == "signature"


def test_alg_none_is_refused(idp: IdentityProvider, verifier: OidcVerifier) -> None:
    assert refused(verifier, unsigned({"alg": "none", "kid": "k1"}, claims_for(idp))) == "algorithm"
    assert refused(verifier, jwt.encode(claims_for(idp), "", algorithm="none")) == "algorithm"
    assert idp.hits == []  # refused before any key was fetched


def hs256_with_public_pem(idp: IdentityProvider, rsa_key: rsa.RSAPrivateKey) -> str:
    """The algorithm-confusion attack: HMAC over the token with the issuer's public key PEM as the secret."""
    pem = rsa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "k1"}).encode())
    payload = b64(json.dumps(claims_for(idp)).encode())
    mac = hmac.new(pem, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{b64(mac)}"


def test_hs256_signed_with_the_public_key_is_refused(
    idp: IdentityProvider, verifier: OidcVerifier, rsa_key: rsa.RSAPrivateKey
) -> None:
    assert refused(verifier, hs256_with_public_pem(idp, rsa_key)) == "algorithm"


def test_hs256_confusion_is_refused_even_when_hs256_is_listed(
    idp: IdentityProvider, rsa_key: rsa.RSAPrivateKey
) -> None:
    verifier = OidcVerifier(settings_for(idp, algorithms=["RS256", "HS256"]))
    assert refused(verifier, hs256_with_public_pem(idp, rsa_key)) == "algorithm"
    assert idp.hits == ["/jwks.json"]  # got past the header check: the RSA JWK's pinned RS256 refused it


def test_algorithm_not_listed_is_refused(idp: IdentityProvider, rsa_key: rsa.RSAPrivateKey) -> None:
    verifier = OidcVerifier(settings_for(idp, algorithms=["ES256"]))
    assert refused(verifier, sign(claims_for(idp), rsa_key)) == "algorithm"


def test_short_rsa_key_is_refused_without_a_warning(idp: IdentityProvider) -> None:
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    idp.publish(("weak", weak))
    verifier = OidcVerifier(settings_for(idp))
    with pytest.warns(jwt.warnings.InsecureKeyLengthWarning):  # only PyJWT's signing side warns
        token = sign(claims_for(idp), weak, kid="weak")
    assert refused(verifier, token) == "key"


@pytest.mark.parametrize("tier", ["platinum", "FREE", 3, ["free"]])
def test_unknown_tier(
    idp: IdentityProvider, verifier: OidcVerifier, rsa_key: rsa.RSAPrivateKey, tier: Any
) -> None:
    assert refused(verifier, sign(claims_for(idp, tier=tier), rsa_key)) == "tier_claim"


@pytest.mark.parametrize("tenant", [None, "", "Acme", "acme\n", "-acme", "a" * 65, "acme/../x", 7, ["acme"]])
def test_missing_or_invalid_tenant(
    idp: IdentityProvider, verifier: OidcVerifier, rsa_key: rsa.RSAPrivateKey, tenant: Any
) -> None:
    assert refused(verifier, sign(claims_for(idp, tenant=tenant), rsa_key)) == "tenant_claim"


@pytest.mark.parametrize("token", ["", "garbage", "a.b.c", "a.b", "e30.e30.", "eyJhbGciOiJSUzI1NiJ9.!!.x"])
def test_malformed_tokens(verifier: OidcVerifier, token: str) -> None:
    assert refused(verifier, token) in {"malformed", "algorithm"}


def test_token_without_kid_is_refused_without_a_fetch(
    idp: IdentityProvider, verifier: OidcVerifier, rsa_key: rsa.RSAPrivateKey
) -> None:
    assert refused(verifier, jwt.encode(claims_for(idp), rsa_key, algorithm="RS256")) == "unknown_kid"
    assert idp.hits == []


# --- keys: rotation, refetch, discovery ---


def test_key_rotation_is_picked_up_without_a_restart(
    idp: IdentityProvider,
    rsa_key: rsa.RSAPrivateKey,
    other_rsa_key: rsa.RSAPrivateKey,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(oidc, "KID_REFRESH_COOLDOWN_S", 0)
    verifier = OidcVerifier(settings_for(idp, jwks_cache_s=3600))
    assert verifier.verify(sign(claims_for(idp), rsa_key, kid="k1")).tenant_id == "acme"
    idp.publish(("k2", other_rsa_key))
    assert verifier.verify(sign(claims_for(idp), other_rsa_key, kid="k2")).tenant_id == "acme"
    assert idp.hits == ["/jwks.json", "/jwks.json"]
    assert verifier.verify(sign(claims_for(idp), other_rsa_key, kid="k2")).tenant_id == "acme"
    assert idp.hits == ["/jwks.json", "/jwks.json"]  # the new set is cached


def test_unknown_kid_is_refused_after_one_refetch(
    idp: IdentityProvider, rsa_key: rsa.RSAPrivateKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(oidc, "KID_REFRESH_COOLDOWN_S", 0)
    verifier = OidcVerifier(settings_for(idp))
    assert refused(verifier, sign(claims_for(idp), rsa_key, kid="nope")) == "unknown_kid"
    assert idp.hits == ["/jwks.json", "/jwks.json"]


def test_unknown_kids_do_not_refetch_during_the_cooldown(
    idp: IdentityProvider, verifier: OidcVerifier, rsa_key: rsa.RSAPrivateKey
) -> None:
    verifier.verify(sign(claims_for(idp), rsa_key))
    for n in range(5):
        assert refused(verifier, sign(claims_for(idp), rsa_key, kid=f"made-up-{n}")) == "unknown_kid"
    assert idp.hits == ["/jwks.json"]


def test_discovery_is_used_when_no_jwks_url_is_set(idp: IdentityProvider, rsa_key: Any) -> None:
    verifier = OidcVerifier(settings_for(idp, jwks_url=None))
    for _ in range(3):
        assert verifier.verify(sign(claims_for(idp), rsa_key)).tenant_id == "acme"
    assert idp.hits == ["/.well-known/openid-configuration", "/jwks.json"]


def test_discovery_is_retried_until_it_succeeds(idp: IdentityProvider, rsa_key: rsa.RSAPrivateKey) -> None:
    discovery = idp.routes.pop("/.well-known/openid-configuration")
    verifier = OidcVerifier(settings_for(idp, jwks_url=None))
    with pytest.raises(DependencyUnavailable):
        verifier.verify(sign(claims_for(idp), rsa_key))
    idp.routes["/.well-known/openid-configuration"] = discovery
    assert verifier.verify(sign(claims_for(idp), rsa_key)).tenant_id == "acme"


def test_concurrent_verification_fetches_the_keys_once(
    idp: IdentityProvider, verifier: OidcVerifier, rsa_key: rsa.RSAPrivateKey
) -> None:
    tokens = [sign(claims_for(idp, sub=f"user-{n}"), rsa_key) for n in range(40)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        subjects = list(pool.map(lambda token: verifier.verify(token).subject, tokens))
    assert subjects == [f"oidc:user-{n}" for n in range(40)]
    assert idp.hits == ["/jwks.json"]


# --- the identity provider failing: 503, not 401 ---


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def unavailable(verifier: OidcVerifier, token: str) -> None:
    with pytest.raises(DependencyUnavailable) as caught:
        verifier.verify(token)
    assert (
        caught.value.message
        == "The identity provider's signing keys could not be fetched; try again shortly."
    )
    assert caught.value.http_status == 503


def test_jwks_server_down(idp: IdentityProvider, rsa_key: rsa.RSAPrivateKey) -> None:
    verifier = OidcVerifier(settings_for(idp, jwks_url=f"http://127.0.0.1:{closed_port()}/jwks.json"))
    unavailable(verifier, sign(claims_for(idp), rsa_key))


def test_discovery_server_down(rsa_key: rsa.RSAPrivateKey) -> None:
    issuer = f"http://127.0.0.1:{closed_port()}"
    verifier = OidcVerifier(OidcSettings(issuer=issuer, audience=AUDIENCE))
    now = int(time.time())
    claims = {"iss": issuer, "aud": AUDIENCE, "sub": "u", "tenant": "acme", "exp": now + 60}
    unavailable(verifier, sign(claims, rsa_key))


@pytest.mark.parametrize(
    "jwks", [None, b"not json", b"\xff\xfe", b"[1, 2]", {"keys": []}, {"keys": [{"kty": "nope"}]}, {"x": 1}]
)
@pytest.mark.parametrize("via_discovery", [False, True])
def test_jwks_unusable(
    idp: IdentityProvider, rsa_key: rsa.RSAPrivateKey, jwks: Any, via_discovery: bool
) -> None:
    idp.routes["/jwks.json"] = jwks  # None: 404
    verifier = OidcVerifier(settings_for(idp, jwks_url=None if via_discovery else idp.jwks_url))
    unavailable(verifier, sign(claims_for(idp), rsa_key))


@pytest.mark.parametrize(
    "document", [None, b"<html>", {"issuer": "x"}, {"jwks_uri": 5}, {"jwks_uri": "file:///etc/passwd"}, [1]]
)
def test_discovery_unusable(idp: IdentityProvider, rsa_key: rsa.RSAPrivateKey, document: Any) -> None:
    idp.routes["/.well-known/openid-configuration"] = document
    verifier = OidcVerifier(settings_for(idp, jwks_url=None))
    unavailable(verifier, sign(claims_for(idp), rsa_key))


def test_bad_tokens_are_refused_even_while_the_idp_is_down(rsa_key: rsa.RSAPrivateKey) -> None:
    verifier = OidcVerifier(OidcSettings(issuer=f"http://127.0.0.1:{closed_port()}"))
    assert refused(verifier, "garbage") == "malformed"
    assert refused(verifier, unsigned({"alg": "none", "kid": "k1"}, {"sub": "x"})) == "algorithm"


# --- get_verifier ---


def test_get_verifier_is_none_without_an_issuer() -> None:
    assert get_verifier(OidcSettings()) is None


def test_get_verifier_caches_one_verifier_per_settings() -> None:
    first = get_verifier(OidcSettings(issuer="https://idp.example", audience="a"))
    assert first is not None
    assert get_verifier(OidcSettings(issuer="https://idp.example", audience="a")) is first
    assert get_verifier(OidcSettings(issuer="https://idp.example", audience="b")) is not first


def test_verifier_needs_an_issuer() -> None:
    with pytest.raises(ValueError, match="issuer"):
        OidcVerifier(OidcSettings())
