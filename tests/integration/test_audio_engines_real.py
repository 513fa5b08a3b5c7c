"""Speech engines for real: faster-whisper tiny.en on espeak-ng speech of known sentences, and the
OpenAI-compatible engine over HTTP against the vLLM simulator's transcription endpoint with faults.

Word error rates measured on the development machine (espeak-ng 1.51, voice en-us at 130 words/min with
2-unit word gaps, tiny.en int8, beam 1): 0.000 on clean speech, 0.132 with white noise at 10 dB SNR (four
noise seeds alike). The limits below add a margin for other CPUs (int8 kernels differ by instruction set)
and other espeak-ng versions.
"""

from __future__ import annotations

import hashlib
import io
import shutil
import socket
import subprocess
import time
import wave
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from pagemill.engines.audio_base import SAMPLE_RATE, Pcm, Transcript
from pagemill.engines.faster_whisper_engine import FasterWhisperEngine, forget_models
from pagemill.engines.whisper_openai import OpenAiTranscriptionEngine, forget_json_only
from pagemill.errors import EngineFailed, EngineUnavailable
from pagemill.settings import AudioSettings, WhisperServerSettings
from tests.support.services import free_port
from tests.support.simulator import SimulatorHandle, vllm_simulator
from tests.support.speech import wer
from tests.support.vllm_audio import AudioSimClient

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng to make speech"),
]

SENTENCES = (
    "The meeting starts early in the morning.",
    "Please send the final report to the finance team.",
    "We need more time to test the new system.",
    "The weather was cold and the roads were closed.",
    "She bought three apples and a loaf of bread.",
    "Our office will be closed on Monday for the holiday.",
)
VOICE = ("-v", "en-us", "-s", "130", "-g", "2")
CLEAN_MAX_WER = 0.10
NOISY_MAX_WER = 0.25
WHISPER = "openai/whisper-large-v3-turbo"


# --- Speech and scoring ---------------------------------------------------------------------------------


def speak(text: str, directory: Path) -> Pcm:
    """espeak-ng's speech of ``text`` as 16 kHz float samples (its 22.05 kHz linearly interpolated)."""
    path = directory / "speech.wav"
    subprocess.run(["espeak-ng", *VOICE, "-w", str(path), text], check=True, capture_output=True)
    with wave.open(str(path), "rb") as wav:
        rate = wav.getframerate()
        samples = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").astype(np.float32) / 32768.0
    count = round(samples.size * SAMPLE_RATE / rate)
    resampled: Pcm = np.interp(np.arange(count) / SAMPLE_RATE, np.arange(samples.size) / rate, samples)
    return resampled.astype(np.float32)


def with_noise(pcm: Pcm, snr_db: float, seed: int) -> Pcm:
    """``pcm`` plus white noise ``snr_db`` below the speech's power."""
    noise_power = float(np.mean(pcm**2)) / 10 ** (snr_db / 10)
    noise = np.random.default_rng(seed).normal(0.0, noise_power**0.5, pcm.shape)
    return (pcm + noise).astype(np.float32)


def check_times(result: Transcript, seconds: float) -> None:
    """Segments (and words) lie within the piece, in order, each with a start before its end."""
    assert result.segments
    previous = 0.0
    for segment in result.segments:
        assert 0.0 <= segment.start_s <= segment.end_s <= seconds
        assert segment.start_s >= previous - 0.05
        previous = segment.start_s
        for word in segment.words or []:
            assert 0.0 <= word.start_s <= word.end_s <= seconds


def test_wer() -> None:
    assert wer("The cat sat.", "the cat, sat") == 0.0
    assert wer("a b c", "a x c") == pytest.approx(1 / 3)
    assert wer("a b c", "a b c d e") == pytest.approx(2 / 3)
    assert wer("a b c", "") == 1.0
    assert wer("", "") == 0.0


