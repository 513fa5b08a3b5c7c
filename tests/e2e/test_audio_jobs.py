"""Recordings through the API in both modes, on the CPU engine (faster-whisper, tiny.en): pieces are pages
with their times, segments count from the start of the recording, subtitles parse, options reach the
engine, a long recording can be cancelled keeping its finished pieces, hostile files fail with their
codes."""

from __future__ import annotations

import itertools
import json
import re
import time
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.stack import EMBEDDED_ONLY, Stack
from tests.support import documents, speech

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        speech.ESPEAK is None, reason="espeak-ng is not installed: make system-deps installs it"
    ),
]

# Word error rate of tiny.en on tests.support.speech's voice (espeak-ng en-us), measured on clean speech in
# mp3, wav, ogg and m4a at 16-48 kHz: 0.0 to 0.11 (docs/user-guide.md#recordings). The bound leaves room for
# a worse sentence, not for a broken pipeline (a lost piece or misplaced segment is 0.3 and more).
MAX_WER = 0.25
_SRT_CUE = re.compile(r"^(\d+)\n(\d\d:\d\d:\d\d,\d{3}) --> (\d\d:\d\d:\d\d,\d{3})\n(.+)$", re.S)
_VTT_CUE = re.compile(r"^(\d\d:\d\d:\d\d\.\d{3}) --> (\d\d:\d\d:\d\d\.\d{3})\n(.+)$", re.S)


def _seconds(stamp: str) -> float:
    hours, minutes, seconds = stamp.replace(",", ".").split(":")
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def parse_srt(text: str) -> list[tuple[float, float, str]]:
    """Cues of an SRT file; AssertionError on anything that is not one."""
    cues = []
    for number, block in enumerate(text.strip().split("\n\n"), 1):
        match = _SRT_CUE.match(block)
        assert match is not None and int(match.group(1)) == number, block
        cues.append((_seconds(match.group(2)), _seconds(match.group(3)), match.group(4)))
    return cues


def parse_vtt(text: str) -> list[tuple[float, float, str]]:
    """Cues of a WebVTT file (its header first)."""
    header, *blocks = text.strip().split("\n\n")
    assert header == "WEBVTT", header
    cues = []
    for block in blocks:
        match = _VTT_CUE.match(block)
        assert match is not None, block
        cues.append((_seconds(match.group(1)), _seconds(match.group(2)), match.group(3)))
    return cues


def _pages(stack: Stack, job_id: str) -> list[dict[str, Any]]:
    pages: list[dict[str, Any]] = json.loads(stack.result(job_id, "json").text)["pages"]
    return pages


def test_a_recording_becomes_timed_text_and_subtitles(stack: Stack, docs: Path) -> None:
    talk = speech.make_speech(docs / "talk.mp3", speech.SENTENCES[:3], container="mp3")
    response = stack.submit(talk.path, formats="markdown,text,json,srt,vtt")
    assert response.status_code == 202, response.text
    assert response.json()["kind"] == "mp3"
    job = stack.wait(response.json()["id"], timeout=120)
    assert job["state"] == "succeeded", job["error"]
    pages = _pages(stack, job["id"])
    assert len(pages) == job["page_count"] >= 1
    assert {page["engine"] for page in pages} == {"faster-whisper"}
    segments = [segment for page in pages for segment in page["segments"]]
    text = " ".join(segment["text"] for segment in segments)
    assert speech.wer(" ".join(talk.sentences), text) <= MAX_WER, text
    # Each sentence's segment lies within its spoken span (the breaks are 2 s of silence).
    assert len(segments) >= 3
    starts = sorted(segment["start_s"] for segment in segments)
    for (start, _end), spoken in zip(talk.speech, starts[:3], strict=True):
        assert abs(spoken - start) <= 0.5, (talk.speech, starts)
    assert all(s["end_s"] <= talk.duration_s + 0.5 for s in segments)

    srt = parse_srt(stack.result(job["id"], "srt").text)
    vtt = parse_vtt(stack.result(job["id"], "vtt").text)
    assert [cue[:2] for cue in srt] == [cue[:2] for cue in vtt]
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(srt)), "cues never overlap"
    assert stack.result(job["id"], "srt").headers["content-type"].startswith("application/x-subrip")
    markdown = stack.result(job["id"], "markdown").text
    assert "## 00:00:00" in markdown


