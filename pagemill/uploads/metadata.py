"""Upload-Metadata (tus: comma-separated ``key base64(value)`` pairs) and the job options it carries."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import TypeVar

from pydantic import ValidationError as PydanticValidationError

from pagemill.errors import MalformedRequest, ValidationFailed
from pagemill.jobs.options import (
    AudioOptions,
    JobOptions,
    OcrMode,
    OfficeOptions,
    check_engine_name,
    parse_formats,
    validate_page_range,
)

# Keys that mean something here; others (tus-js-client's "filetype", an app's own) are accepted and ignored.
OPTION_KEYS = (
    "formats",
    "page_range",
    "ocr_mode",
    "engine",
    *OfficeOptions.model_fields,
    *AudioOptions.model_fields,
)
_MAX_HEADER_CHARS = 8192
_Options = TypeVar("_Options", OfficeOptions, AudioOptions)


@dataclass(frozen=True)
class UploadMetadata:
    """What a client said about an upload at creation."""

    filename: str | None
    options: JobOptions
    password: str | None
    # False: the finished upload waits for POST /api/v1/documents with its upload_id.
    submit: bool
    # The job's events go there, signed (checked by the caller, as a form field's is).
    callback_url: str | None = None


def decode_header(header: str | None) -> dict[str, str]:
    """The pairs of an Upload-Metadata header; MalformedRequest (400) when it is not the tus grammar."""
    if not header or not header.strip():
        return {}
    if len(header) > _MAX_HEADER_CHARS:
        raise MalformedRequest("Upload-Metadata is too long.", max_chars=_MAX_HEADER_CHARS)
    pairs: dict[str, str] = {}
    for item in header.split(","):
        key, _, encoded = item.strip().partition(" ")
        if not key or " " in encoded.strip() or key in pairs:
            raise MalformedRequest(
                "Upload-Metadata must be comma-separated 'key base64value' pairs with distinct keys.",
                key=key or None,
            )
        try:
            pairs[key] = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise MalformedRequest("An Upload-Metadata value is not base64 of UTF-8 text.", key=key) from exc
    return pairs


def parse_metadata(header: str | None) -> UploadMetadata:
    """Upload-Metadata as an :class:`UploadMetadata`, its job options checked now: a bad option fails
    the creation (422), before any byte is sent."""
    pairs = decode_header(header)
    engine = check_engine_name(pairs.get("engine") or None)
    try:
        ocr_mode = OcrMode(pairs.get("ocr_mode") or OcrMode.AUTO)
    except ValueError as exc:
        modes = ", ".join(mode.value for mode in OcrMode)
        raise ValidationFailed(f"ocr_mode must be one of {modes}.", field="ocr_mode") from exc
    submit = (pairs.get("submit") or "true").strip().lower()
    if submit not in {"true", "false"}:
        raise ValidationFailed("submit must be true or false.", field="submit", value=submit)
    options = JobOptions(
        formats=parse_formats(pairs.get("formats") or "markdown,text,json"),
        page_range=validate_page_range(pairs.get("page_range")),
        ocr_mode=ocr_mode,
        engine=engine,
        **_given(OfficeOptions, pairs).model_dump(),
        **_given(AudioOptions, pairs).model_dump(),
    )
    # "filename" is ours; "name" is what Uppy and many tus-js-client examples send.
    filename = pairs.get("filename") or pairs.get("name") or None
    return UploadMetadata(
        filename=filename,
        options=options,
        password=pairs.get("password") or None,
        submit=submit == "true",
        callback_url=pairs.get("callback_url") or None,
    )


def _given(model: type[_Options], pairs: dict[str, str]) -> _Options:
    """The options of ``model`` among the metadata pairs (``speaker_notes false``, ``language en``...)."""
    given = {key: pairs[key].strip() for key in model.model_fields if pairs.get(key)}
    try:
        return model.model_validate(given)
    except PydanticValidationError as exc:
        first = exc.errors()[0]
        name = str(first["loc"][0]) if first["loc"] else None
        raise ValidationFailed(f"{name}: {first['msg']}.", field=name, value=given.get(name or "")) from None
