"""Upload-Metadata and Upload-Checksum parsing: the tus grammar, and job options checked at creation."""

from __future__ import annotations

import base64
import hashlib

import pytest

from pagemill.errors import ChecksumAlgorithmUnsupported, MalformedRequest, ValidationFailed
from pagemill.jobs.options import OcrMode, OutputFormat
from pagemill.uploads.metadata import decode_header, parse_metadata
from pagemill.uploads.patch import parse_checksum
from pagemill.uploads.service import _echoed


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_pairs_decode_and_a_key_may_have_no_value() -> None:
    header = f"filename {_b64('scan ä.pdf')},is_confidential,formats {_b64('text')}"
    assert decode_header(header) == {"filename": "scan ä.pdf", "is_confidential": "", "formats": "text"}
    assert decode_header(None) == {} == decode_header("  ")


@pytest.mark.parametrize(
    "header",
    ["filename not-base64!", f"a {_b64('x')},a {_b64('y')}", f"a {_b64('x')} extra", "x" * 9000],
)
def test_malformed_metadata_is_a_bad_request(header: str) -> None:
    with pytest.raises(MalformedRequest):
        decode_header(header)


def test_job_options_come_from_the_metadata() -> None:
    meta = parse_metadata(
        ",".join(
            [
                f"name {_b64('a.pdf')}",
                f"formats {_b64('text,markdown,text')}",
                f"page_range {_b64('1-3')}",
                f"ocr_mode {_b64('text_layer')}",
                f"engine {_b64('tesseract')}",
                f"password {_b64('s3cret')}",
                f"submit {_b64('false')}",
                f"filetype {_b64('application/pdf')}",
                f"callback_url {_b64('https://hooks.example.com/pagemill')}",
            ]
        )
    )
    assert meta.filename == "a.pdf"
    assert meta.options.formats == [OutputFormat.TEXT, OutputFormat.MARKDOWN]
    assert meta.options.page_range == "1-3"
    assert meta.options.ocr_mode == OcrMode.TEXT_LAYER
    assert meta.options.engine == "tesseract"
    assert meta.password == "s3cret"
    assert meta.submit is False
    assert meta.callback_url == "https://hooks.example.com/pagemill"


def test_defaults_without_metadata() -> None:
    meta = parse_metadata(None)
    assert meta.filename is None
    assert meta.options.formats == [OutputFormat.MARKDOWN, OutputFormat.TEXT, OutputFormat.JSON]
    assert meta.submit is True


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("formats", "pdf"),
        ("formats", ","),
        ("engine", "nope"),
        ("ocr_mode", "sometimes"),
        ("page_range", "0-"),
        ("submit", "maybe"),
    ],
)
def test_a_bad_option_fails_at_creation(key: str, value: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        parse_metadata(f"{key} {_b64(value)}")
    assert caught.value.details["field"] == key


def test_the_echoed_metadata_never_carries_the_password() -> None:
    echoed = _echoed(f"filename {_b64('a.pdf')},password {_b64('s3cret')},flag")
    assert echoed is not None
    assert decode_header(echoed) == {"filename": "a.pdf", "flag": ""}


def test_checksums_parse_by_algorithm() -> None:
    digest = hashlib.sha256(b"x").digest()
    assert parse_checksum(f"sha256 {base64.b64encode(digest).decode()}") == ("sha256", digest)
    sha1 = hashlib.sha1(b"x").digest()
    assert parse_checksum(f"SHA1 {base64.b64encode(sha1).decode()}") == ("sha1", sha1)
    assert parse_checksum(None) is None
    with pytest.raises(ChecksumAlgorithmUnsupported):
        parse_checksum(f"md5 {base64.b64encode(hashlib.md5(b'x').digest()).decode()}")
    with pytest.raises(MalformedRequest):
        parse_checksum("sha1 ###")
    with pytest.raises(MalformedRequest):
        parse_checksum(f"sha1 {base64.b64encode(digest).decode()}")  # a sha256's length
