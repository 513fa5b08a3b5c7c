"""Result download URLs: a presigned S3 URL, or on the local backend a signed, expiring API URL.

The API URL is ``/api/v1/result-links/{job_id}/{format}?expires=<unix s>&signature=<hex>``: an HMAC-SHA256
of the job, the format and the expiry under a key derived from ``secrets.key`` (embedded mode's key file
otherwise), so it needs no API key and cannot be altered or extended. The download route checks the
signature in constant time, then the expiry, then that the job still has its results.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from urllib.parse import urlencode

from pagemill.errors import Forbidden, LinkExpired
from pagemill.jobs.options import OutputFormat
from pagemill.secret_box import derived_key
from pagemill.settings import Settings

LINK_PATH = "/api/v1/result-links"
_CONTEXT = b"pagemill result links v1"


def _signing_key(settings: Settings) -> bytes:
    missing = (
        "Result links on the local backend are signed with secrets.key (PAGEMILL_SECRETS__KEY), which this "
        "server has not set."
    )
    return derived_key(settings, _CONTEXT, missing=missing)


def _signature(settings: Settings, job_id: str, fmt: OutputFormat, expires: int) -> str:
    message = f"{job_id}\n{fmt.value}\n{expires}".encode()
    return hmac.new(_signing_key(settings), message, hashlib.sha256).hexdigest()


def signed_path(settings: Settings, job_id: str, fmt: OutputFormat, *, now: float | None = None) -> str:
    """The signed API path (with its query) that serves ``job_id``'s result in ``fmt`` until
    ``storage.result_url_ttl_s`` from now."""
    expires = int(now if now is not None else time.time()) + settings.storage.result_url_ttl_s
    query = urlencode({"expires": expires, "signature": _signature(settings, job_id, fmt, expires)})
    return f"{LINK_PATH}/{job_id}/{fmt.value}?{query}"


def verify(
    settings: Settings,
    job_id: str,
    fmt: OutputFormat,
    expires: int,
    signature: str,
    *,
    now: float | None = None,
) -> None:
    """Forbidden if the signature does not match, LinkExpired once ``expires`` has passed."""
    expected = _signature(settings, job_id, fmt, expires)
    # As bytes: compare_digest refuses str with characters outside ASCII, and a link is anyone's input.
    if not hmac.compare_digest(expected.encode(), signature.lower().encode()):
        raise Forbidden("The download link is not valid.")
    if (now if now is not None else time.time()) >= expires:
        raise LinkExpired(expired_at=expires)
