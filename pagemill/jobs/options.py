"""Per-job options and the page-range grammar."""

from __future__ import annotations

import re
from enum import StrEnum

from pydantic import BaseModel, Field

from pagemill.documents.kinds import DocumentKind
from pagemill.documents.office.document import ReadOptions
from pagemill.engines.audio_registry import AUDIO_ENGINE_NAMES
from pagemill.engines.registry import ENGINE_NAMES
from pagemill.errors import InvalidPageRange, ValidationFailed


class OutputFormat(StrEnum):
    """Result formats a job can produce."""

    MARKDOWN = "markdown"
    TEXT = "text"
    JSON = "json"
    SRT = "srt"
    VTT = "vtt"


DEFAULT_FORMATS = (OutputFormat.MARKDOWN, OutputFormat.TEXT, OutputFormat.JSON)
SUBTITLE_FORMATS = frozenset({OutputFormat.SRT, OutputFormat.VTT})
"""Formats only a recording has (its segments' times)."""


class OcrMode(StrEnum):
    """auto: text layer where usable, OCR elsewhere; text_layer: never OCR; ocr: always OCR."""

    AUTO = "auto"
    TEXT_LAYER = "text_layer"
    OCR = "ocr"


class TableFormat(StrEnum):
    """How office tables are written in markdown: pipe tables (a merged cell's text repeated in every
    position it covers), HTML tables (rowspan/colspan), or HTML only where markdown cannot hold the table
    (merged cells, cells of several paragraphs)."""

    MARKDOWN = "markdown"
    HTML = "html"
    AUTO = "auto"


class AttachmentMode(StrEnum):
    """E-mail attachments: listed, or also converted (those of a supported office or text type)."""

    LIST = "list"
    CONVERT = "convert"


class OfficeOptions(BaseModel):
    """Options of office documents (DOCX, PPTX, XLSX, ODF, HTML, EPUB, EML); other kinds ignore them.
    The same fields in a form, a JSON body, tus Upload-Metadata and the CLI."""

    speaker_notes: bool = Field(default=True, description="Slides: speaker notes under each slide.")
    formulas: bool = Field(
        default=False, description="Sheets: formula cells show their formulas instead of their cached values."
    )
    hidden: bool = Field(
        default=False,
        description="Hidden sheets and slides are pages too (flagged hidden in their settings); skipped by "
        "default.",
    )
    table_format: TableFormat = Field(
        default=TableFormat.MARKDOWN,
        description="Tables in markdown: markdown (pipe tables; a merged cell's text in each position it "
        "covers), html (rowspan/colspan), or auto (html only for tables markdown cannot hold).",
    )
    attachments: AttachmentMode = Field(
        default=AttachmentMode.LIST,
        description="E-mail attachments: list them, or also convert those of a supported office or text "
        "type.",
    )


class TimestampStyle(StrEnum):
    """Where a recording's markdown puts its times: a heading per piece, or before each segment."""

    HEADINGS = "headings"
    INLINE = "inline"


class AudioOptions(BaseModel):
    """Options of recordings (audio, and video read for its audio); other kinds ignore them."""

    language: str | None = Field(
        default=None,
        max_length=32,
        description="Recordings: the spoken language (ISO 639-1 code such as en, or a name); detected when "
        "not given.",
    )
    prompt: str | None = Field(
        default=None,
        max_length=1000,
        description="Recordings: text that comes before (names, terms, spelling) to guide the transcription.",
    )
    word_timestamps: bool = Field(
        default=False, description="Recordings: time every word (JSON segments' words), where the engine can."
    )
    timestamps: TimestampStyle = Field(
        default=TimestampStyle.HEADINGS,
        description="Recordings' markdown: a timestamp heading per piece (headings) or before each segment "
        "(inline).",
    )


class JobOptions(OfficeOptions, AudioOptions):
    """What the client asked for; stored with the job."""

    formats: list[OutputFormat] = Field(default_factory=lambda: list(DEFAULT_FORMATS))
    page_range: str | None = None
    ocr_mode: OcrMode = OcrMode.AUTO
    engine: str | None = None
    """OCR engine ('tesseract', 'rapidocr', 'vllm', 'remote-openai') or, for a recording, speech engine
    ('faster-whisper', 'whisper-vllm', 'remote-openai'); None means the configured default."""

    def read_options(self, password: str | None = None) -> ReadOptions:
        """What an office reader needs of these options."""
        return ReadOptions(
            speaker_notes=self.speaker_notes,
            formulas=self.formulas,
            hidden=self.hidden,
            attachments=self.attachments.value,
            password=password,
        )


