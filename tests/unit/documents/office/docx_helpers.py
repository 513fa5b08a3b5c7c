"""Helpers shared by the DOCX reader tests: a hand-written WordprocessingML package (``make_docx`` with
paragraphs ``p``, table cells ``tc`` and relationships ``rel``), a small PNG, and ``read``."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

from PIL import Image as PILImage

from pagemill.documents.office.document import OfficeDocument, ReadOptions
from pagemill.documents.office.docx import read_docx
from pagemill.settings import LimitSettings

W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
R = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
NAMESPACES = (
    f'xmlns:w="{W}" xmlns:r="{R}" '
    'xmlns:m="http://schemas.openxmlformats.org/officeDocument/2006/math" '
    'xmlns:wp="http://schemas.openxmlformats.org/drawingml/2006/wordprocessingDrawing" '
    'xmlns:a="http://schemas.openxmlformats.org/drawingml/2006/main" '
    'xmlns:pic="http://schemas.openxmlformats.org/drawingml/2006/picture" '
    'xmlns:wps="http://schemas.microsoft.com/office/word/2010/wordprocessingShape" '
    'xmlns:mc="http://schemas.openxmlformats.org/markup-compatibility/2006" '
    'xmlns:v="urn:schemas-microsoft-com:vml"'
)
REL_TYPE = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
PNG = io.BytesIO()
PILImage.new("RGB", (3, 2), "blue").save(PNG, "PNG")
PNG_BYTES = PNG.getvalue()


def p(text: str, ppr: str = "") -> str:
    return f'<w:p><w:pPr>{ppr}</w:pPr><w:r><w:t xml:space="preserve">{text}</w:t></w:r></w:p>'


def make_docx(
    folder: Path,
    body: str,
    *,
    parts: dict[str, str | bytes] | None = None,
    rels: str = "",
    name: str = "doc.docx",
    namespaces: str = NAMESPACES,
) -> Path:
    """A DOCX zip with ``body`` in word/document.xml, extra ``parts`` and document relationships."""
    path = folder / name
    document_rels = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        f"{rels}</Relationships>"
    )
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(
            "[Content_Types].xml",
            '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"/>',
        )
        archive.writestr(
            "_rels/.rels",
            '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
            f'<Relationship Id="rId1" Type="{REL_TYPE}/officeDocument" Target="word/document.xml"/>'
            "</Relationships>",
        )
        archive.writestr(
            "word/document.xml", f"<w:document {namespaces}><w:body>{body}</w:body></w:document>"
        )
        archive.writestr("word/_rels/document.xml.rels", document_rels)
        for part, content in (parts or {}).items():
            archive.writestr(part, content)
    return path


def read(path: Path, limits: LimitSettings | None = None) -> OfficeDocument:
    return read_docx(path, ReadOptions(), limits or LimitSettings())


def rel(rel_id: str, kind: str, target: str, external: bool = False) -> str:
    mode = ' TargetMode="External"' if external else ""
    return f'<Relationship Id="{rel_id}" Type="{REL_TYPE}/{kind}" Target="{target}"{mode}/>'


def tc(content: str, props: str = "") -> str:
    return f"<w:tc><w:tcPr>{props}</w:tcPr>{content}</w:tc>"