@pytest.fixture(scope="module")
def pieces(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, Pcm]]:
    """Two pieces of three sentences each, half a second of silence between sentences: (text, samples)."""
    directory = tmp_path_factory.mktemp("speech")
    gap = np.zeros(SAMPLE_RATE // 2, dtype=np.float32)
    result = []
    for group in (SENTENCES[:3], SENTENCES[3:]):
        parts = [part for sentence in group for part in (speak(sentence, directory), gap)][:-1]
        result.append((" ".join(group), np.concatenate(parts)))
    return result


# --- faster-whisper on the CPU --------------------------------------------------------------------------


def test_loading_the_real_model_needs_no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    attempts: list[str] = []

    def refuse(*args: Any, **kwargs: Any) -> Any:
        attempts.append(repr(args[:2]))
        raise OSError("no network in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    forget_models()  # a fresh load, whatever ran before; later tests reuse this model
    engine = FasterWhisperEngine(AudioSettings())
    assert engine.load() is not None
    assert engine.supported_languages() == ["en"]
    assert attempts == []


@pytest.fixture(scope="module")
def cpu_engine() -> FasterWhisperEngine:
    """tiny.en, loaded once for the module."""
    engine = FasterWhisperEngine(AudioSettings())
    engine.load()
    return engine


def test_clean_speech_is_transcribed_with_times_inside_the_piece(
    cpu_engine: FasterWhisperEngine, pieces: list[tuple[str, Pcm]]
) -> None:
    results = [
        cpu_engine.transcribe(pcm, language="en", prompt=None, word_timestamps=True) for _, pcm in pieces
    ]
    error = wer(" ".join(text for text, _ in pieces), " ".join(r.text for r in results))
    assert error <= CLEAN_MAX_WER, [r.text for r in results]
    for (_, pcm), result in zip(pieces, results, strict=True):
        check_times(result, len(pcm) / SAMPLE_RATE)
        assert all(s.words for s in result.segments)
        assert (result.engine, result.model, result.language) == ("faster-whisper", "tiny.en", "en")
        assert result.timings_ms["transcribe"] > 0


def test_noisy_speech_at_10_db_snr(cpu_engine: FasterWhisperEngine, pieces: list[tuple[str, Pcm]]) -> None:
    hypotheses = [
        cpu_engine.transcribe(
            with_noise(pcm, 10.0, seed), language=None, prompt=None, word_timestamps=False
        ).text
        for seed, (_, pcm) in enumerate(pieces)
    ]
    error = wer(" ".join(text for text, _ in pieces), " ".join(hypotheses))
    assert error <= NOISY_MAX_WER, hypotheses


def test_the_english_only_model_refuses_french(cpu_engine: FasterWhisperEngine) -> None:
    with pytest.raises(EngineFailed) as info:
        cpu_engine.transcribe(
            np.zeros(SAMPLE_RATE, np.float32), language="fr", prompt=None, word_timestamps=False
        )
    assert info.value.details["reason"] == "language_unsupported"


# --- The OpenAI-compatible engine against the simulator -------------------------------------------------


@pytest.fixture(scope="module")
def shared_sim() -> Iterator[SimulatorHandle]:
    """The simulator as a Whisper server: two slots, 5 ms per request plus 10 ms per audio second."""
    with vllm_simulator(model=WHISPER, max_num_seqs=2, prefill_ms=5, retry_after_s=1) as sim:
        yield sim


@pytest.fixture
def sim(shared_sim: SimulatorHandle) -> Iterator[tuple[SimulatorHandle, AudioSimClient]]:
    """The shared simulator with faults, statistics, texts and the json-only memory cleared."""
    shared_sim.reset()
    audio = AudioSimClient(shared_sim.base_url)
    audio.reset()
    forget_json_only()
    yield shared_sim, audio
    forget_json_only()


class Engine:
    """An engine on the simulator whose backoff waits are recorded (and really waited)."""

    def __init__(self, base_url: str, **settings: Any) -> None:
        self.slept: list[float] = []
        options: dict[str, Any] = {"model": WHISPER, "max_retries": 2, "retry_backoff_s": 0.05, **settings}
        self.engine = OpenAiTranscriptionEngine(
            WhisperServerSettings(base_url=base_url, **options), "whisper-vllm", sleep=self._sleep
        )
        _open.append(self.engine)

    def _sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        time.sleep(seconds)

    def __call__(self, pcm: Pcm, *, words: bool = False) -> Transcript:
        return self.engine.transcribe(pcm, language="en", prompt=None, word_timestamps=words)


_open: list[OpenAiTranscriptionEngine] = []


@pytest.fixture(autouse=True)
def _close_engines() -> Iterator[None]:
    """Every engine a test made closes its connection pool when the test ends."""
    yield
    while _open:
        _open.pop().close()


def test_known_text_comes_from_the_map_with_a_segment_per_sentence(
    sim: tuple[SimulatorHandle, AudioSimClient], pieces: list[tuple[str, Pcm]]
) -> None:
    handle, audio = sim
    text, pcm = pieces[0]
    audio.add_text(pcm, text)
    engine = Engine(handle.base_url)
    result = engine(pcm, words=True)
    assert result.text == text
    assert [s.text for s in result.segments] == list(SENTENCES[:3])
    check_times(result, len(pcm) / SAMPLE_RATE)
    assert [w.text for s in result.segments for w in s.words or []] == text.split()
    assert result.settings["response_format"] == "verbose_json"
    assert audio.stats()["answered_from"] == {"map": 1}
    assert engine.engine.check().ok


def test_unknown_audio_is_transcribed_by_whisper_in_the_simulator(
    sim: tuple[SimulatorHandle, AudioSimClient], pieces: list[tuple[str, Pcm]]
) -> None:
    handle, audio = sim
    text, pcm = pieces[1]
    result = Engine(handle.base_url, timeout_s=60)(pcm)
    assert wer(text, result.text) <= CLEAN_MAX_WER, result.text
    check_times(result, len(pcm) / SAMPLE_RATE)
    assert audio.stats()["answered_from"] == {"whisper": 1}


@pytest.mark.parametrize("fault", ["overload_503", "drop"])
def test_an_overload_or_a_drop_is_retried(
    sim: tuple[SimulatorHandle, AudioSimClient], pieces: list[tuple[str, Pcm]], fault: str
) -> None:
    handle, audio = sim
    audio.add_text(pieces[0][1], "Fine.")
    handle.set_faults(**{fault: 1})
    engine = Engine(handle.base_url)
    result = engine(pieces[0][1])
    assert (result.text, result.settings["attempts"], len(engine.slept)) == ("Fine.", 2, 1)
    assert handle.stats()["errors_by_kind"] == {fault: 1}


def test_429_waits_for_retry_after(
    sim: tuple[SimulatorHandle, AudioSimClient], pieces: list[tuple[str, Pcm]]
) -> None:
    handle, audio = sim
    audio.add_text(pieces[0][1], "Fine.")
    handle.set_faults(rate_limit_429=1)
    engine = Engine(handle.base_url)
    assert engine(pieces[0][1]).settings["attempts"] == 2
    assert engine.slept == [1.0]  # the simulator's Retry-After, not the 0.05 s backoff


@pytest.mark.parametrize(
    ("fault", "reason"), [("garbage", "malformed_response"), ("server_error_500", "server_error")]
)
def test_garbage_or_a_500_fails_the_piece_without_retry(
    sim: tuple[SimulatorHandle, AudioSimClient], pieces: list[tuple[str, Pcm]], fault: str, reason: str
) -> None:
    handle, audio = sim
    audio.add_text(pieces[0][1], "Fine.")
    audio.set_faults(**{fault: 1})
    with pytest.raises(EngineFailed) as info:
        Engine(handle.base_url)(pieces[0][1])
    assert info.value.details["reason"] == reason
    assert audio.stats()["requests"] == 1


def test_a_server_refusing_verbose_json_is_asked_for_json(
    sim: tuple[SimulatorHandle, AudioSimClient], pieces: list[tuple[str, Pcm]]
) -> None:
    handle, audio = sim
    audio.add_text(pieces[0][1], "Fine. Twice.")
    audio.configure(verbose_json=False)
    engine = Engine(handle.base_url)
    first, second = engine(pieces[0][1], words=True), engine(pieces[0][1])
    assert [r.settings["response_format"] for r in (first, second)] == ["json", "json"]
    assert [r.settings["attempts"] for r in (first, second)] == [2, 1]  # the refusal is remembered
    assert first.segments[0].text == "Fine. Twice." and first.settings["words_unavailable"]


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({}, "`file` is required"),
        ({"file": ("piece.wav", b"RIFF not really", "audio/wav")}, "not a readable WAV"),
        ({"file": ("piece.mp3", b"ID3" + bytes(200), "audio/mpeg")}, "not a readable WAV"),
    ],
)
def test_the_simulator_refuses_what_is_not_a_wav(
    sim: tuple[SimulatorHandle, AudioSimClient], files: dict[str, Any], message: str
) -> None:
    handle, _ = sim
    response = httpx.post(
        f"{handle.base_url}/v1/audio/transcriptions", data={"model": WHISPER}, files=files or None, timeout=10
    )
    assert response.status_code == 400
    assert message in response.json()["error"]["message"]


