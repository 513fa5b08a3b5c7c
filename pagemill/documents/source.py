"""Open a checked document and hand out its pages: pdfium pages for PDFs, upright images for rendering.

Run :func:`pagemill.documents.probe.probe_document` first: it parses the untrusted file in a sandboxed child.
This module then works in-process and still enforces every limit itself (page count, pixel caps), so a
caller that skipped the probe gets errors, not gigapixel allocations.
"""

from __future__ import annotations

import math
import threading
import warnings
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import TracebackType
from typing import Self, cast

import pypdfium2 as pdfium  # type: ignore[import-untyped, unused-ignore]
import pypdfium2.raw as pdfium_c  # type: ignore[import-untyped, unused-ignore]
from PIL import Image, ImageFile, ImageOps

from pagemill.documents.kinds import DocumentKind
from pagemill.documents.office.document import ReadOptions
from pagemill.errors import (
    CorruptFile,
    EncryptedFile,
    ImageTooLarge,
    InvalidPageRange,
    ProcessingError,
    TooManyPages,
    WrongPassword,
)
from pagemill.settings import LimitSettings

# pdfium pages kept open at once; older ones are closed so a long document never holds every page.
_OPEN_PAGES = 4
_POINTS_PER_INCH = 72.0
_PILLOW_FORMATS = {
    DocumentKind.PNG: "PNG",
    DocumentKind.JPEG: "JPEG",
    DocumentKind.TIFF: "TIFF",
    DocumentKind.WEBP: "WEBP",
}


def configure_pillow(limits: LimitSettings) -> None:
    """Make Pillow refuse oversized and truncated images instead of guessing (process-wide settings)."""
    Image.MAX_IMAGE_PIXELS = limits.max_image_pixels
    # Another library may have switched this on; a truncated scan must fail, not render half a page.
    ImageFile.LOAD_TRUNCATED_IMAGES = False


PDFIUM_LOCK = threading.RLock()
"""pdfium is not thread-safe: every use of it in a process that reads pages in threads (the GPU pool's
thread workers) holds this lock. Uncontended in prefork workers, where it costs nothing."""


def open_pdf(path: Path, password: str | None) -> pdfium.PdfDocument:
    """Open a PDF with pdfium, turning its load failures into Pagemill errors."""
    try:
        return pdfium.PdfDocument(str(path), password=password or None)
    except pdfium.PdfiumError as exc:
        code = cast("int | None", getattr(exc, "err_code", None))
        if code == pdfium_c.FPDF_ERR_PASSWORD:
            if password:
                # pdfium refuses a wrong password even where none is needed (owner-password-only files);
                # a password that is merely unnecessary is ignored, as it is for unencrypted files.
                try:
                    return pdfium.PdfDocument(str(path), password=None)
                except pdfium.PdfiumError:
                    raise WrongPassword() from None
            raise EncryptedFile() from None
        if code == pdfium_c.FPDF_ERR_SECURITY:
            raise CorruptFile(
                "The document uses an unsupported encryption scheme.", reason="security"
            ) from None
        if code == pdfium_c.FPDF_ERR_FILE:
            raise ProcessingError("The stored document could not be read.") from None
        raise CorruptFile(reason="pdf_load") from None


def is_encrypted(pdf: pdfium.PdfDocument) -> bool:
    """True when the PDF has a security handler (also for owner-password-only files that open freely)."""
    return cast(int, pdfium_c.FPDF_GetSecurityHandlerRevision(pdf.raw)) != -1


def open_image(path: Path, kind: DocumentKind, limits: LimitSettings) -> ImageFile.ImageFile:
    """Open an image lazily (header only) and refuse it if its declared size is over the pixel cap."""
    configure_pillow(limits)
    try:
        with warnings.catch_warnings():
            # Pillow warns between the cap and twice the cap; both sides of that line are ours to refuse.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            # Only the sniffed format's plugin may parse the file: no fallback to Pillow's other parsers.
            image = Image.open(path, formats=[_PILLOW_FORMATS[kind]])
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageTooLarge(max_pixels=limits.max_image_pixels) from None
    except (OSError, SyntaxError, ValueError, EOFError):
        raise CorruptFile(reason="image_header") from None
    check_frame_size(image, limits)
    return image


