"""CPU OCR path: the service against the same Tesseract engine run directly on the same pages, same cores.

``python -m bench cpu_ocr``

A text-heavy scanned PDF (image-only pages drawn at 300 DPI) goes through an embedded stack with
``ocr_mode=ocr`` and worker concurrency 2, timed from the POST to the markdown result fetched. The direct
side renders the same pages once with ``open_source(...).render(i, dpi=300)`` (not timed) and runs
``get_ocr_engine("tesseract", OcrSettings())`` on them in a warm ``multiprocessing`` pool of 2 processes, one
page per task. The service pays for rendering, the queue, the database and results; the direct side does
not, so the ratio is the service's whole overhead. The two alternate (order swapped every round), 3 rounds,
medians. Target: service pages/s / direct pages/s >= 0.90.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from PIL import Image

from bench.born_digital import page_texts
from bench.common import (
    alternate,
    cpu_seconds,
    fmt,
    log,
    median,
    run_and_record,
    table,
    tree_cpu_seconds,
    verdict,
)
from bench.report import per_round, ratio_table, results_block
from bench.stacks import embedded_stack_and_pool, pool_pids
from pagemill.documents.kinds import DocumentKind
from pagemill.documents.source import open_source
from pagemill.settings import LimitSettings, OcrSettings
from tests.support.documents import make_scanned_pdf

PAGES = 16
ROUNDS = 3
PROCESSES = 2
WORKER_CONCURRENCY = 2
TARGET_RATIO = 0.90
CHARS_PER_PAGE = 2600
JOB_TIMEOUT_S = 300.0

_engine: Any = None


def _init_worker(engine: str) -> None:
    global _engine
    os.environ["OMP_THREAD_LIMIT"] = "1"
    from pagemill.engines.registry import get_ocr_engine

    _engine = get_ocr_engine(engine, OcrSettings())


def _recognize(image: Image.Image) -> int:
    return len(_engine.recognize(image).text)


def render_pages(path: Path, dpi: int) -> list[Image.Image]:
    """Every page of ``path`` rendered the way the service renders it for OCR."""
    with open_source(path, DocumentKind.PDF, password=None, limits=LimitSettings()) as source:
        return [source.render(index, dpi=dpi) for index in range(source.page_count)]


def run(pages: int = PAGES, rounds: int = ROUNDS, engine: str = "tesseract") -> str:
    """Run the benchmark; return the Markdown block for docs/benchmarks.md."""
    settings = OcrSettings()
    with tempfile.TemporaryDirectory(prefix="pagemill-bench-ocr-") as tmp:
        path = make_scanned_pdf(Path(tmp) / "scanned.pdf", page_texts(pages, chars=CHARS_PER_PAGE, seed=11))
        warmup = make_scanned_pdf(Path(tmp) / "warmup.pdf", page_texts(1, chars=300, seed=3))
        render_started = time.process_time()
        images = render_pages(path, settings.dpi)
        # What rendering costs the service per page (it renders each page itself; direct gets them made).
        render_cpu = (time.process_time() - render_started) / pages
        log(f"cpu_ocr: {pages} scanned pages, rendered {images[0].size} {images[0].mode}")
        service: list[float] = []
        direct: list[float] = []
        service_cpu: list[float] = []
        direct_cpu: list[float] = []
        service_chars = direct_chars = 0
        with embedded_stack_and_pool(WORKER_CONCURRENCY, PROCESSES, _init_worker, (engine,)) as (stack, pool):
            pool.map(_recognize, images[:PROCESSES], chunksize=1)  # warm both processes
            stack.run_job(warmup, JOB_TIMEOUT_S, ocr_mode="ocr", engine=engine)

            def run_service() -> None:
                nonlocal service_chars
                cpu_before = tree_cpu_seconds(stack.worker.pid) + tree_cpu_seconds(stack.api.pid)
                job = stack.run_job(path, JOB_TIMEOUT_S, fmt="text", ocr_mode="ocr", engine=engine)
                cpu = tree_cpu_seconds(stack.worker.pid) + tree_cpu_seconds(stack.api.pid) - cpu_before
                service.append(job.pages / job.seconds)
                service_cpu.append(cpu / job.pages)
                service_chars = job.result_bytes
                log(
                    f"  service: {job.pages} pages in {job.seconds:.2f}s = {service[-1]:.3f} pages/s, "
                    f"{service_cpu[-1]:.2f} CPU s/page"
                )

            def run_direct() -> None:
                nonlocal direct_chars
                pids = pool_pids(pool)
                cpu_before = cpu_seconds(pids)
                started = time.perf_counter()
                direct_chars = sum(pool.imap_unordered(_recognize, images, chunksize=1))
                seconds = time.perf_counter() - started
                direct.append(len(images) / seconds)
                direct_cpu.append((cpu_seconds(pids) - cpu_before) / len(images))
                log(
                    f"  direct:  {len(images)} pages in {seconds:.2f}s = {direct[-1]:.3f} pages/s, "
                    f"{direct_cpu[-1]:.2f} CPU s/page"
                )

            alternate(rounds, run_service, run_direct)

    ratios = [s / d for s, d in zip(service, direct, strict=True)]
    ratio = median(ratios)
    cpu_ratios = [d / s for s, d in zip(service_cpu, direct_cpu, strict=True)]
    # Target 6: what the service spends per page beyond the engine and the render (queue, database,
    # storage, HTTP, result assembly), as a share of its CPU per page. Rounds pair service and direct.
    overhead = [(s - d - render_cpu) / s for s, d in zip(service_cpu, direct_cpu, strict=True)]
    return results_block(
        f"### CPU OCR ({engine}), service vs. the engine run directly "
        f"(`python -m bench {'cpu_ocr' if engine == 'tesseract' else 'cpu_ocr_' + engine}`)",
        f"Document: {pages} text-heavy scanned pages (~{CHARS_PER_PAGE:,} characters each, 300 DPI, "
        f"US Letter). Engine: {engine} with the default OCR settings (languages {settings.languages}, "
        f"{settings.dpi} DPI, "
        f"orientation detection {'on' if settings.detect_orientation else 'off'}). Service: embedded stack, "
        f"worker concurrency {WORKER_CONCURRENCY}, `ocr_mode=ocr`, POST to text result fetched. Direct: the "
        f"same engine object (`get_ocr_engine`) in a pool of {PROCESSES} processes on the pages pre-rendered "
        "with `open_source(...).render(i, dpi=300)` (rendering not timed). "
        f"{rounds} rounds, order alternating, medians. CPU s/page: user + system CPU from /proc of the "
        "worker's process tree and the API (service; Tesseract children included once reaped) or of the pool "
        "processes and their parent (direct); it does not count time stolen by the hypervisor, so it is the "
        "steadier measure of the service's overhead on a noisy machine. The target is judged on pages/s.",
        table(
            [
                "",
                "pages/s (median)",
                "rounds, pages/s",
                "CPU s/page (median)",
                "rounds, CPU s/page",
                "characters",
            ],
            [
                [
                    "service",
                    fmt(median(service), 3),
                    per_round(service, 3),
                    fmt(median(service_cpu), 2),
                    per_round(service_cpu, 2),
                    f"{service_chars:,} (text result)",
                ],
                [
                    "direct",
                    fmt(median(direct), 3),
                    per_round(direct, 3),
                    fmt(median(direct_cpu), 2),
                    per_round(direct_cpu, 2),
                    f"{direct_chars:,}",
                ],
            ],
        ),
        ratio_table(
            [
                (
                    "service pages/s / direct pages/s",
                    ratios,
                    f">= {TARGET_RATIO}: {verdict(ratio >= TARGET_RATIO)}",
                ),
                ("direct CPU s/page / service CPU s/page", cpu_ratios, "(same target, informative)"),
                (
                    "orchestration share: (service - direct - render) CPU / service CPU",
                    overhead,
                    f"target 6, < 0.05: {verdict(median(overhead) < 0.05)}",
                ),
            ]
        ),
        f"Render CPU per page (the same `render` at {settings.dpi} DPI, one process, measured while "
        f"preparing the direct run's pages): {render_cpu * 1000:.0f} ms. The orchestration share is what "
        "the service spends beyond the engine and the render: queue, database, storage, HTTP and result "
        "assembly, in the worker and the API together.",
    )


def main(argv: list[str] | None = None) -> str:
    """Command line: run, print, record."""
    parser = argparse.ArgumentParser(prog="python -m bench.cpu_ocr", description=__doc__)
    parser.add_argument("--pages", type=int, default=PAGES)
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--engine", choices=["tesseract", "rapidocr"], default="tesseract")
    args = parser.parse_args(argv)
    return run_and_record(
        "cpu_ocr" if args.engine == "tesseract" else f"cpu_ocr_{args.engine}",
        lambda: run(pages=args.pages, rounds=args.rounds, engine=args.engine),
    )


if __name__ == "__main__":
    main()
