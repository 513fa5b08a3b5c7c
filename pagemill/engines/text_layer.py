"""The text layer of born-digital PDF pages, read with pdfium.

A page whose layer is missing or garbage returns None, so the caller sends it to OCR instead. Everything
here is tuned to stay at a few milliseconds per page: one text extraction, a few pdfium calls per line.
"""

from __future__ import annotations

import ctypes
import re
import statistics
import time
from collections.abc import Sequence

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c

from pagemill.engines.base import PageResult, TextLine

ENGINE_NAME = "text_layer"

Box = tuple[float, float, float, float]

_BREAK = re.compile(r"\r\n|\r|\n")
_SPACE = re.compile(r"\s")
# Controls, replacement/non-characters, private-use glyphs and lone surrogates: what fonts without a
# usable ToUnicode map extract as. \x02 and \ufffe are pdfium's own soft-hyphen marks, not garbage.
_GARBAGE = re.compile(
    "[\x00\x01\x03-\x08\x0e-\x1f\x7f-\x9f\ud800-\udfff\ue000-\uf8ff\ufffd\uffff\U000f0000-\U0010ffff]"
)
# pdfium marks a hyphen it removed at a line end with \x02 (U+FFFE in its text output): the word goes on.
_SOFT_HYPHEN = re.compile("[\ufffe\x02\u00ad]")
_RTL = re.compile("[\u0590-\u08ff\ufb1d-\ufdff\ufe70-\ufefc]")
# pdfium's bidi pass emits lam-alef-hamza ligatures as "alef, hamza-alef, lam"; two alefs in a row never
# occur in Arabic, so this order is always the artefact.
_LAM_ALEF = re.compile("\u0627([\u0623\u0625\u0622])\u0644")
# Bidi reordering also drops the space between a Latin word and an Arabic or Hebrew one beside it.
_SCRIPT_SEAM = re.compile("(?<=[A-Za-z])(?=[\u0590-\u06ff])|(?<=[\u0590-\u06ff])(?=[A-Za-z])")
_BULLET = re.compile("^[\u2022\u25cf\u25aa\u25e6\u2023\u2043\uf0b7]\\s*")
_MD_LEADING = re.compile(r"^([#>])")
_PAGE_NUMBER = re.compile(r"(?:page\s*)?[\divxlc]{1,6}(?:\s*(?:/|of)\s*\d{1,5})?", re.IGNORECASE)
# Running headers, footers, page numbers and sideways "downloaded from" stamps sit in the page margins.
# These bands were measured on the corpus: dropping such lines lifts the olmOCR-bench header/footer tests
# and the docling references (which omit page furniture) without losing body text.
_TOP_BAND, _BOTTOM_BAND, _SIDE_BAND, _NUMBER_BAND = 0.045, 0.945, 0.06, 0.1


def is_usable_text(text: str | None, min_chars: int) -> bool:
    """True when ``text`` looks like real text worth keeping instead of OCR.

    Rejects a layer with fewer than ``min_chars`` visible characters, or where more than a quarter of them
    are controls, replacement characters or private-use glyphs (a font whose mapping is broken).
    """
    if not text:
        return min_chars <= 0
    visible = len(text) - len(_SPACE.findall(text)) - len(_SOFT_HYPHEN.findall(text))
    bad = len(_GARBAGE.findall(text))
    good = visible - bad
    if good < max(min_chars, 1):
        return False
    return bad * 3 <= good


