"""Typed factories that write test documents at test time, with known text.

Nothing here reads the shared corpus: the suite must pass without it. PDFs are written by hand (a few
objects, a correct xref) so their text layer is exactly what we put in; scans are drawn with Pillow at
300 DPI in DejaVu Sans at about 48 px, large and clean enough for Tesseract.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from PIL import Image, ImageDraw, ImageFont

FONT_PATH = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
SCAN_DPI = 300
FONT_PX = 48
_LETTER_PT = (612, 792)
_LETTER_PX = (2550, 3300)  # US Letter at 300 DPI

ImageFormat = Literal["PNG", "JPEG", "TIFF", "WEBP"]

# --- PDF writing -------------------------------------------------------------------------------------------


def _pdf_string(text: str) -> bytes:
    """A PDF literal string in WinAnsi (Latin-1 covers our test text), with delimiters escaped."""
    raw = text.encode("cp1252")
    return b"(" + raw.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)") + b")"


def _text_content(text: str, top: float, size: int = 20) -> bytes:
    lines = text.split("\n")
    ops = [f"BT /F1 {size} Tf {size * 1.4:.1f} TL 72 {top - 72:.1f} Td".encode()]
    for index, line in enumerate(lines):
        ops.append(_pdf_string(line) + (b" Tj" if index == 0 else b" '"))
    ops.append(b"ET")
    return b"\n".join(ops)


def _write_pdf(path: Path, objects: list[bytes], *, trailer_extra: bytes = b"") -> Path:
    """Write objects 1..n (object 1 is the catalog) with a correct cross-reference table."""
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref_at = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{offset:010d} 00000 n \n".encode() for offset in offsets)
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R ".encode() + trailer_extra + b">>\n"
    out += f"startxref\n{xref_at}\n%%EOF\n".encode()
    path.write_bytes(bytes(out))
    return path


def _stream(data: bytes) -> bytes:
    return b"<< /Length %d >>\nstream\n" % len(data) + data + b"\nendstream"


def _text_pdf_objects(
    pages: Sequence[str], page_size: tuple[float, float], rotate: int
) -> tuple[list[bytes], list[int]]:
    """Objects of a born-digital PDF, and the numbers of the content-stream objects (for encryption)."""
    width, height = page_size
    first_page = 4
    kids = " ".join(f"{first_page + 2 * i} 0 R" for i in range(len(pages)))
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        f"<< /Type /Pages /Kids [{kids}] /Count {len(pages)} >>".encode(),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
    ]
    streams = []
    for index, text in enumerate(pages):
        content_number = first_page + 2 * index + 1
        rotate_entry = f" /Rotate {rotate}" if rotate else ""
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {width:g} {height:g}]{rotate_entry} "
            f"/Resources << /Font << /F1 3 0 R >> >> /Contents {content_number} 0 R >>".encode()
        )
        objects.append(_text_content(text, height))
        streams.append(content_number)
    return objects, streams


def make_text_pdf(
    path: Path, pages: Sequence[str], *, page_size: tuple[float, float] = _LETTER_PT, rotate: int = 0
) -> Path:
    """A born-digital PDF: one page per string ("\\n" breaks lines), 20 pt Helvetica text layer.

    ``rotate`` sets each page's /Rotate (clockwise degrees); ``page_size`` is the media box in points.
    """
    objects, streams = _text_pdf_objects(pages, page_size, rotate)
    for number in streams:
        objects[number - 1] = _stream(objects[number - 1])
    return _write_pdf(path, objects)


def make_padded_pdf(path: Path, pages: Sequence[str], size: int) -> Path:
    """A born-digital PDF of ``pages`` grown to about ``size`` bytes by an unreferenced stream of random
    bytes (incompressible, like the images of a real ~1 MB document); readers ignore the object."""
    objects, streams = _text_pdf_objects(pages, _LETTER_PT, 0)
    for number in streams:
        objects[number - 1] = _stream(objects[number - 1])
    used = sum(len(body) + 32 for body in objects) + 200
    filler = hashlib.shake_256(path.name.encode()).digest(max(0, size - used))
    return _write_pdf(path, [*objects, _stream(filler)])


def make_many_pages_pdf(path: Path, n: int) -> Path:
    """A valid PDF with ``n`` small pages reading "Page 1", "Page 2", ..."""
    return make_text_pdf(path, [f"Page {i + 1}" for i in range(n)])


def make_corrupt_pdf(path: Path) -> Path:
    """Starts like a PDF, then nothing a reader can rebuild: no objects, no xref, no trailer."""
    junk = hashlib.sha256(b"pagemill").digest() * 64
    path.write_bytes(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n" + junk)
    return path


def make_pdf_named_png(path: Path) -> Path:
    """A real PDF saved under a name ending in .png (content sniffing must say PDF)."""
    return make_text_pdf(path.with_suffix(".png"), ["This is a PDF, whatever its name says."])


# --- PDF encryption (standard security handler, revision 3, RC4 128-bit) ------------------------------------

_PASSWORD_PAD = bytes.fromhex("28BF4E5E4E758A4164004E56FFFA01082E2E00B6D0683E802F0CA9FE6453697A")
_PERMISSIONS = -4  # everything allowed; the owner password only guards changing that


def _rc4(key: bytes, data: bytes) -> bytes:
    state = list(range(256))
    j = 0
    for i in range(256):
        j = (j + state[i] + key[i % len(key)]) % 256
        state[i], state[j] = state[j], state[i]
    out = bytearray()
    i = j = 0
    for byte in data:
        i = (i + 1) % 256
        j = (j + state[i]) % 256
        state[i], state[j] = state[j], state[i]
        out.append(byte ^ state[(state[i] + state[j]) % 256])
    return bytes(out)


def _padded(password: str) -> bytes:
    return (password.encode("latin-1") + _PASSWORD_PAD)[:32]


def _rc4_rounds(key: bytes, data: bytes) -> bytes:
    """RC4 with the key, then 19 more times with the key XORed with 1..19 (revision 3)."""
    data = _rc4(key, data)
    for round_ in range(1, 20):
        data = _rc4(bytes(b ^ round_ for b in key), data)
    return data


def _md5_50(data: bytes) -> bytes:
    digest = hashlib.md5(data).digest()
    for _ in range(50):
        digest = hashlib.md5(digest[:16]).digest()
    return digest[:16]


def make_encrypted_pdf(
    path: Path, password: str, *, owner_password: str = "owner", text: str = "Secret text"
) -> Path:
    """An RC4-128 encrypted one-page PDF (PDF 1.7, standard handler R3) with user password ``password``.

    With ``password=""`` it has only an owner password: it opens without one, as readers must allow.
    Written by hand so the suite needs no PDF-writing dependency.
    """
    file_id = hashlib.md5(path.name.encode()).digest()
    owner = _rc4_rounds(_md5_50(_padded(owner_password or password)), _padded(password))
    key = _md5_50(_padded(password) + owner + struct.pack("<i", _PERMISSIONS) + file_id)
    user = _rc4_rounds(key, hashlib.md5(_PASSWORD_PAD + file_id).digest()) + bytes(16)
    objects, streams = _text_pdf_objects([text], _LETTER_PT, 0)
    for number in streams:
        object_key = hashlib.md5(key + struct.pack("<I", number)[:3] + b"\x00\x00").digest()
        objects[number - 1] = _stream(_rc4(object_key, objects[number - 1]))
    objects.append(
        f"<< /Filter /Standard /V 2 /R 3 /Length 128 /P {_PERMISSIONS} "
        f"/O <{owner.hex()}> /U <{user.hex()}> >>".encode()
    )
    encrypt_ref = len(objects)
    trailer = f"/Encrypt {encrypt_ref} 0 R /ID [<{file_id.hex()}> <{file_id.hex()}>] ".encode()
    return _write_pdf(path, objects, trailer_extra=trailer)


# --- Images and scans --------------------------------------------------------------------------------------


def _font(size: int = FONT_PX) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(FONT_PATH), size)


def render_text_page(text: str, size: tuple[int, int] | None = None) -> Image.Image:
    """Black text on white ("\\n" breaks lines); sized to the text plus margins unless ``size`` is given."""
    font = _font()
    spacing = FONT_PX // 2
    probe = ImageDraw.Draw(Image.new("L", (1, 1)))
    left, top, right, bottom = probe.multiline_textbbox((0, 0), text, font=font, spacing=spacing)
    margin = 150
    canvas = size or (int(right - left) + 2 * margin, int(bottom - top) + 2 * margin)
    image = Image.new("L", canvas, 255)
    ImageDraw.Draw(image).multiline_text((margin, margin), text, font=font, fill=0, spacing=spacing)
    return image


def _turned(image: Image.Image, rotation: int) -> Image.Image:
    """The image turned ``rotation`` degrees clockwise (a page fed sideways or upside down)."""
    if rotation % 360 == 0:
        return image
    if rotation % 90:
        raise ValueError("rotation must be a multiple of 90")
    return image.rotate(-rotation, expand=True, fillcolor=255)


def make_scanned_pdf(path: Path, pages_text: Sequence[str], rotation: int = 0) -> Path:
    """An image-only PDF (no text layer): each page drawn at 300 DPI on US Letter, turned ``rotation``°."""
    images = [_turned(render_text_page(text, _LETTER_PX), rotation).convert("1") for text in pages_text]
    images[0].save(path, "PDF", resolution=SCAN_DPI, save_all=True, append_images=images[1:])
    return path


# What exif_transpose does for each orientation, reversed: the stored pixels are turned the other way.
_EXIF_STORED = {3: Image.Transpose.ROTATE_180, 6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270}


def make_text_image(
    path: Path,
    text: str,
    fmt: ImageFormat = "PNG",
    rotation: int = 0,
    *,
    exif_orientation: int | None = None,
    mode: str = "L",
) -> Path:
    """A scan-like image of ``text`` at 300 DPI, turned ``rotation``° clockwise.

    With ``exif_orientation`` (3, 6 or 8) the pixels are stored turned and the EXIF tag says how to turn
    them back, like a phone photo: after honouring the tag the text is upright (or ``rotation``°).
    """
    image = _turned(render_text_page(text), rotation).convert(mode)
    options: dict[str, object] = {"dpi": (SCAN_DPI, SCAN_DPI)}
    if exif_orientation is not None:
        image = image.transpose(_EXIF_STORED[exif_orientation])
        if fmt == "TIFF":
            options["tiffinfo"] = {274: exif_orientation}
        else:
            exif = Image.Exif()
            exif[0x0112] = exif_orientation
            options["exif"] = exif
    if fmt == "JPEG":
        options["quality"] = 95
    elif fmt == "WEBP":
        options["lossless"] = True
    elif fmt == "TIFF":
        options["compression"] = "tiff_lzw"
    image.save(path, fmt, **options)
    return path


def make_multiframe_tiff(path: Path, texts: Sequence[str]) -> Path:
    """A multi-page TIFF, one frame per text (frames are pages)."""
    frames = [render_text_page(text) for text in texts]
    frames[0].save(
        path,
        "TIFF",
        save_all=True,
        append_images=frames[1:],
        compression="tiff_lzw",
        dpi=(SCAN_DPI, SCAN_DPI),
    )
    return path


# --- Hostile images ----------------------------------------------------------------------------------------


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def make_png_bomb(path: Path, width: int, height: int) -> Path:
    """A tiny PNG whose header declares ``width`` x ``height`` 1-bit pixels; only a few rows follow."""
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    row = b"\x00" + bytes((width + 7) // 8)
    data = zlib.compress(row * 4, 9)
    body = _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", data) + _png_chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + body)
    return path


def make_truncated_png(path: Path) -> Path:
    """A valid text PNG cut off in the middle of its image data (no IEND)."""
    full = make_text_image(path, "Truncated page\nsecond line of text", "PNG").read_bytes()
    path.write_bytes(full[: len(full) * 3 // 5])
    return path


def make_jpeg_claiming_size(path: Path, width: int, height: int) -> Path:
    """A small JPEG whose frame header (SOF0) is patched to claim ``width`` x ``height``."""
    make_text_image(path, "tiny", "JPEG")
    data = bytearray(path.read_bytes())
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    path.write_bytes(bytes(data))
    return path
