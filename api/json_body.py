"""The JSON body of ``POST /api/v1/documents``: a document URL and its options, as ``application/json``.

The route's form fields (multipart/form-data) and this body are two spellings of one submission: a
dependency reads the JSON when the request says it is JSON (the form parser then finds no fields), and
``openapi_extra`` documents it next to the multipart body in the OpenAPI schema.
"""

from __future__ import annotations

import json
from email.message import Message
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationError

from pagemill.egress.guard import MAX_URL_CHARS
from pagemill.jobs.options import DEFAULT_FORMATS, AudioOptions, OcrMode, OfficeOptions, OutputFormat


class UrlJobOptionsIn(OfficeOptions, AudioOptions):
    """The options of a URL job; the same as the form fields of a multipart submission."""

    model_config = ConfigDict(extra="forbid")

    formats: list[OutputFormat] = Field(
        default_factory=lambda: list(DEFAULT_FORMATS), min_length=1, description="Result formats."
    )
    page_range: str | None = Field(default=None, description="1-based pages, e.g. '1-3,5,9-'. Default: all.")
    ocr_mode: OcrMode = Field(
        default=OcrMode.AUTO,
        description="auto: text layer where usable, else OCR; text_layer: never OCR; ocr: always.",
    )
    engine: str | None = Field(
        default=None,
        description="OCR engine: tesseract, rapidocr, vllm or remote-openai. Default: engines.default.",
    )
    # JSON booleans only: the schema says boolean, and 0 or "no" must be refused, not read as false.
    speaker_notes: StrictBool = Field(
        default=True, description=OfficeOptions.model_fields["speaker_notes"].description
    )
    formulas: StrictBool = Field(
        default=False, description=OfficeOptions.model_fields["formulas"].description
    )
    hidden: StrictBool = Field(default=False, description=OfficeOptions.model_fields["hidden"].description)
    word_timestamps: StrictBool = Field(
        default=False, description=AudioOptions.model_fields["word_timestamps"].description
    )
    password: str | None = Field(
        default=None, description="Password of an encrypted PDF or password-protected DOCX, XLSX or PPTX."
    )

    def office(self) -> OfficeOptions:
        """The office options among these."""
        return OfficeOptions.model_validate(self.model_dump(include=set(OfficeOptions.model_fields)))

    def audio(self) -> AudioOptions:
        """The recording options among these."""
        return AudioOptions.model_validate(self.model_dump(include=set(AudioOptions.model_fields)))


class UrlSubmission(BaseModel):
    """A document the worker fetches from ``url`` (http or https; public addresses unless the operator
    allowed more in ``egress.allow_networks``)."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(min_length=1, max_length=MAX_URL_CHARS, description="The document's http(s) URL.")
    options: UrlJobOptionsIn = Field(default_factory=UrlJobOptionsIn, description="The job's options.")
    callback_url: str | None = Field(
        default=None,
        max_length=MAX_URL_CHARS,
        description="An http(s) URL that receives the job's events, signed with the tenant's callback "
        "secret.",
    )


MISSING_DOCUMENT: dict[str, Any] = {"type": "missing", "loc": ("body", "file"), "msg": "Field required"}
"""The validation error of a submission without a document (no file, upload_id or url)."""


def _is_json(content_type: str | None) -> bool:
    if not content_type:
        return False
    message = Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (
        subtype == "json" or subtype.endswith("+json")
    )


async def url_submission_body(request: Request) -> UrlSubmission | None:
    """The JSON submission of a request sent as application/json, else None (a multipart form).

    Errors are FastAPI's own validation errors, located in ``body``, so they read like every other 422."""
    if not _is_json(request.headers.get("content-type")):
        return None
    raw = await request.body()
    try:
        parsed = json.loads(raw)
    except ValueError:
        parsed = None  # reported by the model's own parse below, as invalid JSON
    if isinstance(parsed, dict) and "url" not in parsed:
        # JSON that is no URL submission is most likely a document sent the wrong way: say how to send one.
        raise RequestValidationError([MISSING_DOCUMENT, {**MISSING_DOCUMENT, "loc": ("body", "url")}])
    try:
        return UrlSubmission.model_validate_json(raw)
    except ValidationError as exc:
        errors: list[dict[str, Any]] = []
        for error in exc.errors(include_input=False, include_url=False):
            if error["type"] == "json_invalid":
                errors.append({**error, "loc": ("body", 0)})
            else:
                errors.append({**error, "loc": ("body", *error["loc"])})
        raise RequestValidationError(errors) from exc


def _inlined(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with its ``$defs`` references replaced by the definitions (the OpenAPI document has no
    ``$defs`` at its root for them to point to)."""
    defs = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                # Keywords next to the reference (the field's own description) win over the definition's.
                beside = {key: value for key, value in node.items() if key != "$ref"}
                return resolve({**defs[ref.removeprefix("#/$defs/")], **beside})
            return {key: resolve(value) for key, value in node.items()}
        if isinstance(node, list):
            return [resolve(value) for value in node]
        return node

    resolved: dict[str, Any] = resolve(schema)
    return resolved


JSON_REQUEST_BODY: dict[str, Any] = {
    "requestBody": {
        "content": {
            "application/json": {
                "schema": _inlined(json.loads(json.dumps(UrlSubmission.model_json_schema()))),
                "example": {
                    "url": "https://example.com/report.pdf",
                    "options": {"formats": ["markdown", "text"], "ocr_mode": "auto"},
                },
            }
        }
    }
}
"""``openapi_extra`` of the route: the JSON body, documented next to the multipart one."""
