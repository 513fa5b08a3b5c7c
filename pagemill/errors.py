"""One error tree for everything a client or an operator can see.

    PagemillError                       code, message, details, http_status, retryable
    ├── InputError (4xx, permanent)     the request or the document is at fault
    │   ├── EmptyFile                   EMPTY_FILE            422
    │   ├── UnsupportedType             UNSUPPORTED_TYPE      415
    │   ├── FileTooLarge                FILE_TOO_LARGE        413
    │   ├── CorruptFile                 CORRUPT_FILE          422
    │   ├── EncryptedFile               ENCRYPTED_FILE        422  (no password given)
    │   ├── WrongPassword               WRONG_PASSWORD        422
    │   ├── ImageTooLarge               IMAGE_TOO_LARGE       422
    │   ├── TooManyPages                TOO_MANY_PAGES        422
    │   ├── ArchiveBomb                 ARCHIVE_BOMB          422 (an office file's zip or XML is a bomb or
    │   │                                                     a trap: sizes, ratios, names, XML entities)
    │   ├── TooManyCells                TOO_MANY_CELLS        422 (a sheet over limits.max_sheet_cells)
    │   ├── AudioTooLong                AUDIO_TOO_LONG        422 (a recording over the tier's or the
    │   │                                                     service's maximum duration)
    │   ├── UnsupportedCodec            UNSUPPORTED_CODEC     415 (an audio/video container whose audio
    │   │                                                     codec cannot be decoded)
    │   ├── InvalidPageRange            INVALID_PAGE_RANGE    422
    │   ├── ValidationFailed            VALIDATION_ERROR      422
    │   ├── NotFound                    NOT_FOUND             404
    │   ├── IdempotencyKeyReused        IDEMPOTENCY_KEY_REUSED 422 (same key, another document/options)
    │   ├── EngineNotConfigured         ENGINE_NOT_CONFIGURED 422 (a model engine without its server setting)
    │   ├── SecretsNotConfigured        SECRETS_NOT_CONFIGURED 422 (a password, but no secrets.key to seal it)
    │   ├── Conflict                    CONFLICT              409 (e.g. result of an unfinished job)
    │   ├── ResultExpired               RESULT_EXPIRED        410 (retention deleted the results, or a purge)
    │   ├── LinkExpired                 LINK_EXPIRED          410 (a signed result URL past its expiry)
    │   ├── BatchTooLarge               BATCH_TOO_LARGE       422 (more items than the tier's max_batch_items)
    │   ├── UploadOffsetMismatch        UPLOAD_OFFSET_MISMATCH 409 (tus PATCH at another offset than stored)
    │   ├── UploadIncomplete            UPLOAD_INCOMPLETE     409 (an upload id whose bytes are not all in)
    │   ├── UploadAlreadyUsed           UPLOAD_ALREADY_USED   409 (an upload that is another job already)
    │   ├── EventsDisabled              EVENTS_DISABLED       409 (a stream while events.enabled is off)
    │   ├── ReplayNotAllowed            REPLAY_NOT_ALLOWED    409 (a dead letter replayed already, or its job
    │   │                                                     active, cancelled or shared by cached copies)
    │   ├── ReplaySourceGone            REPLAY_SOURCE_GONE    409 (a dead letter's original, or its password,
    │   │                                                     is gone: purged, retention, blob missing)
    │   ├── UploadLocked                UPLOAD_LOCKED         423 + Retry-After (another PATCH is writing)
    │   ├── UploadExpired               UPLOAD_EXPIRED        410 (past uploads.expire_after_s)
    │   ├── TusVersionUnsupported       TUS_VERSION_UNSUPPORTED 412 + Tus-Version
    │   ├── UnsupportedMediaType        UNSUPPORTED_MEDIA_TYPE 415 (PATCH not application/offset+octet-stream)
    │   ├── ChecksumAlgorithmUnsupported CHECKSUM_ALGORITHM_UNSUPPORTED 400 (Upload-Checksum not sha1/sha256)
    │   ├── ChecksumMismatch            CHECKSUM_MISMATCH     460 (the body is not what Upload-Checksum says)
    │   ├── RequestTimeout              REQUEST_TIMEOUT       408 (the body stopped arriving; conn. closed)
    │   ├── MalformedRequest            BAD_REQUEST           400 (not HTTP/1.1 the server can parse)
    │   │   ├── UrlTooLong              URI_TOO_LONG          414
    │   │   └── HeadersTooLarge         HEADERS_TOO_LARGE     431
    │   └── UrlFetchFailed              URL_FETCH_FAILED      422 (a document URL could not be fetched)
    │       ├── UrlForbidden            URL_FORBIDDEN         422 (scheme, userinfo or a non-global address)
    │       ├── UrlUnreachable          URL_UNREACHABLE       (no such name, connection refused or reset)
    │       ├── UrlHttpError            URL_HTTP_ERROR        (the server answered 4xx/5xx; details.status)
    │       ├── UrlTooLarge             URL_TOO_LARGE         413 (the body is over the tier's file size)
    │       └── UrlTimeout              URL_TIMEOUT           (connect, a read or the whole fetch too slow)
    ├── AccessError (4xx)               who is calling, and how much they may do
    │   ├── Unauthorized                UNAUTHORIZED          401 (no, unknown, revoked or expired key)
    │   ├── Forbidden                   FORBIDDEN             403 (e.g. admin endpoints without admin)
    │   ├── RateLimited                 RATE_LIMITED          429 + Retry-After (requests per key)
    │   └── QuotaExceeded               QUOTA_EXCEEDED        429 + Retry-After (documents per day/month)
    ├── ProcessingError (permanent)     PROCESSING_FAILED     500 (a page or a job could not be read)
    │   ├── ProcessingTimeout           PROCESSING_TIMEOUT    a page, a text-layer chunk or the document took
    │   │                                                     longer than allowed (details.kind, limit_s)
    │   ├── WorkerCrashed               WORKER_CRASHED        a page or job killed its worker too often
    │   ├── JobStalled                  JOB_STALLED           re-enqueued by the sweeper, still no progress
    │   └── EngineFailed                ENGINE_FAILED         an OCR engine answered, but unusably
    │                                                         (context too long, truncated, degenerate)
    └── TransientError (retryable)      a dependency failed; retried with backoff, 503 to clients
        ├── DependencyUnavailable       SERVICE_UNAVAILABLE   503 + Retry-After (also load shed: over the
        │                                                     API's concurrency, no database connection)
    └── EngineUnavailable           ENGINE_UNAVAILABLE    an OCR server is down or overloaded (after retries)

Job failures store the same ``code`` and ``message`` on the job row, so the error a client polls for is the
error the worker raised. Messages are written for the client: they never contain internals (paths, stack
traces, SQL). ``details`` carries machine-readable context.
"""