def check_frame_size(image: Image.Image, limits: LimitSettings) -> None:
    """Raise ImageTooLarge if the current frame declares more pixels than allowed (no decoding)."""
    width, height = image.size
    if width * height > limits.max_image_pixels:
        raise ImageTooLarge(width=width, height=height, max_pixels=limits.max_image_pixels)


def frame_count(image: Image.Image) -> int:
    """Number of frames (pages) in an image; 1 for single-frame formats. Walks TIFF directories only."""
    try:
        return int(getattr(image, "n_frames", 1))
    except (OSError, SyntaxError, ValueError, EOFError):
        raise CorruptFile(reason="image_frames") from None


def check_page_count(page_count: int, limits: LimitSettings) -> None:
    """Refuse documents without pages or with more pages than allowed."""
    if page_count < 1:
        raise CorruptFile("The document has no pages.", pages=page_count)
    if page_count > limits.max_pages:
        raise TooManyPages(pages=page_count, max_pages=limits.max_pages)


def pdf_render_scale(width_pt: float, height_pt: float, dpi: int, max_pixels: int) -> float:
    """pdfium scale for ``dpi``, lowered so the bitmap has at most ``max_pixels`` pixels."""
    if not (math.isfinite(width_pt) and math.isfinite(height_pt)) or width_pt <= 0 or height_pt <= 0:
        raise CorruptFile("A page has an invalid size.")
    # A hair under the exact ratio: pdfium sizes bitmaps with ceil(), and 792 pt * 300/72 in floating point
    # is 3300.0000000000005, which would add a pixel row.
    scale = dpi / _POINTS_PER_INCH * (1 - 1e-9)
    # pdfium rounds each side up, so shrink until the rounded bitmap fits.
    while math.ceil(width_pt * scale) * math.ceil(height_pt * scale) > max_pixels:
        scale = min(scale * 0.999, math.sqrt(max_pixels / (width_pt * height_pt)) * 0.999)
    return scale


def to_reading_mode(image: Image.Image) -> Image.Image:
    """Convert any decoded frame to RGB or L; transparency is flattened onto white, as it would print."""
    if image.mode in ("RGB", "L"):
        return image
    if image.mode == "1":
        return image.convert("L")
    if image.mode.startswith("I;16"):
        # Scale 16-bit grey into 8 bits; a plain convert("L") would clip everything above 255 to white.
        return image.convert("I").point(lambda v: v / 256).convert("L")
    if image.mode in ("I", "F"):
        low, high = cast(tuple[float, float], image.getextrema())
        span = (high - low) or 1.0
        return image.convert("F").point(lambda v: (v - low) * 255.0 / span).convert("L")
    if image.mode in ("LA", "La") or (image.mode == "P" and _is_grey_palette(image)):
        image = image.convert("LA")
        background = Image.new("L", image.size, 255)
        background.paste(image.getchannel("L"), mask=image.getchannel("A"))
        return background
    if image.mode in ("RGBA", "RGBa", "PA", "P"):
        image = image.convert("RGBA")
        background = Image.new("RGB", image.size, (255, 255, 255))
        background.paste(image, mask=image.getchannel("A"))
        return background
    return image.convert("RGB")


def _is_grey_palette(image: Image.Image) -> bool:
    palette = image.getpalette() or []
    return all(palette[i] == palette[i + 1] == palette[i + 2] for i in range(0, len(palette) - 2, 3))


@dataclass(frozen=True, slots=True)
class SourceOrigin:
    """Where an opened document came from: enough for another process to open the same document."""

    path: Path
    kind: DocumentKind
    password: str | None = field(default=None, repr=False)


