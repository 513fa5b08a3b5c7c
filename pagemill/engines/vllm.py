"""OCR through a vision-language model behind an OpenAI-compatible chat completions API (vLLM, or hosted).

One page is one ``POST {base_url}/v1/chat/completions`` with the page as a base64 JPEG data URL. The engine
is called from many worker threads at once (as many as :mod:`pagemill.engines.capacity` chose), so it shares
one ``httpx.Client`` (thread-safe, keep-alive pool sized to the threads), created on first use, not at import.
The client, the health check and the retries are :mod:`pagemill.engines.openai_http`'s (shared with the
speech engine); the request, the answer and what an HTTP error means for a page are this module's.

What the server answers is mapped onto Pagemill's errors so the fallback chain can act on it:

=============================================  ================  ============================================
Answer                                         Retried           Raised after that
=============================================  ================  ============================================
429 / 502 / 503 / 504, connection refused,     yes: max_retries  EngineUnavailable {status or reason,
dropped connection, timeouts                   backoff + jitter  attempts}
400 "maximum context length" and the like      no                EngineFailed {reason: context_length}
401 / 403                                      no                EngineFailed {reason: unauthorized}
404 (model not served)                         no                EngineFailed {reason: model_not_found}
other 4xx                                      no                EngineFailed {reason: bad_request}
other 5xx (500 ...)                            no                EngineFailed {reason: server_error}
200, finish_reason "length"                    no                EngineFailed {reason: truncated}
200, finish_reason "content_filter"            no                EngineFailed {reason: content_filter}
200, not JSON / no choices[0].message          no                EngineFailed {reason: malformed_response}
200, degenerate repetition                     no                EngineFailed {reason: degenerate_repetition}
200, empty content                             no                a blank page: empty text, settings.empty
=============================================  ================  ============================================

Within a page's time limit (pagemill.deadlines) every request gets at most what is left of it as its
timeout, backoff waits are cut to it, and a timeout once it is spent raises the page's PROCESSING_TIMEOUT
(no retry, no fallback: the page is out of time whatever engine comes next).
"""

from __future__ import annotations

import html
import logging
import random
import re
import time
from collections.abc import Callable
from typing import Any, NoReturn

import httpx
from PIL import Image

from pagemill.engines.base import EngineHealth, PageResult, TextLine
from pagemill.engines.capacity import requests_in_flight
from pagemill.engines.openai_http import ServerClient, error_message, failure_reason, root_url
from pagemill.engines.page_image import EncodedImage, ImageSpec, encode_image
from pagemill.engines.vllm_presets import ModelPreset, get_preset
from pagemill.errors import EngineFailed, EngineUnavailable
from pagemill.settings import OpenAiEngineSettings

logger = logging.getLogger("pagemill.engines.vllm")

_CONTEXT_LENGTH = re.compile(
    r"context length|maximum context|context window|max_model_len|maximum model length|"
    r"longer than the maximum|prompt is too long|too many tokens",
    re.IGNORECASE,
)


# --- Pure helpers -----------------------------------------------------------------------------------------

_WORD = re.compile(r"\w+")
_TAG = re.compile(r"<[^>]{0,200}>")
_LATEX_COMMAND = re.compile(r"\\[A-Za-z]+")

LINE_MIN_ALNUM = 12
"""A line must carry at least this many letters/digits to count for the repeated-line rule."""
LINE_MIN_RUN = 16
"""That many consecutive identical lines (blank lines between ignored) is a loop."""
NGRAM_MAX_PERIOD = 50
"""Longest repeated unit looked for, in words."""
NGRAM_MIN_REPEATS = 12
NGRAM_MIN_UNIT_CHARS = 12
NGRAM_MIN_REGION_CHARS = 400
"""A unit of >= 12 word characters repeated back to back >= 12 times over >= 400 characters is a loop."""
NGRAM_MANY_REPEATS = 100
"""Short units (a word, "No No No …") only count when repeated this often and containing a letter."""


