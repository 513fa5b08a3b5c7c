"""OCR and text-layer quality on the shared corpus: ``python -m bench.ocr_quality``.

Reads the corpus at ``PAGEMILL_CORPUS`` (default ``../shared/corpus`` beside the repository), scores every
file that has a reference with the corpus' ``tools/score.py``, prints one table row per class and engine
(mean char_sim / word_f1 / bench_pass with the number of files, and pages per second) and writes the table
with the machine, versions and date to ``docs/ocr-quality.md``.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import os
import platform
import re
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import pypdfium2 as pdfium
from PIL import Image, ImageSequence

from pagemill.engines.registry import get_ocr_engine
from pagemill.engines.tesseract import tesseract_version
from pagemill.engines.text_layer import read_text_layer
from pagemill.settings import OcrSettings

REPO = Path(__file__).resolve().parents[1]
CLASSES = ("digital-pdf", "scan-pdf", "scan-image")
ENGINES = ("text_layer", "tesseract", "tesseract+orient", "rapidocr", "rapidocr+orient")
RENDER_DPI = 300


@dataclass
class Row:
    """Scores of one engine on one corpus class."""

    char_sim: list[float] = field(default_factory=list)
    word_f1: list[float] = field(default_factory=list)
    bench_pass: list[float] = field(default_factory=list)
    pages: int = 0
    seconds: float = 0.0


def _load_score(corpus: Path) -> ModuleType:
    path = corpus.parent / "tools" / "score.py"
    spec = importlib.util.spec_from_file_location("corpus_score", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _reference(corpus: Path, refs: str) -> Path | None:
    # Receipts list several references; the line transcript is the one that scores text.
    for ref in refs.split(";"):
        if ref != "-" and not ref.endswith((".boxes.csv", ".key.json")):
            return corpus / ref
    return None


def _files(corpus: Path, kind: str) -> Iterator[tuple[Path, Path]]:
    with open(corpus / "MANIFEST.tsv", encoding="utf-8") as handle:
        for row in csv.DictReader(handle, delimiter="\t"):
            ref = _reference(corpus, row["ground_truth_file"])
            if row["kind"] == kind and ref is not None:
                yield corpus / row["file"], ref


def _pages(path: Path) -> Iterator[Image.Image | pdfium.PdfPage]:
    if path.suffix.lower() == ".pdf":
        doc = pdfium.PdfDocument(path)
        for index in range(len(doc)):
            yield doc[index]
    else:
        with Image.open(path) as image:
            for frame in ImageSequence.Iterator(image):
                yield frame.copy()


def _reader(engine: str) -> Callable[[Image.Image | pdfium.PdfPage], str | None]:
    if engine == "text_layer":

        def read_layer(page: Image.Image | pdfium.PdfPage) -> str | None:
            if not isinstance(page, pdfium.PdfPage):
                return None
            result = read_text_layer(page, min_chars=OcrSettings().text_layer_min_chars)
            return result.text if result else ""

        return read_layer
    name, _, orient = engine.partition("+")
    ocr = get_ocr_engine(name, OcrSettings(detect_orientation=bool(orient)))

    def read_ocr(page: Image.Image | pdfium.PdfPage) -> str | None:
        image = page.render(scale=RENDER_DPI / 72).to_pil() if isinstance(page, pdfium.PdfPage) else page
        return ocr.recognize(image).text

    return read_ocr


def run(corpus: Path, classes: tuple[str, ...], engines: tuple[str, ...]) -> dict[tuple[str, str], Row]:
    """Score ``engines`` on ``classes``; a row per (class, engine) that applies."""
    scorer = _load_score(corpus)
    rows: dict[tuple[str, str], Row] = {}
    for kind in classes:
        for engine in engines:
            if engine == "text_layer" and kind == "scan-image":
                continue
            read = _reader(engine)
            row = rows.setdefault((kind, engine), Row())
            for path, ref in _files(corpus, kind):
                texts: list[str] = []
                started = time.perf_counter()
                for page in _pages(path):
                    texts.append(read(page) or "")
                    row.pages += 1
                row.seconds += time.perf_counter() - started
                result: dict[str, Any] = scorer.score(str(ref), "\n\n".join(texts))
                for metric in ("char_sim", "word_f1", "bench_pass"):
                    if result.get(metric) is not None:
                        getattr(row, metric).append(float(result[metric]))
                print(
                    f"  {kind} {engine} {path.name}: "
                    + " ".join(
                        f"{k}={result[k]:.3f}"
                        for k in ("char_sim", "word_f1", "bench_pass")
                        if result.get(k) is not None
                    ),
                    file=sys.stderr,
                )
    return rows


def _cell(values: list[float]) -> str:
    return f"{statistics.mean(values):.3f} ({len(values)})" if values else "–"  # noqa: RUF001 - the README tables use an en dash


def table(rows: dict[tuple[str, str], Row]) -> str:
    """The rows as the markdown table of ``tools/README.md``."""
    out = [
        "| class | tool | char_sim | word_f1 | bench_pass | pages/s |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for (kind, engine), row in rows.items():
        speed = row.pages / row.seconds if row.seconds else 0.0
        out.append(
            f"| {kind} | {engine} | {_cell(row.char_sim)} | {_cell(row.word_f1)} | "
            f"{_cell(row.bench_pass)} | {speed:.2f} |"
        )
    return "\n".join(out)


def _environment() -> str:
    import onnxruntime

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            cpu = next((ln.split(":", 1)[1].strip() for ln in handle if ln.startswith("model name")), cpu)
    except OSError:
        pass
    from importlib.metadata import version

    return (
        f"- date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC\n"
        f"- machine: {cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}\n"
        f"- python {platform.python_version()}, pypdfium2 {version('pypdfium2')}, tesseract "
        f"{tesseract_version()} (eng, --psm 3, OMP_THREAD_LIMIT=1), rapidocr-onnxruntime "
        f"{version('rapidocr-onnxruntime')} (onnxruntime {onnxruntime.__version__}, 2 threads)\n"
        f"- scans rendered at {RENDER_DPI} DPI; one process, pages one after another"
    )


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark, print the table and write docs/ocr-quality.md."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--classes", nargs="+", default=list(CLASSES), choices=CLASSES)
    parser.add_argument("--engines", nargs="+", default=list(ENGINES), choices=ENGINES)
    parser.add_argument("--output", type=Path, default=REPO / "docs" / "ocr-quality.md")
    args = parser.parse_args(argv)
    corpus = Path(os.environ.get("PAGEMILL_CORPUS", REPO.parent / "shared" / "corpus")).resolve()
    rows = run(corpus, tuple(args.classes), tuple(args.engines))
    text = table(rows)
    print(text)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    old = args.output.read_text(encoding="utf-8") if args.output.exists() else ""
    kept = [match.group(0) for match in _SECTION.finditer(old)]
    args.output.write_text(
        "# OCR and text-layer quality\n\n"
        "Written by `python -m bench.ocr_quality`; scores from the corpus' `tools/score.py` "
        "(see its README for the metrics and the peer tools' rows).\n\n"
        f"{_environment()}\n\n{text}\n\n(n) is the number of files with that kind of reference.\n"
        + "".join(f"\n{section}\n" for section in kept),
        encoding="utf-8",
    )


_SECTION = re.compile(r"<!-- section:(?P<name>[\w-]+) -->.*?<!-- /section:(?P=name) -->", re.S)


def write_doc_section(path: Path, name: str, body: str) -> None:
    """Replace (or append) section ``name`` of the quality document; this benchmark's runs keep it."""
    block = f"<!-- section:{name} -->\n{body.strip()}\n<!-- /section:{name} -->"
    text = path.read_text(encoding="utf-8") if path.exists() else "# OCR and text-layer quality\n"
    pattern = re.compile(rf"<!-- section:{re.escape(name)} -->.*?<!-- /section:{re.escape(name)} -->", re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else f"{text.rstrip()}\n\n{block}\n"
    path.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
