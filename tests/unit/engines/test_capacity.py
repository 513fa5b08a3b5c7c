"""How many pages a GPU worker keeps in flight: the order of choice, and reading a vLLM server's /metrics
(httpx.MockTransport answering in the Prometheus text format vLLM's V1 engine writes)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from pagemill.engines.capacity import (
    FALLBACK_IN_FLIGHT,
    METRICS_SAMPLES,
    choose_requests_in_flight,
    decide_requests_in_flight,
    forget_decision,
    parse_server_load,
    requests_in_flight,
)
from pagemill.engines.vllm import OpenAiCompatibleEngine
from pagemill.settings import OpenAiEngineSettings, Settings

MODEL = "deepseek-ai/DeepSeek-OCR"


def vllm_metrics(running: float, waiting: float, engines: int = 1) -> str:
    """What vLLM's PrometheusStatLogger prints for its scheduler gauges (labels engine and model_name)."""
    lines = [
        "# HELP vllm:num_requests_running Number of requests in model execution batches.",
        "# TYPE vllm:num_requests_running gauge",
    ]
    lines += [
        f'vllm:num_requests_running{{engine="{e}",model_name="{MODEL}"}} {running}' for e in range(engines)
    ]
    lines += [
        "# HELP vllm:num_requests_waiting Number of requests waiting to be processed.",
        "# TYPE vllm:num_requests_waiting gauge",
    ]
    lines += [
        f'vllm:num_requests_waiting{{engine="{e}",model_name="{MODEL}"}} {waiting}' for e in range(engines)
    ]
    lines += [
        "# HELP vllm:cache_config_info Information of the LLMEngine CacheConfig",
        "# TYPE vllm:cache_config_info gauge",
        'vllm:cache_config_info{block_size="16",engine="0",num_gpu_blocks="8192"} 1.0',
        f'vllm:num_requests_running_total_fake{{model_name="{MODEL}"}} 999.0',
    ]
    return "\n".join(lines) + "\n"


class MetricsServer:
    """Answers ``GET /metrics`` from a list of bodies in turn (the last repeats) and counts the calls."""

    def __init__(self, *bodies: str, status: int = 200) -> None:
        self.bodies = list(bodies)
        self.status = status
        self.paths: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.paths.append(request.url.path)
        body = self.bodies[min(len(self.paths), len(self.bodies)) - 1]
        return httpx.Response(self.status, text=body)

    @property
    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self)


def settings(**values: object) -> OpenAiEngineSettings:
    return OpenAiEngineSettings(base_url="http://vllm:8000/v1", **values)  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
def _no_decision() -> Iterator[None]:
    forget_decision()
    yield
    forget_decision()


def test_default_is_automatic() -> None:
    assert OpenAiEngineSettings().requests_in_flight is None
    assert Settings().engines.vllm.requests_in_flight is None


def test_parse_sums_engines_and_ignores_other_series() -> None:
    load = parse_server_load(vllm_metrics(running=16, waiting=3, engines=2))
    assert load is not None
    assert (load.running, load.waiting) == (32.0, 6.0)
    assert parse_server_load("# nothing from vLLM here\nprocess_open_fds 12.0\n") is None


def test_explicit_numbers_win_and_do_not_ask_the_server() -> None:
    server = MetricsServer(vllm_metrics(running=8, waiting=5))
    both = settings(requests_in_flight=10, max_num_seqs=100)
    assert choose_requests_in_flight(both, concurrency=3, transport=server.transport).requests == 3
    chosen = choose_requests_in_flight(both, transport=server.transport)
    assert (chosen.requests, chosen.source) == (10, "requests_in_flight")
    chosen = choose_requests_in_flight(settings(max_num_seqs=48), transport=server.transport)
    assert (chosen.requests, chosen.source, chosen.server_slots) == (96, "max_num_seqs", 48)
    assert server.paths == []


def test_busy_server_shows_its_slots() -> None:
    # The second sample falls between two scheduler steps (a slot not yet refilled): the most seen counts.
    server = MetricsServer(
        vllm_metrics(running=32, waiting=7), vllm_metrics(running=31, waiting=8), vllm_metrics(32, 6)
    )
    chosen = choose_requests_in_flight(settings(), transport=server.transport, sleep=lambda s: None)
    assert (chosen.requests, chosen.source, chosen.server_slots) == (64, "metrics", 32)
    assert server.paths == ["/metrics"] * METRICS_SAMPLES


def test_idle_or_unreadable_server_falls_back() -> None:
    idle = MetricsServer(vllm_metrics(running=3, waiting=0))
    chosen = choose_requests_in_flight(settings(), transport=idle.transport, sleep=lambda s: None)
    assert (chosen.requests, chosen.source) == (FALLBACK_IN_FLIGHT, "fallback")
    for server in (MetricsServer("not found", status=404), MetricsServer("<html>a proxy</html>")):
        chosen = choose_requests_in_flight(settings(), transport=server.transport, sleep=lambda s: None)
        assert chosen.requests == FALLBACK_IN_FLIGHT

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    chosen = choose_requests_in_flight(
        settings(), transport=httpx.MockTransport(refuse), sleep=lambda s: None
    )
    assert chosen.requests == FALLBACK_IN_FLIGHT
    unconfigured = choose_requests_in_flight(OpenAiEngineSettings())
    assert unconfigured.requests == FALLBACK_IN_FLIGHT


def test_decision_sizes_the_connection_pool() -> None:
    assert requests_in_flight(settings()) == FALLBACK_IN_FLIGHT
    assert requests_in_flight(settings(max_num_seqs=5)) == 10
    server = MetricsServer(vllm_metrics(running=40, waiting=2))
    decide_requests_in_flight(settings(), transport=server.transport)
    assert requests_in_flight(settings()) == 80
    engine = OpenAiCompatibleEngine(settings())
    try:
        # No request is sent: the pool of the engine's own transport is only sized.
        pool = engine._server.http()._transport._pool  # type: ignore[attr-defined]
        assert pool._max_connections == 80 + 4
    finally:
        engine.close()
