"""A DrawingML picture shape (``p:pic`` on a slide, ``xdr:pic`` in a sheet's drawing) as an Image block.

Its ref is the package part holding the picture's bytes; a picture whose bytes are not in the package (no
fill, a relationship that names nothing, a linked file) is still a picture, with no ref, so a damaged
picture never fails its slide or sheet. The alt text is the author's description, not one Office wrote
itself (a file name, or a caption its AI generated and flags as possibly incorrect).
"""

from __future__ import annotations

import re
from typing import Final

from lxml import etree

from pagemill.documents.office.archive import SafeZip
from pagemill.documents.office.blocks import Image
from pagemill.documents.office.drawingml_text import A_NS
from pagemill.documents.office.ooxml_package import R_NS, Relationship

_A: Final = f"{{{A_NS}}}"
_R_EMBED: Final = f"{{{R_NS}}}embed"
_FILE_NAME_ALT: Final = re.compile(r"^[^\n/\\]{1,200}\.(png|jpe?g|gif|bmp|tiff?|emf|wmf|svg|webp)$", re.I)
_GENERATED_ALT_MARKERS: Final = (
    "AI-generated content may be incorrect",
    "Description automatically generated",
)


def picture(
    pic: etree._Element, nv_tag: str, fill_tag: str, package: SafeZip, rels: dict[str, Relationship]
) -> Image:
    """A picture shape (``p:pic``, ``xdr:pic``) as an Image: ref is the part holding its bytes, None when
    the picture is linked or its relationship is missing."""
    properties = pic.find(f"{nv_tag}/*")
    descr = properties.get("descr", "") if properties is not None else ""
    name = properties.get("name") if properties is not None else None
    ref = None
    blip = pic.find(f"{fill_tag}/{_A}blip")
    if blip is not None:
        rel = rels.get(blip.get(_R_EMBED, ""))
        if rel is not None and rel.part is not None and package.has(rel.part):
            ref = rel.part
    return Image(ref=ref, alt=author_alt(descr), name=name or None)


def author_alt(descr: str) -> str:
    """A picture's description as its author wrote it: empty for the file name or an AI-generated caption
    Office put there itself."""
    text = descr.strip()
    if _FILE_NAME_ALT.match(text) or any(marker in text for marker in _GENERATED_ALT_MARKERS):
        return ""
    return text
