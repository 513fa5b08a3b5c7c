"""The OpenAI-compatible VLM engine on httpx.MockTransport: request shape, answers, every error path."""

from __future__ import annotations

import base64
import dataclasses
import io
import json
import logging
import random
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from PIL import Image

from pagemill.engines.openai_http import MAX_BACKOFF_S, parse_retry_after
from pagemill.engines.vllm import OpenAiCompatibleEngine, detect_repetition, markdown_to_text
from pagemill.engines.vllm_presets import get_preset
from pagemill.errors import EngineFailed, EngineUnavailable
from pagemill.settings import OpenAiEngineSettings

Handler = Callable[[httpx.Request], httpx.Response]


class MaxRandom(random.Random):
    """Jitter that always picks the top of the window, so the backoff ceiling is visible."""

    def uniform(self, a: float, b: float) -> float:
        return b


def completion(
    content: str | None = "# Page\n\nHello **world**.", finish_reason: str = "stop"
) -> dict[str, Any]:
    return {
        "id": "cmpl-1",
        "object": "chat.completion",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": finish_reason}
        ],
        "usage": {"prompt_tokens": 900, "completion_tokens": 12, "total_tokens": 912},
    }


class Server:
    """Answers requests from a list of handlers in turn (the last one repeats) and records them."""

    def __init__(self, *handlers: Handler) -> None:
        self.handlers = list(handlers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        handler = self.handlers[min(len(self.requests), len(self.handlers)) - 1]
        return handler(request)

    def body(self, index: int = 0) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.requests[index].content)
        return data


def ok(content: str | None = "# Page\n\nHello **world**.", finish_reason: str = "stop") -> Handler:
    return lambda request: httpx.Response(200, json=completion(content, finish_reason))


def status(code: int, body: Any = None, headers: dict[str, str] | None = None) -> Handler:
    payload = body if body is not None else {"object": "error", "message": "nope", "code": code}
    return lambda request: httpx.Response(code, json=payload, headers=headers)


def raises(exc: type[httpx.HTTPError]) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc("boom", request=request)  # type: ignore[call-arg]

    return handler


def make_engine(
    server: Server, *, sleeps: list[float] | None = None, **overrides: Any
) -> OpenAiCompatibleEngine:
    values: dict[str, Any] = {
        "base_url": "http://vllm:8000",
        "model": "test/ocr-model",
        "max_retries": 3,
        "retry_backoff_s": 1.0,
        **overrides,
    }
    recorded = sleeps if sleeps is not None else []
    return OpenAiCompatibleEngine(
        OpenAiEngineSettings(**values),
        name="vllm",
        transport=httpx.MockTransport(server),
        sleep=recorded.append,
        rng=MaxRandom(),
    )


@pytest.fixture
def page() -> Image.Image:
    return Image.new("RGB", (850, 1100), "white")


# --- Request and result -----------------------------------------------------------------------------------


def test_request_shape_follows_the_preset(page: Image.Image) -> None:
    server = Server(ok())
    engine = make_engine(server, preset="olmocr", api_key="sekret")
    engine.recognize(page)
    request = server.requests[0]
    assert request.method == "POST" and str(request.url) == "http://vllm:8000/v1/chat/completions"
    assert request.headers["authorization"] == "Bearer sekret"
    body = server.body()
    assert body["model"] == "test/ocr-model"
    assert body["max_tokens"] == 8000 and body["temperature"] == 0.1
    image_part, text_part = body["messages"][0]["content"]
    assert text_part == {"type": "text", "text": get_preset("olmocr").prompt}
    url = image_part["image_url"]["url"]
    assert url.startswith("data:image/jpeg;base64,")
    sent = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
    assert sent.format == "JPEG" and max(sent.size) == 1100  # smaller than 1288: never scaled up


