"""docs/api.md's examples are what the API produces: the same document through the real API and workers
gives the documented markdown and text exactly, and the documented JSON shapes key for key."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.stack import Stack
from tests.e2e.test_bad_input import _raw_post, assert_error
from tests.support import documents

pytestmark = pytest.mark.e2e

API_MD = Path(__file__).resolve().parents[2] / "docs" / "api.md"
# The two-page report of the "Result formats" examples ("\n" breaks a line; a blank line, a paragraph).
REPORT_PAGES = [
    "Annual report 2026\n\nRevenue grew in every region.\nThe board proposes a dividend.\n\n"
    "\u2022 Three new offices\n\u2022 One new product",
    "Outlook\n\nWe expect slower growth next year.",
]


def _example(after: str, language: str) -> str:
    """The first ```language block after the line starting with ``after`` in docs/api.md."""
    text = API_MD.read_text(encoding="utf-8")
    start = text.index(after)
    match = re.compile(rf"^```{language}\n(.*?)^```$", re.S | re.M).search(text, start)
    assert match, f"no {language} example after {after!r} in docs/api.md"
    return match[1]


def _shape(value: Any) -> Any:
    """Keys all the way down (first list item only), without the values."""
    if isinstance(value, dict):
        return {key: _shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_shape(value[0])] if value and isinstance(value[0], dict | list) else []
    return None


def test_result_examples_are_the_real_output(stack: Stack, docs: Path) -> None:
    pdf = documents.make_text_pdf(docs / "report.pdf", REPORT_PAGES)
    job = stack.wait(stack.submit_ok(pdf))
    assert job["state"] == "succeeded", job

    markdown = stack.result(job["id"], "markdown")
    assert markdown.status_code == 200
    assert markdown.text + "\n" == _example("**markdown**:", "markdown")

    text = stack.result(job["id"], "text")
    assert text.status_code == 200
    assert text.text + "\n" == _example("**text**:", "text").replace("\\f", "\f")

    result = stack.result(job["id"], "json").json()
    documented = json.loads(_example("**json**:", "json"))
    assert _shape(result) == _shape(documented)
    assert result["page_count"] == documented["page_count"] == len(REPORT_PAGES)
    page = result["pages"][0]
    for key in ("page", "state", "engine", "rotation", "attempts", "error"):
        assert page[key] == documented["pages"][0][key], key
    assert page["lines"][0]["text"] == documented["pages"][0]["lines"][0]["text"]


def test_submission_example_has_the_real_shape(stack: Stack, docs: Path) -> None:
    pdf = documents.make_text_pdf(docs / "report.pdf", ["x" * 40])
    response = stack.submit(pdf, formats="markdown,json", page_range="1-10")
    assert response.status_code == 202
    documented = json.loads(_example("### POST /api/v1/documents", "json"))
    assert _shape(response.json()) == _shape(documented)
    assert response.json()["options"] == documented["options"]


def test_a_multipart_body_cut_off_is_a_bad_request(stack: Stack) -> None:
    # Content-Length is honest: the body itself ends inside the file part, without its closing boundary.
    body = b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.pdf"\r\n\r\n%PDF-1.7\n'
    head = (
        f"POST /api/v1/documents HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {stack.key}\r\n"
        f"Content-Type: multipart/form-data; boundary=b\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    ).encode()
    status, answer = _raw_post(stack.base_url, head, [body])
    assert status == 400 and json.loads(answer)["error"]["code"] == "BAD_REQUEST", answer
    # The same body closed properly is a form without a file: the field is named.
    missing = stack.client.post(
        "/api/v1/documents",
        content=b'--b\r\nContent-Disposition: form-data; name="formats"\r\n\r\ntext\r\n--b--\r\n',
        headers={"Content-Type": "multipart/form-data; boundary=b"},
    )
    assert_error(missing, 422, "VALIDATION_ERROR")
