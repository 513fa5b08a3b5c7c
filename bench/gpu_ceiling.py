"""GPU path at a fast server: one GPU worker against a 48 pages/s vLLM simulator, rendering in its threads
(as before) vs. in its render processes. ``python -m bench.gpu_ceiling``

The same stack and document as :mod:`bench.gpu_saturation` (300 image-only scanned pages, ``engine=vllm``,
distributed mode), with a simulator of 64 slots holding each page 1.33 s: capacity = 64 x 1000 / (200 + 800
x 1.4167) = 48 pages/s. The GPU worker is told the server's ``max_num_seqs`` and keeps 128 pages in flight.
Compared, alternating rounds on a fresh GPU worker each: ``thread`` (``worker.render_processes=0``: every
page rendered under the process-wide pdfium lock in the worker's threads) and ``pool`` (the default: one
render process per core).

Besides the service ratios of :mod:`bench.gpu_saturation` it reports where the CPU goes per page: the GPU
worker's own process (Celery, database, HTTP to the server), its render processes (render, scale, JPEG,
base64), and the other processes the benchmark started (API, CPU worker, simulator, Redis, S3; Postgres is
the machine's and is not counted). And the best end-to-end ratio any client could reach on this simulator:
300 pages all queued at once finish in ceil(300 / 64) slot times of 1.33 s, 6.67 s against 6.25 s, 0.94.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common import log, median, run_and_record, table, tree_cpu_seconds, verdict
from bench.gpu_saturation import CHARS_PER_PAGE, JOB_TIMEOUT_S, capacity_of, make_document, measure
from bench.report import Measure, measure_rows, results_block
from bench.sim_sampling import RoundResult
from bench.stacks import GpuStack, distributed_gpu_stack
from pagemill.documents.kinds import DocumentKind
from pagemill.documents.render_pool import RenderPool, default_render_processes
from pagemill.documents.source import open_source
from pagemill.engines.page_image import ImageSpec, encode_image
from pagemill.settings import LimitSettings
from tests.support.simulator import SimulatorHandle, vllm_simulator

PAGES = 300
ROUNDS = 3
SLOTS = 64
CAPACITY = 48.0
# Each page holds its slot SLOTS / CAPACITY = 1.33 s: 200 ms of prefill and 800 tokens of 1.4167 ms.
SIM_OPTIONS: dict[str, Any] = {
    "max_num_seqs": SLOTS,
    "prefill_ms": 200,
    "ms_per_token": (SLOTS * 1000 / CAPACITY - 200) / 800,
    "tokens": 800,
}
RENDER = {"thread": {"PAGEMILL_WORKER__RENDER_PROCESSES": "0"}, "pool": {}}
"""Compared: pages rendered in the GPU worker's threads, and in its render processes (one per core)."""
STEADY_TARGET = 0.95
E2E_TARGET = 0.90
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def own_cpu_seconds(pid: int) -> float:
    """User + system CPU of ``pid`` itself (no children)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


@dataclass
class Round:
    """One measured job and where its CPU went, ms per page."""

    result: RoundResult
    worker_ms: float
    render_ms: float
    others_ms: float


@dataclass
class Config:
    """One way of rendering, and its rounds."""

    render: str
    in_flight: int = 0
    rounds: list[Round] = field(default_factory=list)
    render_only: list[tuple[float, float]] = field(default_factory=list)
    """(pages/s, CPU ms/page) of rendering alone, per round."""


def render_only(path: Path, pages: int, render: str) -> tuple[float, float]:
    """Pages/s and CPU ms/page of rendering and encoding ``pages`` pages for the generic preset from 2 x 64
    threads of this process, as a GPU worker does but without server or database: in the threads under
    the pdfium lock (``thread``) or through a render pool of one process per core (``pool``)."""
    limits, spec = LimitSettings(), ImageSpec(max_side=1600)
    pool = (
        RenderPool(default_render_processes(), memory_mb=limits.probe_memory_mb) if render == "pool" else None
    )
    with (
        open_source(path, DocumentKind.PDF, password=None, limits=limits) as source,
        ThreadPoolExecutor(2 * SLOTS) as threads,
    ):
        origin = source.origin
        assert origin is not None

        def one(index: int) -> None:
            if pool is not None:
                pool.render(origin, index, dpi=300, spec=spec, limits=limits)
            else:
                encode_image(source.render(index, dpi=300, max_side=spec.max_side), spec)

        list(threads.map(one, range(8)))  # warm-up: the render processes start, as in a running worker
        cpu0, started = tree_cpu_seconds(os.getpid()), time.perf_counter()
        list(threads.map(one, range(pages)))
        seconds = time.perf_counter() - started
    if pool is not None:
        pool.close()  # its processes are reaped: their CPU is counted as this process's children's
    return pages / seconds, 1000 * (tree_cpu_seconds(os.getpid()) - cpu0) / pages


def best_e2e_ratio(pages: int, slots: int, capacity: float) -> float:
    """The end-to-end ratio of a client that queues every page at once: whole waves of slot time."""
    slot_s = slots / capacity
    return (pages / capacity) / (math.ceil(pages / slots) * slot_s)


def measure_round(stack: GpuStack, config: Config, sim: SimulatorHandle, path: Path, pages: int) -> Round:
    """A fresh GPU worker rendering as ``config`` says, a warm-up job, then the measured job."""
    warmup = path.with_name("warmup.pdf")
    with stack.gpu("auto", RENDER[config.render]) as (worker, config.in_flight, _):
        stack.wait(stack.submit(warmup), JOB_TIMEOUT_S)
        bench = os.getpid()
        tree0, own0, all0 = tree_cpu_seconds(worker.pid), own_cpu_seconds(worker.pid), tree_cpu_seconds(bench)
        result = measure(stack, worker, sim, path, pages, SLOTS)
        tree1, own1, all1 = tree_cpu_seconds(worker.pid), own_cpu_seconds(worker.pid), tree_cpu_seconds(bench)
    per_page = 1000.0 / pages
    gpu_worker = tree1 - tree0
    return Round(
        result=result,
        worker_ms=(own1 - own0) * per_page,
        render_ms=(gpu_worker - (own1 - own0)) * per_page,
        # The bench process's own sampling and polling is counted here too; it is small.
        others_ms=((all1 - all0) - gpu_worker) * per_page,
    )


def run(pages: int = PAGES, rounds: int = ROUNDS, renders: tuple[str, ...] = ("thread", "pool")) -> str:
    """Run the comparison; return the Markdown block for docs/benchmarks.md."""
    capacity = capacity_of(SIM_OPTIONS)
    configs = [Config(render) for render in renders]
    with contextlib.ExitStack() as outer:
        tmp = Path(outer.enter_context(tempfile.TemporaryDirectory(prefix="pagemill-bench-gpu-")))
        path = make_document(tmp / "scanned.pdf", pages)
        make_document(tmp / "warmup.pdf", 4)
        for _ in range(rounds):  # before the stack is up: nothing else of ours runs
            for config in configs:
                config.render_only.append(render_only(path, pages, config.render))
                rate, cpu = config.render_only[-1]
                log(f"  render only, {config.render}: {rate:.1f} pages/s, {cpu:.1f} CPU ms/page")
        sim = outer.enter_context(vllm_simulator(**SIM_OPTIONS))
        engine_env = {
            "PAGEMILL_ENGINES__DEFAULT": "vllm",
            "PAGEMILL_ENGINES__FALLBACK": "[]",
            "PAGEMILL_ENGINES__VLLM__BASE_URL": sim.base_url,
            "PAGEMILL_ENGINES__VLLM__MAX_NUM_SEQS": str(SLOTS),
        }
        stack = outer.enter_context(distributed_gpu_stack(engine_env))
        log(f"gpu_ceiling: stack up; simulator capacity {capacity:.2f} pages/s")
        for number in range(rounds):
            for config in configs:
                found = measure_round(stack, config, sim, path, pages)
                config.rounds.append(found)
                r = found.result
                log(
                    f"  round {number + 1}, render {config.render}: steady {r.steady_pages_per_s:.2f} "
                    f"pages/s (ratio {r.steady_pages_per_s / capacity:.3f}), e2e {r.e2e_pages_per_s:.2f} "
                    f"pages/s in {r.seconds:.1f}s; running {r.mean_running_steady:.1f}; CPU ms/page: worker "
                    f"{found.worker_ms:.0f}, render processes {found.render_ms:.0f}, others "
                    f"{found.others_ms:.0f}"
                )
    return report(configs, pages, capacity)


def report(configs: list[Config], pages: int, capacity: float) -> str:
    """The Markdown block: one column per way of rendering, medians with the rounds in brackets."""
    measures: list[Measure[Round]] = [
        ("steady-state pages/s (simulator completions)", lambda r: r.result.steady_pages_per_s, 2),
        ("**steady-state pages/s / capacity**", lambda r: r.result.steady_pages_per_s / capacity, 3),
        ("**end-to-end pages/s / capacity**", lambda r: r.result.e2e_pages_per_s / capacity, 3),
        ("job seconds (POST to succeeded)", lambda r: r.result.seconds, 1),
        (
            f"mean vllm:num_requests_running, steady window (of {SLOTS})",
            lambda r: r.result.mean_running_steady,
            1,
        ),
        ("share of busy time with work waiting, steady window", lambda r: r.result.waiting_share_steady, 3),
        ("page latency median, ms", lambda r: r.result.latency_median_ms, 0),
        ("page latency p95, ms", lambda r: r.result.latency_p95_ms, 0),
        ("GPU worker process CPU ms/page", lambda r: r.worker_ms, 1),
        ("render processes CPU ms/page", lambda r: r.render_ms, 1),
        ("**GPU worker CPU ms/page, total**", lambda r: r.worker_ms + r.render_ms, 1),
        ("API, CPU worker, simulator, Redis, S3: CPU ms/page", lambda r: r.others_ms, 1),
        ("simulator errors", lambda r: float(r.result.sim_errors), 0),
    ]
    header = ["measure"] + [f"render: {c.render} ({c.in_flight} in flight)" for c in configs]
    render_only_measures: list[Measure[tuple[float, float]]] = [
        ("render only (no server, no database): pages/s", lambda rate_and_ms: rate_and_ms[0], 1),
        ("render only: CPU ms/page", lambda rate_and_ms: rate_and_ms[1], 1),
    ]
    rows = measure_rows(measures, [c.rounds for c in configs])
    rows += measure_rows(render_only_measures, [c.render_only for c in configs])
    verdicts = []
    for c in configs:
        steady = median([r.result.steady_pages_per_s / capacity for r in c.rounds])
        e2e = median([r.result.e2e_pages_per_s / capacity for r in c.rounds])
        verdicts.append(
            f"{c.render}: steady {verdict(steady >= STEADY_TARGET)}, end to end {verdict(e2e >= E2E_TARGET)}"
        )
    o = SIM_OPTIONS
    return results_block(
        "### GPU path at 48 pages/s: rendering in threads vs. in render processes "
        "(`python -m bench.gpu_ceiling`)",
        f"Document: {pages} image-only pages (one 300-DPI US Letter scan of ~{CHARS_PER_PAGE:,} characters "
        "repeated), `ocr_mode=ocr`, `engine=vllm` (preset generic: rendered straight at 1,600 px longest "
        "side, JPEG q90). Stack: distributed (Postgres, Redis, moto S3); `pagemill api`, a CPU worker "
        "(ingest,cpu; concurrency 1), a GPU worker (gpu; threads; `max_num_seqs` set, so 2 x 64 in flight). "
        f"Simulator: max_num_seqs {o['max_num_seqs']}, prefill {o['prefill_ms']} ms, {o['ms_per_token']:.4f} "
        f"ms/token, {o['tokens']} tokens/page: capacity **{capacity:.2f} pages/s**; the best end-to-end "
        f"ratio any client reaches on it with {pages} pages is "
        f"{best_e2e_ratio(pages, SLOTS, capacity):.3f} (whole waves of 1.33 s). "
        f"{len(configs[0].rounds) if configs else 0} rounds per configuration, alternating, each on a fresh "
        "GPU worker after a 4-page warm-up; medians, the rounds in brackets. `thread`: "
        "`worker.render_processes=0`, pages rendered in the worker's threads under the pdfium lock; `pool`: "
        "the default, one render process per core. Steady state, waiting share and latency as in "
        "`gpu_saturation`. CPU: the GPU worker process itself, its render processes, and the other "
        "processes the benchmark started (the machine's Postgres is not counted). Render only: the same "
        "pages rendered and encoded from 128 threads of the benchmark process, without server or database "
        "(before the stack starts).",
        table(header, rows),
        f"Targets (steady >= {STEADY_TARGET}, end to end >= {E2E_TARGET}): {'; '.join(verdicts)}.",
    )


def main(argv: list[str] | None = None) -> str:
    """Command line: run, print, record (block ``gpu_ceiling``)."""
    parser = argparse.ArgumentParser(prog="python -m bench.gpu_ceiling", description=__doc__)
    parser.add_argument("--pages", type=int, default=PAGES)
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--render", nargs="+", choices=sorted(RENDER), default=["thread", "pool"])
    args = parser.parse_args(argv)
    return run_and_record(
        "gpu_ceiling", lambda: run(pages=args.pages, rounds=args.rounds, renders=tuple(args.render))
    )


if __name__ == "__main__":
    main()
