"""Opening documents in-process and rendering pages within the limits."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageChops

from pagemill.documents.kinds import DocumentKind
from pagemill.documents.source import DocumentSource, PdfSource, open_source, pdf_render_scale
from pagemill.errors import (
    CorruptFile,
    EncryptedFile,
    ImageTooLarge,
    InvalidPageRange,
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
    render_text_page,
)

PDF = DocumentKind.PDF


def _open(path: Path, kind: DocumentKind = PDF, password: str | None = None, **limits: Any) -> DocumentSource:
    return open_source(path, kind, password=password, limits=LimitSettings(**limits))


def _ink(image: Image.Image) -> float:
    """Share of dark pixels: a rendered text page has some, a blank page none."""
    grey = image.convert("L")
    return sum(grey.histogram()[:128]) / (grey.width * grey.height)


class TestPdf:
    def test_text_layer_and_render(self, tmp_path: Path) -> None:
        with _open(make_text_pdf(tmp_path / "a.pdf", ["Hello world", "Second page"])) as source:
            assert (source.page_count, source.kind, source.is_pdf) == (2, PDF, True)
            text = source.pdf_page(1).get_textpage().get_text_bounded()
            assert text == "Second page"
            page = source.render(0, 300)
            assert (page.size, page.mode) == ((2550, 3300), "RGB")
            assert 0 < _ink(page) < 0.05
            assert source.render(0, 72).size == (612, 792)

    def test_close_releases_and_is_idempotent(self, tmp_path: Path) -> None:
        source = _open(make_text_pdf(tmp_path / "a.pdf", ["one"]))
        assert isinstance(source, PdfSource)
        source.render(0, 72)
        source.close()
        source.close()
        assert not source._pages

    def test_rotate_is_honoured(self, tmp_path: Path) -> None:
        with _open(make_text_pdf(tmp_path / "a.pdf", ["Sideways"], rotate=90)) as source:
            assert source.render(0, 72).size == (792, 612)

    def test_scanned_pdf_renders(self, tmp_path: Path) -> None:
        with _open(make_scanned_pdf(tmp_path / "a.pdf", ["Scanned text"])) as source:
            assert source.pdf_page(0).get_textpage().get_text_bounded().strip() == ""
            assert _ink(source.render(0, 150)) > 0

    def test_render_stops_at_max_side(self, tmp_path: Path) -> None:
        with _open(make_text_pdf(tmp_path / "a.pdf", ["Letter page"])) as source:
            assert source.render(0, 300).size == (2550, 3300)
            small = source.render(0, 300, max_side=1600)
            assert max(small.size) == 1600 and small.width == 1237  # pdfium rounds sides up
            assert source.render(0, 100, max_side=1600).size == (850, 1100), "max_side never raises the DPI"

    def test_huge_page_rendered_within_pixel_budget(self, tmp_path: Path) -> None:
        path = make_text_pdf(tmp_path / "a.pdf", ["Huge"], page_size=(14400, 14400))
        with _open(path, render_max_pixels=1_000_000) as source:
            page = source.render(0, 300)  # 60000 x 60000 at the asked DPI
            assert page.width * page.height <= 1_000_000
            assert page.width > 900
            assert abs(page.width - page.height) <= 1

    @pytest.mark.parametrize(("width", "height"), [(14400, 14400), (612, 792), (3, 14400), (0.5, 0.5)])
    def test_render_scale_respects_budget(self, width: float, height: float) -> None:
        for budget in (1_000_000, 40_000_000):
            scale = pdf_render_scale(width, height, 300, budget)
            assert math.ceil(width * scale) * math.ceil(height * scale) <= budget
            assert scale <= 300 / 72

    def test_invalid_page_size(self) -> None:
        with pytest.raises(CorruptFile):
            pdf_render_scale(0, 792, 300, 1_000_000)

    def test_pages_loaded_on_demand_and_few_kept_open(self, tmp_path: Path) -> None:
        with _open(make_many_pages_pdf(tmp_path / "a.pdf", 300)) as source:
            assert source.page_count == 300
            assert isinstance(source, PdfSource)
            assert not source._pages  # opening loads no page
            for index in range(0, 300, 7):
                assert source.pdf_page(index).get_textpage().get_text_bounded() == f"Page {index + 1}"
            assert len(source._pages) <= 4
            assert source.pdf_page(299) is source.pdf_page(299)

    def test_page_index_checked(self, tmp_path: Path) -> None:
        with _open(make_text_pdf(tmp_path / "a.pdf", ["one"])) as source:
            for index in (1, -1):
                with pytest.raises(InvalidPageRange):
                    source.render(index, 72)

    def test_too_many_pages(self, tmp_path: Path) -> None:
        with pytest.raises(TooManyPages):
            _open(make_many_pages_pdf(tmp_path / "a.pdf", 3), max_pages=2)

    def test_corrupt(self, tmp_path: Path) -> None:
        with pytest.raises(CorruptFile):
            _open(make_corrupt_pdf(tmp_path / "a.pdf"))

    def test_passwords(self, tmp_path: Path) -> None:
        path = make_encrypted_pdf(tmp_path / "a.pdf", "s3cret", text="Locked text")
        with pytest.raises(EncryptedFile):
            _open(path)
        with pytest.raises(WrongPassword):
            _open(path, password="nope")
        with _open(path, password="s3cret") as source:
            assert source.pdf_page(0).get_textpage().get_text_bounded() == "Locked text"

    def test_owner_password_only(self, tmp_path: Path) -> None:
        with _open(make_encrypted_pdf(tmp_path / "a.pdf", "", text="Open text")) as source:
            assert source.pdf_page(0).get_textpage().get_text_bounded() == "Open text"


class TestImages:
    @pytest.mark.parametrize("fmt", ["PNG", "JPEG", "TIFF", "WEBP"])
    def test_render_each_format(self, tmp_path: Path, fmt: ImageFormat) -> None:
        path = make_text_image(tmp_path / "a", "Hello", fmt)
        with _open(path, DocumentKind(fmt.lower())) as source:
            assert (source.page_count, source.is_pdf) == (1, False)
            page = source.render(0, 300)
            assert page.mode in ("RGB", "L")
            assert page.size == render_text_page("Hello").size
            with pytest.raises(TypeError):
                source.pdf_page(0)

    @pytest.mark.parametrize("fmt", ["PNG", "JPEG", "TIFF", "WEBP"])
    @pytest.mark.parametrize("orientation", [3, 6, 8])
    def test_exif_orientation_applied(self, tmp_path: Path, fmt: ImageFormat, orientation: int) -> None:
        path = make_text_image(tmp_path / "a", "Upright", fmt, exif_orientation=orientation)
        with _open(path, DocumentKind(fmt.lower())) as source:
            page = source.render(0, 300).convert("L")
        upright = render_text_page("Upright")
        assert page.size == upright.size
        difference = ImageChops.difference(page, upright).convert("L")
        assert sum(difference.histogram()[64:]) / (page.width * page.height) < 0.01

    def test_multiframe_tiff_frames_are_pages(self, tmp_path: Path) -> None:
        texts = ["First", "Second page, wider", "Third"]
        with _open(make_multiframe_tiff(tmp_path / "a.tif", texts), DocumentKind.TIFF) as source:
            assert source.page_count == 3
            sizes = [source.render(i, 300).size for i in (2, 0, 1)]
        assert sizes == [render_text_page(t).size for t in (texts[2], texts[0], texts[1])]

    def test_transparency_flattened_on_white(self, tmp_path: Path) -> None:
        path = tmp_path / "a.png"
        image = Image.new("RGBA", (200, 100), (0, 0, 0, 0))  # transparent black
        image.paste((0, 0, 0, 255), (50, 40, 150, 60))
        image.save(path)
        with _open(path, DocumentKind.PNG) as source:
            page = source.render(0, 300)
        assert page.mode == "RGB"
        assert page.getpixel((0, 0)) == (255, 255, 255)
        assert page.getpixel((100, 50)) == (0, 0, 0)

    @pytest.mark.parametrize(
        ("mode", "value", "expected"), [("1", 1, 255), ("I;16", 32768, 128), ("P", 0, None)]
    )
    def test_modes_become_rgb_or_l(self, tmp_path: Path, mode: str, value: int, expected: int | None) -> None:
        path = tmp_path / "a.png"
        Image.new(mode, (20, 20), value).save(path)
        with _open(path, DocumentKind.PNG) as source:
            page = source.render(0, 300)
        assert page.mode in ("RGB", "L")
        if expected is not None:
            assert page.getpixel((0, 0)) == expected

    def test_pixel_cap_from_header(self, tmp_path: Path) -> None:
        with pytest.raises(ImageTooLarge):
            _open(make_png_bomb(tmp_path / "a.png", 60000, 60000), DocumentKind.PNG)
        with pytest.raises(ImageTooLarge):
            _open(make_jpeg_claiming_size(tmp_path / "a.jpg", 65500, 65500), DocumentKind.JPEG)
        assert LimitSettings().max_image_pixels == Image.MAX_IMAGE_PIXELS

    def test_pixel_cap_in_pillow_warning_zone(self, tmp_path: Path) -> None:
        path = tmp_path / "a.png"
        Image.new("L", (1200, 1000), 255).save(path)
        with pytest.raises(ImageTooLarge):
            _open(path, DocumentKind.PNG, max_image_pixels=1_000_000)

    def test_truncated_image_fails_on_render(self, tmp_path: Path) -> None:
        source = _open(make_truncated_png(tmp_path / "a.png"), DocumentKind.PNG)
        with source, pytest.raises(CorruptFile):
            source.render(0, 300)

    def test_not_an_image(self, tmp_path: Path) -> None:
        with pytest.raises(CorruptFile):
            _open(make_text_pdf(tmp_path / "a.png", ["pdf"]), DocumentKind.PNG)
