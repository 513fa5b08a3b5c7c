"""``python -m bench [names...]``: run all (or the named) benchmarks; record them in docs/benchmarks.md.

Each benchmark rewrites its own block of the "Results" section as soon as it finishes, so an interrupted
run keeps what it measured. ``python -m bench.NAME --help`` shows one benchmark's own options.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time

from bench.common import DOC, log

BENCHMARKS = {
    "born_digital": "1,000-page born-digital PDF end to end vs. pdftotext and pypdfium2 (+ distributed mode)",
    "cache_hit": "a resubmitted 1,000-page PDF answered by the result cache vs. its first job (< 5%)",
    "cpu_ocr": "scanned pages through the service vs. Tesseract run directly, same cores",
    "cpu_ocr_rapidocr": "the same with RapidOCR (the default engine), fewer pages: it is slower",
    "gpu_ceiling": "48 pages/s of simulated GPU capacity: rendering in GPU worker threads vs. processes",
    "gpu_saturation": "scanned pages through the GPU path vs. the vLLM simulator's known capacity",
    "memory": "worker peak RSS on a 10,000-page PDF; API RSS during a 1 GiB upload",
    "auth_overhead": "requests/s of the API with and without key checks and rate limiting",
    "concurrent_uploads": "10, 20 and 50 clients posting ~1 MB PDFs at once: latency and every answer",
    "load": "10, 50 and 200 polling clients (1 MB PDFs and images): submit/status p95, errors, API CPU",
    "recovery": "a scanned job whose worker is SIGKILLed after 3 pages: seconds until it moves again",
    "fair_share": "a one-page job of one tenant behind another tenant's 5,000-page OCR job: time vs. idle",
    "chaos": "hundreds of jobs while workers, Redis, Postgres and an API are killed: nothing lost, recovery",
    "events_overhead": "born-digital pages/s with events off, on, on with page events (>= 0.95)",
    "event_latency": "100 SSE streams: page finished in a worker to its event at the client (p95 <= 250 ms)",
    "eta_accuracy": "OCR jobs queued behind each other: eta_s predictions against the real end times",
    "webhook_delivery": "webhook deliveries per second to a local receiver, event-to-arrival delay",
    "tus_upload": "1 GiB as a tus upload in 8 MiB chunks vs. one multipart POST, to moto S3: ratio, API RSS",
    "office_quality": "DOCX/PPTX/XLSX: quality (corpus, known content), pages/s vs. markitdown and docling",
    "audio_cpu": "a 10-minute recording, faster-whisper on the CPU pool vs. faster-whisper run directly",
    "audio_gpu": "a 100-minute recording through whisper-vllm vs. the simulated Whisper server's capacity",
    "idle": "an idle embedded and distributed stack: CPU of the worker and the API, a job's time after",
}


def main(argv: list[str] | None = None) -> int:
    """Run the selected benchmarks in order; return a process exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Run Pagemill's benchmarks and rewrite the Results section of docs/benchmarks.md.",
        epilog="benchmarks: " + "; ".join(f"{name}: {text}" for name, text in BENCHMARKS.items()),
    )
    parser.add_argument("names", nargs="*", metavar="NAME", help="benchmarks to run (default: all)")
    parser.add_argument(
        "--no-distributed",
        action="store_true",
        help="born_digital, event_latency: skip the distributed stack",
    )
    args = parser.parse_args(argv)
    unknown = [name for name in args.names if name not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
    failures = []
    started = time.monotonic()
    for name in args.names or list(BENCHMARKS):
        log(f"=== {name}: {BENCHMARKS[name]}")
        module = importlib.import_module(f"bench.{name.removesuffix('_rapidocr')}")
        distributed_too = ("born_digital", "event_latency", "webhook_delivery")
        bench_argv = ["--no-distributed"] if name in distributed_too and args.no_distributed else []
        if name == "cpu_ocr_rapidocr":
            bench_argv = ["--engine", "rapidocr", "--pages", "6"]
        try:
            module.main(bench_argv)
        except Exception as exc:  # one broken benchmark must not lose the others' results
            log(f"{name} FAILED: {type(exc).__name__}: {exc}")
            failures.append(name)
    log(f"done in {time.monotonic() - started:.0f}s; results in {DOC.relative_to(DOC.parents[1])}")
    if failures:
        log(f"failed: {', '.join(failures)}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