def detect_repetition(text: str) -> bool:
    """True when ``text`` looks like a VLM generation loop rather than a page.

    Markup is ignored first (HTML tags, LaTeX commands, table pipes and other punctuation), so empty table
    cells, ``<td></td>`` runs and ``\\hline`` rows never count. Then either rule flags a loop:

    * the same line (>= ``LINE_MIN_ALNUM`` letters/digits) ``LINE_MIN_RUN`` times in a row;
    * a unit of 1..``NGRAM_MAX_PERIOD`` words repeated back to back: >= ``NGRAM_MIN_REPEATS`` times when it
      has >= ``NGRAM_MIN_UNIT_CHARS`` word characters and the run covers >= ``NGRAM_MIN_REGION_CHARS``; or
      >= ``NGRAM_MANY_REPEATS`` times for any unit containing a letter (digit-only units are tables of zeros).

    Real pages repeat short cells ("Yes", "0.00", "N/A") and short lines, but not a sentence or a full row a
    dozen times over hundreds of characters; thresholds lean towards letting a page through, since a loop
    that runs to the token limit is caught as ``truncated`` anyway.
    """
    plain = _LATEX_COMMAND.sub(" ", _TAG.sub(" ", text))
    if _repeated_line(plain):
        return True
    words = _WORD.findall(plain)
    return _repeated_ngram(words)


def _repeated_line(plain: str) -> bool:
    previous, run = "", 0
    for raw in plain.splitlines():
        line = " ".join(_WORD.findall(raw))
        if not line:
            continue
        if line == previous:
            run += 1
        else:
            previous, run = line, 1
        if run >= LINE_MIN_RUN and sum(c.isalnum() for c in line) >= LINE_MIN_ALNUM:
            return True
    return False


