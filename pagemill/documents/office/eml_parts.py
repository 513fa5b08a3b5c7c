"""The MIME structure of an e-mail: the parts a reader shows, found without recursion and within limits.

A ``multipart/alternative`` shows one of its versions (HTML, else plain text, else its last); other
multiparts show all their parts. Each shown leaf is body text, an inline picture or an attachment (a
forwarded ``message/rfc822`` is an attachment). Decoded bytes are counted against
``limits.max_archive_bytes`` per part and in all; parts and nesting are capped.
"""

from __future__ import annotations

from dataclasses import dataclass
from email.message import EmailMessage, Message
from typing import Final, Literal

from pagemill.documents.office.html_parse import codec_name
from pagemill.errors import ArchiveBomb, CorruptFile
from pagemill.settings import LimitSettings

MAX_PARTS: Final = 1000
MAX_DEPTH: Final = 50
_BODY_TYPES: Final = frozenset({"text/plain", "text/html"})

Role = Literal["body", "picture", "attachment"]


@dataclass(slots=True)
class Leaf:
    """A part the message shows, in reading order: ``ref`` ("part:N") names it."""

    part: Message
    ref: str
    role: Role
    content_type: str
    content_id: str | None = None


class Budget:
    """Decoded bytes of the message's parts, each and all within ``limits.max_archive_bytes``."""

    def __init__(self, limits: LimitSettings) -> None:
        self._max = limits.max_archive_bytes
        self._used = 0

    def payload(self, part: Message) -> bytes:
        """The decoded bytes of a leaf part (a forwarded message serialized)."""
        if part.get_content_type() == "message/rfc822":
            inner = part.get_payload()
            message = inner[0] if isinstance(inner, list) and inner else None
            try:
                data = message.as_bytes() if isinstance(message, Message) else b""
            except (ValueError, TypeError, LookupError, IndexError):
                data = b""  # a forwarded message that cannot be written back is listed without content
        else:
            raw = part.get_payload(decode=True)
            data = raw if isinstance(raw, bytes) else b""
        self._used += len(data)
        if len(data) > self._max or self._used > self._max:
            raise ArchiveBomb("The message's parts decode to more bytes than allowed.", max_bytes=self._max)
        return data


def leaves(message: EmailMessage) -> list[Leaf]:
    """The parts ``message`` shows, depth first; ArchiveBomb past MAX_PARTS, CorruptFile past MAX_DEPTH."""
    out: list[Leaf] = []
    stack: list[tuple[Message, int]] = [(message, 0)]
    seen = 0
    while stack:
        part, depth = stack.pop()
        seen += 1
        if seen > MAX_PARTS:
            raise ArchiveBomb("The message has more parts than allowed.", max_parts=MAX_PARTS)
        if depth > MAX_DEPTH:
            raise CorruptFile("The message nests parts deeper than allowed.", max_depth=MAX_DEPTH)
        content_type = part.get_content_type()
        payload = part.get_payload()
        if content_type.startswith("multipart/") and isinstance(payload, list):
            children = [child for child in payload if isinstance(child, Message)]
            if content_type == "multipart/alternative" and children:
                children = [_best_alternative(children)]
            stack.extend((child, depth + 1) for child in reversed(children))
            continue
        if content_type.startswith("multipart/"):
            content_type = "text/plain"  # a multipart without its boundary: its text is all there is
        out.append(Leaf(part, f"part:{len(out)}", _role(part, content_type), content_type, _content_id(part)))
    return out


def text_of(part: Message, data: bytes) -> str:
    """A text part's decoded bytes as text, in its declared charset (UTF-8 when unknown or ASCII)."""
    label = part.get_content_charset()
    if label is None or label.lower() in ("us-ascii", "ascii"):
        encoding = "utf-8"  # 8-bit bytes under an ASCII label (or none) are nearly always UTF-8
    else:
        encoding = codec_name(label) or "utf-8"
    return data.decode(encoding, errors="replace")


def declared_charset(part: Message) -> str | None:
    """The codec of the charset a part's Content-Type declares, if it is a known one."""
    label = part.get_content_charset()
    return codec_name(label) if label else None


def filename(part: Message) -> str | None:
    """A part's file name (RFC 2231 and encoded words decoded), if it has one."""
    try:
        name = part.get_filename()
    except (ValueError, LookupError, IndexError, TypeError):
        return None
    if not name:
        return None
    return " ".join(str(name).split())[:255] or None


def _role(part: Message, content_type: str) -> Role:
    disposition = _disposition(part)
    if content_type == "message/rfc822" or disposition == "attachment":
        return "attachment"
    if content_type in _BODY_TYPES and filename(part) is None:
        return "body"
    if content_type.startswith("image/"):
        return "picture"
    return "attachment"


def _best_alternative(children: list[Message]) -> Message:
    """The richest version a reader shows: the last HTML or multipart one, else the last plain text."""
    shown = [child for child in children if _disposition(child) != "attachment"] or children
    for child in reversed(shown):
        content_type = child.get_content_type()
        if content_type == "text/html" or content_type.startswith("multipart/"):
            return child
    for child in reversed(shown):
        if child.get_content_type() == "text/plain":
            return child
    return shown[-1]


def _disposition(part: Message) -> str | None:
    try:
        return part.get_content_disposition()
    except (ValueError, IndexError, TypeError):
        return None


def _content_id(part: Message) -> str | None:
    value = part.get("Content-ID")
    if value is None:
        return None
    content_id = str(value).strip().strip("<>").strip()
    return content_id or None
