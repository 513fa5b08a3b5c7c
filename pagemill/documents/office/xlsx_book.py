"""What every sheet of a workbook reads its cells with: the shared strings, the number style of each cell
style, and the date system.

The shared strings part can be as large as the archive limits let it be: it is streamed string by string
(each ``<si>`` freed once read) into a list, never held as a tree. Styles are small and parsed whole.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Final

from lxml import etree

from pagemill.documents.office.archive import SafeZip
from pagemill.documents.office.ooxml_package import part_rels
from pagemill.documents.office.xlsx_values import BUILTIN_FORMATS, MAC_EPOCH, WINDOWS_EPOCH, NumberStyle
from pagemill.errors import CorruptFile

_FALSE: Final = ("false", "f", "0", "")


@dataclass(slots=True)
class Book:
    """A workbook's shared strings, number styles by cell style index (None: General) and date epoch."""

    strings: list[str] = field(default_factory=list)
    styles: list[NumberStyle | None] = field(default_factory=list)
    epoch: dt.datetime = WINDOWS_EPOCH


def read_book(package: SafeZip, workbook_part: str, workbook: etree._Element) -> Book:
    """The shared strings, styles and date system of the workbook at ``workbook_part`` (root
    ``workbook``); parts it does not have are empty."""
    rels = part_rels(package, workbook_part)
    strings_part = styles_part = None
    for rel in rels.values():
        if rel.part is not None and package.has(rel.part):
            if rel.is_type("/sharedStrings"):
                strings_part = rel.part
            elif rel.is_type("/styles"):
                styles_part = rel.part
    # Packages written without these relationships still keep the parts at their usual names.
    if strings_part is None and package.has("xl/sharedStrings.xml"):
        strings_part = "xl/sharedStrings.xml"
    if styles_part is None and package.has("xl/styles.xml"):
        styles_part = "xl/styles.xml"
    book = Book()
    if strings_part is not None:
        book.strings = shared_strings(package, strings_part)
    if styles_part is not None:
        book.styles = number_styles(package.xml(styles_part))
    properties = workbook.find("{*}workbookPr")
    if properties is not None and properties.get("date1904", "").lower() not in _FALSE:
        book.epoch = MAC_EPOCH
    return book


def shared_strings(package: SafeZip, part: str) -> list[str]:
    """The shared strings of ``part``, in order: each the text of its runs, phonetic guides left out."""
    strings: list[str] = []
    with package.open(part) as stream:
        try:
            for item in _stream(stream, "si"):
                text = string_item_text(item)
                # Excel escapes an underscore that starts "_xHHHH_" as "_x005F_": the underscore is meant.
                strings.append(text.replace("x005F_", "") if "x005F_" in text else text)
                _free(item)
        except etree.XMLSyntaxError as exc:
            raise CorruptFile("The shared strings of the workbook are not well-formed XML.") from exc
    return strings


def string_item_text(item: etree._Element) -> str:
    """The text of a string item (``<si>`` or an inline ``<is>``): its ``<t>`` and the ``<t>`` of each rich
    text run ``<r>``; phonetic runs ``<rPh>`` (furigana over Japanese text) are not part of the text."""
    parts: list[str] = []
    for child in item:
        tag = child.tag
        if not isinstance(tag, str):
            continue  # a comment or a processing instruction
        name = tag[tag.rfind("}") + 1 :]
        if name == "t":
            parts.append(child.text or "")
        elif name == "r":
            for run_text in child:
                if run_text.tag == tag[: len(tag) - 1] + "t":
                    parts.append(run_text.text or "")
    return "".join(parts)


def number_styles(styles: etree._Element) -> list[NumberStyle | None]:
    """The number style of each cell style (``cellXfs``), by index; None for General."""
    codes: dict[int, str] = {}
    for number_format in styles.iterfind("{*}numFmts/{*}numFmt"):
        number_id = _int(number_format.get("numFmtId"))
        code = number_format.get("formatCode")
        if number_id is not None and code is not None:
            codes[number_id] = code
    known: dict[int, NumberStyle | None] = {}
    result: list[NumberStyle | None] = []
    for xf in styles.iterfind("{*}cellXfs/{*}xf"):
        number_id = _int(xf.get("numFmtId")) or 0
        if number_id not in known:
            # A workbook's own code for an id wins over the built-in one; an unknown id is General.
            code = codes.get(number_id, BUILTIN_FORMATS.get(number_id, "General"))
            known[number_id] = None if code == "General" else NumberStyle.of(code)
        result.append(known[number_id])
    return result


def _int(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def _stream(stream: object, name: str) -> Iterator[etree._Element]:
    """The ``name`` elements of an XML stream, each when it ends (entities and the network off)."""
    events = etree.iterparse(
        stream,
        events=("end",),
        tag=f"{{*}}{name}",
        resolve_entities=False,
        no_network=True,
        huge_tree=False,
    )
    for _, element in events:
        yield element


def _free(element: etree._Element) -> None:
    """Free an element the stream has passed, and its siblings before it."""
    element.clear()
    parent = element.getparent()
    if parent is not None:
        while element.getprevious() is not None:
            del parent[0]