def _repeated_ngram(words: list[str]) -> bool:
    n = len(words)
    for period in range(1, min(NGRAM_MAX_PERIOD, n // 2) + 1):
        run_start, run = 0, 0
        # run counts positions i where words[i] == words[i + period]; run >= k * period means k + 1 copies.
        for i in range(n - period):
            if words[i] == words[i + period]:
                if run == 0:
                    run_start = i
                run += 1
                if run >= period * (NGRAM_MIN_REPEATS - 1) and _is_loop(words, run_start, period, run):
                    return True
            else:
                run = 0
    return False


def _is_loop(words: list[str], start: int, period: int, run: int) -> bool:
    unit = words[start : start + period]
    unit_chars = sum(len(w) for w in unit)
    repeats = run // period + 1
    if unit_chars >= NGRAM_MIN_UNIT_CHARS and unit_chars * repeats >= NGRAM_MIN_REGION_CHARS:
        return True
    return repeats >= NGRAM_MANY_REPEATS and any(c.isalpha() for w in unit for c in w)


_MD_IMAGE = re.compile(r"!\[([^\]]*)\]\([^)]*\)")
_MD_LINK = re.compile(r"\[([^\]]+)\]\([^)]*\)")
_MD_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+", re.MULTILINE)
_MD_EMPHASIS = re.compile(r"(\*\*|__|~~)(.+?)\1|(?<![\w*])\*(?!\s)([^*\n]+?)\*(?!\w)")
_MD_TABLE_RULE = re.compile(r"^\s*\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?\s*$")
_MD_FENCE = re.compile(r"^\s*```.*$", re.MULTILINE)


def markdown_to_text(markdown: str) -> str:
    """Plain text from model markdown: no heading marks, emphasis, links, fences or table syntax.

    HTML tables (olmOCR, dots.ocr, Nanonets) become one line per row with tab-separated cells, as do
    markdown tables; other tags are dropped and entities decoded. LaTeX is kept: it is the text of a formula.
    """
    text = re.sub(r"</t[dh]>\s*", "\t", markdown, flags=re.IGNORECASE)
    text = re.sub(r"</tr>\s*|<br\s*/?>", "\n", text, flags=re.IGNORECASE)
    text = re.sub(r"<img>(.*?)</img>", r"\1", text, flags=re.IGNORECASE | re.DOTALL)
    text = _TAG.sub("", text)
    text = _MD_FENCE.sub("", text)
    text = _MD_IMAGE.sub(r"\1", text)
    text = _MD_LINK.sub(r"\1", text)
    text = _MD_HEADING.sub("", text)
    text = _MD_EMPHASIS.sub(lambda m: m.group(2) or m.group(3) or "", text)
    lines: list[str] = []
    for line in text.splitlines():
        if _MD_TABLE_RULE.match(line):
            continue
        stripped = line.strip()
        if stripped.startswith("|") and stripped.endswith("|") and len(stripped) > 1:
            line = "\t".join(cell.strip() for cell in stripped[1:-1].split("|"))
        lines.append(line.rstrip(" \t"))
    text = html.unescape("\n".join(lines))
    return re.sub(r"\n{3,}", "\n\n", text).strip()


# --- The engine -------------------------------------------------------------------------------------------


class OpenAiCompatibleEngine:
    """A page OCR engine backed by an OpenAI-compatible chat completions server."""

    def __init__(
        self,
        settings: OpenAiEngineSettings,
        *,
        name: str = "vllm",
        preset: ModelPreset | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        """``preset`` overrides ``settings.preset``; ``transport``, ``sleep`` and ``rng`` are for tests."""
        self.name = name
        self.settings = settings
        self.preset = preset or get_preset(settings.preset)
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._server = ServerClient(
            settings,
            engine=name,
            kind="OCR engine",
            log=logger,
            # One connection per thread in flight (the server client adds a few for health checks).
            in_flight=lambda: requests_in_flight(settings),
            transport=transport,
            unreachable_details={"attempts": 1},  # its errors always say how many attempts were made
        )

    # Configuration in force: settings override the preset.
    @property
    def max_tokens(self) -> int:
        """Output token cap sent with each page."""
        return self.settings.max_tokens or self.preset.max_tokens

    @property
    def temperature(self) -> float:
        """Sampling temperature sent with each page."""
        t = self.settings.temperature
        return self.preset.temperature if t is None else t

    @property
    def image_max_side(self) -> int:
        """Longest image side sent, px."""
        return self.settings.image_max_side or self.preset.image_max_side

    @property
    def image_spec(self) -> ImageSpec:
        """How pages are scaled and encoded for this model (a render process is asked for exactly this)."""
        return ImageSpec(
            max_side=self.image_max_side,
            multiple=self.preset.size_multiple,
            format=self.preset.image_format,
            jpeg_quality=self.preset.jpeg_quality,
        )

    @property
    def model(self) -> str:
        """The model name the server is asked for."""
        return self.settings.model

    def close(self) -> None:
        """Close the connection pool (a later call opens a new one)."""
        self._server.close()

    def __enter__(self) -> OpenAiCompatibleEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _url(self, path: str) -> str:
        if not self.settings.base_url:
            raise EngineUnavailable(
                "The OCR engine is not configured.", engine=self.name, reason="not_configured", attempts=0
            )
        return f"{root_url(self.settings.base_url)}{path}"

    # --- Health ---------------------------------------------------------------------------------------------

    def check(self) -> EngineHealth:
        """``GET /v1/models`` with a short timeout; ok only when the model is listed. Never raises."""
        return self._server.check(self.model)

    # --- Recognition ----------------------------------------------------------------------------------------

    def build_request(self, data_url: str) -> dict[str, Any]:
        """The chat completions body for one page image."""
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [
                {
                    "role": "user",
                    "content": [
                        # Image first: Nanonets' prompt says "the above document"; dots.ocr sends it so too.
                        {"type": "image_url", "image_url": {"url": data_url}},
                        {"type": "text", "text": self.preset.prompt},
                    ],
                }
            ],
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
        }
        for key, value in self.preset.extra_body.items():
            body[key] = _copy_json(value)
        return body

    def recognize(self, image: Image.Image) -> PageResult:
        """Read one page image; raises EngineFailed or EngineUnavailable as the module docstring tabulates."""
        self._url("/v1/chat/completions")  # not configured: fail before spending CPU on the image
        started = time.perf_counter()
        encoded = encode_image(image, self.image_spec)
        return self.recognize_encoded(encoded, encode_ms=(time.perf_counter() - started) * 1000.0)

    def recognize_encoded(self, image: EncodedImage, *, encode_ms: float | None = None) -> PageResult:
        """Read one page already scaled and encoded as :attr:`image_spec` says (by a render process);
        raises as :meth:`recognize` does. ``encode_ms`` is recorded in the timings when given."""
        url = self._url("/v1/chat/completions")
        width, height = image.size
        sent = time.perf_counter()
        body = self.build_request(image.data_url())
        response, attempts = self._post_with_retries(url, body)
        del body  # a page is megabytes of base64: let it go before the answer is parsed
        finished = time.perf_counter()
        raw, finish_reason = self._parse(response)
        settings: dict[str, Any] = {
            "preset": self.preset.name,
            "image_size": [width, height],
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "attempts": attempts,
        }
        if finish_reason == "content_filter":
            self._fail("the server filtered the answer", "content_filter")
        markdown = self.preset.postprocess(raw) if raw else ""
        # A generation loop usually runs into max_tokens too; naming the loop says more than "truncated".
        if markdown and detect_repetition(markdown):
            self._fail("the answer repeats itself (generation loop)", "degenerate_repetition")
        if finish_reason == "length":
            self._fail("the answer was cut off at max_tokens", "truncated", max_tokens=self.max_tokens)
        lines: list[TextLine] = []
        if raw and self.preset.lines is not None:
            lines = self.preset.lines(raw, width, height)
        if not markdown.strip():
            # A blank page legitimately reads as nothing; flag it so it can be told from a lost answer.
            settings["empty"] = True
        return PageResult(
            text=markdown_to_text(markdown),
            markdown=markdown,
            engine=self.name,
            lines=lines,
            model=self.model,
            settings=settings,
            timings_ms={
                **({"encode": encode_ms} if encode_ms is not None else {}),
                "request": (finished - sent) * 1000.0,
            },
        )

    def _fail(self, why: str, reason: str, **details: Any) -> NoReturn:
        logger.warning("engine %s: page failed: %s (%s)", self.name, why, reason)
        raise EngineFailed(
            f"The OCR engine could not read this page: {why}.", engine=self.name, reason=reason, **details
        )

    def _post_with_retries(self, url: str, body: dict[str, Any]) -> tuple[httpx.Response, int]:
        return self._server.with_retries(
            lambda: self._post_once(url, body), sleep=self._sleep or time.sleep, rng=self._rng
        )

    def _post_once(self, url: str, body: dict[str, Any]) -> httpx.Response:
        """One attempt (transient failures raise, for the retries); an HTTP error fails the page."""
        response = self._server.post(url, json=body)
        status = response.status_code
        if status == 200:
            return response
        message, code = error_message(response)
        if status == 400 and (code == "context_length_exceeded" or _CONTEXT_LENGTH.search(message)):
            reason = "context_length"
        else:
            reason = failure_reason(status)
        self._fail(f"the server answered HTTP {status}", reason, status=status, server_message=message)

    def _parse(self, response: httpx.Response) -> tuple[str, str | None]:
        """(content, finish_reason) of ``choices[0]``; content None reads as empty."""
        try:
            choice = response.json()["choices"][0]
            message = choice["message"]
            content = message.get("content")
            finish_reason = choice.get("finish_reason")
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            self._fail("the server's answer is not a chat completion", "malformed_response")
        if content is not None and not isinstance(content, str):
            self._fail("the answer's content is not text", "malformed_response")
        if finish_reason is not None and not isinstance(finish_reason, str):
            self._fail("the answer's finish_reason is not text", "malformed_response")
        return content or "", finish_reason


def _copy_json(value: Any) -> Any:
    # Presets are shared by every thread: hand each request its own copy of nested lists and dicts.
    if isinstance(value, dict):
        return {k: _copy_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy_json(v) for v in value]
    return value
