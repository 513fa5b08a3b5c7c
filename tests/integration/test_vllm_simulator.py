"""The vLLM simulator answers like vLLM, enforces its batch size, keeps its capacity formula, injects faults.

Timing assertions are one-sided or generous on purpose (a loaded 2-core machine must pass them); speed
itself is judged by the benchmarks, not here.
"""

from __future__ import annotations

import base64
import hashlib
import io
import re
import shutil
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from PIL import Image

from tests.support.documents import render_text_page
from tests.support.simulator import SimulatorHandle, vllm_simulator

pytestmark = pytest.mark.integration

MODEL = "deepseek-ai/DeepSeek-OCR"
# Fast settings for the functional tests: 5 ms prefill + 50 tokens x 0.1 ms = 10 ms per request.
FAST = {"max_num_seqs": 4, "prefill_ms": 5, "ms_per_token": 0.1, "tokens": 50}


def png_bytes(text: str = "Hello simulator") -> bytes:
    """A PNG of ``text`` drawn large and clean (Tesseract reads it reliably)."""
    buffer = io.BytesIO()
    render_text_page(text).save(buffer, "PNG")
    return buffer.getvalue()


def jpeg_bytes(color: int = 255) -> bytes:
    """A tiny plain JPEG."""
    buffer = io.BytesIO()
    Image.new("L", (32, 32), color).save(buffer, "JPEG")
    return buffer.getvalue()


def chat_body(
    image: bytes | None = None, *, mime: str = "image/png", text: str | None = "Free OCR.", **extra: Any
) -> dict[str, Any]:
    """An OpenAI chat request with one image part and one text part (either may be left out)."""
    parts: list[dict[str, Any]] = []
    if image is not None:
        url = f"data:{mime};base64,{base64.b64encode(image).decode()}"
        parts.append({"type": "image_url", "image_url": {"url": url}})
    if text is not None:
        parts.append({"type": "text", "text": text})
    return {"model": MODEL, "messages": [{"role": "user", "content": parts}], **extra}


def post_chat(sim: SimulatorHandle, body: dict[str, Any], timeout: float = 30.0) -> httpx.Response:
    """POST the body to ``/v1/chat/completions``."""
    return httpx.post(f"{sim.base_url}/v1/chat/completions", json=body, timeout=timeout)


def gauge(metrics: str, name: str) -> float:
    """The value of ``name{engine="0",model_name=...}`` in Prometheus text (vLLM V1's labels)."""
    pattern = rf'^{re.escape(name)}\{{engine="0",model_name="{re.escape(MODEL)}"\}} (\S+)$'
    match = re.search(pattern, metrics, re.M)
    assert match, f"{name} missing from /metrics:\n{metrics}"
    return float(match.group(1))


@pytest.fixture(scope="module")
def shared_sim() -> Iterator[SimulatorHandle]:
    """One fast simulator for the functional tests of this module."""
    with vllm_simulator(**FAST) as sim:
        yield sim


@pytest.fixture
def sim(shared_sim: SimulatorHandle) -> SimulatorHandle:
    """The shared simulator with faults and statistics cleared."""
    shared_sim.reset()
    return shared_sim


# --------------------------------------------------------------------------------------------------
# API shape


def test_models_health_and_metrics_endpoints(sim: SimulatorHandle) -> None:
    assert httpx.get(f"{sim.base_url}/health").status_code == 200
    models = httpx.get(f"{sim.base_url}/v1/models").json()
    assert models["object"] == "list"
    assert [(card["id"], card["object"]) for card in models["data"]] == [(MODEL, "model")]
    metrics = sim.metrics()
    assert gauge(metrics, "vllm:num_requests_running") == 0
    assert gauge(metrics, "vllm:num_requests_waiting") == 0


def test_model_name_comes_from_the_command_line() -> None:
    with vllm_simulator(model="allenai/olmOCR-2-7B-1025-FP8", **FAST) as other:
        models = httpx.get(f"{other.base_url}/v1/models").json()
        assert models["data"][0]["id"] == "allenai/olmOCR-2-7B-1025-FP8"
        body = chat_body(jpeg_bytes(), mime="image/jpeg") | {"model": "allenai/olmOCR-2-7B-1025-FP8"}
        assert post_chat(other, body).status_code == 200


