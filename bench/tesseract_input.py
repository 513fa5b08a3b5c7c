"""What Tesseract should be given: colour, grey, or its own binarisation? ``python -m bench.tesseract_input``.

Reads the corpus' scan classes (``scan-image``, of which the ``sroie__*`` receipts are also shown alone, and
``scan-pdf``) through the workers' reading path (``ocr_mode=auto``, ``engine=tesseract``, orientation
detection on) once per variant of the image handed to Tesseract, scores each file with the corpus'
``tools/score.py`` and counts the CPU time of the Tesseract processes (children of this process, so other
load on the machine does not inflate it). Variants:

* ``grey``: every page converted to grayscale first (what Pagemill did before);
* ``colour``: every page as it is (RGB renders of grey pages too);
* ``colour+leptonica-otsu`` / ``colour+sauvola``: colour with Tesseract's other thresholding methods
  (``-c thresholding_method=1`` / ``2``); ``grey+sauvola``;
* ``shipped``: :func:`pagemill.engines.tesseract.as_tesseract_input` (colour pages in colour, grey as grey).

Prints a Markdown table and replaces the ``tesseract-input`` section of ``docs/ocr-quality.md``.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from PIL import Image

import pagemill.engines.tesseract as tesseract
from bench.ocr_quality import REPO, _files, _load_score, write_doc_section
from pagemill.documents.kinds import SNIFF_BYTES, sniff
from pagemill.documents.source import open_source
from pagemill.engines.registry import clear_engines
from pagemill.jobs.options import JobOptions
from pagemill.jobs.reading import read_pages
from pagemill.settings import Settings

SHIPPED = tesseract.as_tesseract_input


def _grey(image: Image.Image) -> Image.Image:
    sent = SHIPPED(image)
    return sent if sent.mode in ("1", "L") else sent.convert("L")


def _colour(image: Image.Image) -> Image.Image:
    sent = SHIPPED(image)
    return sent.convert("RGB") if sent.mode == "L" and image.mode not in ("1", "L") else sent


VARIANTS: dict[str, tuple[Callable[[Image.Image], Image.Image], list[str]]] = {
    "grey": (_grey, []),
    "colour": (_colour, []),
    "colour+leptonica-otsu": (_colour, ["-c", "thresholding_method=1"]),
    "colour+sauvola": (_colour, ["-c", "thresholding_method=2"]),
    "grey+sauvola": (_grey, ["-c", "thresholding_method=2"]),
    "shipped": (SHIPPED, []),
}
GROUPS = ("scan-image", "receipts (sroie, in scan-image)", "scan-pdf")


@dataclass
class Cell:
    """Scores and Tesseract CPU seconds of one variant on one group of files."""

    char_sim: list[float] = field(default_factory=list)
    word_f1: list[float] = field(default_factory=list)
    bench_pass: list[float] = field(default_factory=list)
    cpu_s: float = 0.0
    pages: int = 0


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _use(variant: str) -> None:
    """Make the Tesseract engine of this process hand pages over as ``variant`` says."""
    prepare, extra = VARIANTS[variant]
    run = subprocess.run

    def run_with(cmd: list[str], *args: Any, **kwargs: Any) -> subprocess.CompletedProcess[bytes]:
        if cmd[:3] == ["tesseract", "stdin", "stdout"]:
            cmd = [*cmd[:3], *extra, *cmd[3:]]
        return run(cmd, *args, **kwargs)

    tesseract.as_tesseract_input = prepare  # type: ignore[assignment]
    fake = types.SimpleNamespace(run=run_with, TimeoutExpired=subprocess.TimeoutExpired)
    tesseract.subprocess = fake  # type: ignore[attr-defined, assignment]
    clear_engines()


def _cases(corpus: Path) -> Iterator[tuple[str, Path, Path]]:
    for kind in ("scan-image", "scan-pdf"):
        for path, ref in _files(corpus, kind):
            yield kind, path, ref


def run(corpus: Path, variants: list[str]) -> dict[tuple[str, str], Cell]:
    """Score every variant on every group."""
    scorer = _load_score(corpus)
    settings = Settings()
    cells: dict[tuple[str, str], Cell] = {}
    try:
        for variant in variants:
            _use(variant)
            for kind, path, ref in _cases(corpus):
                before = _children_cpu()
                with open_source(
                    path, sniff(path.read_bytes()[:SNIFF_BYTES]), password=None, limits=settings.limits
                ) as source:
                    pages = list(read_pages(source, JobOptions(engine="tesseract"), settings))
                spent = _children_cpu() - before
                result = scorer.score(str(ref), "\n\n".join(page.markdown for page in pages))
                groups = [kind] + ([GROUPS[1]] if path.name.startswith("sroie__") else [])
                for group in groups:
                    cell = cells.setdefault((variant, group), Cell())
                    cell.cpu_s += spent
                    cell.pages += len(pages)
                    for metric in ("char_sim", "word_f1", "bench_pass"):
                        if result.get(metric) is not None:
                            getattr(cell, metric).append(float(result[metric]))
                print(f"  {variant} {path.name}: char_sim={result.get('char_sim')}", file=sys.stderr)
    finally:
        _use("shipped")
    return cells


def _mean(values: list[float]) -> str:
    return f"{statistics.mean(values):.3f} ({len(values)})" if values else "–"  # noqa: RUF001


def table(cells: dict[tuple[str, str], Cell], variants: list[str]) -> str:
    """One row per group and variant."""
    out = [
        "| files | Tesseract input | char_sim | word_f1 | bench_pass | Tesseract CPU s/page |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for group in GROUPS:
        for variant in variants:
            cell = cells.get((variant, group))
            if cell is None:
                continue
            out.append(
                f"| {group} | {variant} | {_mean(cell.char_sim)} | {_mean(cell.word_f1)} | "
                f"{_mean(cell.bench_pass)} | {cell.cpu_s / max(cell.pages, 1):.2f} |"
            )
    return "\n".join(out)


def main(argv: list[str] | None = None) -> None:
    """Run, print, and record the section in docs/ocr-quality.md."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--output", type=Path, default=REPO / "docs" / "ocr-quality.md")
    args = parser.parse_args(argv)
    corpus = Path(os.environ.get("PAGEMILL_CORPUS", REPO.parent / "shared" / "corpus")).resolve()
    text = table(run(corpus, args.variants), args.variants)
    print(text)
    command = "python -m bench.tesseract_input" + (
        "" if args.variants == list(VARIANTS) else " --variants " + " ".join(args.variants)
    )
    write_doc_section(
        args.output,
        "tesseract-input",
        "## Tesseract input: colour or grey\n\n"
        f"Written by `{command}` ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC; see the module docstring). "
        "Same machine and versions as above; CPU is the Tesseract processes' own time, so other load "
        "on the machine does not count.\n\n" + text,
    )


if __name__ == "__main__":
    main()
