"""OpenDocument files built at test time: a zip with ``mimetype`` first and stored, a manifest,
``content.xml`` and ``styles.xml`` written from the XML fragments a test gives (no ODF writer is installed).
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Literal

from PIL import Image

BodyKind = Literal["text", "presentation", "spreadsheet"]

_MIMETYPES = {
    "text": "application/vnd.oasis.opendocument.text",
    "presentation": "application/vnd.oasis.opendocument.presentation",
    "spreadsheet": "application/vnd.oasis.opendocument.spreadsheet",
}

NAMESPACES = (
    'xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
    'xmlns:style="urn:oasis:names:tc:opendocument:xmlns:style:1.0" '
    'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" '
    'xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" '
    'xmlns:draw="urn:oasis:names:tc:opendocument:xmlns:drawing:1.0" '
    'xmlns:fo="urn:oasis:names:tc:opendocument:xmlns:xsl-fo-compatible:1.0" '
    'xmlns:xlink="http://www.w3.org/1999/xlink" '
    'xmlns:svg="urn:oasis:names:tc:opendocument:xmlns:svg-compatible:1.0" '
    'xmlns:presentation="urn:oasis:names:tc:opendocument:xmlns:presentation:1.0" '
    'xmlns:of="urn:oasis:names:tc:opendocument:xmlns:of:1.2" '
    'xmlns:anim="urn:oasis:names:tc:opendocument:xmlns:animation:1.0" '
    'office:version="1.3"'
)


def content_xml(kind: BodyKind, body: str, automatic_styles: str = "") -> bytes:
    """A ``content.xml`` with ``body`` inside ``office:body/office:<kind>``."""
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<office:document-content {NAMESPACES}>'
        f"<office:automatic-styles>{automatic_styles}</office:automatic-styles>"
        f"<office:body><office:{kind}>{body}</office:{kind}></office:body></office:document-content>"
    ).encode()


def styles_xml(styles: str = "") -> bytes:
    """A ``styles.xml`` with ``styles`` inside ``office:styles``."""
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<office:document-styles {NAMESPACES}>'
        f"<office:styles>{styles}</office:styles></office:document-styles>"
    ).encode()


def write_odf(
    path: Path,
    kind: BodyKind,
    body: str = "",
    *,
    automatic_styles: str = "",
    styles: str = "",
    members: dict[str, bytes] | None = None,
    content: bytes | None = None,
    with_content: bool = True,
) -> Path:
    """Write an ODF package to ``path``: ``content`` as given, or built from ``body`` and the styles;
    ``members`` added as they are (pictures)."""
    manifest = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<manifest:manifest xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0" '
        'manifest:version="1.3"><manifest:file-entry manifest:full-path="/" '
        f'manifest:media-type="{_MIMETYPES[kind]}"/></manifest:manifest>'
    )
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(zipfile.ZipInfo("mimetype"), _MIMETYPES[kind], compress_type=zipfile.ZIP_STORED)
        archive.writestr("META-INF/manifest.xml", manifest, compress_type=zipfile.ZIP_DEFLATED)
        if with_content:
            data = content if content is not None else content_xml(kind, body, automatic_styles)
            archive.writestr("content.xml", data, compress_type=zipfile.ZIP_DEFLATED)
        archive.writestr("styles.xml", styles_xml(styles), compress_type=zipfile.ZIP_DEFLATED)
        for name, data in (members or {}).items():
            archive.writestr(name, data, compress_type=zipfile.ZIP_DEFLATED)
    return path


def png_bytes(size: tuple[int, int] = (40, 20), color: str = "red") -> bytes:
    """A small PNG picture."""
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return buffer.getvalue()
