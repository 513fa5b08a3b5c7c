"""Secrets and signatures of Standard Webhooks (https://www.standardwebhooks.com), with the
``standardwebhooks`` library.

Each attempt carries ``webhook-id`` (the event's id, the same on every attempt: receivers deduplicate on
it), ``webhook-timestamp`` (Unix seconds of this attempt) and ``webhook-signature``: ``v1,<base64 of
HMAC-SHA256(secret, "<id>.<timestamp>.<body>")>``, one per secret in force, separated by a space (during a
rotation's grace the old secret signs beside the new one).
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Sequence
from datetime import datetime

from standardwebhooks.webhooks import Webhook

SECRET_PREFIX = "whsec_"  # noqa: S105 - the prefix of every secret, not one
SECRET_BYTES = 32


def new_secret() -> str:
    """A new signing secret: ``whsec_`` and the base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def signature_header(signing_secrets: Sequence[str], msg_id: str, timestamp: datetime, body: bytes) -> str:
    """The ``webhook-signature`` value: one ``v1,...`` signature per secret, space-separated."""
    data = body.decode("utf-8")
    return " ".join(Webhook(secret).sign(msg_id, timestamp, data) for secret in signing_secrets)


def webhook_headers(
    signing_secrets: Sequence[str], msg_id: str, timestamp: datetime, body: bytes
) -> dict[str, str]:
    """The three Standard Webhooks headers of one attempt made at ``timestamp``."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(timestamp.timestamp())),
        "webhook-signature": signature_header(signing_secrets, msg_id, timestamp, body),
    }