def test_the_simulator_takes_other_rates_and_keys_them_by_their_frames(
    sim: tuple[SimulatorHandle, AudioSimClient],
) -> None:
    handle, audio = sim
    frames = (np.arange(8000) % 200 * 100).astype("<i2").tobytes()  # one second at 8 kHz
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(frames)
    httpx.post(
        f"{handle.base_url}/sim/audio/texts", json={hashlib.sha256(frames).hexdigest(): "Eight."}
    ).raise_for_status()
    response = httpx.post(
        f"{handle.base_url}/v1/audio/transcriptions",
        data={"model": WHISPER, "response_format": "verbose_json"},
        files={"file": ("piece.wav", buffer.getvalue(), "audio/wav")},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    assert (response.json()["text"], response.json()["duration"]) == ("Eight.", 1.0)
    assert audio.stats()["answered_from"] == {"map": 1}


def test_another_model_is_not_found(
    sim: tuple[SimulatorHandle, AudioSimClient], pieces: list[tuple[str, Pcm]]
) -> None:
    handle, _ = sim
    engine = Engine(handle.base_url, model="whisper-1")
    with pytest.raises(EngineFailed) as info:
        engine(pieces[0][1])
    assert info.value.details["reason"] == "model_not_found"
    assert not engine.engine.check().ok


def test_a_slow_server_times_out_as_unavailable(
    sim: tuple[SimulatorHandle, AudioSimClient], pieces: list[tuple[str, Pcm]]
) -> None:
    handle, audio = sim
    audio.add_text(pieces[0][1], "Fine.")
    handle.set_faults(slow_ms=3000)
    with pytest.raises(EngineUnavailable) as info:
        Engine(handle.base_url, timeout_s=0.3, max_retries=1)(pieces[0][1])
    assert (info.value.details["reason"], info.value.details["attempts"]) == ("timeout", 2)


def test_a_server_that_is_down_is_unavailable(pieces: list[tuple[str, Pcm]]) -> None:
    engine = Engine(f"http://127.0.0.1:{free_port()}", max_retries=2)
    with pytest.raises(EngineUnavailable) as info:
        engine(pieces[0][1])
    assert info.value.details == {"engine": "whisper-vllm", "reason": "connection_refused", "attempts": 3}
    assert len(engine.slept) == 2
    assert not engine.engine.check().ok


def test_requests_beyond_the_slots_wait(
    sim: tuple[SimulatorHandle, AudioSimClient], pieces: list[tuple[str, Pcm]]
) -> None:
    handle, audio = sim
    pcm = pieces[0][1]
    audio.add_text(pcm, "Fine.")
    audio.configure(ms_per_audio_s=20)  # ~12 s of speech: 5 + 240 ms per request
    engine = Engine(handle.base_url, max_in_flight=6)
    started = time.perf_counter()
    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(engine, [pcm] * 6))
    elapsed = time.perf_counter() - started
    assert [r.text for r in results] == ["Fine."] * 6
    stats = handle.stats()
    assert (stats["max_running_seen"], stats["completed"]) == (2, 6)
    assert stats["max_waiting_seen"] >= 1
    assert elapsed >= 3 * 0.24  # three rounds of two slots