_RANGE_PART = re.compile(r"^\s*(\d{1,9})\s*(?:-\s*(\d{0,9})\s*)?$")


def validate_page_range(spec: str | None) -> str | None:
    """Check the grammar of a page range such as ``1-3,5,9-`` (1-based; ``9-`` means to the end)."""
    if spec is None or not spec.strip():
        return None
    for part in spec.split(","):
        match = _RANGE_PART.match(part)
        if not match:
            raise ValidationFailed(
                "page_range must look like '1-3,5,9-' (1-based page numbers).", field="page_range", value=spec
            )
        start = int(match.group(1))
        end = match.group(2)
        if start < 1 or (end and int(end) < start):
            raise ValidationFailed(
                "page_range has a page number below 1 or a range that ends before it starts.",
                field="page_range",
                value=spec,
            )
    return spec.strip()


def select_pages(spec: str | None, page_count: int) -> list[int]:
    """0-based page indices selected by ``spec`` for a document of ``page_count`` pages."""
    if spec is None:
        return list(range(page_count))
    selected: set[int] = set()
    for part in spec.split(","):
        match = _RANGE_PART.match(part)
        assert match is not None  # validated at submission
        start = int(match.group(1))
        end_text = match.group(2)
        if end_text is None:
            end = start
        elif end_text == "":
            end = page_count
        else:
            end = int(end_text)
        selected.update(range(start - 1, min(end, page_count)))
    if not selected:
        raise InvalidPageRange(
            f"The page range selects no page of this {page_count}-page document.",
            page_range=spec,
            page_count=page_count,
        )
    return sorted(selected)


def parse_formats(text: str) -> list[OutputFormat]:
    """Comma-separated result formats, deduplicated in order; ValidationFailed when empty or unknown."""
    try:
        wanted = [OutputFormat(part.strip()) for part in text.split(",") if part.strip()]
    except ValueError as exc:
        raise ValidationFailed(
            "formats must be a comma-separated list of markdown, text, json (and srt, vtt for recordings).",
            field="formats",
        ) from exc
    if not wanted:
        raise ValidationFailed("formats must name at least one format.", field="formats")
    return list(dict.fromkeys(wanted))


def check_engine_name(engine: str | None) -> str | None:
    """``engine`` if it names an OCR or a speech engine (or is None); ValidationFailed otherwise (whether
    it fits the document's kind is checked once the kind is known)."""
    names = list(dict.fromkeys([*ENGINE_NAMES, *AUDIO_ENGINE_NAMES]))
    if engine is not None and engine not in names:
        raise ValidationFailed(
            f"engine '{engine}' is not one of {', '.join(names)}.", field="engine", value=engine
        )
    return engine


def form_options(
    formats: str,
    page_range: str | None,
    ocr_mode: OcrMode,
    engine: str | None,
    office: OfficeOptions | None = None,
    audio: AudioOptions | None = None,
) -> JobOptions:
    """The job options of a submission's form fields (POST /documents, /batches, tus metadata), checked."""
    return JobOptions(
        formats=parse_formats(formats),
        page_range=validate_page_range(page_range),
        ocr_mode=ocr_mode,
        engine=check_engine_name(engine),
        **(office or OfficeOptions()).model_dump(),
        **(audio or AudioOptions()).model_dump(),
    )


def check_fits_kind(options: JobOptions, kind: DocumentKind) -> None:
    """ValidationFailed when the options ask what a document of ``kind`` cannot give: subtitles of a
    document, a speech engine for a document, an OCR engine for a recording."""
    if not kind.is_audio and SUBTITLE_FORMATS & set(options.formats):
        raise ValidationFailed(
            "formats srt and vtt are for recordings (audio or video); this document has no times.",
            field="formats",
            kind=kind.value,
        )
    engine = options.engine
    if engine is None:
        return
    if kind.is_audio and engine not in AUDIO_ENGINE_NAMES:
        raise ValidationFailed(
            f"engine {engine} reads pages; a recording needs one of {', '.join(AUDIO_ENGINE_NAMES)}.",
            field="engine",
            value=engine,
        )
    if not kind.is_audio and engine not in ENGINE_NAMES:
        raise ValidationFailed(
            f"engine {engine} transcribes speech; a document needs one of {', '.join(ENGINE_NAMES)}.",
            field="engine",
            value=engine,
        )
