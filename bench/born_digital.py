"""Born-digital throughput: a 1,000-page text PDF end to end through a real stack, against direct extractors.

``python -m bench born_digital`` (``--no-distributed`` skips the Postgres/Redis/S3 stack).

The service is timed from the POST to the markdown result fetched, on an embedded stack (``pagemill worker``
with concurrency 2 + ``pagemill api``, state in a temporary PAGEMILL_DATA_DIR), median of 5 jobs after one
small warm-up job. Side by side in the same run, on the same file: Pagemill's reader run bare on 2
processes right before each embedded job (target 3's ratio, job by job); ``pdftotext`` and pypdfium2 text
extraction (1 process and 2 processes, one half of the pages each), and the service's own text-layer reader
(``pagemill.engines.text_layer.read_text_layer``) called in-process, which shows what the reading itself
costs without the queue, database and result assembly.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import random
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pypdfium2 as pdfium

from bench.common import fmt, log, median, run_and_record, run_stamp, table, verdict
from bench.jobs import JobRun
from bench.stacks import distributed_env_stack, running_stack, temp_data_dir
from tests.support.documents import make_text_pdf

PAGES = 1000
CHARS_PER_PAGE = 2000
RUNS = 5
TARGET_PAGES_PER_S = 100.0
TARGET_READER_RATIO = 0.6
JOB_TIMEOUT_S = 150.0
# 25 lines of ~80 characters of 20 pt Helvetica fit on a page 960 pt wide and 792 pt (US Letter) high.
PAGE_SIZE = (960.0, 792.0)
LINE_CHARS = 80

_VOCABULARY = (
    "the of and to in a is that for it as was with be by on not he this are or his from at which but have "
    "an they you were her all she there would their we him been has when who will more no if out so said "
    "what up its about into than them can only other new some could time these two may then do first any "
    "my now such like our over man me even most made after also did many before must through back years "
    "where much your way well down should because each just those people how too little state good very "
    "make world still own see men work long get here between both life being under never day same another "
    "know while last might us great old year off come since against go came right used take three "
    "document invoice contract revenue quarterly statement pursuant agreement liability shipment "
    "warehouse schedule"
)
_WORDS = _VOCABULARY.split()


def page_texts(pages: int = PAGES, chars: int = CHARS_PER_PAGE, seed: int = 7) -> list[str]:
    """Deterministic prose-like pages of about ``chars`` characters in lines of about 80."""
    rng = random.Random(seed)
    texts = []
    for number in range(1, pages + 1):
        lines: list[str] = []
        total = 0
        while total < chars:
            words: list[str] = []
            while sum(len(w) + 1 for w in words) < LINE_CHARS - 10:
                words.append(rng.choice(_WORDS))
            line = " ".join(words).capitalize() + "."
            lines.append(line)
            total += len(line) + 1
        lines.append(f"Page {number}")
        texts.append("\n".join(lines))
    return texts


def make_document(path: Path, pages: int = PAGES) -> Path:
    """The benchmark PDF: ``pages`` pages of ~2,000 characters each."""
    return make_text_pdf(path, page_texts(pages), page_size=PAGE_SIZE)


# --------------------------------------------------------------------------------------------------
# Direct extractors


def _halves(pages: int) -> list[tuple[int, int]]:
    middle = pages // 2
    return [(0, middle), (middle, pages)]


def _pdfium_range(args: tuple[str, int, int]) -> int:
    path, start, stop = args
    pdf = pdfium.PdfDocument(path)
    chars = 0
    try:
        for index in range(start, stop):
            page = pdf[index]
            textpage = page.get_textpage()
            chars += len(textpage.get_text_range())
            textpage.close()
            page.close()
    finally:
        pdf.close()
    return chars


def _reader_range(args: tuple[str, int, int]) -> int:
    from pagemill.engines.text_layer import read_text_layer

    path, start, stop = args
    pdf = pdfium.PdfDocument(path)
    chars = 0
    try:
        for index in range(start, stop):
            page = pdf[index]
            result = read_text_layer(page, min_chars=16)
            chars += len(result.text) if result else 0
            page.close()
    finally:
        pdf.close()
    return chars


def _pdftotext_range(path: Path, start: int, stop: int, out: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        ["pdftotext", "-enc", "UTF-8", "-f", str(start + 1), "-l", str(stop), str(path), str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def time_pdftotext(path: Path, pages: int, processes: int, workdir: Path) -> tuple[float, int]:
    """Seconds for pdftotext over all pages in ``processes`` parallel page ranges; characters written."""
    ranges = [(0, pages)] if processes == 1 else _halves(pages)
    outs = [workdir / f"pdftotext-{i}.txt" for i in range(len(ranges))]
    started = time.perf_counter()
    procs = [_pdftotext_range(path, a, b, out) for (a, b), out in zip(ranges, outs, strict=True)]
    for proc in procs:
        if proc.wait() != 0:
            raise RuntimeError("pdftotext failed")
    seconds = time.perf_counter() - started
    return seconds, sum(len(out.read_text(encoding="utf-8")) for out in outs)


def time_in_processes(
    func: Callable[[tuple[str, int, int]], int], path: Path, pages: int, processes: int
) -> tuple[float, int]:
    """Seconds for ``func`` over all pages, in this process or split over a warm pool; characters read."""
    if processes == 1:
        started = time.perf_counter()
        chars = func((str(path), 0, pages))
        return time.perf_counter() - started, chars
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(processes) as pool:
        pool.map(func, [(str(path), 0, 1)] * processes)  # warm: imports and pdfium loaded in each child
        started = time.perf_counter()
        chars = sum(pool.map(func, [(str(path), a, b) for a, b in _halves(pages)]))
        return time.perf_counter() - started, chars


# --------------------------------------------------------------------------------------------------
# The service


@contextlib.contextmanager
def paired_reader(path: Path, pages: int, processes: int = 2) -> Iterator[Callable[[], float]]:
    """A warm pool of ``processes`` running Pagemill's reader bare over ``path`` (one share of the pages
    each); yields a function that times one pass, in seconds. Timed right before each service job, so each
    job has its own baseline: this machine's speed drifts by a third within minutes, and a ratio of two
    medians taken minutes apart carries that drift."""
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(processes) as pool:
        pool.map(_reader_range, [(str(path), 0, 1)] * processes)  # imports and pdfium loaded in each child

        def one_pass() -> float:
            started = time.perf_counter()
            pool.map(_reader_range, [(str(path), a, b) for a, b in _halves(pages)])
            return time.perf_counter() - started

        yield one_pass


def time_service(
    env: Mapping[str, str],
    path: Path,
    warmup: Path,
    runs: int,
    bare_pass: Callable[[], float] | None = None,
) -> tuple[list[JobRun], list[float]]:
    """``runs`` timed jobs of ``path`` (after a warm-up job of ``warmup``) on a fresh stack with ``env``;
    with ``bare_pass``, the bare reader timed right before each job (seconds, one per job)."""
    results: list[JobRun] = []
    bare: list[float] = []
    with running_stack(env, concurrency=2) as stack:
        stack.run_job(warmup, JOB_TIMEOUT_S, ocr_mode="auto")
        for run in range(runs):
            paired = ""
            if bare_pass is not None:
                bare.append(bare_pass())
                paired = f", bare reader {bare[-1]:.2f}s"
            job = stack.run_job(path, JOB_TIMEOUT_S, ocr_mode="auto")
            log(
                f"  service run {run + 1}: {job.pages} pages in {job.seconds:.2f}s "
                f"= {job.pages / job.seconds:.1f} pages/s (POST {job.submit_seconds * 1000:.0f} ms{paired})"
            )
            results.append(job)
    return results, bare


def _timing(job: JobRun, name: str) -> float:
    value = (job.job.get("timings") or {}).get(name)
    return float(value) if value is not None else float("nan")


EMBEDDED_LABEL = "embedded (SQLite, SQLite broker)"
DISTRIBUTED_LABEL = "distributed (Postgres, Redis, moto S3)"


def stack_envs(
    name: str, distributed: bool, extra: Mapping[str, str]
) -> Iterator[tuple[str, dict[str, str]]]:
    """(label, environment) of the embedded stack, then of the distributed one unless ``distributed`` is
    False, each with its own data dir, and ``extra`` on top; the services stay up while the caller runs."""
    with temp_data_dir() as data_dir:
        log(f"{name}: embedded")
        yield EMBEDDED_LABEL, {"PAGEMILL_DATA_DIR": str(data_dir), **extra}
    if distributed:
        log(f"{name}: distributed")
        services, env = distributed_env_stack()
        with services, temp_data_dir() as data_dir:
            yield DISTRIBUTED_LABEL, {**env, "PAGEMILL_DATA_DIR": str(data_dir), **extra}


def run(distributed: bool = True, runs: int = RUNS, pages: int = PAGES) -> str:
    """Run the benchmark; return the Markdown block for docs/benchmarks.md."""
    with tempfile.TemporaryDirectory(prefix="pagemill-bench-bd-") as tmp:
        workdir = Path(tmp)
        path = make_document(workdir / f"born-digital-{pages}.pdf", pages)
        warmup = make_document(workdir / "warmup.pdf", 20)
        size_mb = path.stat().st_size / 1e6
        log(f"born_digital: {pages} pages, {size_mb:.1f} MB")

        # Baselines and service alternate: baselines, embedded service, baselines again (medians).
        baseline: dict[str, list[tuple[float, int]]] = {}

        def baselines() -> None:
            timers: tuple[tuple[str, Callable[[], tuple[float, int]]], ...] = (
                ("pdftotext, 1 process", lambda: time_pdftotext(path, pages, 1, workdir)),
                ("pdftotext, 2 processes", lambda: time_pdftotext(path, pages, 2, workdir)),
                (
                    "pypdfium2 get_text_range, 1 process",
                    lambda: time_in_processes(_pdfium_range, path, pages, 1),
                ),
                (
                    "pypdfium2 get_text_range, 2 processes",
                    lambda: time_in_processes(_pdfium_range, path, pages, 2),
                ),
                (
                    "Pagemill read_text_layer in-process, 1 process",
                    lambda: time_in_processes(_reader_range, path, pages, 1),
                ),
                (
                    "Pagemill read_text_layer in-process, 2 processes",
                    lambda: time_in_processes(_reader_range, path, pages, 2),
                ),
            )
            for name, timer in timers:
                seconds, chars = timer()
                baseline.setdefault(name, []).append((seconds, chars))
                log(f"  {name}: {pages / seconds:.0f} pages/s ({chars:,} chars)")

        baselines()
        with temp_data_dir() as data_dir, paired_reader(path, pages) as bare_pass:
            embedded, embedded_bare = time_service(
                {"PAGEMILL_DATA_DIR": str(data_dir)}, path, warmup, runs, bare_pass
            )
        baselines()

        dist_runs: list[JobRun] = []
        dist_note = "not run (--no-distributed)"
        if distributed:
            log("born_digital: distributed mode (Postgres, Redis, moto S3)")
            try:
                services, env = distributed_env_stack()
                with services, temp_data_dir() as data_dir:
                    dist_env = {**env, "PAGEMILL_DATA_DIR": str(data_dir)}
                    dist_runs, _ = time_service(dist_env, path, warmup, runs)
                dist_note = ""
            except Exception as exc:  # report and go on: the embedded numbers are the target
                dist_note = f"failed: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
                log(f"  distributed mode {dist_note}")

    embedded_rate = median([j.pages / j.seconds for j in embedded])
    rates = {name: median([pages / s for s, _ in values]) for name, values in baseline.items()}
    chars = {name: values[-1][1] for name, values in baseline.items()}
    rows = []
    for name, rate in rates.items():
        rows.append([name, fmt(rate, 0), f"{chars[name]:,}", fmt(embedded_rate / rate, 2)])

    def service_row(label: str, jobs: list[JobRun], note: str = "") -> list[str]:
        if not jobs:
            return [label, "-", "-", "-", "-", "-", "-", note or "-"]
        rate_list = [j.pages / j.seconds for j in jobs]
        return [
            label,
            fmt(median(rate_list), 1),
            ", ".join(fmt(r, 1) for r in rate_list),
            fmt(median([j.seconds for j in jobs]), 2),
            fmt(median([j.submit_seconds * 1000 for j in jobs]), 0),
            fmt(median([_timing(j, "queued_ms") for j in jobs]), 0),
            fmt(median([_timing(j, "running_ms") for j in jobs]), 0),
            verdict(median(rate_list) >= TARGET_PAGES_PER_S) if label.startswith("embedded") else note or "-",
        ]

    # Target 3's ratio, job by job against the bare reader timed just before it (2 processes).
    pair_ratios = [bare_s / job.seconds for job, bare_s in zip(embedded, embedded_bare, strict=True)]
    pair_ratio = median(pair_ratios)
    service_rows = [service_row("embedded (SQLite, local blobs, SQLite broker)", embedded)]
    service_rows.append(service_row("distributed (Postgres, Redis, moto S3)", dist_runs, dist_note))
    lines = [
        "### Born-digital PDF, end to end (`python -m bench born_digital`)",
        "",
        run_stamp(),
        f"Document: {pages} pages, ~{CHARS_PER_PAGE:,} characters per page (generated, 20 pt Helvetica), "
        f"{size_mb:.1f} MB. Service: worker concurrency 2, `ocr_mode=auto`, default "
        "`pages_per_task`; timed from the POST to the markdown result fetched (queued and running: the "
        "job's own `timings`, created to started and started to finished); one warm-up job first, "
        f"then {runs} jobs, median. Target: >= {TARGET_PAGES_PER_S:.0f} pages/s embedded.",
        "",
        table(
            [
                "stack",
                "pages/s (median)",
                "runs, pages/s",
                "seconds (median)",
                "POST ms",
                "queued ms",
                "running ms",
                "target",
            ],
            service_rows,
        ),
        "",
        f"**Target 3, service / bare reader (2 processes), paired:** {fmt(pair_ratio, 2)} "
        f"(jobs: {', '.join(fmt(r, 2) for r in pair_ratios)}; target >= {TARGET_READER_RATIO}: "
        f"{verdict(pair_ratio >= TARGET_READER_RATIO)}). Each embedded job is paired with Pagemill's "
        "reader run bare on 2 processes right before it "
        f"(seconds: {', '.join(fmt(b, 2) for b in embedded_bare)}); the ratio is the bare pass's time "
        "over the job's, one per job, and their median is the figure.",
        "",
        "Direct extraction of the same file in the same run (each measured twice: before and after the "
        "embedded service; median). The last column is the embedded service's pages/s divided by the "
        "extractor's.",
        "",
        table(["extractor", "pages/s", "characters", "service / extractor"], rows),
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> str:
    """Command line: run, print, record."""
    parser = argparse.ArgumentParser(prog="python -m bench.born_digital", description=__doc__)
    parser.add_argument("--no-distributed", action="store_true", help="Skip the Postgres/Redis/S3 stack.")
    parser.add_argument("--pages", type=int, default=PAGES)
    parser.add_argument("--runs", type=int, default=RUNS)
    args = parser.parse_args(argv)
    return run_and_record(
        "born_digital", lambda: run(distributed=not args.no_distributed, runs=args.runs, pages=args.pages)
    )


if __name__ == "__main__":
    main()
