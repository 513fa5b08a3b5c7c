"""The option fields every submission form shares (POST /api/v1/documents and /api/v1/batches), declared
once so that both routes document and parse them alike."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Form

from pagemill.egress.guard import MAX_URL_CHARS
from pagemill.jobs.options import (
    AttachmentMode,
    AudioOptions,
    OcrMode,
    OfficeOptions,
    TableFormat,
    TimestampStyle,
)

FormatsField = Annotated[
    str, Form(description="Comma-separated result formats: markdown, text, json; srt and vtt for recordings.")
]
PageRangeField = Annotated[str | None, Form(description="1-based pages, e.g. '1-3,5,9-'. Default: all.")]
OcrModeField = Annotated[
    OcrMode,
    Form(description="auto: text layer where usable, else OCR; text_layer: never OCR; ocr: always."),
]
EngineField = Annotated[
    str | None,
    Form(
        description="OCR engine: tesseract, rapidocr, vllm or remote-openai (default: engines.default); "
        "for a recording, speech engine: faster-whisper, whisper-vllm or remote-openai (default: "
        "audio.default_engine)."
    ),
]
CallbackUrlField = Annotated[
    str | None,
    Form(
        max_length=MAX_URL_CHARS,
        description="An http(s) URL that receives the job's events (job.queued ... job.succeeded), signed "
        "with the tenant's callback secret (POST /api/v1/callbacks/secret first). Public addresses "
        "only unless egress.allow_networks allows more.",
    ),
]
DEFAULT_FORMATS = "markdown,text,json"


def _office_description(name: str) -> str:
    return OfficeOptions.model_fields[name].description or ""


async def office_fields(
    speaker_notes: Annotated[bool, Form(description=_office_description("speaker_notes"))] = True,
    formulas: Annotated[bool, Form(description=_office_description("formulas"))] = False,
    hidden: Annotated[bool, Form(description=_office_description("hidden"))] = False,
    table_format: Annotated[
        TableFormat, Form(description=_office_description("table_format"))
    ] = TableFormat.MARKDOWN,
    attachments: Annotated[
        AttachmentMode, Form(description=_office_description("attachments"))
    ] = AttachmentMode.LIST,
) -> OfficeOptions:
    """The office options of a submission form (ignored for PDFs and images). Async though it awaits
    nothing: FastAPI runs a plain function dependency in a worker thread, a hop per submission."""
    return OfficeOptions(
        speaker_notes=speaker_notes,
        formulas=formulas,
        hidden=hidden,
        table_format=table_format,
        attachments=attachments,
    )


OfficeFields = Annotated[OfficeOptions, Depends(office_fields)]


def _audio_description(name: str) -> str:
    return AudioOptions.model_fields[name].description or ""


async def audio_fields(
    language: Annotated[str | None, Form(max_length=32, description=_audio_description("language"))] = None,
    prompt: Annotated[str | None, Form(max_length=1000, description=_audio_description("prompt"))] = None,
    word_timestamps: Annotated[bool, Form(description=_audio_description("word_timestamps"))] = False,
    timestamps: Annotated[
        TimestampStyle, Form(description=_audio_description("timestamps"))
    ] = TimestampStyle.HEADINGS,
) -> AudioOptions:
    """The recording options of a submission form (ignored for documents); async as office_fields."""
    return AudioOptions(
        language=language or None,
        prompt=prompt or None,
        word_timestamps=word_timestamps,
        timestamps=timestamps,
    )


AudioFields = Annotated[AudioOptions, Depends(audio_fields)]
