"""The e-mail reader: an RFC 5322 message (.eml) as one page of kind "message", titled by its subject.

Blocks: the subject as a level-1 heading; From, To, Cc and Date as paragraphs (labels in bold); the body,
its HTML version read by :func:`html_blocks` (``cid:`` pictures resolved to the message's parts, refs
``part:N``) or its plain text as paragraphs split at blank lines; pictures shown inline but referenced
by no ``cid:``; then each attachment listed (name, media type, decoded size). With
``attachments="convert"`` the office documents among them are read too and follow under a level-2
heading (:mod:`pagemill.documents.office.eml_attachments`). Parsing is Python's ``email`` package
(``policy.default``: encoded words and RFC 2231 names decoded); parts, nesting, decoded sizes and header
lengths are capped.
"""

from __future__ import annotations

import contextlib
import re
from email import policy
from email.message import EmailMessage, Message
from email.parser import BytesParser
from pathlib import Path
from typing import Final

from pagemill.documents.office.blocks import Attachment, Block, Heading, Image, OfficePage, Paragraph
from pagemill.documents.office.document import OfficeDocument, ReadOptions
from pagemill.documents.office.eml_attachments import MAX_CONVERTED, attachment_blocks
from pagemill.documents.office.eml_parts import (
    MAX_PARTS,
    Budget,
    Leaf,
    declared_charset,
    filename,
    leaves,
    text_of,
)
from pagemill.documents.office.html import stored_images
from pagemill.documents.office.html_blocks import html_blocks
from pagemill.errors import ArchiveBomb, CorruptFile
from pagemill.settings import LimitSettings

_SHOWN_HEADERS: Final = ("From", "To", "Cc", "Date")
_MAX_HEADER_PARSE: Final = 16384
"""Longer header values are shown raw (cut), not parsed: the address parser is slow on huge lists."""
_MAX_HEADER_SHOWN: Final = 4000
_BLANK_LINES: Final = re.compile(r"\n[ \t]*\n")
_BOUNDARY_PARAM: Final = re.compile(rb"boundary\s*=", re.I)
_SETEXT_UNDERLINE: Final = re.compile(r"^\s*(=+|-+)\s*$")


def read_eml(path: Path, options: ReadOptions, limits: LimitSettings) -> OfficeDocument:
    """Read the message at ``path`` into one page."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CorruptFile("The document cannot be read.", reason="io") from exc
    message = parse_message(data)
    images: dict[str, bytes] = {}
    subject = header(message, "Subject")
    try:
        blocks = message_blocks(message, subject, options, limits, images)
    except RecursionError as exc:
        raise CorruptFile("The message nests parts deeper than allowed.", reason="depth") from exc
    page = OfficePage(kind="message", blocks=blocks, title=subject)
    return OfficeDocument(pages=[page], reader="eml", image_loader=stored_images(images))


def parse_message(data: bytes) -> EmailMessage:
    """The message in ``data``; CorruptFile when it cannot be parsed or has no header fields, ArchiveBomb
    when it declares more multiparts than it may have parts."""
    # The parser checks every line against every open boundary: refuse before parsing a message declaring
    # more multiparts than the part cap allows (each multipart is a part).
    declared = len(_BOUNDARY_PARAM.findall(data))
    if declared > MAX_PARTS:
        raise ArchiveBomb("The message has more parts than allowed.", max_parts=MAX_PARTS)
    try:
        message = BytesParser(policy=policy.default).parsebytes(data)
    except (RecursionError, ValueError, TypeError, IndexError, LookupError) as exc:
        raise CorruptFile("The message cannot be parsed.", reason="mime") from exc
    if not isinstance(message, EmailMessage) or not message.keys():
        raise CorruptFile("The message has no header fields.", reason="no_headers")
    return message


def header(message: Message, name: str) -> str | None:
    """A header's decoded value (all its occurrences joined), unfolded and cut to a sane length."""
    values: list[str] = []
    for key, raw in message.raw_items():
        if key.lower() != name.lower():
            continue
        value = str(raw)
        if len(value) <= _MAX_HEADER_PARSE:
            # A header the parser cannot read is shown as written.
            with contextlib.suppress(ValueError, TypeError, IndexError, LookupError, AttributeError):
                value = str(policy.default.header_fetch_parse(key, value))
        value = " ".join(value.split())
        if value:
            values.append(value)
    joined = ", ".join(values)
    if len(joined) > _MAX_HEADER_SHOWN:
        joined = joined[:_MAX_HEADER_SHOWN] + "…"
    return joined or None


