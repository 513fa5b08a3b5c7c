"""Office documents (DOCX, PPTX, XLSX): Pagemill's quality and speed against markitdown and docling, side by
side in one run: ``python -m bench office_quality``.

Quality, in ``docs/ocr-quality.md`` (section "Office documents"):
  (a) the shared corpus' office files (``PAGEMILL_CORPUS``, default ``../shared/corpus``; references written
      by docling), scored with the corpus' ``tools/score.py``: Pagemill's ``convert_document`` (default
      options) and markitdown, per file and mean; docling's current office backends beside them, for scale.
      Pagemill's bar: mean char_sim and word_f1 at least markitdown's.
  (b) files written at run time with known content (``bench.office_generated``), references written from
      that content: Pagemill, markitdown and docling scored the same way, plus the share of known tables
      found with every cell equal and of numbered items showing the document's number.
Speed, in ``docs/benchmarks.md`` (block ``office_quality``): pages (documents, slides, visible sheets) per
second on all those files and three large ones, medians of ``--rounds`` rounds alternating the tools, on
fresh copies (Pagemill keeps read documents by path); docling in its venv as a subprocess, timed inside it.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import shutil
import statistics
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import office_peers as peers
from bench.common import REPO, fmt, git_revision, log, machine_info, now_utc, run_and_record, run_stamp, table
from bench.ocr_quality import _load_score, write_doc_section
from bench.office_generated import QUALITY_FILES
from bench.office_known import Generated
from bench.office_large import SPEED_FILES
from bench.office_speed import speed

QUALITY_DOC = REPO / "docs" / "ocr-quality.md"
TOOLS = ("Pagemill", "markitdown", "docling")
ROUNDS = 5


@dataclass
class Outputs:
    """Each tool's markdown per file (or why it has none)."""

    markdown: dict[str, dict[Path, str]] = field(default_factory=lambda: {tool: {} for tool in TOOLS})
    errors: dict[str, dict[Path, str]] = field(default_factory=lambda: {tool: {} for tool in TOOLS})
    not_run: dict[str, str] = field(default_factory=dict)

    def convert(self, tool: str, path: Path, convert: peers.Convert) -> None:
        try:
            self.markdown[tool][path] = convert(path)
        except Exception as exc:  # one unreadable file is a row of the report, not the end of the run
            self.errors[tool][path] = f"{type(exc).__name__}: {exc}"[:200]
            log(f"  {tool} failed on {path.name}: {self.errors[tool][path]}")


def _score_cell(
    scorer: Any, ref: Path, outputs: Outputs, tool: str, path: Path
) -> tuple[str, str, float, float]:
    if tool in outputs.not_run:
        return "not run", "not run", float("nan"), float("nan")
    if path not in outputs.markdown[tool]:
        return "failed (0)", "failed (0)", 0.0, 0.0  # an unread file counts as nothing read
    result = scorer.score(str(ref), outputs.markdown[tool][path])
    return f"{result['char_sim']:.3f}", f"{result['word_f1']:.3f}", result["char_sim"], result["word_f1"]


def _mean(values: list[float]) -> float:
    kept = [v for v in values if v == v]
    return statistics.mean(kept) if kept else float("nan")