from __future__ import annotations

from typing import Any, ClassVar


class PagemillError(Exception):
    """Base of every error Pagemill reports; rendered by one API handler and stored on failed jobs."""

    code: ClassVar[str] = "INTERNAL_ERROR"
    http_status: ClassVar[int] = 500
    retryable: ClassVar[bool] = False
    default_message: ClassVar[str] = "An internal error occurred."

    def __init__(self, message: str | None = None, **details: Any) -> None:
        self.message = message or self.default_message
        self.details: dict[str, Any] = details
        super().__init__(self.message)

    def to_dict(self) -> dict[str, Any]:
        """The public ``error`` object: ``{"code", "message", "details"}``."""
        return {"code": self.code, "message": self.message, "details": self.details}

    def headers(self) -> dict[str, str]:
        """HTTP headers the response carries besides the body (Retry-After, WWW-Authenticate)."""
        return {"Retry-After": str(self.details.get("retry_after_s", 5))} if self.retryable else {}


class InputError(PagemillError):
    """The request or the document is at fault; never retried."""

    code = "INVALID_INPUT"
    http_status = 422
    default_message = "The input is not valid."


class EmptyFile(InputError):
    code = "EMPTY_FILE"
    default_message = "The uploaded file is empty."


class UnsupportedType(InputError):
    code = "UNSUPPORTED_TYPE"
    http_status = 415
    default_message = (
        "The file's content is not a supported type (documents: PDF, PNG, JPEG, TIFF, WebP, DOCX, PPTX, "
        "XLSX, ODT, ODP, ODS, HTML, EPUB, EML; recordings: WAV, MP3, AAC, M4A, OGG, FLAC, WebM, MKV, MP4)."
    )


