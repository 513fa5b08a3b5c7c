"""A page image as a model server is sent it: scaled to the model's size, encoded (JPEG or PNG) and base64'd.

One code path for both ways a page gets there: the vLLM engine encodes a PIL image it was handed, and the
GPU worker's render processes (:mod:`pagemill.documents.render_pool`) render and encode a page outside the
worker process and hand back these bytes. Either way a page is sent as the same bytes.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from typing import Any, Literal, Protocol, cast, runtime_checkable

from PIL import Image

from pagemill.engines.base import PageResult

ImageFormat = Literal["jpeg", "png"]


@dataclass(frozen=True, slots=True)
class ImageSpec:
    """How a model wants its page image: longest side, sides rounded to a multiple, format and quality."""

    max_side: int
    multiple: int = 1
    format: ImageFormat = "jpeg"
    jpeg_quality: int = 90

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form (sent to a render process)."""
        return {
            "max_side": self.max_side,
            "multiple": self.multiple,
            "format": self.format,
            "jpeg_quality": self.jpeg_quality,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ImageSpec:
        """The spec :meth:`to_dict` wrote; raises ValueError for anything else."""
        fmt = data.get("format")
        if fmt not in ("jpeg", "png"):
            raise ValueError(f"unknown image format {fmt!r}")
        max_side, multiple, quality = data.get("max_side"), data.get("multiple"), data.get("jpeg_quality")
        if not all(isinstance(v, int) and v >= 1 for v in (max_side, multiple, quality)):
            raise ValueError("max_side, multiple and jpeg_quality must be positive integers")
        return cls(
            max_side=int(max_side),  # type: ignore[arg-type]  # checked above
            multiple=int(multiple),  # type: ignore[arg-type]
            format=cast(ImageFormat, fmt),
            jpeg_quality=int(quality),  # type: ignore[arg-type]
        )


@dataclass(frozen=True, slots=True)
class EncodedImage:
    """An encoded page image: its MIME type, the base64 text (ASCII bytes) and the size actually sent."""

    mime: str
    base64: bytes
    size: tuple[int, int]

    def data_url(self) -> str:
        """The ``data:`` URL a chat completions request carries."""
        return f"data:{self.mime};base64,{self.base64.decode('ascii')}"


@runtime_checkable
class EncodedImageReader(Protocol):
    """An engine that can read a page already scaled and encoded for it (the model-server engines)."""

    @property
    def image_spec(self) -> ImageSpec:
        """How the engine wants its page images."""
        ...

    def recognize_encoded(self, image: EncodedImage, *, encode_ms: float | None = None) -> PageResult:
        """Read one page image encoded as :attr:`image_spec` says."""
        ...


def scaled(image: Image.Image, max_side: int, multiple: int) -> Image.Image:
    """``image`` no longer than ``max_side``, each side rounded to ``multiple`` (the image itself if so)."""
    width, height = image.size
    scale = min(1.0, max_side / max(width, height))
    new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
    if multiple > 1:
        new_w = max(multiple, round(new_w / multiple) * multiple)
        new_h = max(multiple, round(new_h / multiple) * multiple)
    if (new_w, new_h) == (width, height):
        return image
    # reducing_gap: a cheap box reduce first, then bilinear — near-Lanczos quality at a fraction of the CPU.
    return image.resize((new_w, new_h), Image.Resampling.BILINEAR, reducing_gap=2.0)


def as_encodable(image: Image.Image) -> Image.Image:
    """``image`` in a mode JPEG and PNG both take (RGB or L); transparency flattened onto white paper."""
    if image.mode in ("RGB", "L"):
        return image
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        # Transparent areas are paper: flatten onto white rather than the black PIL would give.
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, "white")
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image.convert("L" if image.mode in ("1", "I", "I;16", "F") else "RGB")


def encode_image(image: Image.Image, spec: ImageSpec) -> EncodedImage:
    """The page scaled and encoded as ``spec`` says."""
    prepared = scaled(as_encodable(image), spec.max_side, spec.multiple)
    buffer = io.BytesIO()
    if spec.format == "png":
        # compress_level 1: PNG's default level costs several times the CPU for a few percent of bytes.
        prepared.save(buffer, format="PNG", compress_level=1)
        mime = "image/png"
    else:
        prepared.save(buffer, format="JPEG", quality=spec.jpeg_quality)
        mime = "image/jpeg"
    return EncodedImage(mime=mime, base64=base64.b64encode(buffer.getvalue()), size=prepared.size)