def test_settings_override_preset_and_extra_fields_are_sent(page: Image.Image) -> None:
    server = Server(ok())
    engine = make_engine(
        server,
        preset="deepseek-ocr",
        max_tokens=1234,
        temperature=0.3,
        image_max_side=550,
        base_url="http://h/v1/",
    )
    result = engine.recognize(page)
    body = server.body()
    assert str(server.requests[0].url) == "http://h/v1/chat/completions"  # "/v1" base URLs are accepted
    assert "authorization" not in server.requests[0].headers
    assert body["max_tokens"] == 1234 and body["temperature"] == 0.3
    assert body["skip_special_tokens"] is False and body["vllm_xargs"]["ngram_size"] == 30
    assert result.settings["image_size"] == [425, 550]


def test_result_carries_markdown_plain_text_and_provenance(page: Image.Image) -> None:
    server = Server(ok("# Page\n\nHello **world**.\n\n| A | B |\n|---|---|\n| 1 | 2 |"))
    result = make_engine(server).recognize(page)
    assert result.markdown.startswith("# Page")
    assert result.text == "Page\n\nHello world.\n\nA\tB\n1\t2"
    assert result.engine == "vllm" and result.model == "test/ocr-model" and result.lines == []
    assert result.settings == {
        "preset": "generic",
        "image_size": [850, 1100],
        "max_tokens": 4096,
        "temperature": 0.0,
        "attempts": 1,
    }
    assert set(result.timings_ms) == {"encode", "request"}


def test_large_page_is_scaled_down_and_png_when_the_preset_says(page: Image.Image) -> None:
    server = Server(ok())
    png = dataclasses.replace(get_preset("generic"), image_format="png", image_max_side=640)
    settings = OpenAiEngineSettings(base_url="http://vllm:8000", model="m")
    engine = OpenAiCompatibleEngine(settings, preset=png, transport=httpx.MockTransport(server))
    big = Image.new("RGBA", (3000, 4000), (0, 0, 0, 0))
    result = engine.recognize(big)
    url = server.body()["messages"][0]["content"][0]["image_url"]["url"]
    assert url.startswith("data:image/png;base64,")
    sent = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
    assert sent.size == (480, 640) and sent.getpixel((10, 10)) == (255, 255, 255)  # transparency is paper
    assert result.settings["image_size"] == [480, 640]


def test_dots_preset_sends_sides_in_multiples_of_28_and_gives_lines(page: Image.Image) -> None:
    cells = [{"bbox": [28, 28, 560, 84], "category": "Title", "text": "# Invoice"}]
    server = Server(ok(json.dumps(cells)))
    result = make_engine(server, preset="dots-ocr").recognize(page)
    width, height = result.settings["image_size"]
    assert width % 28 == 0 and height % 28 == 0
    assert result.markdown == "# Invoice" and result.text == "Invoice"
    assert result.lines[0].bbox == pytest.approx((28 / width, 28 / height, 560 / width, 84 / height))


# --- Transient failures: retries, backoff, Retry-After ----------------------------------------------------


@pytest.mark.parametrize("code", [429, 502, 503, 504])
def test_overload_is_retried_with_exponential_backoff_then_unavailable(page: Image.Image, code: int) -> None:
    server = Server(status(code))
    sleeps: list[float] = []
    with pytest.raises(EngineUnavailable) as caught:
        make_engine(server, sleeps=sleeps).recognize(page)
    assert len(server.requests) == 4  # 1 + max_retries
    assert sleeps == [1.0, 2.0, 4.0]  # full jitter picks in [0, 1], [0, 2], [0, 4]; MaxRandom takes the top
    assert caught.value.details["status"] == code and caught.value.details["attempts"] == 4
    assert caught.value.retryable


def test_transient_failure_then_success_records_attempts(page: Image.Image) -> None:
    server = Server(status(503), raises(httpx.ConnectError), ok())
    sleeps: list[float] = []
    result = make_engine(server, sleeps=sleeps).recognize(page)
    assert result.settings["attempts"] == 3 and len(sleeps) == 2


def test_full_jitter_stays_inside_the_window(page: Image.Image) -> None:
    server = Server(status(503))
    sleeps: list[float] = []
    settings = OpenAiEngineSettings(base_url="http://vllm:8000", max_retries=5, retry_backoff_s=0.5)
    engine = OpenAiCompatibleEngine(
        settings, transport=httpx.MockTransport(server), sleep=sleeps.append, rng=random.Random(7)
    )
    with pytest.raises(EngineUnavailable):
        engine.recognize(page)
    assert len(sleeps) == 5
    assert all(0.0 <= s <= 0.5 * 2**i for i, s in enumerate(sleeps))


