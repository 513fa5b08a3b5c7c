"""The sandboxed probe: every refusal has its own error, and a dying parser never takes the caller along."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from pagemill.documents import probe
from pagemill.documents.kinds import DocumentKind
from pagemill.documents.probe import DocumentInfo, probe_document
from pagemill.errors import (
    CorruptFile,
    EncryptedFile,
    ImageTooLarge,
    ProcessingTimeout,
    TooManyPages,
    WrongPassword,
)
from pagemill.settings import LimitSettings
from tests.support.documents import (
    ImageFormat,
    make_corrupt_pdf,
    make_encrypted_pdf,
    make_jpeg_claiming_size,
    make_many_pages_pdf,
    make_multiframe_tiff,
    make_png_bomb,
    make_scanned_pdf,
    make_text_image,
    make_text_pdf,
    make_truncated_png,
)

LIMITS = LimitSettings()
PDF = DocumentKind.PDF


def _probe(path: Path, kind: DocumentKind = PDF, password: str | None = None, **limits: Any) -> DocumentInfo:
    return probe_document(path, kind, password=password, limits=LimitSettings(**limits))


def test_text_pdf(tmp_path: Path) -> None:
    info = _probe(make_text_pdf(tmp_path / "a.pdf", ["one", "two", "three"]))
    assert (info.kind, info.page_count, info.encrypted) == (PDF, 3, False)
    assert info.peak_rss_bytes is not None
    assert info.peak_rss_bytes > 0


def test_scanned_pdf(tmp_path: Path) -> None:
    assert _probe(make_scanned_pdf(tmp_path / "a.pdf", ["one", "two"], rotation=90)).page_count == 2


def test_corrupt_pdf(tmp_path: Path) -> None:
    with pytest.raises(CorruptFile):
        _probe(make_corrupt_pdf(tmp_path / "a.pdf"))


def test_too_many_pages(tmp_path: Path) -> None:
    path = make_many_pages_pdf(tmp_path / "a.pdf", 6)
    assert _probe(path, max_pages=6).page_count == 6
    with pytest.raises(TooManyPages) as info:
        _probe(path, max_pages=5)
    assert info.value.details == {"pages": 6, "max_pages": 5}


class TestEncryption:
    def test_needs_password(self, tmp_path: Path) -> None:
        with pytest.raises(EncryptedFile) as info:
            _probe(make_encrypted_pdf(tmp_path / "a.pdf", "s3cret"))
        assert info.value.code == "ENCRYPTED_FILE"

    def test_wrong_password(self, tmp_path: Path) -> None:
        with pytest.raises(WrongPassword):
            _probe(make_encrypted_pdf(tmp_path / "a.pdf", "s3cret"), password="guess")

    def test_right_password(self, tmp_path: Path) -> None:
        info = _probe(make_encrypted_pdf(tmp_path / "a.pdf", "s3cret"), password="s3cret")
        assert (info.page_count, info.encrypted) == (1, True)

    def test_owner_password_only_opens_without_password(self, tmp_path: Path) -> None:
        path = make_encrypted_pdf(tmp_path / "a.pdf", "", owner_password="owner-only")
        assert _probe(path).encrypted
        # A password the file does not need is ignored, as it is for unencrypted files.
        assert _probe(path, password="unneeded").page_count == 1


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "TIFF", "WEBP"])
def test_images(tmp_path: Path, fmt: ImageFormat) -> None:
    info = _probe(make_text_image(tmp_path / "a", "Hello", fmt), DocumentKind(fmt.lower()))
    assert (info.page_count, info.encrypted) == (1, False)


def test_multiframe_tiff_counts_frames(tmp_path: Path) -> None:
    path = make_multiframe_tiff(tmp_path / "a.tif", ["one", "two", "three"])
    assert _probe(path, DocumentKind.TIFF).page_count == 3
    with pytest.raises(TooManyPages) as info:
        _probe(path, DocumentKind.TIFF, max_pages=2)
    assert info.value.details == {"pages": 3, "max_pages": 2}


def test_tiff_frame_over_pixel_cap(tmp_path: Path) -> None:
    path = tmp_path / "a.tif"
    small, large = Image.new("L", (100, 100), 255), Image.new("L", (2000, 1000), 255)
    small.save(path, "TIFF", save_all=True, append_images=[large])
    # The first frame is fine; the second one alone breaks the cap.
    with pytest.raises(ImageTooLarge):
        _probe(path, DocumentKind.TIFF, max_image_pixels=1_000_000)


def test_png_bomb_refused_from_header(tmp_path: Path) -> None:
    path = make_png_bomb(tmp_path / "a.png", 60000, 60000)
    assert path.stat().st_size < 1000
    started = time.monotonic()
    with pytest.raises(ImageTooLarge):
        _probe(path, DocumentKind.PNG)
    assert time.monotonic() - started < 5  # decoding 3.6 Gpx would take far longer (and memory)


def test_jpeg_header_claiming_huge_size(tmp_path: Path) -> None:
    with pytest.raises(ImageTooLarge):
        _probe(make_jpeg_claiming_size(tmp_path / "a.jpg", 65500, 65500), DocumentKind.JPEG)


def test_pillow_warning_zone_is_refused_too(tmp_path: Path) -> None:
    # Between the cap and twice the cap Pillow only warns; that must still be an error.
    path = tmp_path / "a.png"
    Image.new("L", (1200, 1000), 255).save(path)
    with pytest.raises(ImageTooLarge):
        _probe(path, DocumentKind.PNG, max_image_pixels=1_000_000)


def test_truncated_png_is_corrupt(tmp_path: Path) -> None:
    with pytest.raises(CorruptFile) as info:
        _probe(make_truncated_png(tmp_path / "a.png"), DocumentKind.PNG)
    assert info.value.details == {"reason": "image_data"}


def test_image_needing_more_memory_than_allowed(tmp_path: Path) -> None:
    # 6000x6000 RGB decodes to 108 MB: within the pixel cap, over a 64 MB probe budget.
    path = tmp_path / "a.png"
    Image.new("RGB", (6000, 6000), (255, 255, 255)).save(path, compress_level=1)
    with pytest.raises(CorruptFile) as info:
        _probe(path, DocumentKind.PNG, probe_memory_mb=64)
    assert info.value.details == {"reason": "memory_limit"}
    assert _probe(path, DocumentKind.PNG, probe_memory_mb=512).page_count == 1


class TestChildFailures:
    """The child is forked, so replacing its work function here changes what the child runs."""

    @pytest.fixture
    def pdf(self, tmp_path: Path) -> Path:
        return make_text_pdf(tmp_path / "a.pdf", ["x"])

    def test_segfault_becomes_corrupt_file(self, pdf: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(probe, "inspect_document", lambda *a: os.kill(os.getpid(), signal.SIGSEGV))
        with pytest.raises(CorruptFile) as info:
            _probe(pdf)
        assert info.value.details == {"reason": "parser_crashed"}

    def test_silent_exit_becomes_corrupt_file(self, pdf: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(probe, "inspect_document", lambda *a: os._exit(3))
        with pytest.raises(CorruptFile):
            _probe(pdf)

    def test_allocation_past_the_cap(self, pdf: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(probe, "inspect_document", lambda *a: bytearray(512 * 1024 * 1024))
        with pytest.raises(CorruptFile) as info:
            _probe(pdf, probe_memory_mb=64)
        assert info.value.details == {"reason": "memory_limit"}

    def test_writing_memory_inherited_from_parent(self, pdf: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        # Mapped before the fork, so RLIMIT_AS never sees it; writing it makes it the child's own memory.
        ballast = bytearray(256 * 1024 * 1024)

        def fill(*_: object) -> None:
            for offset in range(0, len(ballast), 4096):
                ballast[offset] = 1
            time.sleep(5)

        monkeypatch.setattr(probe, "inspect_document", fill)
        started = time.monotonic()
        with pytest.raises(CorruptFile) as info:
            _probe(pdf, probe_memory_mb=64)
        assert info.value.details == {"reason": "memory_limit"}
        assert time.monotonic() - started < 4

    def test_cpu_loop_times_out(self, pdf: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        def spin(*_: object) -> None:
            while True:
                pass

        monkeypatch.setattr(probe, "inspect_document", spin)
        started = time.monotonic()
        with pytest.raises(ProcessingTimeout):
            _probe(pdf, probe_timeout_s=1)
        assert time.monotonic() - started < 5

    def test_blocked_child_times_out(self, pdf: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        # Sleeping uses no CPU, so only the wall-clock deadline can end it.
        monkeypatch.setattr(probe, "inspect_document", lambda *a: time.sleep(60))
        started = time.monotonic()
        with pytest.raises(ProcessingTimeout):
            _probe(pdf, probe_timeout_s=1)
        assert time.monotonic() - started < 5

    def test_unexpected_exception_becomes_corrupt_file(
        self, pdf: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(probe, "inspect_document", lambda *a: 1 // 0)
        with pytest.raises(CorruptFile) as info:
            _probe(pdf)
        assert info.value.details == {"reason": "parser_error"}

    def test_the_waiting_callback_runs_and_its_error_ends_the_child(
        self, pdf: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # The child would work for a minute; the parent's callback fails after a few looks.
        monkeypatch.setattr(probe, "inspect_document", lambda *a: time.sleep(60))
        calls: list[int] = []
        forked: list[int] = []
        fork = os.fork

        def recording_fork() -> int:
            pid = fork()
            if pid:
                forked.append(pid)
            return pid

        monkeypatch.setattr(probe.os, "fork", recording_fork)

        def on_wait() -> None:
            calls.append(os.getpid())
            if len(calls) == 3:
                raise RuntimeError("the database went away")

        started = time.monotonic()
        with pytest.raises(RuntimeError, match="database"):
            probe_document(pdf, DocumentKind.PDF, password=None, limits=LimitSettings(), on_wait=on_wait)
        assert time.monotonic() - started < 5
        assert calls == [os.getpid()] * 3  # called here, in the parent
        assert len(forked) == 1
        with pytest.raises(ProcessLookupError):
            os.kill(forked[0], 0)  # the child was killed and reaped: no zombie left behind

    def test_caller_keeps_working_after_failures(self, pdf: Path) -> None:
        assert _probe(pdf).page_count == 1