def quality_tables(
    scorer: Any, corpus: list[Path], generated: list[Generated], outputs: Outputs, refs: dict[Path, Path]
) -> tuple[str, dict[str, tuple[float, float]]]:
    """The quality section's markdown and the corpus means per tool."""
    header = ["file", *(f"{tool} {m}" for tool in TOOLS for m in ("char_sim", "word_f1"))]
    rows, sums = [], {tool: ([], []) for tool in TOOLS}
    for path in corpus:
        row = [path.name]
        for tool in TOOLS:
            cs, wf, cs_v, wf_v = _score_cell(scorer, Path(f"{path}.gt.md"), outputs, tool, path)
            row += [cs, wf]
            sums[tool][0].append(cs_v)
            sums[tool][1].append(wf_v)
        rows.append(row)
    means = {tool: (_mean(sums[tool][0]), _mean(sums[tool][1])) for tool in TOOLS}
    rows.append([f"**mean ({len(corpus)})**", *(f"**{fmt(v, 3)}**" for tool in TOOLS for v in means[tool])])
    pm, md = means["Pagemill"], means["markitdown"]
    bar = "met" if pm[0] >= md[0] and pm[1] >= md[1] else "**MISSED**"
    per_file = sum(
        a >= c and b >= d for a, b, c, d in zip(*sums["Pagemill"], *sums["markitdown"], strict=True)
    )
    corpus_md = table(header, rows) + (
        f"\n\nBar (Pagemill's mean char_sim and word_f1 at least markitdown's): {bar} "
        f"({fmt(pm[0], 3)} / {fmt(pm[1], 3)} against {fmt(md[0], 3)} / {fmt(md[1], 3)}); both at least "
        f"markitdown's on {per_file} of {len(corpus)} files."
    )
    gen_header = ["file", "pages", "tool", "char_sim", "word_f1", "tables, all cells equal", "numbers kept"]
    gen_rows, totals = [], {tool: [0, 0, 0, 0, [], []] for tool in TOOLS}
    for made in generated:
        for tool in TOOLS:
            cs, wf, cs_v, wf_v = _score_cell(scorer, refs[made.path], outputs, tool, made.path)
            text = outputs.markdown[tool].get(made.path)
            tables = peers.tables_round_trip(text, made.tables) if text is not None else 0
            numbers = peers.numbers_kept(text, made.numbered) if text is not None else 0
            total = totals[tool]
            total[0] += tables
            total[1] += len(made.tables)
            total[2] += numbers
            total[3] += len(made.numbered)
            total[4].append(cs_v)
            total[5].append(wf_v)
            ran = tool not in outputs.not_run
            gen_rows.append(
                [
                    made.path.name,
                    made.pages,
                    tool,
                    cs,
                    wf,
                    f"{tables}/{len(made.tables)}" if ran else "-",
                    f"{numbers}/{len(made.numbered)}" if ran and made.numbered else "-",
                ]
            )
    summary_rows = []
    for tool in TOOLS:
        t = totals[tool]
        if tool in outputs.not_run:
            summary_rows.append([tool, f"not run: {outputs.not_run[tool]}", "-", "-", "-"])
            continue
        summary_rows.append(
            [
                tool,
                fmt(_mean(t[4]), 3),
                fmt(_mean(t[5]), 3),
                f"{t[0]}/{t[1]} ({t[0] / max(t[1], 1):.0%})",
                f"{t[2]}/{t[3]} ({t[2] / max(t[3], 1):.0%})",
            ]
        )
    generated_md = "\n\n".join(
        [
            table(gen_header, gen_rows),
            table(
                ["tool", "mean char_sim", "mean word_f1", "table round-trip", "numbered items"], summary_rows
            ),
        ]
    )
    return corpus_md + "\n\n### Generated files (known content)\n\n" + generated_md, means


# --------------------------------------------------------------------------------------------------


_MACHINE: dict[str, str] = {}


def _versions(docling: dict[str, Any] | None, not_run: str | None) -> str:
    machine = _MACHINE or _MACHINE.update(machine_info()) or _MACHINE

    def v(name: str) -> str:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return "not installed"

    dl = (
        ", ".join(f"{k} {val}" for k, val in docling["versions"].items())
        + " (office backends only, `.venv-peers`)"
        if docling
        else f"not run: {not_run}"
    )
    return (
        f"Pagemill revision {git_revision()}; markitdown {v('markitdown')} (mammoth {v('mammoth')}, pandas "
        f"{v('pandas')}); docling: {dl}; "
        f"python-docx {v('python-docx')}, "
        f"python-pptx {v('python-pptx')}, openpyxl {v('openpyxl')}; Python {machine['Python']}; "
        f"{machine['CPU']}, {os.cpu_count()} cores"
    )


