"""What every speech engine returns and the interface it implements.

A recording is cut into pieces of at most ``audio.max_piece_s`` seconds (16 kHz mono float32 samples in
-1..1); each piece is transcribed on its own, like a page. Times in a :class:`Transcript` are seconds from
the start of the piece, so a piece's transcript does not depend on where the piece sits in the recording
(the job adds the piece's offset when it assembles the whole).
"""

from __future__ import annotations

import io
import wave
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

SAMPLE_RATE = 16_000
"""Samples per second of every piece (what Whisper models are trained on)."""

Pcm = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class Word:
    """One word with its time in the piece and the engine's probability (0..1, None if unknown)."""

    start_s: float
    end_s: float
    text: str
    probability: float | None = None


@dataclass(frozen=True, slots=True)
class Segment:
    """A stretch of speech, usually a sentence or a phrase, as the model cut it.

    ``avg_logprob`` (mean token log probability) and ``no_speech_prob`` are Whisper's own confidence
    figures: a segment with high ``no_speech_prob`` and low ``avg_logprob`` is likely made up over noise.
    """

    start_s: float
    end_s: float
    text: str
    avg_logprob: float | None = None
    no_speech_prob: float | None = None
    words: list[Word] | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form."""
        return {
            "start_s": self.start_s,
            "end_s": self.end_s,
            "text": self.text,
            "avg_logprob": self.avg_logprob,
            "no_speech_prob": self.no_speech_prob,
            "words": (
                None
                if self.words is None
                else [
                    {"start_s": w.start_s, "end_s": w.end_s, "text": w.text, "probability": w.probability}
                    for w in self.words
                ]
            ),
        }


@dataclass(slots=True)
class Transcript:
    """The text of one piece and how it was produced."""

    text: str
    segments: list[Segment]
    language: str | None
    """ISO 639-1 code (``en``) when known; a server's language name it could not map is kept as sent."""
    engine: str
    model: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    timings_ms: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form, stored with the piece."""
        return {
            "text": self.text,
            "language": self.language,
            "engine": self.engine,
            "model": self.model,
            "settings": self.settings,
            "timings_ms": self.timings_ms,
            "segments": [segment.to_dict() for segment in self.segments],
        }


class AudioEngine(Protocol):
    """An engine that transcribes one piece of a recording (faster-whisper on the CPU, or a server)."""

    name: str

    def transcribe(
        self, pcm: Pcm, *, language: str | None, prompt: str | None, word_timestamps: bool
    ) -> Transcript:
        """Transcribe ``pcm`` (16 kHz mono float32); ``language`` an ISO code or None to detect it,
        ``prompt`` text that came before (names, spelling), ``word_timestamps`` to time every word.
        Raises EngineFailed (this piece cannot be read by this engine) or EngineUnavailable (try later)."""
        ...


# --- Helpers shared by the engines ------------------------------------------------------------------------


def as_pcm(samples: npt.ArrayLike) -> Pcm:
    """``samples`` as 1-D float32 in -1..1: integer PCM is scaled, NaN becomes 0, peaks are clipped.

    Engines accept what a decoder hands them; a stray float64 or a NaN must not reach a native library.
    """
    array = np.asarray(samples)
    if array.ndim != 1:
        raise ValueError(f"a piece must be mono (1-D samples), got shape {array.shape}")
    if np.issubdtype(array.dtype, np.integer):
        info = np.iinfo(array.dtype)
        array = array.astype(np.float32) / float(max(abs(info.min), info.max))
    pcm = np.nan_to_num(array.astype(np.float32, copy=False), nan=0.0, posinf=1.0, neginf=-1.0)
    return np.clip(pcm, -1.0, 1.0)


def pcm_int16(pcm: Pcm) -> bytes:
    """The little-endian 16-bit samples of ``pcm`` (what a WAV file of it carries)."""
    scaled = np.rint(as_pcm(pcm) * 32767.0).astype("<i2")
    data: bytes = scaled.tobytes()
    return data


def wav_bytes(pcm: Pcm, sample_rate: int = SAMPLE_RATE) -> bytes:
    """A 16-bit mono WAV file of ``pcm``: every transcription server reads it, at a quarter of float32's
    size for the float64 some send, and 16 bits lose nothing Whisper hears."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(sample_rate)
        out.writeframes(pcm_int16(pcm))
    return buffer.getvalue()


def duration_s(pcm: Pcm, sample_rate: int = SAMPLE_RATE) -> float:
    """Seconds of audio in ``pcm``."""
    return float(len(pcm)) / sample_rate


# Whisper's language names (what OpenAI-compatible servers report in verbose_json) by ISO code.
_WHISPER_LANGUAGES = (
    "en english,zh chinese,de german,es spanish,ru russian,ko korean,fr french,ja japanese,pt portuguese,"
    "tr turkish,pl polish,ca catalan,nl dutch,ar arabic,sv swedish,it italian,id indonesian,hi hindi,"
    "fi finnish,vi vietnamese,he hebrew,uk ukrainian,el greek,ms malay,cs czech,ro romanian,da danish,"
    "hu hungarian,ta tamil,no norwegian,th thai,ur urdu,hr croatian,bg bulgarian,lt lithuanian,la latin,"
    "mi maori,ml malayalam,cy welsh,sk slovak,te telugu,fa persian,lv latvian,bn bengali,sr serbian,"
    "az azerbaijani,sl slovenian,kn kannada,et estonian,mk macedonian,br breton,eu basque,is icelandic,"
    "hy armenian,ne nepali,mn mongolian,bs bosnian,kk kazakh,sq albanian,sw swahili,gl galician,mr marathi,"
    "pa punjabi,si sinhala,km khmer,sn shona,yo yoruba,so somali,af afrikaans,oc occitan,ka georgian,"
    "be belarusian,tg tajik,sd sindhi,gu gujarati,am amharic,yi yiddish,lo lao,uz uzbek,fo faroese,"
    "ht haitian creole,ps pashto,tk turkmen,nn nynorsk,mt maltese,sa sanskrit,lb luxembourgish,my myanmar,"
    "bo tibetan,tl tagalog,mg malagasy,as assamese,tt tatar,haw hawaiian,ln lingala,ha hausa,ba bashkir,"
    "jw javanese,su sundanese,yue cantonese"
)
LANGUAGE_NAMES: dict[str, str] = dict(item.split(" ", 1) for item in _WHISPER_LANGUAGES.split(","))
"""ISO code -> Whisper's English name of the language."""
_CODES_BY_NAME = {name: code for code, name in LANGUAGE_NAMES.items()}


def language_code(value: str | None) -> str | None:
    """A language as Whisper's ISO code: ``en``, ``en-US``, ``EN_gb`` and ``English`` are all ``en``.
    None or blank is None; something unknown comes back lower-cased (the engine decides what to do)."""
    if value is None or not value.strip():
        return None
    text = value.strip().lower()
    if text in _CODES_BY_NAME:
        return _CODES_BY_NAME[text]
    primary = text.replace("_", "-").split("-", 1)[0]
    return primary if primary in LANGUAGE_NAMES else text
