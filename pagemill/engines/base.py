"""What every page engine returns, the interface OCR engines implement, and what any engine's health check
answers.

Bounding boxes are normalised to the page: ``(x0, y0, x1, y1)`` in 0..1 from the top-left corner of the
upright page, so they do not depend on the DPI a page was rendered at.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from PIL import Image


@dataclass(frozen=True, slots=True)
class TextLine:
    """One line of text with its box on the page and the engine's confidence (0..1, None if unknown)."""

    text: str
    bbox: tuple[float, float, float, float] | None = None
    confidence: float | None = None


@dataclass(frozen=True, slots=True)
class EngineHealth:
    """Whether an engine can take work: for a server engine, whether the server answers and serves the
    configured model."""

    ok: bool
    detail: str
    models: list[str] = field(default_factory=list)


@dataclass(slots=True)
class PageResult:
    """The text of one page and how it was produced."""

    text: str
    markdown: str
    engine: str
    lines: list[TextLine] = field(default_factory=list)
    model: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    rotation: int = 0
    """Degrees (clockwise) the page image was turned to read it upright: 0, 90, 180 or 270."""
    timings_ms: dict[str, float] = field(default_factory=dict)
    blocks: list[dict[str, Any]] | None = None
    """The page's structure (headings, paragraphs, lists, tables, pictures, notes) when its reader knows it:
    office documents (pagemill.documents.office)."""
    segments: list[dict[str, Any]] | None = None
    """A recording's piece: its timed segments (recording time), as the JSON result shows them."""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form, stored with the page."""
        return {
            "text": self.text,
            "markdown": self.markdown,
            "engine": self.engine,
            "model": self.model,
            "settings": self.settings,
            "rotation": self.rotation,
            "timings_ms": self.timings_ms,
            "blocks": self.blocks,
            "segments": self.segments,
            "lines": [
                {"text": ln.text, "bbox": list(ln.bbox) if ln.bbox else None, "confidence": ln.confidence}
                for ln in self.lines
            ],
        }


class OcrEngine(Protocol):
    """An engine that reads text from a page image (CPU OCR now; the vLLM engine later)."""

    name: str

    def recognize(self, image: Image.Image) -> PageResult:
        """Read the text of one upright-or-rotated page image; detect rotation if configured."""
        ...