def message_blocks(
    message: EmailMessage,
    subject: str | None,
    options: ReadOptions,
    limits: LimitSettings,
    images: dict[str, bytes],
) -> list[Block]:
    """Headers, body, inline pictures and attachments of ``message`` as blocks (see the module)."""
    blocks: list[Block] = [Heading(subject, 1)] if subject else []
    for label in _SHOWN_HEADERS:
        value = header(message, label)
        if value:
            blocks.append(Paragraph(f"{label}: {value}", f"**{label}:** {value}"))
    parts = leaves(message)
    budget = Budget(limits)
    by_cid = {leaf.content_id: leaf for leaf in parts if leaf.role == "picture" and leaf.content_id}
    shown: set[str] = set()
    bodies = {
        leaf.ref: _body_blocks(leaf, budget, limits, images, by_cid, shown)
        for leaf in parts
        if leaf.role == "body"
    }
    attachments: list[tuple[Leaf, str, bytes]] = []
    for leaf in parts:
        if leaf.role == "body":
            blocks.extend(bodies[leaf.ref])
        elif leaf.role == "picture" and leaf.ref not in shown:
            # Inline, yet referenced by no cid: shown where it stands.
            images[leaf.ref] = budget.payload(leaf.part)
            blocks.append(Image(ref=leaf.ref, name=filename(leaf.part)))
        elif leaf.role == "attachment":
            data = budget.payload(leaf.part)
            name = _attachment_name(leaf, len(attachments))
            attachments.append((leaf, name, data))
            blocks.append(Attachment(name, leaf.content_type, len(data)))
    if options.attachments == "convert":
        for index, (_, name, data) in enumerate(attachments[:MAX_CONVERTED]):
            blocks.extend(attachment_blocks(name, data, index, options, limits, images))
    return blocks


def _body_blocks(
    leaf: Leaf,
    budget: Budget,
    limits: LimitSettings,
    images: dict[str, bytes],
    by_cid: dict[str, Leaf],
    shown: set[str],
) -> list[Block]:
    """The blocks of a body text part; its ``cid:`` pictures get the refs (and bytes) of their parts."""
    data = budget.payload(leaf.part)
    if leaf.content_type != "text/html":
        return text_blocks(text_of(leaf.part, data))
    # A charset in the MIME header decides; without one the HTML's own <meta> does.
    markup: bytes | str = text_of(leaf.part, data) if declared_charset(leaf.part) else data
    blocks, _ = html_blocks(markup, base_ref=None, limits=limits, images=images)
    for block in blocks:
        if not isinstance(block, Image) or block.ref is None or block.ref in images:
            continue
        picture = by_cid.get(block.ref[4:]) if block.ref.startswith("cid:") else None
        if picture is None:
            block.ref = None
            continue
        if picture.ref not in shown:
            images[picture.ref] = budget.payload(picture.part)
            shown.add(picture.ref)
        block.ref = picture.ref
        block.name = block.name or filename(picture.part)
    return blocks


def text_blocks(text: str) -> list[Block]:
    """Plain text as paragraphs split at blank lines; quoted lines ("> ") stay quotes in markdown, and
    lines markdown would read as headings are escaped there."""
    blocks: list[Block] = []
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    for chunk in _BLANK_LINES.split(text):
        lines = [line.rstrip() for line in chunk.strip("\n").split("\n")]
        plain = "\n".join(lines)
        if not plain.strip():
            continue
        md = "\n".join(_escape_line(line) for line in lines)
        blocks.append(Paragraph(plain, md if md != plain else None))
    return blocks


def _escape_line(line: str) -> str:
    stripped = line.lstrip()
    if stripped.startswith("#") or _SETEXT_UNDERLINE.match(line):
        return line[: len(line) - len(stripped)] + "\\" + stripped
    return line


def _attachment_name(leaf: Leaf, index: int) -> str:
    name = filename(leaf.part)
    if name:
        return name
    if leaf.content_type == "message/rfc822":
        payload = leaf.part.get_payload()
        inner = payload[0] if isinstance(payload, list) and payload else None
        subject = header(inner, "Subject") if isinstance(inner, Message) else None
        return f"{subject or 'message'}.eml"
    return f"attachment-{index + 1}"