class FileTooLarge(InputError):
    code = "FILE_TOO_LARGE"
    http_status = 413
    default_message = "The file is larger than allowed."


class CorruptFile(InputError):
    code = "CORRUPT_FILE"
    default_message = "The file is damaged and cannot be read."


class EncryptedFile(InputError):
    code = "ENCRYPTED_FILE"
    default_message = "The document is encrypted; send its password in the 'password' field."


class WrongPassword(InputError):
    code = "WRONG_PASSWORD"
    default_message = "The password does not open this document."


class ImageTooLarge(InputError):
    code = "IMAGE_TOO_LARGE"
    default_message = "The image has more pixels than allowed."


class TooManyPages(InputError):
    code = "TOO_MANY_PAGES"
    default_message = "The document has more pages than allowed."


class ArchiveBomb(InputError):
    code = "ARCHIVE_BOMB"
    default_message = "The file unpacks to more than a real document does, or holds unsafe parts."


class TooManyCells(InputError):
    code = "TOO_MANY_CELLS"
    default_message = "A sheet of the workbook has more cells than allowed."


class AudioTooLong(InputError):
    code = "AUDIO_TOO_LONG"
    default_message = "The recording is longer than allowed."


class UnsupportedCodec(InputError):
    code = "UNSUPPORTED_CODEC"
    http_status = 415
    default_message = "The recording's audio codec cannot be decoded."


class InvalidPageRange(InputError):
    code = "INVALID_PAGE_RANGE"
    default_message = "The page range is not valid for this document."


class ValidationFailed(InputError):
    code = "VALIDATION_ERROR"
    default_message = "The request is not valid."


class NotFound(InputError):
    code = "NOT_FOUND"
    http_status = 404
    default_message = "Not found."


class IdempotencyKeyReused(InputError):
    code = "IDEMPOTENCY_KEY_REUSED"
    default_message = "This Idempotency-Key was used for another document or other options."


class SecretsNotConfigured(InputError):
    code = "SECRETS_NOT_CONFIGURED"
    default_message = (
        "This server cannot accept document passwords: its operator has not set secrets.key "
        "(PAGEMILL_SECRETS__KEY)."
    )


class EngineNotConfigured(InputError):
    """A job names (or the defaults choose) a model engine whose server this deployment has not set."""

    code = "ENGINE_NOT_CONFIGURED"
    default_message = "The OCR engine is not configured on this server."


class Conflict(InputError):
    code = "CONFLICT"
    http_status = 409
    default_message = "The request conflicts with the current state of the resource."

    def headers(self) -> dict[str, str]:
        """A conflict that passes by itself (a concurrent request finishing) says when to retry."""
        retry_after = self.details.get("retry_after_s")
        return {"Retry-After": str(retry_after)} if retry_after else {}


class ResultExpired(InputError):
    """The job's results were deleted: its tier's retention period passed, or the tenant purged it."""

    code = "RESULT_EXPIRED"
    http_status = 410
    default_message = "The job's results were deleted (retention period over, or purged)."


class LinkExpired(InputError):
    """A signed result download URL is past its expiry (ask for a new one)."""

    code = "LINK_EXPIRED"
    http_status = 410
    default_message = "This download link has expired; request the result again for a new one."


class BatchTooLarge(InputError):
    code = "BATCH_TOO_LARGE"
    default_message = "The batch has more items than the tier allows."


class UploadOffsetMismatch(Conflict):
    """A tus PATCH whose Upload-Offset is not the upload's stored offset (HEAD tells the right one)."""

    code = "UPLOAD_OFFSET_MISMATCH"
    default_message = "Upload-Offset does not match the upload's offset; ask HEAD for it and resume there."