@pytest.mark.parametrize("code", [429, 503])
def test_retry_after_is_honoured_and_capped(page: Image.Image, code: int) -> None:
    server = Server(
        status(code, headers={"Retry-After": "7"}), status(code, headers={"Retry-After": "9999"}), ok()
    )
    sleeps: list[float] = []
    make_engine(server, sleeps=sleeps).recognize(page)
    assert sleeps == [7.0, MAX_BACKOFF_S]


def test_retry_after_is_ignored_on_502(page: Image.Image) -> None:
    server = Server(status(502, headers={"Retry-After": "30"}), ok())
    sleeps: list[float] = []
    make_engine(server, sleeps=sleeps).recognize(page)
    assert sleeps == [1.0]


def test_parse_retry_after_forms() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after("1.5") == 1.5
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # a date in the past: retry now


@pytest.mark.parametrize(
    ("exc", "reason"),
    [
        (httpx.ConnectError, "connection_refused"),
        (httpx.RemoteProtocolError, "connection_dropped"),
        (httpx.ReadError, "connection_dropped"),
        (httpx.ReadTimeout, "timeout"),
        (httpx.ConnectTimeout, "connect_timeout"),
    ],
)
def test_transport_failures_are_transient(page: Image.Image, exc: type[httpx.HTTPError], reason: str) -> None:
    server = Server(raises(exc))
    sleeps: list[float] = []
    with pytest.raises(EngineUnavailable) as caught:
        make_engine(server, sleeps=sleeps, max_retries=2).recognize(page)
    assert len(server.requests) == 3 and len(sleeps) == 2
    assert caught.value.details == {"engine": "vllm", "reason": reason, "attempts": 3}


def test_zero_retries_fails_at_once(page: Image.Image) -> None:
    server = Server(status(503))
    sleeps: list[float] = []
    with pytest.raises(EngineUnavailable):
        make_engine(server, sleeps=sleeps, max_retries=0).recognize(page)
    assert len(server.requests) == 1 and sleeps == []


def test_retries_and_failures_are_logged_with_the_engine_name(
    page: Image.Image, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="pagemill.engines.vllm")
    with pytest.raises(EngineUnavailable):
        make_engine(Server(status(503)), max_retries=1).recognize(page)
    messages = [r.getMessage() for r in caplog.records if r.name == "pagemill.engines.vllm"]
    assert len(messages) == 2 and all("engine vllm" in m for m in messages)
    assert "retrying" in messages[0] and "unavailable after 2 attempts" in messages[1]


# --- Permanent failures: the next engine may do better ----------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        {
            "object": "error",
            "message": "This model's maximum context length is 8192 tokens. "
            "However, you requested 9000 tokens.",
            "type": "BadRequestError",
            "code": 400,
        },
        {
            "error": {
                "message": "Too long",
                "type": "invalid_request_error",
                "code": "context_length_exceeded",
            }
        },
        {
            "error": {
                "message": "The decoder prompt (length 9000) is longer than the maximum model length of 8192."
            }
        },
    ],
)
def test_context_length_400_fails_without_retry(page: Image.Image, body: dict[str, Any]) -> None:
    server = Server(status(400, body))
    with pytest.raises(EngineFailed) as caught:
        make_engine(server).recognize(page)
    assert len(server.requests) == 1
    assert caught.value.details["reason"] == "context_length" and caught.value.details["status"] == 400
    assert not caught.value.retryable


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        (400, "bad_request"),
        (401, "unauthorized"),
        (403, "unauthorized"),
        (404, "model_not_found"),
        (413, "bad_request"),
        (422, "bad_request"),
        (500, "server_error"),
    ],
)
def test_other_errors_fail_without_retry(page: Image.Image, code: int, reason: str) -> None:
    server = Server(status(code))
    with pytest.raises(EngineFailed) as caught:
        make_engine(server).recognize(page)
    assert len(server.requests) == 1
    assert caught.value.details["reason"] == reason and caught.value.details["engine"] == "vllm"


