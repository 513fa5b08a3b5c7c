"""The Server-Sent Events parser `pagemill submit` follows jobs with (WHATWG event-stream rules)."""

from __future__ import annotations

from pagemill.bulk.api_client import ApiError, ServerSentEvent, form_fields, parse_sse
from pagemill.jobs.options import JobOptions, OcrMode, OutputFormat


def test_events_ids_comments_and_multi_line_data() -> None:
    stream = [
        ": heartbeat\r\n",
        "id: 1\r\n",
        "event: job.queued\r\n",
        'data: {"a":1}\r\n',
        "\r\n",
        "id: 2\n",
        "event: job.progress\n",
        "data: first\n",
        "data:second\n",
        "\n",
        "data: no event name\n",
        "\n",
        "id: 3\n",
        "event: job.succeeded\n",
    ]
    assert list(parse_sse(stream)) == [
        ServerSentEvent("job.queued", '{"a":1}', "1"),
        ServerSentEvent("job.progress", "first\nsecond", "2"),
        ServerSentEvent("message", "no event name", "2"),
    ], "an event is dispatched at a blank line only; one cut off by the end of the stream is dropped"


def test_only_what_differs_from_the_server_defaults_is_sent_and_permanence_of_errors() -> None:
    options = JobOptions(
        formats=[OutputFormat.TEXT], ocr_mode=OcrMode.OCR, engine="tesseract", page_range="2-"
    )
    assert form_fields(options, "s3cret") == {
        "formats": "text",
        "ocr_mode": "ocr",
        "page_range": "2-",
        "engine": "tesseract",
        "password": "s3cret",
    }
    assert form_fields(JobOptions(), None) == {"formats": "markdown,text,json", "ocr_mode": "auto"}
    assert ApiError(415, "UNSUPPORTED_TYPE", "x").permanent
    assert not ApiError(429, "RATE_LIMITED", "x").permanent
    assert not ApiError(503, "SERVICE_UNAVAILABLE", "x").permanent
    assert not ApiError(0, "API_UNREACHABLE", "x").permanent