class UploadIncomplete(Conflict):
    code = "UPLOAD_INCOMPLETE"
    default_message = "The upload has not received all its bytes yet."


class UploadAlreadyUsed(Conflict):
    code = "UPLOAD_ALREADY_USED"
    default_message = "This upload is already a job (details.job_id), made with other options."


class EventsDisabled(Conflict):
    """An event stream was asked for, but this server writes no events (events.enabled is off)."""

    code = "EVENTS_DISABLED"
    default_message = "This server does not record events (events.enabled is off); poll the job instead."


class ReplayNotAllowed(Conflict):
    """A dead letter cannot be replayed now (``details.reason``): replayed already, its job is active again
    or was cancelled, or the job's page rows are shared by cached copies of it."""

    code = "REPLAY_NOT_ALLOWED"
    default_message = "This dead letter cannot be replayed now."


class ReplaySourceGone(Conflict):
    """A dead letter's work cannot run again: the job's original is gone (purged, deleted by retention,
    missing from storage) or the password it needs was wiped when the job ended (``details.reason``)."""

    code = "REPLAY_SOURCE_GONE"
    default_message = "The job's original document is gone; its work cannot be replayed."


class UploadLocked(InputError):
    """Another PATCH of the same upload is being written (on this or another API replica)."""

    code = "UPLOAD_LOCKED"
    http_status = 423
    default_message = "Another request is writing this upload; retry after Retry-After seconds."

    def headers(self) -> dict[str, str]:
        """It passes when the other request ends."""
        return {"Retry-After": str(self.details.get("retry_after_s", 1))}


class UploadExpired(InputError):
    code = "UPLOAD_EXPIRED"
    http_status = 410
    default_message = "The upload expired before it was finished; start a new one."


class TusVersionUnsupported(InputError):
    code = "TUS_VERSION_UNSUPPORTED"
    http_status = 412
    default_message = "Tus-Resumable must be 1.0.0, the only tus version this server speaks."

    def headers(self) -> dict[str, str]:
        """The tus versions the server supports (tus 1.0: a 412 names them)."""
        return {"Tus-Version": "1.0.0"}


class UnsupportedMediaType(InputError):
    code = "UNSUPPORTED_MEDIA_TYPE"
    http_status = 415
    default_message = "A tus PATCH must have Content-Type: application/offset+octet-stream."


class ChecksumAlgorithmUnsupported(InputError):
    code = "CHECKSUM_ALGORITHM_UNSUPPORTED"
    http_status = 400
    default_message = "Upload-Checksum must be 'sha1 <base64>' or 'sha256 <base64>'."


class ChecksumMismatch(InputError):
    """tus checksum extension: the PATCH body does not match Upload-Checksum; nothing of it was kept."""

    code = "CHECKSUM_MISMATCH"
    http_status = 460
    default_message = "The body does not match Upload-Checksum; nothing of it was kept, send it again."


class RequestTimeout(InputError):
    """The request body stopped arriving (``api.body_read_timeout_s`` without a byte)."""

    code = "REQUEST_TIMEOUT"
    http_status = 408
    default_message = "The request body stopped arriving; send it again."

    def headers(self) -> dict[str, str]:
        """The rest of the body may still come: the connection cannot be reused."""
        return {"Connection": "close"}


class MalformedRequest(InputError):
    """The HTTP server could not parse the request; answered before it reaches the application."""

    code = "BAD_REQUEST"
    http_status = 400
    default_message = "The request is not valid HTTP/1.1."


class UrlTooLong(MalformedRequest):
    code = "URI_TOO_LONG"
    http_status = 414
    default_message = "The request's URL (path and query string) is longer than allowed."


class HeadersTooLarge(MalformedRequest):
    code = "HEADERS_TOO_LARGE"
    http_status = 431
    default_message = "The request's headers are larger than allowed."