class DocumentSource:
    """Pages of one opened document. Use as a context manager, or call :meth:`close`."""

    kind: DocumentKind
    page_count: int
    origin: SourceOrigin | None = None
    """Set by :func:`open_source`: a render process (:mod:`pagemill.documents.render_pool`) opens it too."""

    @property
    def is_pdf(self) -> bool:
        """True for PDFs (pages have a text layer and :meth:`pdf_page` works)."""
        return self.kind is DocumentKind.PDF

    def pdf_page(self, index: int) -> pdfium.PdfPage:
        """The pdfium page at ``index`` (PDF only)."""
        raise TypeError(f"{self.kind} documents have no PDF pages")

    def render(self, index: int, dpi: int, max_side: int | None = None) -> Image.Image:
        """Page ``index`` as an upright RGB or L image (PDF at ``dpi`` within the pixel budget, and no longer
        than ``max_side`` pixels when given: a model that reads 1,600 px pages needs no 300 DPI render)."""
        raise NotImplementedError

    def close(self) -> None:
        """Release the file and every native handle; safe to call twice."""
        raise NotImplementedError

    def _check_index(self, index: int) -> None:
        if not 0 <= index < self.page_count:
            raise InvalidPageRange(page=index, page_count=self.page_count)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class PdfSource(DocumentSource):
    """A PDF opened with pdfium; pages are loaded on demand and a few are kept open."""

    def __init__(self, pdf: pdfium.PdfDocument, page_count: int, limits: LimitSettings) -> None:
        self.kind = DocumentKind.PDF
        self.page_count = page_count
        self._pdf = pdf
        self._limits = limits
        self._pages: OrderedDict[int, pdfium.PdfPage] = OrderedDict()

    def pdf_page(self, index: int) -> pdfium.PdfPage:
        """The pdfium page at ``index``; it stays valid until a few other pages were requested or close()."""
        self._check_index(index)
        with PDFIUM_LOCK:
            return self._pdf_page(index)

    def _pdf_page(self, index: int) -> pdfium.PdfPage:
        page = self._pages.pop(index, None)
        if page is None:
            try:
                page = self._pdf[index]
            except pdfium.PdfiumError:
                raise CorruptFile("A page of the document cannot be read.", page=index) from None
            while len(self._pages) >= _OPEN_PAGES:
                _, oldest = self._pages.popitem(last=False)
                oldest.close()
        self._pages[index] = page
        return page

    def render(self, index: int, dpi: int, max_side: int | None = None) -> Image.Image:
        """Render page ``index`` with its /Rotate applied, at ``dpi`` or less to stay within the budget (and
        within ``max_side`` pixels when given)."""
        with PDFIUM_LOCK:
            return self._render(index, dpi, max_side)

    def _render(self, index: int, dpi: int, max_side: int | None) -> Image.Image:
        page = self.pdf_page(index)
        width, height = cast(tuple[float, float], page.get_size())
        scale = pdf_render_scale(width, height, dpi, self._limits.render_max_pixels)
        if max_side is not None:
            # Under the lock, pixels cost time: render at the size the engine will send, not larger.
            scale = min(scale, max_side / max(width, height) * (1 - 1e-9))
        # rotation=0 adds nothing to the page's own /Rotate, which pdfium applies by itself. rev_byteorder:
        # pdfium writes RGB rather than BGR, so the PIL image needs no channel swap (a tenth of the cost).
        try:
            bitmap = page.render(
                scale=scale,
                rotation=0,
                may_draw_forms=True,
                fill_color=(255, 255, 255, 255),
                rev_byteorder=True,
            )
        except pdfium.PdfiumError:
            # pdfium only fails here when it cannot allocate the bitmap.
            raise ProcessingError("The page could not be rendered.", page=index) from None
        try:
            # to_pil unpacks a 3-byte RGB buffer into a new image; a 4-byte one (RGBX, RGBA) it shares, so
            # that one is converted (copied) before the bitmap is freed.
            image = cast(Image.Image, bitmap.to_pil())
            return image if image.mode == "RGB" else image.convert("RGB")
        finally:
            bitmap.close()

    def close(self) -> None:
        """Close the open pages, the form environment and the document."""
        with PDFIUM_LOCK:
            while self._pages:
                self._pages.popitem()[1].close()
            self._pdf.close()


