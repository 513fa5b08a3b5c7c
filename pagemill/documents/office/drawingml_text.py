"""Text of DrawingML paragraphs (``a:p``: slides' shapes and tables, notes, chart titles), as plain text
and as markdown with the runs' bold, italic and hyperlinks.

Adjacent runs of the same formatting are joined before they are marked up, and spaces stay outside the
markers (``**a** b``, never ``**a **b``), so the markdown is what a reader of it expects.
"""

from __future__ import annotations

import re
from typing import Final

from lxml import etree

from pagemill.documents.office.ooxml_package import R_NS, Relationship

A_NS: Final = "http://schemas.openxmlformats.org/drawingml/2006/main"
_A: Final = f"{{{A_NS}}}"
_TRUE: Final = ("1", "true", "on")
_MD_SPECIAL: Final = re.compile(r"([\\`*_\[\]<>])")
_URL_SCHEMES: Final = ("http://", "https://", "mailto:", "ftp://")

# (text, bold, italic, url) of a stretch of runs
_Span = tuple[str, bool, bool, str | None]


def paragraph_text(paragraph: etree._Element, rels: dict[str, Relationship] | None = None) -> tuple[str, str]:
    """The paragraph's plain text and its markdown (identical when no run is formatted); a line break
    (``a:br``) is a newline."""
    spans: list[_Span] = []
    for child in paragraph:
        tag = child.tag
        if tag == f"{_A}r" or tag == f"{_A}fld":
            text = "".join(t.text or "" for t in child.iterfind(f"{_A}t"))
            if text:
                spans.append((text, *_run_format(child.find(f"{_A}rPr"), rels)))
        elif tag == f"{_A}br":
            spans.append(("\n", False, False, None))
    plain = "".join(span[0] for span in spans)
    if not any(bold or italic or url for _, bold, italic, url in spans):
        return plain, plain
    return plain, _spans_markdown(spans)


def text_body_lines(body: etree._Element | None) -> list[str]:
    """The non-empty paragraphs of a text body (``p:txBody``, ``c:rich``, ``a:txBody``) as plain text."""
    if body is None:
        return []
    lines = []
    for paragraph in body.iterfind(f"{_A}p"):
        text = paragraph_text(paragraph)[0].strip()
        if text:
            lines.append(text)
    return lines


def _run_format(
    properties: etree._Element | None, rels: dict[str, Relationship] | None
) -> tuple[bool, bool, str | None]:
    if properties is None:
        return False, False, None
    bold = properties.get("b", "0").lower() in _TRUE
    italic = properties.get("i", "0").lower() in _TRUE
    url = None
    click = properties.find(f"{_A}hlinkClick")
    if click is not None and rels:
        rel = rels.get(click.get(f"{{{R_NS}}}id", ""))
        # Only web and mail links: jumps to another slide or a file on the author's disk lead nowhere.
        if rel is not None and rel.url and rel.url.lower().startswith(_URL_SCHEMES):
            url = rel.url
    return bold, italic, url


def escape_markdown(text: str) -> str:
    """``text`` with the characters markdown would read as markup escaped."""
    return _MD_SPECIAL.sub(r"\\\1", text)


def _spans_markdown(spans: list[_Span]) -> str:
    merged: list[_Span] = []
    for span in spans:
        if merged and merged[-1][1:] == span[1:]:
            merged[-1] = (merged[-1][0] + span[0], *span[1:])
        else:
            merged.append(span)
    return "".join(_span_markdown(*span) for span in merged)


def _span_markdown(text: str, bold: bool, italic: bool, url: str | None) -> str:
    core = text.strip()
    if not core:
        return text
    lead = text[: len(text) - len(text.lstrip())]
    trail = text[len(text.rstrip()) :]
    body = escape_markdown(core)
    if bold and italic:
        body = f"***{body}***"
    elif bold:
        body = f"**{body}**"
    elif italic:
        body = f"*{body}*"
    if url:
        body = f"[{body}]({url.replace(' ', '%20').replace(')', '%29')})"
    return f"{lead}{body}{trail}"
