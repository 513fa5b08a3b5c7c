"""Tenancy end to end: OIDC tokens, auth switched off, security headers and CORS, tier priority on Redis,
and the bootstrap key of `pagemill up`."""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from tests.e2e.stack import FINAL_STATES, Stack, create_key, migrate, running_stack
from tests.support import documents, services
from tests.support.services import (
    RedisServer,
    S3Server,
    distributed_env,
    embedded_env,
    free_port,
    pagemill_api,
    pagemill_process,
    pagemill_worker,
    wait_http_ok,
)

pytestmark = pytest.mark.e2e

AUDIENCE = "pagemill"
APP_ORIGIN = "https://app.example.com"
KEY_PATTERN = re.compile(r"pm_live_[A-Za-z0-9]+")


# --------------------------------------------------------------------------------------------------
# Helpers


def _client(base_url: str, token: str | None = None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=base_url, timeout=30, headers=headers)


def _submit(client: httpx.Client, path: Path) -> str:
    with path.open("rb") as f:
        response = client.post("/api/v1/documents", files={"file": (path.name, f)})
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def _wait(client: httpx.Client, job_id: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        response = client.get(f"/api/v1/jobs/{job_id}")
        assert response.status_code == 200, response.text
        job: dict[str, Any] = response.json()
        if job["state"] in FINAL_STATES:
            return job
        assert time.monotonic() < deadline, f"job {job_id} still {job['state']} after {timeout}s"
        time.sleep(0.1)


def _error_code(response: httpx.Response) -> str:
    return str(response.json()["error"]["code"])


# --------------------------------------------------------------------------------------------------
# A tiny OpenID Connect issuer: discovery document and JWKS served from a thread


@dataclass
class Issuer:
    """An identity provider the API trusts: signs tokens with its RSA key, publishes the public half."""

    url: str
    kid: str
    key: rsa.RSAPrivateKey

    def token(
        self,
        *,
        sub: str = "alice",
        tenant: str | None = "acme",
        tier: str | None = "enterprise",
        aud: str = AUDIENCE,
        expires_in: float = 600,
        key: rsa.RSAPrivateKey | None = None,
        **claims: Any,
    ) -> str:
        """A signed access token; ``key`` signs it instead of the issuer's own key (same kid)."""
        now = int(time.time())
        payload: dict[str, Any] = {
            "iss": self.url,
            "aud": aud,
            "sub": sub,
            "iat": now,
            "exp": now + expires_in,
        }
        if tenant is not None:
            payload["tenant"] = tenant
        if tier is not None:
            payload["tier"] = tier
        payload.update(claims)
        return jwt.encode(payload, key or self.key, algorithm="RS256", headers={"kid": self.kid})


def _new_rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def issuer() -> Iterator[Issuer]:
    """An OIDC issuer on 127.0.0.1: ``/.well-known/openid-configuration`` and ``/jwks.json``."""
    key, kid = _new_rsa_key(), f"test-{uuid.uuid4().hex[:8]}"
    jwk = {**RSAAlgorithm.to_jwk(key.public_key(), as_dict=True), "kid": kid, "alg": "RS256", "use": "sig"}
    routes: dict[str, dict[str, Any]] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            document = routes.get(self.path)
            body = json.dumps(document).encode() if document is not None else b"{}"
            self.send_response(200 if document is not None else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: no access log on stderr."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    base_url = f"http://127.0.0.1:{server.server_address[1]}"
    routes["/.well-known/openid-configuration"] = {"issuer": base_url, "jwks_uri": f"{base_url}/jwks.json"}
    routes["/jwks.json"] = {"keys": [jwk]}
    thread = threading.Thread(target=server.serve_forever, name="oidc-issuer", daemon=True)
    thread.start()
    try:
        yield Issuer(url=base_url, kid=kid, key=key)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture(scope="module")
def oidc_stack(issuer: Issuer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """An embedded stack trusting ``issuer``'s tokens, with CORS open to one browser origin."""
    env = {
        **embedded_env(tmp_path_factory.mktemp("oidc-data")),
        "PAGEMILL_AUTH__OIDC__ISSUER": issuer.url,
        "PAGEMILL_AUTH__OIDC__AUDIENCE": AUDIENCE,
        "PAGEMILL_API__CORS_ORIGINS": json.dumps([APP_ORIGIN]),
    }
    with running_stack(env) as stack:
        yield stack


# --------------------------------------------------------------------------------------------------
# 1. OIDC


def test_oidc_tokens_map_to_tenants_tiers_and_scopes(
    oidc_stack: Stack, issuer: Issuer, tmp_path: Path
) -> None:
    base = oidc_stack.base_url
    pdf = documents.make_text_pdf(tmp_path / "acme.pdf", ["Acme quarterly memo\nWidgets sold well."])
    with (
        _client(base, issuer.token(tenant="acme", tier="enterprise")) as acme,
        _client(base, issuer.token(sub="bob", tenant="globex", tier=None)) as globex,
    ):
        job_id = _submit(acme, pdf)
        job = _wait(acme, job_id)
        assert job["state"] == "succeeded", job
        result = acme.get(f"/api/v1/jobs/{job_id}/result", params={"format": "text"})
        assert result.status_code == 200 and "Widgets sold well." in result.text

        usage = acme.get("/api/v1/usage")
        assert usage.status_code == 200, usage.text
        assert usage.json()["tenant"] == "acme" and usage.json()["tier"] == "enterprise"

        # Another tenant's token does not see the job; without a tier claim it gets oidc.default_tier.
        other = globex.get(f"/api/v1/jobs/{job_id}")
        assert other.status_code == 404 and _error_code(other) == "NOT_FOUND", other.text
        assert job_id not in {item["id"] for item in globex.get("/api/v1/jobs").json()["items"]}
        usage = globex.get("/api/v1/usage").json()
        assert usage["tenant"] == "globex" and usage["tier"] == "standard"

        # The admin scope comes only from the configured scope value.
        assert acme.get("/api/v1/admin/keys").status_code == 403
        assert _error_code(acme.get("/api/v1/admin/keys")) == "FORBIDDEN"
    with _client(base, issuer.token(scope="openid pagemill:admin")) as admin:
        keys = admin.get("/api/v1/admin/keys")
        assert keys.status_code == 200, keys.text
        assert any(item["tenant"] == "e2e" for item in keys.json()["items"])

    # An API key of the same tenant sees the same jobs as the tenant's tokens.
    acme_key = str(create_key(oidc_stack.env, "acme", "standard")["secret"])
    with oidc_stack.client_for(acme_key) as by_key:
        assert by_key.get(f"/api/v1/jobs/{job_id}").status_code == 200
        assert job_id in {item["id"] for item in by_key.get("/api/v1/jobs").json()["items"]}
        assert by_key.get("/api/v1/usage").json()["tenant"] == "acme"
    # ... and the e2e tenant's key does not.
    assert oidc_stack.client.get(f"/api/v1/jobs/{job_id}").status_code == 404


@pytest.mark.parametrize(
    ("case", "token_args"),
    [
        ("expired", {"expires_in": -300}),  # well past the 30 s leeway
        ("wrong audience", {"aud": "someone-else"}),
        ("foreign key", {"key": "other"}),
        ("no tenant claim", {"tenant": None}),
    ],
)
def test_oidc_bad_tokens_are_unauthorized(
    oidc_stack: Stack, issuer: Issuer, case: str, token_args: dict[str, Any]
) -> None:
    if token_args.get("key") == "other":
        token_args = {**token_args, "key": _new_rsa_key()}
    with _client(oidc_stack.base_url, issuer.token(**token_args)) as client:
        response = client.get("/api/v1/usage")
    assert response.status_code == 401, (case, response.text)
    assert _error_code(response) == "UNAUTHORIZED"
    assert response.headers["www-authenticate"].startswith("Bearer")


# --------------------------------------------------------------------------------------------------
# 3. Security headers and CORS (same stack)


def test_security_headers_on_every_response(oidc_stack: Stack) -> None:
    with _client(oidc_stack.base_url) as anonymous, _client(oidc_stack.base_url, "not-a-jwt") as garbage:
        responses = {
            "health": anonymous.get("/api/v1/health/live"),
            "401 no credential": anonymous.get("/api/v1/jobs"),
            "401 bad token": garbage.get("/api/v1/jobs"),
            "404": oidc_stack.client.get(f"/api/v1/jobs/{uuid.uuid4()}"),
            "200": oidc_stack.client.get("/api/v1/usage"),
        }
    assert {name: r.status_code for name, r in responses.items()} == {
        "health": 200,
        "401 no credential": 401,
        "401 bad token": 401,
        "404": 404,
        "200": 200,
    }
    for name, response in responses.items():
        assert response.headers.get("x-content-type-options") == "nosniff", (name, dict(response.headers))
        assert response.headers.get("x-frame-options") == "DENY", name
        assert response.headers.get("referrer-policy") == "no-referrer", name
        # Plain HTTP from a client that is not a proxy: no HSTS.
        assert "strict-transport-security" not in response.headers, name

    # TLS terminated by a trusted proxy (127.0.0.1 is api.forwarded_allow_ips by default): HSTS.
    for response in (
        oidc_stack.client.get("/api/v1/usage", headers={"X-Forwarded-Proto": "https"}),
        oidc_stack.client.get("/api/v1/health/live", headers={"X-Forwarded-Proto": "https"}),
    ):
        hsts = response.headers.get("strict-transport-security", "")
        assert re.fullmatch(r"max-age=\d+(; includeSubDomains)?", hsts), dict(response.headers)
        assert int(hsts.split(";")[0].split("=")[1]) > 0


def test_cors_preflight_answers_carry_security_headers(oidc_stack: Stack) -> None:
    """CORSMiddleware answers preflights itself; they are responses too and must carry the headers."""
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization"}
    with _client(oidc_stack.base_url) as anonymous:
        for origin in (APP_ORIGIN, "https://evil.example"):
            response = anonymous.options("/api/v1/documents", headers={"Origin": origin, **preflight})
            assert response.headers.get("x-content-type-options") == "nosniff", (
                origin,
                dict(response.headers),
            )
            assert response.headers.get("x-frame-options") == "DENY", origin


def test_cors_allows_only_the_configured_origin(oidc_stack: Stack) -> None:
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization"}
    with _client(oidc_stack.base_url) as anonymous:
        allowed = anonymous.options("/api/v1/documents", headers={"Origin": APP_ORIGIN, **preflight})
        assert allowed.status_code == 200, allowed.text
        assert allowed.headers["access-control-allow-origin"] == APP_ORIGIN
        assert "POST" in allowed.headers["access-control-allow-methods"]
        assert "authorization" in allowed.headers["access-control-allow-headers"].lower()

        refused = anonymous.options(
            "/api/v1/documents", headers={"Origin": "https://evil.example", **preflight}
        )
        assert "access-control-allow-origin" not in refused.headers, dict(refused.headers)

    response = oidc_stack.client.get("/api/v1/jobs", headers={"Origin": APP_ORIGIN})
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == APP_ORIGIN
    exposed = {name.strip().lower() for name in response.headers["access-control-expose-headers"].split(",")}
    assert {"x-request-id", "x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset"} <= exposed
    assert "x-request-id" in response.headers and "x-ratelimit-limit" in response.headers

    other = oidc_stack.client.get("/api/v1/jobs", headers={"Origin": "https://evil.example"})
    assert other.status_code == 200 and "access-control-allow-origin" not in other.headers


# --------------------------------------------------------------------------------------------------
# 2. Auth on by default; off only when switched off


def test_auth_is_on_by_default_and_off_only_explicitly(oidc_stack: Stack, tmp_path: Path) -> None:
    pdf = documents.make_text_pdf(tmp_path / "open.pdf", ["Open door policy\nAnyone may submit."])
    # auth.enabled is not set for this stack: auth is on, so no key means no service.
    # (test_first_up_prints_one_bootstrap_key checks the same on a stack with no auth settings at all.)
    with oidc_stack.client_for(None) as anonymous:
        refused = anonymous.get("/api/v1/jobs")
        assert refused.status_code == 401 and _error_code(refused) == "UNAUTHORIZED", refused.text
        with pdf.open("rb") as f:
            refused = anonymous.post("/api/v1/documents", files={"file": (pdf.name, f)})
        assert refused.status_code == 401 and _error_code(refused) == "UNAUTHORIZED", refused.text

    # A second API on the same data with auth switched off: every caller is the default tenant's admin.
    open_env = {key: value for key, value in oidc_stack.env.items() if "__OIDC__" not in key}
    with (
        pagemill_api({**open_env, "PAGEMILL_AUTH__ENABLED": "false"}) as (_api, open_url),
        _client(open_url) as anonymous,
    ):
        job_id = _submit(anonymous, pdf)
        assert _wait(anonymous, job_id)["state"] == "succeeded"
        usage = anonymous.get("/api/v1/usage").json()
        assert usage["tenant"] == "default" and usage["day"]["used"] == 1, usage
        assert anonymous.get("/api/v1/admin/keys").status_code == 200

    # The job is the default tenant's: its keys see it, other tenants' keys do not.
    default_key = str(create_key(oidc_stack.env, "default", "standard")["secret"])
    with oidc_stack.client_for(default_key) as default:
        assert default.get(f"/api/v1/jobs/{job_id}").status_code == 200
    assert oidc_stack.client.get(f"/api/v1/jobs/{job_id}").status_code == 404


# --------------------------------------------------------------------------------------------------
# 4. Tier priority on Redis


def test_enterprise_job_overtakes_queued_free_jobs_on_redis(
    private_redis: RedisServer, s3: S3Server, tmp_path: Path
) -> None:
    # A fresh database and a private Redis: no other test's jobs or messages can get in line.
    with services.postgres_url() as database_url:
        env = {
            **distributed_env(database_url, private_redis.url, s3),
            # Polling five jobs must not trip the free tier's 60 requests a minute.
            "PAGEMILL_TIERS__FREE__RATE_LIMIT": "6000/minute",
        }
        migrate(env)
        free_key = str(create_key(env, "prio-free", "free")["secret"])
        enterprise_key = str(create_key(env, "prio-enterprise", "enterprise")["secret"])
        with pagemill_api(env) as (_api, base_url):
            with _client(base_url, free_key) as free:
                free_jobs = [
                    _submit(
                        free,
                        documents.make_text_pdf(
                            tmp_path / f"free-{n}.pdf",
                            [f"Free tier document {n}\nIt waits behind paying work."],
                        ),
                    )
                    for n in range(4)
                ]
            with _client(base_url, enterprise_key) as enterprise:
                enterprise_job = _submit(
                    enterprise,
                    documents.make_text_pdf(
                        tmp_path / "enterprise.pdf", ["Enterprise tier document\nIt goes first in line."]
                    ),
                )
            # Only now a worker: all five messages wait in the queue, and one at a time is taken.
            with pagemill_worker(env, queues="ingest,cpu,gpu", concurrency=1) as worker:
                with _client(base_url, enterprise_key) as enterprise:
                    first = _wait(enterprise, enterprise_job)
                with _client(base_url, free_key) as free:
                    others = [_wait(free, job_id) for job_id in free_jobs]
                log = worker.log_tail(60)
        jobs = [first, *others]
        assert all(job["state"] == "succeeded" for job in jobs), (jobs, log)
        started = {job["id"]: datetime.fromisoformat(job["started_at"]) for job in jobs}
        assert all(started[enterprise_job] < started[job_id] for job_id in free_jobs), started


# --------------------------------------------------------------------------------------------------
# 5. The bootstrap key of `pagemill up`


def _run_up(env: dict[str, str], log_path: Path) -> tuple[services.ManagedProcess, str]:
    port = free_port()
    proc = pagemill_process(
        ["up", "--host", "127.0.0.1", "--port", str(port)], env, name=f"up:{port}", log_path=log_path
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_http_ok(f"{base_url}/api/v1/health/live", timeout=60, handle=proc)
    except BaseException:
        proc.stop()
        raise
    return proc, base_url


def test_first_up_prints_one_bootstrap_key(tmp_path: Path) -> None:
    env = embedded_env(tmp_path / "data")
    first, base_url = _run_up(env, tmp_path / "up-1.log")
    try:
        keys = set(KEY_PATTERN.findall(first.log_text()))
        assert len(keys) == 1, first.log_text()
        (secret,) = keys
        with _client(base_url, secret) as client:
            usage = client.get("/api/v1/usage")
            assert usage.status_code == 200, usage.text
            assert usage.json()["tenant"] == "default"
            assert client.get("/api/v1/admin/keys").status_code == 200
        with _client(base_url) as anonymous:
            assert anonymous.get("/api/v1/usage").status_code == 401
    finally:
        first.stop()

    second, base_url = _run_up(env, tmp_path / "up-2.log")
    try:
        with _client(base_url, secret) as client:
            assert client.get("/api/v1/usage").status_code == 200
        assert not KEY_PATTERN.search(second.log_text()), second.log_text()
    finally:
        second.stop()

    listing = pagemill_process(
        ["keys", "list", "--json"], env, name="keys-list", log_path=tmp_path / "list.log"
    )
    assert listing.wait(timeout=60) == 0, listing.log_text()
    output = listing.log_text()
    listing.stop()
    assert secret not in output
    rows = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    bootstrap = [row for row in rows if row["name"] == "bootstrap"]
    assert len(bootstrap) == 1, rows
    assert bootstrap[0]["tenant"] == "default" and secret.startswith(bootstrap[0]["prefix"])
    assert len(bootstrap[0]["prefix"]) < len(secret)