def read_text_layer(page: pdfium.PdfPage, *, min_chars: int) -> PageResult | None:
    """The text, lines and markdown of a born-digital page, or None when the layer is missing or garbage.

    Boxes are normalised 0..1 from the top-left of the page as displayed (its /Rotate applied). Running
    headers, footers and page numbers in the margins are left out of ``lines``, ``text`` and ``markdown``.
    """
    started = time.perf_counter()
    textpage = page.get_textpage()
    try:
        raw = textpage.get_text_range()
        if not is_usable_text(raw, min_chars):
            return None
        indices = _char_indices(textpage, raw)
        rtl = _RTL.search(raw) is not None
        if rtl:
            raw = _fix_rtl(textpage, raw, indices)
        lines = [
            ln for ln in _read_lines(textpage, raw, indices, _PageFrame(page)) if not is_page_furniture(ln)
        ]
        if rtl:
            lines = [TextLine(_SCRIPT_SEAM.sub(" ", ln.text), ln.bbox, ln.confidence) for ln in lines]
    finally:
        textpage.close()
    return PageResult(
        text="\n".join(line.text for line in lines),
        markdown=lines_to_markdown(lines),
        engine=ENGINE_NAME,
        lines=lines,
        model=f"pdfium {pdfium.version.PDFIUM_INFO.build}",
        settings={"min_chars": min_chars},
        timings_ms={"text_layer": (time.perf_counter() - started) * 1000.0},
    )


def is_page_furniture(line: TextLine) -> bool:
    """True for a line in the page margins: a running header or footer, a page number, a sideways stamp."""
    if line.bbox is None:
        return False
    x0, y0, x1, y1 = line.bbox
    if y1 < _TOP_BAND or y0 > _BOTTOM_BAND:
        return True
    if (y1 - y0) > 3 * (x1 - x0) and (x1 < _SIDE_BAND or x0 > 1 - _SIDE_BAND):
        return True
    return (y1 < _NUMBER_BAND or y0 > 1 - _NUMBER_BAND) and _PAGE_NUMBER.fullmatch(line.text) is not None


def lines_to_markdown(lines: list[TextLine]) -> str:
    """Paragraphs from lines: a new one where the vertical gap is large or a new column starts.

    Lines of a paragraph are joined with spaces and bullets become list items. No headings or tables are
    invented: a text layer does not say reliably what they are.
    """
    heights = [ln.bbox[3] - ln.bbox[1] for ln in lines if ln.bbox and ln.bbox[3] > ln.bbox[1]]
    line_height = statistics.median(heights) if heights else 0.0
    paragraphs: list[list[str]] = []
    prev: Box | None = None
    for line in lines:
        bullet = _BULLET.match(line.text)
        text = "- " + line.text[bullet.end() :] if bullet else _MD_LEADING.sub(r"\\\1", line.text)
        if not paragraphs or bullet or _starts_paragraph(prev, line.bbox, line_height):
            paragraphs.append([text])
        else:
            paragraphs[-1].append(text)
        prev = line.bbox or prev
    return "\n\n".join(" ".join(parts) for parts in paragraphs)


def _starts_paragraph(prev: Box | None, box: Box | None, line_height: float) -> bool:
    if prev is None or box is None or line_height <= 0:
        return False
    gap = box[1] - prev[3]
    # Going up by more than a line means a new column or block; a gap over ~0.8 lines is a paragraph break.
    return gap < -line_height or gap > 0.8 * line_height


class _PageFrame:
    """Maps PDF user-space boxes to 0..1 boxes on the page as displayed."""

    def __init__(self, page: pdfium.PdfPage) -> None:
        left, bottom, right, top = page.get_bbox()
        self.left, self.top = left, top
        self.width = max(right - left, 1e-6)
        self.height = max(top - bottom, 1e-6)
        self.rotation = page.get_rotation() % 360

    def normalise(self, left: float, bottom: float, right: float, top: float) -> Box:
        """(x0, y0, x1, y1) from the top-left of the upright page."""
        u0, u1 = (left - self.left) / self.width, (right - self.left) / self.width
        v0, v1 = (self.top - top) / self.height, (self.top - bottom) / self.height
        # /Rotate turns the page clockwise for display; the box turns with it.
        if self.rotation == 90:
            u0, v0, u1, v1 = 1 - v1, u0, 1 - v0, u1
        elif self.rotation == 180:
            u0, v0, u1, v1 = 1 - u1, 1 - v1, 1 - u0, 1 - v0
        elif self.rotation == 270:
            u0, v0, u1, v1 = v0, 1 - u1, v1, 1 - u0
        return (_clip(u0), _clip(v0), _clip(u1), _clip(v1))


def _clip(value: float) -> float:
    return min(max(value, 0.0), 1.0)