def test_error_body_that_is_not_json_is_tolerated(page: Image.Image) -> None:
    server = Server(lambda request: httpx.Response(404, text="<html>Not Found</html>"))
    with pytest.raises(EngineFailed) as caught:
        make_engine(server).recognize(page)
    assert caught.value.details["reason"] == "model_not_found"


def test_truncated_answer_fails(page: Image.Image) -> None:
    server = Server(ok("# A long page that never ends", finish_reason="length"))
    with pytest.raises(EngineFailed) as caught:
        make_engine(server).recognize(page)
    assert caught.value.details["reason"] == "truncated" and len(server.requests) == 1


def test_a_loop_cut_off_at_max_tokens_is_named_a_loop(page: Image.Image) -> None:
    looping = "\n".join(["The same sentence is generated again and again."] * 200)
    server = Server(ok(looping, finish_reason="length"))
    with pytest.raises(EngineFailed) as caught:
        make_engine(server).recognize(page)
    assert caught.value.details["reason"] == "degenerate_repetition"


def test_content_filter_fails(page: Image.Image) -> None:
    with pytest.raises(EngineFailed) as caught:
        make_engine(Server(ok("", finish_reason="content_filter"))).recognize(page)
    assert caught.value.details["reason"] == "content_filter"


@pytest.mark.parametrize("content", ["", None, "   \n"])
def test_empty_answer_is_a_blank_page(page: Image.Image, content: str | None) -> None:
    result = make_engine(Server(ok(content))).recognize(page)
    assert result.text == "" and result.markdown == "" and result.settings["empty"] is True


def test_olmocr_front_matter_only_is_a_blank_page(page: Image.Image) -> None:
    answer = "---\nprimary_language: null\nis_rotation_valid: True\nrotation_correction: 0\n---\n"
    result = make_engine(Server(ok(answer)), preset="olmocr").recognize(page)
    assert result.text == "" and result.settings["empty"] is True


def test_degenerate_repetition_fails(page: Image.Image) -> None:
    loop = "# Terms\n\n" + "The tenant shall pay the rent on the first day of each month. " * 40
    with pytest.raises(EngineFailed) as caught:
        make_engine(Server(ok(loop))).recognize(page)
    assert caught.value.details["reason"] == "degenerate_repetition"


@pytest.mark.parametrize(
    "handler",
    [
        lambda request: httpx.Response(200, text="not json"),
        lambda request: httpx.Response(200, json={"choices": []}),
        lambda request: httpx.Response(200, json={"object": "chat.completion"}),
        lambda request: httpx.Response(200, json={"choices": [{"finish_reason": "stop"}]}),
        lambda request: httpx.Response(200, json={"choices": [{"message": {"content": 42}}]}),
        lambda request: httpx.Response(200, json=[1, 2]),
    ],
)
def test_malformed_answers_fail(page: Image.Image, handler: Handler) -> None:
    with pytest.raises(EngineFailed) as caught:
        make_engine(Server(handler)).recognize(page)
    assert caught.value.details["reason"] == "malformed_response"


def test_unconfigured_engine_is_unavailable(page: Image.Image) -> None:
    engine = OpenAiCompatibleEngine(OpenAiEngineSettings())
    with pytest.raises(EngineUnavailable) as caught:
        engine.recognize(page)
    assert caught.value.details["reason"] == "not_configured"
    assert engine.check().ok is False


def test_client_is_created_lazily_and_reused(page: Image.Image) -> None:
    engine = make_engine(Server(ok()), requests_in_flight=8)
    assert engine._server._client is None
    engine.recognize(page)
    client = engine._server._client
    engine.recognize(page)
    assert engine._server._client is client
    engine.close()
    assert engine._server._client is None


# --- Health -----------------------------------------------------------------------------------------------


def models(*ids: str) -> Handler:
    return lambda request: httpx.Response(200, json={"object": "list", "data": [{"id": i} for i in ids]})