def test_completion_of_a_png_is_a_deterministic_chat_completion(sim: SimulatorHandle) -> None:
    image = png_bytes("A page of text")
    first = post_chat(sim, chat_body(image))
    assert first.status_code == 200, first.text
    answer = first.json()
    assert answer["object"] == "chat.completion"
    assert answer["model"] == MODEL
    choice = answer["choices"][0]
    assert choice["message"]["role"] == "assistant"
    assert choice["finish_reason"] == "stop"
    content = choice["message"]["content"]
    assert content.startswith(f"Page {hashlib.sha1(image).hexdigest()[:8]}")
    assert len(content) == FAST["tokens"] * 4
    usage = answer["usage"]
    assert usage["completion_tokens"] == FAST["tokens"]
    assert usage["prompt_tokens"] == 256 + len("Free OCR.") // 4 + 1  # image tokens + text at 4 chars/token
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    # Same image, same text; a JPEG is accepted too.
    assert post_chat(sim, chat_body(image)).json()["choices"][0]["message"]["content"] == content
    assert post_chat(sim, chat_body(jpeg_bytes(), mime="image/jpeg")).status_code == 200
    stats = sim.stats()
    assert stats["completed"] == 3
    assert stats["errors"] == 0
    assert stats["finished"] == {"stop": 3}


def test_max_tokens_below_the_answer_truncates_with_finish_reason_length(sim: SimulatorHandle) -> None:
    answer = post_chat(sim, chat_body(png_bytes(), max_tokens=10)).json()
    assert answer["choices"][0]["finish_reason"] == "length"
    assert answer["usage"]["completion_tokens"] == 10
    assert len(answer["choices"][0]["message"]["content"]) == 40


@pytest.mark.skipif(shutil.which("tesseract") is None, reason="needs the tesseract binary")
def test_tesseract_mode_answers_with_the_text_in_the_image() -> None:
    with vllm_simulator(ocr="tesseract", max_num_seqs=2, prefill_ms=5, ms_per_token=0.1) as ocr_sim:
        answer = post_chat(ocr_sim, chat_body(png_bytes("Invoice 4711\nTotal amount due"))).json()
        content = answer["choices"][0]["message"]["content"]
        assert "Invoice 4711" in content
        assert "Total amount due" in content
        assert answer["usage"]["completion_tokens"] == -(-len(content) // 4)
        stats = ocr_sim.stats()
        assert stats["capacity_basis"] == "observed_mean_tokens"
        expected = 2 * 1000 / (5 + answer["usage"]["completion_tokens"] * 0.1)
        assert stats["capacity_pages_per_s"] == pytest.approx(expected)


# --------------------------------------------------------------------------------------------------
# Validation


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        (chat_body(jpeg_bytes(), mime="image/jpeg") | {"model": "no/such-model"}, 404, "does not exist"),
        (chat_body(None), 400, "no image"),
        (chat_body(jpeg_bytes(), mime="image/jpeg", text=None), 400, "no text"),
        (chat_body(b"not an image at all"), 400, "not a known image"),
        ({"model": MODEL, "messages": []}, 400, "messages"),
        (chat_body(jpeg_bytes(), mime="image/jpeg", max_tokens=9000), 400, "maximum context length is 8192"),
    ],
    ids=["unknown-model", "no-image", "no-text", "not-an-image", "no-messages", "too-long"],
)
def test_invalid_requests_get_openai_style_errors(
    sim: SimulatorHandle, body: dict[str, Any], status: int, needle: str
) -> None:
    response = post_chat(sim, body)
    assert response.status_code == status
    error = response.json()["error"]
    assert needle in error["message"]
    assert error["code"] == status
    assert sim.stats()["errors"] == 1


def test_bad_base64_and_non_json_are_400(sim: SimulatorHandle) -> None:
    body = chat_body(None)
    body["messages"][0]["content"].append(
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,@@@"}}
    )
    assert post_chat(sim, body).status_code == 400
    raw = httpx.post(f"{sim.base_url}/v1/chat/completions", content=b"{nope", timeout=10)
    assert raw.status_code == 400
    assert "error" in raw.json()


# --------------------------------------------------------------------------------------------------
# Continuous batching and capacity