def _read_lines(
    textpage: pdfium.PdfTextPage, raw: str, indices: Sequence[int] | None, frame: _PageFrame
) -> list[TextLine]:
    lines: list[TextLine] = []
    start = 0
    for match in [*_BREAK.finditer(raw), None]:
        end = match.start() if match else len(raw)
        segment = raw[start:end]
        text = _SOFT_HYPHEN.sub("", segment).strip()
        if text:
            first = start + len(segment) - len(segment.lstrip())
            last = start + len(segment.rstrip()) - 1
            bbox = None
            if indices is not None:
                bbox = _line_box(
                    textpage, [indices[first], indices[(first + last) // 2], indices[last]], frame
                )
            lines.append(TextLine(text=text, bbox=bbox))
        start = match.end() if match else len(raw)
    return lines


def _line_box(textpage: pdfium.PdfTextPage, chars: list[int], frame: _PageFrame) -> Box | None:
    # The loose (font-height) boxes of a line's first, middle and last char: a few calls per line instead
    # of one per char, and font heights give even line heights for the paragraph-gap test.
    rect = pdfium_c.FS_RECTF()
    boxes = [
        (rect.left, rect.bottom, rect.right, rect.top)
        for index in chars
        if pdfium_c.FPDFText_GetLooseCharBox(textpage.raw, index, ctypes.byref(rect))
    ]
    if not boxes:
        return None
    return frame.normalise(
        min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes)
    )


def _char_indices(textpage: pdfium.PdfTextPage, raw: str) -> Sequence[int] | None:
    """pdfium's char index of each char of ``raw``, or None when they cannot be matched.

    Usually ``raw[i]`` is char ``i``; pdfium's text output can drop chars (stray controls), so when the
    quick probes disagree the two are walked side by side.
    """
    count = textpage.count_chars()
    if not raw or len(raw) > count:
        return None
    probes = {0, len(raw) // 2, len(raw) - 1}
    if len(raw) == count and all(_code_at(textpage, i) == _code(raw[i]) for i in probes):
        return range(len(raw))
    codes = [_code_at(textpage, i) for i in range(count)]
    indices: list[int] = []
    j = 0
    for ch in raw:
        want = _code(ch)
        skipped = 0
        while j < count and codes[j] != want and skipped < 8:
            j, skipped = j + 1, skipped + 1
        if j >= count or codes[j] != want:
            return None
        indices.append(j)
        # pdfium keeps a char outside the BMP as two chars (its UTF-16 surrogates).
        j += 2 if ord(ch) > 0xFFFF else 1
    return indices


def _code_at(textpage: pdfium.PdfTextPage, index: int) -> int:
    return int(pdfium_c.FPDFText_GetUnicode(textpage.raw, index))


def _code(ch: str) -> int:
    # pdfium stores its soft-hyphen mark as \x02 but writes it out as U+FFFE, and a char outside the BMP
    # as its two UTF-16 surrogates (the first is matched).
    code = ord(ch)
    if code > 0xFFFF:
        return 0xD800 + ((code - 0x10000) >> 10)
    return 2 if code == 0xFFFE else code


def _fix_rtl(textpage: pdfium.PdfTextPage, raw: str, indices: Sequence[int] | None) -> str:
    """Undo pdfium reversing multi-letter glyphs (lam-alef, whole-word glyphs) in right-to-left runs.

    A ligature glyph expands to several chars sharing one char box, and pdfium emits them in visual
    order; each such group is reversed back. Only pages with RTL script pay for the per-char calls.
    """
    chars = list(raw)
    if indices is not None:
        prev: tuple[float, ...] | None = None
        group_start = 0
        for i in range(len(chars) + 1):
            box = None
            if i < len(chars) and _RTL.match(chars[i]):
                box = tuple(textpage.get_charbox(indices[i]))
            if box is not None and box == prev:
                continue
            if i - group_start > 1 and prev is not None:
                chars[group_start:i] = chars[group_start:i][::-1]
            group_start, prev = i, box
    # Same length as ``raw``: offsets must still match ``indices``.
    return _LAM_ALEF.sub("\u0627\u0644\\1", "".join(chars))