class UrlFetchFailed(InputError):
    """A document URL could not be fetched (by the worker) or may not be (the SSRF guard, pagemill.egress).

    ``transient`` marks failures that may pass (connection refused, 5xx, timeouts): the fetch retries them a
    bounded number of times before the job fails with the error. It is not a TransientError: once those
    retries are spent the failure is the job's final answer, not a 503.
    """

    code = "URL_FETCH_FAILED"
    default_message = "The document could not be fetched from its URL."

    def __init__(self, message: str | None = None, *, transient: bool = False, **details: Any) -> None:
        super().__init__(message, **details)
        self.transient = transient


class UrlForbidden(UrlFetchFailed):
    code = "URL_FORBIDDEN"
    default_message = (
        "This URL may not be fetched: only http(s) URLs without credentials whose host resolves to public "
        "addresses are allowed."
    )


class UrlUnreachable(UrlFetchFailed):
    code = "URL_UNREACHABLE"
    default_message = "The URL's server could not be reached (unknown name, connection refused or reset)."


class UrlHttpError(UrlFetchFailed):
    code = "URL_HTTP_ERROR"
    default_message = "The URL's server answered with an error status."


class UrlTooLarge(UrlFetchFailed):
    code = "URL_TOO_LARGE"
    http_status = 413
    default_message = "The document at the URL is larger than allowed."


class UrlTimeout(UrlFetchFailed):
    code = "URL_TIMEOUT"
    default_message = "The URL's server was too slow (connecting, sending, or the whole fetch)."


class ProcessingError(PagemillError):
    """A document or page could not be processed; permanent."""

    code = "PROCESSING_FAILED"
    default_message = "The document could not be processed."


class ProcessingTimeout(ProcessingError):
    code = "PROCESSING_TIMEOUT"
    default_message = "The document took longer to process than allowed."


class WorkerCrashed(ProcessingError):
    code = "WORKER_CRASHED"
    default_message = "Processing this document repeatedly crashed its worker; it was given up."


class JobStalled(ProcessingError):
    code = "JOB_STALLED"
    default_message = (
        "The job made no progress although it was re-enqueued several times (no worker could take its "
        "pages); it was given up."
    )


class TransientError(PagemillError):
    """A dependency failed in a way that may pass; retried with backoff."""

    code = "TRANSIENT_ERROR"
    http_status = 503
    retryable = True
    default_message = "A temporary failure occurred; try again."


class DependencyUnavailable(TransientError):
    code = "SERVICE_UNAVAILABLE"
    default_message = "A service Pagemill depends on is unavailable; try again shortly."


class EngineFailed(ProcessingError):
    """An OCR engine answered, but its answer cannot be used for this page; the next engine may do better."""

    code = "ENGINE_FAILED"
    default_message = "The OCR engine could not read this page."


class EngineUnavailable(TransientError):
    """An OCR engine's server is unreachable or overloaded, even after retries."""

    code = "ENGINE_UNAVAILABLE"
    default_message = "The OCR engine is unavailable; try again shortly."


class AccessError(PagemillError):
    """The caller is not known, not allowed, or over a limit."""

    code = "ACCESS_DENIED"
    http_status = 403
    default_message = "Access denied."


class Unauthorized(AccessError):
    code = "UNAUTHORIZED"
    http_status = 401
    default_message = "Send an API key: 'Authorization: Bearer pm_live_...' or 'X-API-Key: pm_live_...'."

    def headers(self) -> dict[str, str]:
        """RFC 9110: a 401 names the scheme to use."""
        return {"WWW-Authenticate": 'Bearer realm="pagemill"'}


class Forbidden(AccessError):
    code = "FORBIDDEN"
    http_status = 403
    default_message = "This key may not do that."


class RateLimited(AccessError):
    code = "RATE_LIMITED"
    http_status = 429
    default_message = "Too many requests for this API key; slow down."

    def __init__(self, message: str | None = None, *, retry_after_s: int, **details: Any) -> None:
        super().__init__(message, retry_after_s=retry_after_s, **details)
        self.retry_after_s = retry_after_s

    def headers(self) -> dict[str, str]:
        """When the client may try again."""
        return {"Retry-After": str(max(1, self.retry_after_s))}


class QuotaExceeded(RateLimited):
    code = "QUOTA_EXCEEDED"
    default_message = "The tenant's document quota is used up for this period."