def test_max_num_seqs_is_enforced_and_total_time_follows_the_capacity_formula() -> None:
    max_num_seqs, prefill_ms, ms_per_token, tokens = 4, 100.0, 1.0, 200
    n_requests = 3 * max_num_seqs
    service_s = (prefill_ms + tokens * ms_per_token) / 1000  # 0.3 s per request
    capacity = max_num_seqs / service_s
    minimum_s = n_requests / capacity  # three full waves: 0.9 s
    serial_s = n_requests * service_s  # 3.6 s if requests were not batched

    with vllm_simulator(
        max_num_seqs=max_num_seqs, prefill_ms=prefill_ms, ms_per_token=ms_per_token, tokens=tokens
    ) as sim:
        assert sim.stats()["capacity_pages_per_s"] == pytest.approx(capacity)
        body = chat_body(jpeg_bytes(), mime="image/jpeg")
        seen_running: list[float] = []
        seen_waiting: list[float] = []
        burst_over = threading.Event()

        def poll_metrics() -> None:
            with httpx.Client(base_url=sim.base_url, timeout=10) as client:
                while not burst_over.is_set():
                    text = client.get("/metrics").text
                    seen_running.append(gauge(text, "vllm:num_requests_running"))
                    seen_waiting.append(gauge(text, "vllm:num_requests_waiting"))
                    time.sleep(0.02)

        start_line = threading.Barrier(n_requests, timeout=30)
        limits = httpx.Limits(max_connections=n_requests + 2, max_keepalive_connections=n_requests + 2)
        with httpx.Client(base_url=sim.base_url, timeout=60, limits=limits) as client:

            def one(_: int) -> int:
                start_line.wait()
                return client.post("/v1/chat/completions", json=body).status_code

            poller = threading.Thread(target=poll_metrics, daemon=True)
            poller.start()
            started = time.monotonic()
            with ThreadPoolExecutor(max_workers=n_requests) as pool:
                statuses = list(pool.map(one, range(n_requests)))
            elapsed = time.monotonic() - started
            burst_over.set()
            poller.join(10)

        stats = sim.stats()

    assert statuses == [200] * n_requests
    assert seen_running, "the metrics poller never got an answer"
    assert max(seen_running) <= max_num_seqs
    assert max(seen_waiting) > 0, f"nothing was ever waiting: {seen_waiting}"
    assert stats["max_running_seen"] == max_num_seqs
    assert stats["max_waiting_seen"] >= 1
    assert stats["completed"] == n_requests
    assert stats["running"] == stats["waiting"] == 0
    assert elapsed >= 0.8 * minimum_s, f"{elapsed:.2f}s is faster than the capacity allows ({minimum_s:.2f}s)"
    assert elapsed < 0.85 * serial_s, f"{elapsed:.2f}s: requests were not batched (serial {serial_s:.2f}s)"
    assert stats["busy_seconds"] >= 0.8 * minimum_s
    assert stats["waiting_seconds"] > 0


def test_clients_that_give_up_free_their_slot_and_their_place_in_the_queue() -> None:
    # One slot, 5 s per request: the first request runs, the second waits, both clients time out.
    with vllm_simulator(max_num_seqs=1, prefill_ms=5000, tokens=1) as slow_sim:
        body = chat_body(jpeg_bytes(), mime="image/jpeg")
        with ThreadPoolExecutor(max_workers=2) as pool:
            futures = [pool.submit(post_chat, slow_sim, body, 0.5) for _ in range(2)]
            for future in futures:
                with pytest.raises(httpx.ReadTimeout):
                    future.result()

        def settled() -> bool:
            stats = slow_sim.stats()
            return bool(stats["aborted"] == 2 and stats["running"] == 0 and stats["waiting"] == 0)

        # Well before the 5 s the running request would have taken.
        deadline = time.monotonic() + 3
        while not settled():
            assert time.monotonic() < deadline, slow_sim.stats()
            time.sleep(0.05)
        assert slow_sim.stats()["completed"] == 0


# --------------------------------------------------------------------------------------------------
# Fault injection


def _fire(sim: SimulatorHandle, times: int) -> list[httpx.Response | Exception]:
    """Send ``times`` valid requests; collect responses or transport exceptions."""
    outcomes: list[httpx.Response | Exception] = []
    with httpx.Client(base_url=sim.base_url, timeout=30) as client:
        for _ in range(times):
            try:
                outcomes.append(client.post("/v1/chat/completions", json=chat_body(png_bytes())))
            except httpx.TransportError as exc:
                outcomes.append(exc)
    return outcomes


def _assert_normal(outcome: httpx.Response | Exception) -> None:
    assert isinstance(outcome, httpx.Response), outcome
    assert outcome.status_code == 200
    choice = outcome.json()["choices"][0]
    assert choice["finish_reason"] == "stop"
    assert len(choice["message"]["content"]) == FAST["tokens"] * 4


def _assert_faults_cleared(sim: SimulatorHandle, kind: str, fired: int) -> None:
    faults = sim.faults()
    assert all(faults[name] == 0 for name in faults), faults
    if kind in ("drop", "overload_503", "rate_limit_429", "context_length_400"):
        assert sim.stats()["errors_by_kind"] == {kind: fired}


def test_overload_503_then_clears(sim: SimulatorHandle) -> None:
    assert sim.set_faults(overload_503=2)["overload_503"] == 2
    *faulted, last = _fire(sim, 3)
    for outcome in faulted:
        assert isinstance(outcome, httpx.Response)
        assert outcome.status_code == 503
        assert outcome.json()["error"]["type"] == "ServiceUnavailableError"
    _assert_normal(last)
    _assert_faults_cleared(sim, "overload_503", 2)


