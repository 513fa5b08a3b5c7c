"""Pure helpers of the job service: display-safe file names and opaque listing cursors."""

from __future__ import annotations

import base64
import re
import unicodedata
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest

from pagemill.errors import ValidationFailed
from pagemill.jobs import service
from pagemill.jobs.submission import sanitize_filename
from pagemill.models import DEFAULT_TENANT, Job
from pagemill.pagination import decode_cursor, encode_cursor

# --- sanitize_filename --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("report.pdf", "report.pdf"),
        ("../../etc/passwd", "passwd"),
        ("/var/tmp/scan 01.png", "scan 01.png"),
        ("C:\\Users\\me\\Desktop\\invoice.pdf", "invoice.pdf"),
        ("..\\..\\windows\\win.ini", "win.ini"),
        ("dir/sub\\mixed.tiff", "mixed.tiff"),
        ("  spaced name (1) [final].pdf  ", "spaced name (1) [final].pdf"),
        ("a\x00b\nc\rd\te.pdf", "a_b_c_d_e.pdf"),
        ("...hidden", "hidden"),
    ],
)
def test_sanitize_filename(name: str, expected: str) -> None:
    assert sanitize_filename(name) == expected


@pytest.mark.parametrize(
    "name", ["Bericht für März.pdf", "日本語の文書.pdf", "Ελληνικά.png", "naïve café.jpeg", "отчёт_2024.tiff"]
)
def test_sanitize_filename_keeps_letters_of_every_script(name: str) -> None:
    assert sanitize_filename(name) == name


@pytest.mark.parametrize("name", [None, "", "   ", "/", "\\", "../..", "...", "\x00\x01\x1f", "dir/"])
def test_a_name_with_nothing_left_becomes_document(name: str | None) -> None:
    assert sanitize_filename(name) == "document"


@pytest.mark.parametrize(
    "name",
    [
        "evil\u202efdp.exe",  # right-to-left override: shows as "evilexe.pdf"
        "zero\u200bwidth.pdf",
        "bell\x07\x1b[31mred.pdf",
        "del\x7f.pdf",
        "line\u2028sep.pdf",
        'quote"s <and> |pipes|*?.pdf',
    ],
)
def test_no_control_format_or_shell_special_characters_survive(name: str) -> None:
    cleaned = sanitize_filename(name)
    assert cleaned
    assert all(unicodedata.category(char)[0] != "C" for char in cleaned), cleaned
    assert not set(cleaned) & set('/\\"<>|*?\u2028'), cleaned


def test_long_names_are_capped_at_255_characters() -> None:
    assert len(sanitize_filename("a" * 300 + ".pdf")) == 255
    assert sanitize_filename("b" * 300).startswith("b" * 255)
    # Characters, not bytes: a name of multibyte letters is capped by character count too.
    assert sanitize_filename("ü" * 400) == "ü" * 255
    assert sanitize_filename("x" * 255) == "x" * 255


def test_a_long_path_is_cut_to_its_base_name_before_the_cap() -> None:
    assert sanitize_filename("d" * 1000 + "/short.pdf") == "short.pdf"


# --- listing cursors ----------------------------------------------------------------------------------------


def _job(created_at: datetime, job_id: str | None = None) -> Job:
    return Job(id=job_id or str(uuid.uuid4()), created_at=created_at)


@pytest.mark.parametrize(
    "created_at",
    [
        datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC),
        datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),  # no microseconds: isoformat drops them
        datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=timezone(timedelta(hours=-5))),
    ],
)
def test_cursor_round_trip(created_at: datetime) -> None:
    job = _job(created_at)
    cursor = encode_cursor(job)
    decoded_at, decoded_id = decode_cursor(cursor)
    assert decoded_id == job.id
    assert decoded_at == created_at  # the same instant ...
    assert decoded_at.utcoffset() == timedelta(0)  # ... in UTC, as stored and compared


def test_cursor_is_url_safe_and_opaque() -> None:
    job = _job(datetime(2026, 5, 6, 7, 8, 9, 123456, tzinfo=UTC))
    cursor = encode_cursor(job)
    assert re.fullmatch(r"[A-Za-z0-9_-]+", cursor), cursor  # no padding, nothing to escape in a query
    assert job.id not in cursor


def test_cursors_of_different_jobs_differ() -> None:
    at = datetime(2026, 5, 6, tzinfo=UTC)
    assert encode_cursor(_job(at)) != encode_cursor(_job(at))
    job_id = str(uuid.uuid4())
    assert encode_cursor(_job(at, job_id)) != encode_cursor(_job(at + timedelta(microseconds=1), job_id))


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        "!!!not base64!!!",
        "a",  # one base64 character is never valid
        _b64(b"no separator here"),
        _b64(b"yesterday|0f3c7c4e-8b59-4cf4-9d2f-2a4d2f0d6b1e"),
        _b64(b"\xff\xfe\xfd|abc"),  # not UTF-8
        _b64(b"|"),
    ],
)
def test_invalid_cursors_are_validation_errors(cursor: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        decode_cursor(cursor)
    assert caught.value.code == "VALIDATION_ERROR"
    assert caught.value.details == {"field": "cursor"}


def test_a_cursor_without_a_time_zone_is_a_validation_error() -> None:
    # The database layer refuses naive datetimes (UtcDateTime raises ValueError at bind time), so a
    # hand-made cursor without an offset must be rejected here as a 422, not fail later as a 500.
    cursor = _b64(f"2026-01-02T03:04:05|{uuid.uuid4()}".encode())
    with pytest.raises(ValidationFailed):
        decode_cursor(cursor)


@pytest.mark.parametrize("cursor", ["!!!", _b64(b"no separator")])
def test_list_jobs_rejects_a_bad_cursor_before_any_query(cursor: str) -> None:
    class NoSession:
        def __getattr__(self, name: str) -> object:
            raise AssertionError(f"the session was used ({name}) before the cursor was checked")

    with pytest.raises(ValidationFailed):
        service.list_jobs(
            NoSession(),  # type: ignore[arg-type]
            DEFAULT_TENANT,
            state=None,
            limit=10,
            cursor=cursor,
        )
