"""The model presets: prompts as documented, and the clean-up of each model's answer."""

from __future__ import annotations

import json

import pytest

from pagemill.engines.vllm_presets import (
    PRESETS,
    clean_deepseek,
    clean_dots,
    clean_generic,
    clean_olmocr,
    deepseek_lines,
    dots_lines,
    get_preset,
)
from pagemill.settings import OpenAiEngineSettings


def test_every_settings_preset_exists() -> None:
    names = OpenAiEngineSettings.model_fields["preset"].annotation.__args__  # type: ignore[union-attr]
    assert set(names) == set(PRESETS)
    for name in names:
        preset = get_preset(name)
        assert preset.name == name and preset.prompt and preset.max_tokens > 0


def test_unknown_preset_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match="olmocr"):
        get_preset("nope")


def test_prompts_are_the_documented_ones() -> None:
    assert get_preset("deepseek-ocr").prompt == "<|grounding|>Convert the document to markdown."
    assert "front matter section on top" in get_preset("olmocr").prompt
    assert get_preset("olmocr").image_max_side == 1288
    assert get_preset("dots-ocr").prompt.startswith("<|img|><|imgpad|><|endofimg|>Please output the layout")
    assert "<page_number>14</page_number>" in get_preset("nanonets-ocr").prompt
    assert get_preset("generic").prompt == "Convert this page to clean markdown. Return only the markdown."
    # Hosted OpenAI rejects unknown request fields: the generic preset must not send any.
    assert dict(get_preset("generic").extra_body) == {}


def test_presets_are_immutable() -> None:
    preset = get_preset("deepseek-ocr")
    with pytest.raises(AttributeError):
        preset.max_tokens = 1  # type: ignore[misc]
    with pytest.raises(TypeError):
        preset.extra_body["skip_special_tokens"] = True  # type: ignore[index]


DEEPSEEK_ANSWER = (
    "<|ref|>title<|/ref|><|det|>[[62, 36, 938, 86]]<|/det|>\n# Annual Report\n\n"
    "<|ref|>text<|/ref|><|det|>[[62, 100, 938, 200]]<|/det|>\nRevenue grew by 12%.\n\n"
    "<|ref|>image<|/ref|><|det|>[[100, 300, 500, 600]]<|/det|>\n\n"
    "<|ref|>table<|/ref|><|det|>[[62, 620, 938, 900]]<|/det|>\n"
    "<table><tr><td>Q1</td><td>10</td></tr></table><｜end▁of▁sentence｜>"  # noqa: RUF001 - DeepSeek's EOS
)


def test_deepseek_grounding_tags_and_eos_are_stripped() -> None:
    cleaned = clean_deepseek(DEEPSEEK_ANSWER)
    assert "<|" not in cleaned and "[[" not in cleaned and "end▁of▁sentence" not in cleaned
    assert cleaned.startswith("# Annual Report\n\nRevenue grew by 12%.")
    assert cleaned.endswith("<table><tr><td>Q1</td><td>10</td></tr></table>")


def test_deepseek_grounding_gives_lines_on_the_999_grid() -> None:
    lines = deepseek_lines(DEEPSEEK_ANSWER, 1000, 1400)
    assert [ln.text for ln in lines][:2] == ["# Annual Report", "Revenue grew by 12%."]
    assert len(lines) == 3  # the image block has no text
    assert lines[0].bbox == pytest.approx((62 / 999, 36 / 999, 938 / 999, 86 / 999))


def test_deepseek_free_ocr_answer_is_kept() -> None:
    assert clean_deepseek("Plain text.\n") == "Plain text."


def test_olmocr_front_matter_is_stripped() -> None:
    answer = (
        "---\nprimary_language: en\nis_rotation_valid: True\nrotation_correction: 0\nis_table: False\n"
        "is_diagram: False\n---\n# Title\n\nBody text --- with a dash.\n\n---\n\nAfter a rule."
    )
    assert clean_olmocr(answer) == "# Title\n\nBody text --- with a dash.\n\n---\n\nAfter a rule."


def test_olmocr_front_matter_only_is_an_empty_page() -> None:
    assert clean_olmocr("---\nprimary_language: null\nis_rotation_valid: true\n---\n") == ""
    assert clean_olmocr("No front matter here.") == "No front matter here."


DOTS_CELLS = [
    {"bbox": [28, 28, 560, 84], "category": "Title", "text": "# Invoice"},
    {"bbox": [28, 100, 560, 200], "category": "Text", "text": "Thank you for your order."},
    {"bbox": [28, 220, 300, 400], "category": "Picture"},
    {"bbox": [28, 420, 560, 480], "category": "Formula", "text": "E = mc^2"},
    {"bbox": [28, 500, 560, 700], "category": "Table", "text": "<table><tr><td>Pen</td></tr></table>"},
]


def test_dots_layout_json_becomes_markdown_in_reading_order() -> None:
    cleaned = clean_dots(json.dumps(DOTS_CELLS))
    assert cleaned == (
        "# Invoice\n\nThank you for your order.\n\n$$\nE = mc^2\n$$\n\n<table><tr><td>Pen</td></tr></table>"
    )
    assert clean_dots("```json\n" + json.dumps(DOTS_CELLS[:1]) + "\n```") == "# Invoice"


def test_dots_non_json_answer_is_kept_as_text() -> None:
    assert clean_dots("Just the text of the page.") == "Just the text of the page."


def test_dots_lines_are_normalised_to_the_image_sent() -> None:
    lines = dots_lines(json.dumps(DOTS_CELLS), 560, 784)
    assert lines[0].text == "# Invoice"
    assert len(lines) == 4
    assert lines[0].bbox == pytest.approx((28 / 560, 28 / 784, 1.0, 84 / 784))


def test_generic_outer_fence_is_removed() -> None:
    assert clean_generic("```markdown\n# Page\n\nText\n```") == "# Page\n\nText"
    assert clean_generic("Text with ```code``` inside") == "Text with ```code``` inside"
