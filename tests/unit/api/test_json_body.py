"""The JSON body of POST /api/v1/documents as the OpenAPI schema documents it."""

from __future__ import annotations

import json

from api.json_body import JSON_REQUEST_BODY, UrlSubmission


def test_the_documented_schema_is_self_contained_and_matches_the_model() -> None:
    schema = JSON_REQUEST_BODY["requestBody"]["content"]["application/json"]["schema"]
    text = json.dumps(schema)
    assert "$ref" not in text and "$defs" not in text
    assert schema["required"] == ["url"] and schema["additionalProperties"] is False
    options = schema["properties"]["options"]
    office = {"speaker_notes", "formulas", "hidden", "table_format", "attachments"}
    audio = {"language", "prompt", "word_timestamps", "timestamps"}
    basic = {"formats", "page_range", "ocr_mode", "engine", "password"}
    assert set(options["properties"]) == basic | office | audio
    # The field's own description wins over its enum's docstring.
    assert options["properties"]["ocr_mode"]["description"].startswith("auto: text layer where usable")
    example = JSON_REQUEST_BODY["requestBody"]["content"]["application/json"]["example"]
    assert UrlSubmission.model_validate(example).url == example["url"]
