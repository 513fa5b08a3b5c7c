"""Recordings on the GPU pool: pieces go to a thread-pool worker that calls a Whisper server (the simulator,
transcribing with tiny.en on the CPU behind simulated GPU time), many in flight; a failing server falls
back to faster-whisper on the same page; 503 and 429 are retried; kill -9 of the GPU worker mid-job, or of
the CPU worker while it is still cutting (its first pieces already transcribed), loses nothing."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.stack import Stack
from tests.e2e.test_gpu_pool import GpuStack, gpu_stack
from tests.support import speech
from tests.support.audio_pieces import spoken_pieces
from tests.support.services import S3Server, distributed_env, pagemill_worker
from tests.support.simulator import SimulatorHandle, vllm_simulator
from tests.support.vllm_audio import AudioSimClient

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        speech.ESPEAK is None, reason="espeak-ng is not installed: make system-deps installs it"
    ),
]

WHISPER = "openai/whisper-large-v3-turbo"


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorHandle]:
    with vllm_simulator(model=WHISPER, max_num_seqs=4, prefill_ms=20, retry_after_s=1) as handle:
        yield handle


@pytest.fixture(scope="module")
def audio_sim(sim: SimulatorHandle) -> AudioSimClient:
    return AudioSimClient(sim.base_url)


@pytest.fixture(scope="module")
def gpu(pg_url: str, redis_url: str, s3: S3Server, sim: SimulatorHandle) -> Iterator[GpuStack]:
    env = {
        **distributed_env(pg_url, redis_url, s3, bucket="pagemill-audio-gpu"),
        "PAGEMILL_AUDIO__DEFAULT_ENGINE": "whisper-vllm",
        "PAGEMILL_AUDIO__FALLBACK": '["faster-whisper"]',
        "PAGEMILL_AUDIO__WHISPER_VLLM__BASE_URL": sim.base_url,
        "PAGEMILL_AUDIO__WHISPER_VLLM__MODEL": WHISPER,
        "PAGEMILL_AUDIO__WHISPER_VLLM__MAX_RETRIES": "2",
        "PAGEMILL_AUDIO__WHISPER_VLLM__RETRY_BACKOFF_S": "0.05",
        "PAGEMILL_ENGINES__HEALTH_CACHE_S": "1",
        # A stalled job is sent again after 6 s; a 30-minute recording's 68 pieces are its pages.
        "PAGEMILL_WORKER__LEASE_S": "6",
        "PAGEMILL_LIMITS__MAX_PAGES": "100",
    }
    with gpu_stack(env) as stack:
        yield stack


@pytest.fixture(autouse=True)
def _clean_faults(sim: SimulatorHandle, audio_sim: AudioSimClient) -> None:
    sim.set_faults(drop=0, overload_503=0, rate_limit_429=0, slow_ms=0)
    audio_sim.set_faults(server_error_500=0, garbage=0)


def _pages(stack: Stack, job_id: str) -> list[dict[str, Any]]:
    pages: list[dict[str, Any]] = stack.client.get(f"/api/v1/jobs/{job_id}/pages").json()["items"]
    return pages


def test_pieces_are_transcribed_on_the_gpu_pool_many_in_flight(
    gpu: GpuStack, sim: SimulatorHandle, audio_sim: AudioSimClient, docs: Path
) -> None:
    before = audio_sim.stats()
    # 60 ms of simulated GPU time per second of audio: a 30 s piece holds its slot for 1.8 s, long enough
    # for the worker's other threads to send theirs meanwhile. The pieces' texts are known to the simulator
    # beforehand: it transcribes others with tiny.en one at a time before their slot, which on a loaded
    # machine can take longer than a slot and let only one piece run at a time.
    audio_sim.configure(ms_per_audio_s=60)
    long = speech.make_long_speech(docs / "meeting.flac", minutes=3, container="flac")
    spoken, _ = spoken_pieces(long, docs / "pieces", 30.0)
    for pcm, text in spoken:
        audio_sim.add_text(pcm, text)
    try:
        job = gpu.wait(gpu.submit_ok(long.path), timeout=180)
    finally:
        audio_sim.configure(ms_per_audio_s=10)
    assert job["state"] == "succeeded", job["error"]
    pages = _pages(gpu, job["id"])
    assert len(pages) == job["page_count"] >= 5
    assert {page["engine"] for page in pages} == {"whisper-vllm"}
    assert {page["model"] for page in pages} == {WHISPER}
    after = audio_sim.stats()
    assert after["completed"] - before["completed"] == len(pages)
    assert after["answered_from"]["map"] - before["answered_from"].get("map", 0) == len(pages)
    assert sim.stats()["max_running_seen"] >= 2, "the GPU worker keeps several pieces in flight"
    assert "northern region" in " ".join(page["text"].lower() for page in pages)


def test_a_failing_server_falls_back_to_faster_whisper(
    gpu: GpuStack, audio_sim: AudioSimClient, docs: Path
) -> None:
    audio_sim.set_faults(server_error_500=1)
    talk = speech.make_speech(docs / "talk.wav", speech.SENTENCES[:2], rate=44100)
    job = gpu.wait(gpu.submit_ok(talk.path), timeout=120)
    assert job["state"] == "succeeded", job["error"]
    page = _pages(gpu, job["id"])[0]
    assert page["engine"] == "faster-whisper"
    assert page["settings"]["fallbacks"][0]["engine"] == "whisper-vllm"
    assert "lazy dog" in page["text"].lower() and "northern region" in page["text"].lower()


@pytest.mark.parametrize("fault", ["overload_503", "rate_limit_429"])
def test_503_and_429_are_retried_on_the_server(
    gpu: GpuStack, sim: SimulatorHandle, docs: Path, fault: str
) -> None:
    sim.set_faults(**{fault: 1})
    talk = speech.make_speech(docs / "talk.wav", speech.SENTENCES[:1])
    job = gpu.wait(gpu.submit_ok(talk.path), timeout=120)
    assert job["state"] == "succeeded", job["error"]
    page = _pages(gpu, job["id"])[0]
    assert page["engine"] == "whisper-vllm" and "fallbacks" not in page["settings"]
    assert page["settings"]["attempts"] >= 2


def test_kill9_of_the_gpu_worker_mid_recording(gpu: GpuStack, sim: SimulatorHandle, docs: Path) -> None:
    sim.set_faults(slow_ms=1500)
    long = speech.make_long_speech(docs / "long.flac", minutes=3, container="flac")
    job_id = gpu.submit_ok(long.path)
    deadline = time.monotonic() + 120
    while gpu.job(job_id)["pages"]["done"] < 1:  # the others are in flight then (1.5 s per answer)
        assert time.monotonic() < deadline, sim.stats()
        time.sleep(0.05)
    assert gpu.gpu_worker is not None
    gpu.gpu_worker.send_signal(signal.SIGKILL, group=True)  # pieces in flight die with it
    gpu.gpu_worker.wait(timeout=10)
    sim.set_faults(slow_ms=0)
    with pagemill_worker(gpu.env, queues="gpu", concurrency=4):
        job = gpu.wait(job_id, timeout=180)
    assert job["state"] == "succeeded", job["error"]
    pages = _pages(gpu, job_id)
    assert len(pages) == job["page_count"] and all(page["state"] == "done" for page in pages)
    assert {page["engine"] for page in pages} == {"whisper-vllm"}


def test_kill9_of_the_cpu_worker_while_it_cuts_keeps_every_piece_once(
    gpu: GpuStack, audio_sim: AudioSimClient, docs: Path
) -> None:
    # Pieces start as they are cut. Kill the worker cutting the recording once some of its pieces are
    # transcribed but its page count is not known yet: the job is sent again after its lease, the new worker
    # cuts it again, and every piece must come back once, in its place, with the text spoken in it.
    long = speech.make_long_speech(docs / "long.mp3", minutes=30, container="mp3")
    spoken, count = spoken_pieces(long, docs / "pieces", 30.0)
    for pcm, text in spoken:
        audio_sim.add_text(pcm, text)
    # A GPU worker of its own: the module's may have been killed by the test above.
    with pagemill_worker(gpu.env, queues="gpu", concurrency=4):
        job_id = gpu.submit_ok(long.path, formats="json")
        deadline = time.monotonic() + 60
        while (status := gpu.job(job_id))["pages"]["done"] < 1:
            assert time.monotonic() < deadline, status
            time.sleep(0.02)
        assert status["page_count"] is None, f"the cut ended before a piece was seen done: {status}"
        gpu.worker.send_signal(signal.SIGKILL, group=True)  # the probe's child cutting the file dies with it
        gpu.worker.wait(timeout=10)
        with pagemill_worker(gpu.env, queues="ingest,cpu", concurrency=1) as replacement:
            job = gpu.wait(job_id, timeout=180)
            assert job["state"] == "succeeded", (job["error"], replacement.log_tail())
    pages = json.loads(gpu.result(job_id, "json").text)["pages"]
    assert job["page_count"] == len(pages) == count
    assert all(page["state"] == "done" for page in pages)
    assert [page["text"] for page in pages] == [text for _, text in spoken]
