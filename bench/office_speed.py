"""The speed part of ``bench.office_quality``: pages per second of each tool on the same files, same run.

Wall time and CPU time are both taken per file: these machines are shared, and CPU seconds (this process
and its reaped children: Pagemill's sandboxed probe, OCR) hold much steadier than wall seconds when other
work shares the cores. Rounds alternate the order of the tools; each round reads fresh copies of the files,
as Pagemill keeps a few read documents by path.
"""

from __future__ import annotations

import resource
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import office_peers as peers
from bench.common import fmt, log, table

# A tool's seconds per file in each round: (wall, CPU).
Runs = list[dict[Path, tuple[float, float]]]
GROUPS = {"all": "all, pages/s", ".docx": "DOCX docs/s", ".pptx": "PPTX slides/s", ".xlsx": "XLSX sheets/s"}


def _text_layer_convert(path: Path) -> str:
    from pagemill.conversion import JobOptions, OcrMode, convert_document

    return convert_document(path, JobOptions(ocr_mode=OcrMode.TEXT_LAYER)).markdown


def _cpu() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _timed_rounds(timed: dict[str, Callable[[Path], str]], files: list[Path], rounds: int) -> dict[str, Runs]:
    runs: dict[str, Runs] = {name: [] for name in timed}
    for round_ in range(rounds):
        for name in list(timed) if round_ % 2 == 0 else list(reversed(timed)):
            with tempfile.TemporaryDirectory(prefix="pagemill-bench-office-") as tmp:
                copies = {path: Path(shutil.copy2(path, Path(tmp) / path.name)) for path in files}
                spent: dict[Path, tuple[float, float]] = {}
                for path, copy in copies.items():
                    wall, cpu = time.perf_counter(), _cpu()
                    timed[name](copy)
                    spent[path] = (time.perf_counter() - wall, _cpu() - cpu)
                runs[name].append(spent)
        log(f"  speed round {round_ + 1}/{rounds} done")
    return runs


def speed(files: list[Path], pages: dict[Path, int], rounds: int, docling: dict[str, Any] | None) -> str:
    """Pages/s per tool, per format and overall (medians of rounds), wall and CPU, and the ratios to
    markitdown (medians of the rounds' ratios)."""
    timed: dict[str, Callable[[Path], str]] = {
        "Pagemill reader (read_office + render)": peers.pagemill_reader,
        "Pagemill convert_document (default: pictures OCR'd)": peers.pagemill_convert,
        "Pagemill convert_document (ocr_mode=text_layer)": _text_layer_convert,
        "markitdown": peers.markitdown_converter(),
    }
    failing: set[Path] = set()
    for name, convert in timed.items():  # warm-up: imports, models, first reads
        for path in files:
            try:
                convert(path)
            except Exception as exc:
                log(f"  {name} failed on {path.name} ({type(exc).__name__}): left out of the timing")
                failing.add(path)
    files = [path for path in files if path not in failing]
    runs = _timed_rounds(timed, files, rounds)
    if docling is not None:
        by_path = {Path(entry["path"]): entry for entry in docling["files"]}
        n = min(len(by_path[path]["seconds"]) for path in files)
        runs["docling (in its venv, timed inside it)"] = [
            {p: (by_path[p]["seconds"][i], by_path[p]["cpu_seconds"][i]) for p in files} for i in range(n)
        ]
    groups = {"all": files, **{g: [p for p in files if p.suffix == g] for g in GROUPS if g != "all"}}
    groups = {g: fs for g, fs in groups.items() if fs}

    def rates(name: str, group: str, which: int) -> list[float]:
        fs = groups[group]
        return [sum(pages[p] for p in fs) / sum(r[p][which] for p in fs) for r in runs[name]]

    def ratio(name: str, which: int) -> str:
        pairs = zip(rates(name, "all", which), rates("markitdown", "all", which), strict=False)
        return fmt(statistics.median([a / b for a, b in pairs]), 2)

    rows = [
        [
            name,
            *(fmt(statistics.median(rates(name, g, 0)), 1) for g in groups),
            ", ".join(fmt(v, 1) for v in rates(name, "all", 0)),
            fmt(statistics.median(rates(name, "all", 1)), 1),
            ratio(name, 0),
            ratio(name, 1),
        ]
        for name in runs
    ]
    header = [
        "tool",
        *(f"{GROUPS[g]} ({sum(pages[p] for p in fs)} in {len(fs)} files)" for g, fs in groups.items()),
        "rounds, all pages/s",
        "all, pages per CPU second",
        "ratio to markitdown, wall",
        "ratio to markitdown, CPU",
    ]
    return table(header, rows)
