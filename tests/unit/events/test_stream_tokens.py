"""Stream tokens: signed, short-lived, scoped to a tenant or one job; an API key in their place is refused."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import jwt
import pytest
from cryptography.fernet import Fernet

from pagemill.errors import Forbidden, SecretsNotConfigured, Unauthorized
from pagemill.events import stream_tokens
from pagemill.settings import Settings
from pagemill.tenancy.principal import Principal

ALICE = Principal(tenant_id="alice", tier="standard", subject="key:key_1", rate_key="key_1")


@pytest.fixture
def settings(clean_env: None, tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path, secrets={"key": Fernet.generate_key().decode()})


def test_a_token_stands_for_its_caller(settings: Settings) -> None:
    made = stream_tokens.issue(settings, ALICE)
    principal = stream_tokens.authorize(settings, made.token, None)
    assert (principal.tenant_id, principal.tier, principal.subject, principal.rate_key) == (
        "alice",
        "standard",
        "key:key_1",
        "key_1",
    )
    assert not principal.is_admin
    assert made.expires_at.timestamp() == pytest.approx(
        time.time() + settings.events.stream_token_ttl_s, abs=2
    )
    # A tenant-wide token also opens any of its jobs' streams (the job's tenant is checked by the route).
    assert stream_tokens.authorize(settings, made.token, str(uuid.uuid4())).tenant_id == "alice"


def test_an_expired_token_is_refused(settings: Settings) -> None:
    made = stream_tokens.issue(settings, ALICE, now=1_000_000)
    stream_tokens.authorize(
        settings, made.token, None, now=1_000_000 + settings.events.stream_token_ttl_s - 1
    )
    with pytest.raises(Unauthorized) as refused:
        stream_tokens.authorize(
            settings, made.token, None, now=1_000_000 + settings.events.stream_token_ttl_s
        )
    assert refused.value.details["reason"] == "expired"
    # And against the real clock.
    with pytest.raises(Unauthorized, match="expired"):
        stream_tokens.authorize(settings, made.token, None)


def test_forged_and_altered_tokens_are_refused(settings: Settings) -> None:
    made = stream_tokens.issue(settings, ALICE)
    claims = jwt.decode(made.token, options={"verify_signature": False})
    forged = jwt.encode({**claims, "tenant": "bob"}, "not the server's key" * 2, algorithm="HS256")
    unsigned = jwt.encode({**claims, "tenant": "bob"}, None, algorithm="none")
    header, _payload, signature = made.token.split(".")
    other_payload = jwt.encode({**claims, "tenant": "bob"}, "x" * 32, algorithm="HS256").split(".")[1]
    for bad in (forged, unsigned, f"{header}.{other_payload}.{signature}", "", "a.b.c"):
        with pytest.raises(Unauthorized) as refused:
            stream_tokens.authorize(settings, bad, None)
        assert refused.value.details["reason"] == "invalid_stream_token"


def test_a_token_made_under_another_secrets_key_is_refused(settings: Settings, tmp_path: Path) -> None:
    other = Settings(data_dir=tmp_path, secrets={"key": Fernet.generate_key().decode()})
    with pytest.raises(Unauthorized):
        stream_tokens.authorize(other, stream_tokens.issue(settings, ALICE).token, None)


def test_a_job_token_opens_that_job_only(settings: Settings) -> None:
    job = str(uuid.uuid4())
    made = stream_tokens.issue(settings, ALICE, job)
    assert stream_tokens.authorize(settings, made.token, job).tenant_id == "alice"
    # Any spelling of the job's id, as the routes accept.
    assert stream_tokens.authorize(settings, made.token, job.upper().replace("-", "")).tenant_id == "alice"
    for elsewhere in (str(uuid.uuid4()), None, "not-a-uuid"):
        with pytest.raises(Forbidden):
            stream_tokens.authorize(settings, made.token, elsewhere)


def test_an_api_key_is_never_accepted_as_a_token(settings: Settings) -> None:
    with pytest.raises(Unauthorized) as refused:
        stream_tokens.authorize(settings, "pm_live_" + "a" * 38, None)
    assert refused.value.details["reason"] == "key_in_query"


def test_distributed_mode_without_a_secrets_key_makes_no_tokens(clean_env: None) -> None:
    settings = Settings(database={"url": "postgresql+psycopg://nobody@127.0.0.1:1/none"})
    with pytest.raises(SecretsNotConfigured):
        stream_tokens.issue(settings, ALICE)