def test_options_reach_the_engine(stack: Stack, docs: Path) -> None:
    talk = speech.make_speech(docs / "talk.wav", speech.SENTENCES[3:5], container="wav", rate=44100)
    options = {"language": "en", "word_timestamps": "true", "timestamps": "inline"}
    # A page range is planned once the recording is cut (its pieces do not start while it is cut).
    job_id = stack.submit_ok(talk.path, page_range="1", formats="markdown,json", **options)
    job = stack.wait(job_id, timeout=120)
    assert job["state"] == "succeeded", job["error"]
    assert job["options"]["language"] == "en" and job["options"]["word_timestamps"] is True
    assert job["pages"]["total"] == 1
    page = _pages(stack, job["id"])[0]
    assert page["settings"]["language"] == "en"
    words = [word for segment in page["segments"] for word in segment["words"]]
    assert len(words) >= 8 and all(w["start_s"] <= w["end_s"] for w in words)
    assert stack.result(job["id"], "markdown").text.split("\n\n", 1)[1].startswith("[00:00:0")


@EMBEDDED_ONLY
def test_options_that_do_not_fit_the_kind_are_refused(stack: Stack, docs: Path) -> None:
    pdf = documents.make_text_pdf(docs / "a.pdf", ["A page of text for the subtitle check"])
    refused = stack.submit(pdf, formats="srt")
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "VALIDATION_ERROR"
    talk = speech.make_speech(docs / "talk.wav", speech.SENTENCES[:1])
    wrong_engine = stack.submit(talk.path, engine="tesseract")
    assert wrong_engine.status_code == 422, wrong_engine.text
    assert wrong_engine.json()["error"]["details"]["field"] == "engine"


def test_cancelling_a_long_recording_keeps_its_finished_pieces(stack: Stack, docs: Path) -> None:
    long = speech.make_long_speech(docs / "long.flac", minutes=10, container="flac")
    job_id = stack.submit_ok(long.path, formats="json,srt")
    deadline = time.monotonic() + 120
    # Pieces start while the recording is still cut: the first ones may be done before the count is known.
    while (status := stack.job(job_id))["pages"]["done"] < 2 or status["page_count"] is None:
        assert time.monotonic() < deadline, status
        time.sleep(0.2)
    assert status["page_count"] >= 20
    assert stack.client.delete(f"/api/v1/jobs/{job_id}").status_code == 202
    job = stack.wait(job_id, timeout=120)
    assert job["state"] == "cancelled", job
    assert 2 <= job["pages"]["done"] < job["page_count"]
    done = [page for page in _pages(stack, job_id) if page["state"] == "done"]
    assert len(done) == job["pages"]["done"] and all(page["segments"] for page in done)
    assert parse_srt(stack.result(job_id, "srt").text)


def test_hostile_recordings_fail_with_their_codes(shared_embedded_stack: Stack, docs: Path) -> None:
    # Decoding runs in the worker's probe whatever the mode: the embedded stack alone is enough.
    stack = shared_embedded_stack
    outcomes: dict[str, str] = {}
    cases = {
        "empty": speech.make_empty_wav(docs / "empty.wav"),
        "text": speech.make_text_file(docs / "song.mp3"),
        "codec": speech.make_unknown_codec_wav(docs / "codec.wav"),
        "bomb": speech.make_flac_bomb(docs / "bomb.flac", hours=10),
        "truncated": speech.make_truncated(
            speech.make_speech(docs / "whole.m4a", speech.SENTENCES[:1], container="m4a").path,
            docs / "cut.m4a",
        ),
    }
    for name, path in cases.items():
        response = stack.submit(path)
        if response.status_code != 202:
            outcomes[name] = f"{response.status_code} {response.json()['error']['code']}"
            continue
        job = stack.wait(response.json()["id"], timeout=120)
        outcomes[name] = job["error"]["code"] if job["state"] == "failed" else job["state"]
    assert outcomes == {
        "empty": "CORRUPT_FILE",
        "text": "415 UNSUPPORTED_TYPE",
        "codec": "UNSUPPORTED_CODEC",
        "bomb": "AUDIO_TOO_LONG",
        "truncated": "CORRUPT_FILE",
    }
