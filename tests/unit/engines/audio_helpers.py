"""Helpers shared by the speech engine tests: a one-second piece of audio and an OpenAI-style
``verbose_json`` answer."""

from __future__ import annotations

from typing import Any

import numpy as np

PIECE = (0.5 * np.sin(np.linspace(0, 200 * np.pi, 16_000))).astype(np.float32)  # one second, 1.6 kHz tone


def verbose(text: str = " Hello there. General Kenobi.", **extra: Any) -> dict[str, Any]:
    return {
        "task": "transcribe",
        "language": "english",
        "duration": 1.0,
        "text": text,
        "segments": [
            {
                "id": 0,
                "start": 0.0,
                "end": 0.4,
                "text": " Hello there.",
                "avg_logprob": -0.2,
                "no_speech_prob": 0.01,
            },
            {"id": 1, "start": 0.4, "end": 1.02, "text": " General Kenobi.", "avg_logprob": -0.3},
        ],
        **extra,
    }
