"""A multipart body that cannot be parsed, or that breaks off before its closing boundary, is
``400 BAD_REQUEST`` (docs/api.md); a well-formed body without a ``file`` part is ``422 VALIDATION_ERROR``."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from fastapi.testclient import TestClient

from tests.unit.api.test_error_shape import assert_error_shape

FILE_PART = b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.pdf"\r\n\r\n%PDF-1.7\n'
FORMATS_PART = b'--b\r\nContent-Disposition: form-data; name="formats"\r\n\r\ntext\r\n'


def _post(
    client: TestClient, api_key: str, body: bytes | Iterator[bytes], boundary: str = "b"
) -> httpx.Response:
    headers = {
        "Authorization": f"Bearer {api_key}",
        "Content-Type": f"multipart/form-data; boundary={boundary}",
    }
    return client.post("/api/v1/documents", content=body, headers=headers)


@pytest.mark.parametrize(
    "body",
    [
        FILE_PART,  # cut off inside the file: no closing boundary
        FILE_PART + b"\r\n--b",  # cut off inside the closing boundary
        FORMATS_PART,  # a complete part, then nothing
        b"this is not multipart",
        b"--b\r\nContent-Disposition form-data\r\n\r\nx\r\n--b--\r\n",  # a header line without a colon
    ],
    ids=["inside-file", "inside-closing-boundary", "after-a-part", "garbage", "bad-part-header"],
)
def test_broken_multipart_is_a_bad_request(client: TestClient, api_key: str, body: bytes) -> None:
    error = assert_error_shape(_post(client, api_key, body), 400, "BAD_REQUEST")
    assert "multipart" in str(error["message"]).lower()


def test_a_complete_body_without_a_file_is_a_validation_error(client: TestClient, api_key: str) -> None:
    body = FORMATS_PART + b"--b--\r\n"
    error = assert_error_shape(_post(client, api_key, body), 422, "VALIDATION_ERROR")
    assert "file" in str(error)


def test_a_closing_boundary_split_across_chunks_is_found(client: TestClient, api_key: str) -> None:
    # Chunked transfer: the delimiter arrives in pieces, the way a slow network delivers it.
    body = FORMATS_PART + b"--b--\r\n"
    split = len(FORMATS_PART) + 3

    def chunks() -> Iterator[bytes]:
        yield body[:split]
        yield body[split:]

    response = _post(client, api_key, chunks())
    assert_error_shape(response, 422, "VALIDATION_ERROR")


def test_a_quoted_boundary_is_understood(client: TestClient, api_key: str) -> None:
    body = FORMATS_PART.replace(b"--b", b"--x y") + b"--x y--\r\n"
    assert_error_shape(_post(client, api_key, body, boundary='"x y"'), 422, "VALIDATION_ERROR")
