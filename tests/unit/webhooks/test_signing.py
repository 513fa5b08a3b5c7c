"""Standard Webhooks secrets and headers, checked with the standardwebhooks library itself."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from pagemill.webhooks.signing import new_secret, signature_header, webhook_headers

BODY = b'{"specversion":"1.0","id":"e1","type":"com.pagemill.job.succeeded","data":{"state":"succeeded"}}'


def test_a_secret_is_whsec_and_32_random_bytes() -> None:
    first, second = new_secret(), new_secret()
    assert first.startswith("whsec_") and first != second
    assert len(base64.b64decode(first.removeprefix("whsec_"))) == 32


def test_headers_verify_with_the_library() -> None:
    secret = new_secret()
    now = datetime.now(UTC)
    headers = webhook_headers([secret], "msg_1", now, BODY)
    assert headers["webhook-id"] == "msg_1"
    assert headers["webhook-timestamp"] == str(int(now.timestamp()))
    assert headers["webhook-signature"].startswith("v1,") and " " not in headers["webhook-signature"]
    assert Webhook(secret).verify(BODY, headers)["data"] == {"state": "succeeded"}


def test_the_signature_covers_id_timestamp_and_body() -> None:
    secret = new_secret()
    headers = webhook_headers([secret], "msg_1", datetime.now(UTC), BODY)
    for changed in (
        {**headers, "webhook-id": "msg_2"},
        {**headers, "webhook-timestamp": str(int(headers["webhook-timestamp"]) - 1)},
    ):
        with pytest.raises(WebhookVerificationError):
            Webhook(secret).verify(BODY, changed)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(BODY.replace(b"succeeded", b"failed"), headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(BODY, headers)


def test_during_a_rotation_both_secrets_verify() -> None:
    new, old = new_secret(), new_secret()
    headers = webhook_headers([new, old], "msg_1", datetime.now(UTC), BODY)
    signatures = headers["webhook-signature"].split(" ")
    assert len(signatures) == 2 and all(s.startswith("v1,") for s in signatures)
    Webhook(new).verify(BODY, headers)
    Webhook(old).verify(BODY, headers)


def test_a_fresh_timestamp_changes_the_signature_not_the_id() -> None:
    secret = new_secret()
    now = datetime.now(UTC)
    first = signature_header([secret], "msg_1", now, BODY)
    second = signature_header([secret], "msg_1", now + timedelta(seconds=5), BODY)
    assert first != second
    # Receivers refuse stale timestamps: an attempt is signed at the time it is made.
    stale = webhook_headers([secret], "msg_1", now - timedelta(minutes=10), BODY)
    with pytest.raises(WebhookVerificationError, match="too old"):
        Webhook(secret).verify(BODY, stale)
