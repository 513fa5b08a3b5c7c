"""Bad input: every refusal has one body shape, a specific code and the request id; nothing crashes."""

from __future__ import annotations

import contextlib
import io
import json
import socket
import zipfile
from pathlib import Path

import httpx
import pytest

from tests.e2e.stack import EMBEDDED_ONLY, Stack
from tests.support import documents

pytestmark = pytest.mark.e2e


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, object]:
    """The one error shape, with the request id echoed in the header."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "request_id"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code and body["error"]["message"]
    assert body["request_id"] and response.headers["x-request-id"] == body["request_id"]
    return body


@EMBEDDED_ONLY
def test_unsupported_type_is_refused_at_once(stack: Stack, docs: Path) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        z.writestr("word/document.xml", "<w:document/>")
    path = docs / "letter.pdf"  # the name lies; the content decides
    path.write_bytes(buf.getvalue())
    assert_error(stack.submit(path), 415, "UNSUPPORTED_TYPE")


def test_pdf_named_png_is_read_as_pdf(stack: Stack, docs: Path) -> None:
    path = documents.make_text_pdf(docs / "picture.png", ["Hidden PDF text"])
    job = stack.wait(stack.submit_ok(path))
    assert job["kind"] == "pdf" and job["state"] == "succeeded"


def test_empty_file(stack: Stack, docs: Path) -> None:
    path = docs / "empty.pdf"
    path.write_bytes(b"")
    assert_error(stack.submit(path), 422, "EMPTY_FILE")


@EMBEDDED_ONLY
def test_request_id_is_echoed(stack: Stack) -> None:
    response = stack.client.get(
        "/api/v1/jobs/00000000-0000-0000-0000-000000000000", headers={"X-Request-ID": "abc-123"}
    )
    body = assert_error(response, 404, "NOT_FOUND")
    assert body["request_id"] == "abc-123"


@EMBEDDED_ONLY
def test_invalid_fields_name_the_field(stack: Stack, docs: Path) -> None:
    pdf = documents.make_text_pdf(docs / "a.pdf", ["x"])
    body = assert_error(stack.submit(pdf, ocr_mode="sometimes"), 422, "VALIDATION_ERROR")
    assert "ocr_mode" in str(body["error"])
    body = assert_error(stack.submit(pdf, page_range="3-1"), 422, "VALIDATION_ERROR")
    assert body["error"]["details"]["field"] == "page_range"  # type: ignore[index]
    assert_error(stack.submit(pdf, formats="markdown,pdf"), 422, "VALIDATION_ERROR")
    assert_error(stack.submit(pdf, engine="magic"), 422, "VALIDATION_ERROR")
    missing = stack.client.post("/api/v1/documents", data={"formats": "text"})
    assert_error(missing, 422, "VALIDATION_ERROR")


def _raw_post(base_url: str, head: bytes, body_chunks: list[bytes]) -> tuple[int, bytes]:
    """Send a request byte by byte (httpx will not send a Content-Length it cannot honour)."""
    host, port = base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(head)
        try:
            for chunk in body_chunks:
                sock.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may answer and close before the whole body is sent
        data = b""
        with contextlib.suppress(ConnectionResetError, TimeoutError):
            while chunk := sock.recv(65536):
                data += chunk
    status = int(data.split(b" ", 2)[1])
    body = data.split(b"\r\n\r\n", 1)[1]
    return status, body[body.index(b"{") : body.rindex(b"}") + 1]  # drop chunked framing if any


@EMBEDDED_ONLY
def test_oversized_body_is_refused_before_it_is_spooled(stack: Stack) -> None:
    limit = int(stack.env["PAGEMILL_LIMITS__MAX_UPLOAD_BYTES"])
    auth = f"Authorization: Bearer {stack.key}\r\n"
    head = (
        f"POST /api/v1/documents HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
        f"{auth}Content-Length: {limit * 4}\r\nConnection: close\r\n\r\n"
    ).encode()
    status, body = _raw_post(stack.base_url, head, [b"--b\r\n"])
    assert status == 413 and json.loads(body)["error"]["code"] == "FILE_TOO_LARGE"

    # No Content-Length (chunked): the cap must trip while the body streams in.
    part = b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.pdf"\r\n\r\n%PDF-1.7\n'
    chunks = [part] + [b"0" * (1024 * 1024)] * (limit // (1024 * 1024) + 4)
    framed = [f"{len(c):x}\r\n".encode() + c + b"\r\n" for c in chunks] + [b"0\r\n\r\n"]
    head = (
        f"POST /api/v1/documents HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
        f"{auth}Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    ).encode()
    status, body = _raw_post(stack.base_url, head, framed)
    assert status == 413 and json.loads(body)["error"]["code"] == "FILE_TOO_LARGE"
    assert stack.client.get("/api/v1/health/live").status_code == 200


@pytest.mark.parametrize(
    ("maker", "code"),
    [
        (lambda d: documents.make_corrupt_pdf(d / "bad.pdf"), "CORRUPT_FILE"),
        (lambda d: documents.make_png_bomb(d / "bomb.png", 60000, 60000), "IMAGE_TOO_LARGE"),
        (lambda d: documents.make_jpeg_claiming_size(d / "huge.jpg", 65500, 65500), "IMAGE_TOO_LARGE"),
        (lambda d: documents.make_truncated_png(d / "cut.png"), "CORRUPT_FILE"),
        (lambda d: documents.make_many_pages_pdf(d / "long.pdf", 41), "TOO_MANY_PAGES"),
    ],
    ids=["corrupt-pdf", "png-bomb", "jpeg-header-bomb", "truncated-png", "too-many-pages"],
)
@EMBEDDED_ONLY
def test_hostile_documents_fail_with_specific_codes(
    stack: Stack, docs: Path, maker: object, code: str
) -> None:
    path = maker(docs)  # type: ignore[operator]
    job = stack.wait(stack.submit_ok(path))
    assert job["state"] == "failed" and job["error"]["code"] == code, job
    assert job["error"]["message"]
    assert_error(stack.result(job["id"]), 409, "CONFLICT")


def test_invalid_page_range_for_the_document(stack: Stack, docs: Path) -> None:
    pdf = documents.make_text_pdf(docs / "short.pdf", ["only page"])
    job = stack.wait(stack.submit_ok(pdf, page_range="5-9"))
    assert job["state"] == "failed" and job["error"]["code"] == "INVALID_PAGE_RANGE"


@EMBEDDED_ONLY
def test_unknown_routes_and_methods_use_the_error_shape(stack: Stack) -> None:
    assert_error(stack.client.get("/api/v1/nothing"), 404, "NOT_FOUND")
    assert_error(stack.client.put("/api/v1/jobs"), 405, "METHOD_NOT_ALLOWED")
    assert_error(stack.client.get("/api/v1/jobs/not-a-uuid"), 404, "NOT_FOUND")
    assert_error(
        stack.client.get("/api/v1/jobs/00000000-0000-0000-0000-000000000000/pages/0"), 422, "VALIDATION_ERROR"
    )