def test_rate_limit_429_has_retry_after_then_clears(sim: SimulatorHandle) -> None:
    sim.set_faults(rate_limit_429=1)
    first, second = _fire(sim, 2)
    assert isinstance(first, httpx.Response)
    assert first.status_code == 429
    assert first.headers["Retry-After"] == "1"
    assert first.json()["error"]["code"] == 429
    _assert_normal(second)
    _assert_faults_cleared(sim, "rate_limit_429", 1)


def test_drop_closes_the_connection_without_an_answer_then_clears(sim: SimulatorHandle) -> None:
    sim.set_faults(drop=1)
    first, second = _fire(sim, 2)
    assert isinstance(first, httpx.RemoteProtocolError), first
    assert "without sending a response" in str(first)
    _assert_normal(second)
    _assert_faults_cleared(sim, "drop", 1)


def test_context_length_400_has_vllms_message_then_clears(sim: SimulatorHandle) -> None:
    sim.set_faults(context_length_400=1)
    first, second = _fire(sim, 2)
    assert isinstance(first, httpx.Response)
    assert first.status_code == 400
    message = first.json()["error"]["message"]
    match = re.match(
        r"This model's maximum context length is (\d+) tokens\. However, you requested (\d+) tokens "
        r"\((\d+) in the messages, (\d+) in the completion\)\.",
        message,
    )
    assert match, message
    limit, requested, prompt, completion = map(int, match.groups())
    assert requested == prompt + completion > limit == 8192
    _assert_normal(second)
    _assert_faults_cleared(sim, "context_length_400", 1)


def test_truncate_answers_half_with_finish_reason_length_then_clears(sim: SimulatorHandle) -> None:
    sim.set_faults(truncate=1)
    first, second = _fire(sim, 2)
    assert isinstance(first, httpx.Response)
    assert first.status_code == 200
    choice = first.json()["choices"][0]
    assert choice["finish_reason"] == "length"
    assert len(choice["message"]["content"]) == FAST["tokens"] * 4 // 2
    _assert_normal(second)
    _assert_faults_cleared(sim, "truncate", 1)
    assert sim.stats()["finished"] == {"length": 1, "stop": 1}


def test_repeat_answers_degenerate_repetition_then_clears(sim: SimulatorHandle) -> None:
    sim.set_faults(repeat=1)
    first, second = _fire(sim, 2)
    assert isinstance(first, httpx.Response)
    choice = first.json()["choices"][0]
    lines = choice["message"]["content"].split("\n")
    assert len(lines) == 200
    assert len(set(lines)) == 1
    assert choice["finish_reason"] == "length"
    _assert_normal(second)
    _assert_faults_cleared(sim, "repeat", 1)


def test_empty_answers_empty_content_then_clears(sim: SimulatorHandle) -> None:
    sim.set_faults(empty=1)
    first, second = _fire(sim, 2)
    assert isinstance(first, httpx.Response)
    answer = first.json()
    assert answer["choices"][0]["message"]["content"] == ""
    assert answer["choices"][0]["finish_reason"] == "stop"
    assert answer["usage"]["completion_tokens"] == 0
    _assert_normal(second)
    _assert_faults_cleared(sim, "empty", 1)


def test_slow_ms_delays_every_answer_until_switched_off(sim: SimulatorHandle) -> None:
    sim.set_faults(slow_ms=400)
    started = time.monotonic()
    _assert_normal(_fire(sim, 1)[0])
    assert time.monotonic() - started >= 0.4
    sim.set_faults(slow_ms=0)
    started = time.monotonic()
    _assert_normal(_fire(sim, 1)[0])
    assert time.monotonic() - started < 0.4


def test_faults_from_the_command_line_and_reset(sim: SimulatorHandle) -> None:
    with vllm_simulator(overload_503=1, empty=1, **FAST) as flagged:
        first, second, third = _fire(flagged, 3)
        assert isinstance(first, httpx.Response) and first.status_code == 503
        assert isinstance(second, httpx.Response) and second.json()["choices"][0]["message"]["content"] == ""
        _assert_normal(third)
        flagged.set_faults(overload_503=5, truncate=5)
        flagged.reset()
        assert all(value == 0 for value in flagged.faults().values())
        stats = flagged.stats()
        assert stats["completed"] == stats["errors"] == stats["requests"] == 0
        _assert_normal(_fire(flagged, 1)[0])


def test_unknown_fault_names_are_rejected(sim: SimulatorHandle) -> None:
    response = httpx.post(f"{sim.base_url}/sim/faults", json={"explode": 1}, timeout=10)
    assert response.status_code == 400
    assert "unknown fault" in response.json()["error"]["message"]
    response = httpx.post(f"{sim.base_url}/sim/faults", json={"overload_503": -1}, timeout=10)
    assert response.status_code == 400