def run(corpus_root: Path, rounds: int, use_docling: bool, keep: Path | None) -> str:
    """Run everything; write the quality section; return the speed block for docs/benchmarks.md."""
    warnings.simplefilter("ignore")
    scorer = _load_score(corpus_root)
    corpus = peers.corpus_files(corpus_root)
    missing = peers.pagemill_readers_missing()
    if missing:
        log(f"Pagemill readers missing: {', '.join(missing)} (their files fail below)")
    with tempfile.TemporaryDirectory(prefix="pagemill-bench-office-gen-") as tmp:
        folder = Path(tmp)
        generated = [make(folder) for make in QUALITY_FILES]
        large = [make(folder) for make in SPEED_FILES]
        refs = {}
        for made in generated:
            refs[made.path] = folder / f"{made.path.name}.ref.md"
            refs[made.path].write_text(made.reference, encoding="utf-8")
        quality_files = corpus + [made.path for made in generated]
        outputs = Outputs()
        log(f"quality: {len(corpus)} corpus files, {len(generated)} generated files")
        markitdown = peers.markitdown_converter()
        for path in quality_files:
            outputs.convert("Pagemill", path, peers.pagemill_convert)
            outputs.convert("markitdown", path, markitdown)
        docling = None
        reason = peers.docling_unavailable() if use_docling else "--no-docling"
        if reason is None:
            try:
                log("docling: running its office backends in .venv-peers")
                docling = peers.run_docling([*quality_files, *large], rounds)
                for entry in docling["files"]:
                    if entry["error"]:
                        outputs.errors["docling"][Path(entry["path"])] = entry["error"]
                    else:
                        outputs.markdown["docling"][Path(entry["path"])] = entry["markdown"]
            except Exception as exc:
                reason = f"{type(exc).__name__}: {exc}"[:300]
        if reason is not None:
            outputs.not_run["docling"] = reason
            log(f"docling not run: {reason}")
        if keep is not None:
            _keep(keep, quality_files, refs, outputs)
        quality, means = quality_tables(scorer, corpus, generated, outputs, refs)
        speed_files = [
            p
            for p in [*quality_files, *large]
            if all(p not in outputs.errors[t] for t in ("Pagemill", "markitdown"))
        ]
        log(f"speed: {len(speed_files)} files, {rounds} rounds")
        pages = {path: peers.count_pages(path) for path in speed_files}
        speed_table = speed(speed_files, pages, rounds, docling)
    versions = _versions(docling, outputs.not_run.get("docling"))
    write_doc_section(QUALITY_DOC, "office-documents", _quality_section(quality, outputs, versions, missing))
    left_out = sorted({p.name for t in ("Pagemill", "markitdown") for p in outputs.errors[t]})
    return "\n".join(
        [
            "### Office documents: pages/s against markitdown and docling (`python -m bench office_quality`)",
            "",
            run_stamp(),
            f"{versions}. Files: the corpus' {len(corpus)} office files, {len(generated)} generated "
            "files with known content and 3 large generated ones (60 sections of text, lists "
            "and tables; 60 slides with notes; 3 sheets of 2,000 rows); a page is a document, a visible "
            f"slide or a visible sheet. In this process, {rounds} rounds alternating the order, each on "
            f"fresh copies; a warm-up pass first. docling runs in its own venv ({rounds} rounds after a "
            "warm-up pass, timed per file inside it, before the rounds here) when it runs. Wall and CPU time "
            "(this process and its reaped children; docling's process) per file: CPU holds steadier when "
            "other work shares the cores. Quality: `docs/ocr-quality.md`, section "
            f"Office documents (corpus means char_sim / word_f1: Pagemill {fmt(means['Pagemill'][0], 3)} / "
            f"{fmt(means['Pagemill'][1], 3)}, markitdown {fmt(means['markitdown'][0], 3)} / "
            f"{fmt(means['markitdown'][1], 3)})."
            + (
                f" Left out of the timing (a tool failed on them): {', '.join(left_out)}." if left_out else ""
            ),
            "",
            speed_table,
        ]
    )


def _quality_section(quality: str, outputs: Outputs, versions: str, missing: list[str]) -> str:
    failures = [
        f"{tool} on {path.name}: {error}" for tool in TOOLS for path, error in outputs.errors[tool].items()
    ]
    notes = (
        "References of the corpus were written by docling (an older version than the one run here: its "
        "scores are for scale). Generated files: `bench/office_generated.py` (the makers of "
        "`tests/support/office_files.py` and three richer files), references written from the known content; "
        "a merged cell's text stands in every position it covers (an empty covered position also passes the "
        'table check); speaker notes follow their slide, unlabelled (a tool\'s "Notes:" label costs it a '
        "word); hidden slides and sheets are left out. Pagemill: "
        "`convert_document` with default options (pictures read by the default OCR engine)."
    )
    parts = [
        "## Office documents",
        f"Written by `python -m bench office_quality` ({now_utc()}). {versions}.",
        notes,
        "### Corpus (references by docling)",
        quality,
    ]
    if missing:
        parts.append(f"Pagemill readers missing at this run: {', '.join(missing)}.")
    if failures:
        parts.append("Failures:\n\n" + "\n".join(f"- {line}" for line in failures))
    return "\n\n".join(parts)


def _keep(folder: Path, files: list[Path], refs: dict[Path, Path], outputs: Outputs) -> None:
    """Each tool's markdown and each reference, for reading the differences."""
    folder.mkdir(parents=True, exist_ok=True)
    for path in files:
        ref = refs.get(path, Path(f"{path}.gt.md"))
        shutil.copyfile(ref, folder / f"{path.name}.ref.md")
        for tool in TOOLS:
            text = outputs.markdown[tool].get(path)
            if text is not None:
                (folder / f"{path.name}.{tool}.md").write_text(text, encoding="utf-8")


def main(argv: list[str] | None = None) -> str:
    """Command line: run, print, record."""
    parser = argparse.ArgumentParser(prog="python -m bench.office_quality", description=__doc__)
    parser.add_argument("--rounds", type=int, default=ROUNDS, help="timed rounds per tool")
    parser.add_argument("--no-docling", action="store_true", help="leave docling out (reported as not run)")
    parser.add_argument("--keep", type=Path, help="write every tool's markdown and the references here")
    args = parser.parse_args(argv)
    corpus = Path(os.environ.get("PAGEMILL_CORPUS", REPO.parent / "shared" / "corpus")).resolve()
    return run_and_record("office_quality", lambda: run(corpus, args.rounds, not args.no_docling, args.keep))


if __name__ == "__main__":
    main()