def _upright(frame: Image.Image) -> Image.Image:
    """The frame turned as its EXIF/TIFF orientation tag says; as stored if the tag cannot be read."""
    try:
        with warnings.catch_warnings():
            # Pillow warns about damaged EXIF blocks; the pixels are fine, only the tag is lost.
            warnings.simplefilter("ignore", UserWarning)
            return ImageOps.exif_transpose(frame)
    except Exception:  # EXIF parsing of hostile bytes fails in many ways; the pixels are still good
        return frame


class ImageSource(DocumentSource):
    """A raster image; TIFF frames are pages."""

    def __init__(
        self, image: ImageFile.ImageFile, kind: DocumentKind, page_count: int, limits: LimitSettings
    ) -> None:
        self.kind = kind
        self.page_count = page_count
        self._image = image
        self._limits = limits

    def render(self, index: int, dpi: int, max_side: int | None = None) -> Image.Image:
        """Frame ``index`` decoded, EXIF-rotated upright and converted to RGB or L (``dpi`` and ``max_side``
        are ignored: the engine scales an image itself)."""
        self._check_index(index)
        try:
            self._image.seek(index)
            check_frame_size(self._image, self._limits)
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                self._image.load()
            return to_reading_mode(_upright(self._image))
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise ImageTooLarge(max_pixels=self._limits.max_image_pixels) from None
        except (OSError, SyntaxError, ValueError, EOFError):
            raise CorruptFile("The image data is damaged.", page=index) from None

    def close(self) -> None:
        """Close the image file."""
        self._image.close()


def _init_forms(pdf: pdfium.PdfDocument) -> None:
    """Set up forms before any page loads, so filled-in fields are rendered too; optional if it fails."""
    try:
        with warnings.catch_warnings():
            # pdfium warns when XFA forms do not load; the static page content still renders.
            warnings.simplefilter("ignore", pdfium.PdfiumWarning)
            pdf.init_forms()
    except pdfium.PdfiumError:
        pass


def open_source(
    path: Path,
    kind: DocumentKind,
    *,
    password: str | None,
    limits: LimitSettings,
    office: ReadOptions | None = None,
) -> DocumentSource:
    """Open a local document for reading its pages; cheap, nothing is decoded until asked for (an office
    file is read whole, with ``office``, the job's reading options, and kept for the next call).

    Raises the same errors as the probe for what can be seen without decoding (CorruptFile, EncryptedFile,
    WrongPassword, TooManyPages, ImageTooLarge).
    """
    if kind.is_office:
        from pagemill.documents.office.source import OfficeSource

        office_source = OfficeSource(path, kind, replace(office or ReadOptions(), password=password), limits)
        check_page_count(office_source.page_count, limits)
        return office_source  # no origin: office pages never go through a render process
    if kind is DocumentKind.PDF:
        with PDFIUM_LOCK:
            pdf = open_pdf(path, password)
            try:
                page_count = len(pdf)
                check_page_count(page_count, limits)
                _init_forms(pdf)
            except BaseException:
                pdf.close()
                raise
        source: DocumentSource = PdfSource(pdf, page_count, limits)
    else:
        image = open_image(path, kind, limits)
        try:
            page_count = frame_count(image)
            check_page_count(page_count, limits)
        except BaseException:
            image.close()
            raise
        source = ImageSource(image, kind, page_count, limits)
    source.origin = SourceOrigin(path, kind, password)
    return source
