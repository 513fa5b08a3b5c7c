"""`pagemill convert` on a recording: pieces transcribed in this process, subtitles written beside it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.test_audio_jobs import parse_srt, parse_vtt
from tests.support import speech

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        speech.ESPEAK is None, reason="espeak-ng is not installed: make system-deps installs it"
    ),
]

REPO = Path(__file__).resolve().parents[3]


def test_convert_a_recording_to_subtitles(tmp_path: Path) -> None:
    talk = speech.make_speech(tmp_path / "talk.ogg", speech.SENTENCES[:2], container="ogg", rate=48000)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pagemill",
            "convert",
            str(talk.path),
            "--formats",
            "json,srt,vtt",
            "--word-timestamps",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    cues = parse_srt((tmp_path / "talk.srt").read_text())
    assert [cue[:2] for cue in cues] == [cue[:2] for cue in parse_vtt((tmp_path / "talk.vtt").read_text())]
    assert cues[0][0] < 0.5 and cues[-1][1] <= talk.duration_s + 0.5
    page = json.loads((tmp_path / "talk.json").read_text())["pages"][0]
    assert page["engine"] == "faster-whisper" and page["segments"][0]["words"]


def test_subtitles_of_a_document_are_a_usage_error(tmp_path: Path) -> None:
    html = tmp_path / "page.html"
    html.write_text("<html><body><p>No times here</p></body></html>")
    done = subprocess.run(
        [sys.executable, "-m", "pagemill", "convert", str(html), "--formats", "srt"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 1 and "VALIDATION_ERROR" in done.stderr
