"""Model presets for OCR vision-language models served behind an OpenAI-compatible API (vLLM or hosted).

A preset is what a model was trained or documented to expect: its prompt, how large a page image it reads
well, its output budget and sampling, extra request fields its server understands, and how to clean its
answer into plain markdown. Prompts are copied verbatim from each project (typos included: the models were
fine-tuned on exactly those strings), and each preset cites where its prompt comes from.

Image sizes trade accuracy for prefill time: every 28x28 px is one vision token for the Qwen2-VL family
(olmOCR, dots.ocr, Nanonets), so the longest side is kept near what each project renders pages at.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

from pagemill.engines.base import TextLine

PresetName = Literal["deepseek-ocr", "olmocr", "dots-ocr", "nanonets-ocr", "generic"]


def _strip_outer_fence(text: str) -> str:
    """Drop a code fence wrapped around the whole answer (chat models like to send ```markdown ... ```)."""
    match = re.fullmatch(r"\s*```[A-Za-z]*[ \t]*\n(.*?)\n?```\s*", text, flags=re.DOTALL)
    return match.group(1) if match else text


def clean_generic(text: str) -> str:
    """Trim whitespace and an outer code fence."""
    return _strip_outer_fence(text).strip()


# --- DeepSeek-OCR -----------------------------------------------------------------------------------------

# With skip_special_tokens=false (needed to keep the grounding tags) the end-of-sentence token comes back too.
_DEEPSEEK_SPECIAL = re.compile("<\uff5cend\u2581of\u2581sentence\uff5c>|<\\|end\u2581of\u2581sentence\\|>")
_DEEPSEEK_GROUNDING = re.compile(r"<\|ref\|>(.*?)<\|/ref\|>\s*<\|det\|>(.*?)<\|/det\|>[ \t]*\n?", re.DOTALL)


def clean_deepseek(text: str) -> str:
    """Strip ``<|ref|>label<|/ref|><|det|>[[x0, y0, x1, y1]]<|/det|>`` grounding tags and the EOS token."""
    text = _DEEPSEEK_SPECIAL.sub("", text)
    text = _DEEPSEEK_GROUNDING.sub("", text)
    # Stray tags from a half-formed answer would otherwise leak into the stored text.
    text = re.sub(r"<\|/?(?:ref|det|grounding)\|>", "", text)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def _clamp01(value: float) -> float:
    return min(max(value, 0.0), 1.0)


def deepseek_lines(raw: str, width: int, height: int) -> list[TextLine]:
    """One line per grounded block; DeepSeek-OCR boxes are on a 0..999 grid (see its run scripts)."""
    raw = _DEEPSEEK_SPECIAL.sub("", raw)
    matches = list(_DEEPSEEK_GROUNDING.finditer(raw))
    lines: list[TextLine] = []
    for index, match in enumerate(matches):
        end = matches[index + 1].start() if index + 1 < len(matches) else len(raw)
        block = raw[match.end() : end].strip()
        try:
            boxes = json.loads(match.group(2))
        except ValueError:
            continue
        if not block or not isinstance(boxes, list) or not boxes:
            continue
        box = boxes[0]
        if not (isinstance(box, list) and len(box) == 4 and all(isinstance(v, int | float) for v in box)):
            continue
        x0, y0, x1, y1 = (_clamp01(float(v) / 999.0) for v in box)
        lines.append(TextLine(text=block, bbox=(x0, y0, x1, y1)))
    return lines


# --- olmOCR ----------------------------------------------------------------------------------------------

_FRONT_MATTER = re.compile(r"\A\s*---[ \t]*\n.*?\n---[ \t]*(?:\n|\Z)", re.DOTALL)


def clean_olmocr(text: str) -> str:
    """Strip the YAML front matter (primary_language, is_rotation_valid, ...) olmOCR puts on top."""
    return _FRONT_MATTER.sub("", _strip_outer_fence(text), count=1).strip()


# --- dots.ocr --------------------------------------------------------------------------------------------


def _dots_cells(text: str) -> list[dict[str, Any]] | None:
    try:
        cells = json.loads(_strip_outer_fence(text).strip())
    except ValueError:
        return None
    if isinstance(cells, dict):
        cells = [cells]
    if not isinstance(cells, list) or not all(isinstance(c, dict) for c in cells):
        return None
    return cells


def clean_dots(text: str) -> str:
    """Turn dots.ocr's layout JSON into markdown in the model's reading order.

    Pictures carry no text and are dropped; formulas are set as display math. When the answer is not the
    layout JSON (the ``prompt_ocr`` mode, or a model that ignored the format) it is kept as text, which is
    what dots.ocr's own parser falls back to.
    """
    cells = _dots_cells(text)
    if cells is None:
        return clean_generic(text)
    parts: list[str] = []
    for cell in cells:
        content = cell.get("text")
        if cell.get("category") == "Picture" or not isinstance(content, str) or not content.strip():
            continue
        content = content.strip()
        if cell.get("category") == "Formula" and not content.startswith(("$", "\\[")):
            content = f"$$\n{content}\n$$"
        parts.append(content)
    return "\n\n".join(parts)


def dots_lines(raw: str, width: int, height: int) -> list[TextLine]:
    """One line per layout cell; boxes are pixels of the image sent (already a multiple of 28)."""
    cells = _dots_cells(raw) or []
    lines: list[TextLine] = []
    for cell in cells:
        box, content = cell.get("bbox"), cell.get("text")
        if not isinstance(content, str) or not content.strip():
            continue
        if not (isinstance(box, list) and len(box) == 4 and all(isinstance(v, int | float) for v in box)):
            continue
        x0, y0, x1, y1 = (float(v) for v in box)
        bbox = (_clamp01(x0 / width), _clamp01(y0 / height), _clamp01(x1 / width), _clamp01(y1 / height))
        lines.append(TextLine(text=content.strip(), bbox=bbox))
    return lines


# --- The presets ------------------------------------------------------------------------------------------


def _frozen(mapping: Mapping[str, Any] | None = None) -> Mapping[str, Any]:
    return MappingProxyType(dict(mapping or {}))


@dataclass(frozen=True, slots=True)
class ModelPreset:
    """How to ask one OCR model for a page and how to clean its answer."""

    name: str
    prompt: str
    image_max_side: int
    """Longest side of the image sent, px; larger pages are scaled down (never up)."""
    max_tokens: int
    temperature: float
    image_format: Literal["jpeg", "png"] = "jpeg"
    jpeg_quality: int = 90
    size_multiple: int = 1
    """Round both image sides to a multiple of this (28 for dots.ocr, so its boxes are in our pixels)."""
    extra_body: Mapping[str, Any] = field(default_factory=_frozen)
    """Extra request fields (vLLM extensions); hosted OpenAI rejects unknown ones, so generic has none."""
    postprocess: Callable[[str], str] = clean_generic
    lines: Callable[[str, int, int], list[TextLine]] | None = None
    """Text lines with boxes from the raw answer, for models that ground their output."""


# DeepSeek-OCR: prompt from its model card and README ("<image>\n<|grounding|>Convert the document to
# markdown."; the chat API places the image itself, so "<image>\n" is left out). Sampling from the vLLM recipe
# (docs.vllm.ai/projects/recipes/en/latest/DeepSeek/DeepSeek-OCR.html): temperature 0, max_tokens 8192,
# skip_special_tokens=false, and the n-gram no-repeat logits processor's arguments (used when the server runs
# with --logits-processors ...deepseek_ocr:NGramPerReqLogitsProcessor; whitelisted ids are <td>, </td>).
# 1280 px leaves its "Gundam" tiling (640 px tiles + a 1024 px global view) enough detail.
DEEPSEEK_OCR = ModelPreset(
    name="deepseek-ocr",
    prompt="<|grounding|>Convert the document to markdown.",
    image_max_side=1280,
    max_tokens=8192,
    temperature=0.0,
    extra_body=_frozen(
        {
            "skip_special_tokens": False,
            "vllm_xargs": {"ngram_size": 30, "window_size": 90, "whitelist_token_ids": [128821, 128822]},
        }
    ),
    postprocess=clean_deepseek,
    lines=deepseek_lines,
)

# olmOCR-2: build_no_anchoring_v4_yaml_prompt() in allenai/olmocr olmocr/prompts/prompts.py, verbatim ("LateX"
# is theirs); its pipeline renders the longest side at 1288 px, starts at temperature 0.1, allows 8000 tokens.
OLMOCR = ModelPreset(
    name="olmocr",
    prompt=(
        "Attached is one page of a document that you must process. Just return the plain text "
        "representation of this document as if you were reading it naturally. "
        "Convert equations to LateX and tables to HTML.\n"
        "If there are any figures or charts, label them with the following markdown syntax "
        "![Alt text describing the contents of the figure](page_startx_starty_width_height.png)\n"
        "Return your output as markdown, with a front matter section on top specifying values for the "
        "primary_language, is_rotation_valid, rotation_correction, is_table, and is_diagram parameters."
    ),
    image_max_side=1288,
    max_tokens=8000,
    temperature=0.1,
    postprocess=clean_olmocr,
)

# dots.ocr: "prompt_layout_all_en" from rednote-hilab/dots.ocr dots_ocr/utils/prompts.py, with the
# "<|img|><|imgpad|><|endofimg|>" prefix its inference_with_vllm() adds (else vLLM v1 inserts a newline).
# Sampling from that function (temperature 0.1, top_p 0.9); pages are rendered at 200 DPI there, ~1700x2200.
DOTS_OCR = ModelPreset(
    name="dots-ocr",
    prompt=(
        "<|img|><|imgpad|><|endofimg|>"
        "Please output the layout information from the PDF image, including each layout element's bbox, "
        "its category, and the corresponding text content within the bbox.\n\n"
        "1. Bbox format: [x1, y1, x2, y2]\n\n"
        "2. Layout Categories: The possible categories are ['Caption', 'Footnote', 'Formula', 'List-item', "
        "'Page-footer', 'Page-header', 'Picture', 'Section-header', 'Table', 'Text', 'Title'].\n\n"
        "3. Text Extraction & Formatting Rules:\n"
        "    - Picture: For the 'Picture' category, the text field should be omitted.\n"
        "    - Formula: Format its text as LaTeX.\n"
        "    - Table: Format its text as HTML.\n"
        "    - All Others (Text, Title, etc.): Format their text as Markdown.\n\n"
        "4. Constraints:\n"
        "    - The output text must be the original text from the image, with no translation.\n"
        "    - All layout elements must be sorted according to human reading order.\n\n"
        "5. Final Output: The entire output must be a single JSON object.\n"
    ),
    image_max_side=1800,
    max_tokens=16384,
    temperature=0.1,
    size_multiple=28,
    extra_body=_frozen({"top_p": 0.9}),
    postprocess=clean_dots,
    lines=dots_lines,
)

# Nanonets-OCR-s: the prompt of its model card (huggingface.co/nanonets/Nanonets-OCR-s), whose vLLM example
# sends the image first, temperature 0 and max_tokens 15000.
NANONETS_OCR = ModelPreset(
    name="nanonets-ocr",
    prompt=(
        "Extract the text from the above document as if you were reading it naturally. Return the tables in "
        "html format. Return the equations in LaTeX representation. If there is an image in the document and "
        "image caption is not present, add a small description of the image inside the <img></img> tag; "
        "otherwise, add the image caption inside <img></img>. Watermarks should be wrapped in brackets. "
        "Ex: <watermark>OFFICIAL COPY</watermark>. Page numbers should be wrapped in brackets. "
        "Ex: <page_number>14</page_number> or <page_number>9/22</page_number>. "
        "Prefer using ☐ and ☑ for check boxes."
    ),
    image_max_side=1600,
    max_tokens=15000,
    temperature=0.0,
    postprocess=clean_generic,
)

# Any chat model that reads images (hosted fallbacks such as gpt-4o-mini): Pagemill's own prompt, no extra
# fields (OpenAI answers 400 to parameters it does not know).
GENERIC = ModelPreset(
    name="generic",
    prompt="Convert this page to clean markdown. Return only the markdown.",
    image_max_side=1600,
    max_tokens=4096,
    temperature=0.0,
    jpeg_quality=85,
    postprocess=clean_generic,
)

PRESETS: Mapping[str, ModelPreset] = MappingProxyType(
    {p.name: p for p in (DEEPSEEK_OCR, OLMOCR, DOTS_OCR, NANONETS_OCR, GENERIC)}
)


def get_preset(name: str) -> ModelPreset:
    """The preset called ``name``; ValueError names the known ones."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"Unknown model preset {name!r}; known: {', '.join(sorted(PRESETS))}.") from None