def test_check_ok_when_the_model_is_served() -> None:
    server = Server(models("other", "test/ocr-model"))
    health = make_engine(server).check()
    assert health.ok and health.models == ["other", "test/ocr-model"]
    assert str(server.requests[0].url) == "http://vllm:8000/v1/models"


def test_check_not_ok_when_the_model_is_missing() -> None:
    health = make_engine(Server(models("other"))).check()
    assert not health.ok and "not served" in health.detail and health.models == ["other"]


@pytest.mark.parametrize(
    "handler",
    [raises(httpx.ConnectError), status(503), lambda request: httpx.Response(200, json={"nope": 1})],
)
def test_check_not_ok_when_the_server_is_not_ready(handler: Handler) -> None:
    assert make_engine(Server(handler)).check().ok is False


# --- detect_repetition and markdown_to_text ---------------------------------------------------------------


LEGIT_PAGES = [
    # A table of short repeated cells.
    "| Item | Yes | No | N/A |\n|---|---|---|---|\n"
    + "".join(f"| Fire exit {i} checked | Yes | No | N/A |\n" for i in range(30)),
    "| Yes | No | N/A |\n|---|---|---|\n" + "| Yes | No | N/A |\n" * 40,
    # Zeros in a financial table.
    "| Q | Revenue | Cost |\n|---|---|---|\n" + "".join(f"| Q{i} | 0.00 | 0.00 |\n" for i in range(40)),
    # An empty form table in HTML (olmOCR, Nanonets) and markdown.
    "<table>" + "<tr><td></td><td></td><td></td></tr>" * 60 + "</table>",
    "| | | |\n|---|---|---|\n" + "| | | |\n" * 60,
    # A checklist and a numbered list sharing most words.
    "\n".join(f"- [ ] Section {i} has been reviewed and approved" for i in range(40)),
    "\n".join(f"{i}. Lorem ipsum dolor sit amet, item {i}" for i in range(1, 50)),
    # Signature blocks, a table of contents with leaders, LaTeX with \hline rows.
    "Signature: ____________ Date: ________\n\n" * 6,
    "\n".join(f"Chapter {i} . . . . . . . . . . . . . . {i * 7}" for i in range(1, 30)),
    "\\begin{tabular}{ccc}\n" + "0 & 0 & 0 \\\\ \\hline\n" * 40 + "\\end{tabular}",
    # Check boxes on a form.
    "\n".join(f"{i}. Do you smoke? ☐ Yes ☑ No" for i in range(1, 25)),
    "",
]

LOOPS = [
    "The tenant shall pay the rent on the first day of each month. " * 20,
    "# Report\n\n" + "| 2021 | Operating revenue | 1,234 | 5,678 |\n" * 30,
    "Introduction\n\n" + "the " * 300,
    "<table>" + "<tr><td>Total amount due</td><td>$1,250.00</td></tr>" * 40 + "</table>",
    "Normal start of a page with some text.\n"
    + "See appendix A for details.\nSee appendix B for details.\n" * 20,
]


@pytest.mark.parametrize("text", LEGIT_PAGES)
def test_detect_repetition_lets_legitimate_repetition_through(text: str) -> None:
    assert detect_repetition(text) is False


@pytest.mark.parametrize("text", LOOPS)
def test_detect_repetition_catches_loops(text: str) -> None:
    assert detect_repetition(text) is True


def test_detect_repetition_is_fast_on_a_long_page() -> None:
    import time

    words = " ".join(f"word{i}" for i in range(6000))
    started = time.perf_counter()
    assert detect_repetition(words) is False
    assert time.perf_counter() - started < 1.0


def test_markdown_to_text() -> None:
    markdown = (
        "## Heading\n\nSome *emphasis*, __bold__ and a [link](http://x).\n\n![A chart](page_1_2_3_4.png)\n\n"
        "<table><tr><th>A</th><th>B</th></tr><tr><td>1 &amp; 2</td><td>3</td></tr></table>\n\n"
        "```\ncode\n```\n\n<page_number>14</page_number>"
    )
    assert markdown_to_text(markdown) == (
        "Heading\n\nSome emphasis, bold and a link.\n\nA chart\n\nA\tB\n1 & 2\t3\n\ncode\n\n14"
    )
