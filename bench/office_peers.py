"""The tools ``bench.office_quality`` compares, and its checks on their markdown.

- Pagemill, in this process: ``convert_document`` (as the library and the workers read a file: sniffed,
  probed in a forked sandbox, pictures read by the default OCR chain), and its reader path alone
  (``read_office`` + ``page_markdown`` of the visible pages).
- markitdown, in this process (``MarkItDown().convert(path).text_content``).
- docling's office backends, in their own venv (``scripts/install-office-peers.sh``), through
  ``bench/docling_office_runner.py`` as a subprocess.

Checks: tables parsed back from each output (pipe tables and HTML tables) against the known cells, and
numbered list items against the number the document shows.
"""

from __future__ import annotations

import html
import json
import os
import re
import subprocess
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from bench.office_known import KnownTable

REPO = Path(__file__).resolve().parents[1]
PEERS_VENV = Path(os.environ.get("PAGEMILL_OFFICE_PEERS_VENV", REPO / ".venv-peers"))
DOCLING_RUNNER = REPO / "bench" / "docling_office_runner.py"

Convert = Callable[[Path], str]

# --------------------------------------------------------------------------------------------------
# Pagemill


def pagemill_convert(path: Path) -> str:
    """``convert_document`` with default options: the markdown result (every page after its marker)."""
    from pagemill.conversion import JobOptions, convert_document

    result = convert_document(path, JobOptions())
    failed = [page for page in result.pages if not page.ok]
    if failed:
        raise RuntimeError(f"{len(failed)} page(s) failed: {failed[0].error}")
    return result.markdown


def pagemill_reader(path: Path) -> str:
    """The reader path alone: ``read_office`` + ``page_markdown`` of the pages a default job reads."""
    from pagemill.documents.kinds import sniff_file
    from pagemill.documents.office.readers import read_office
    from pagemill.documents.office.render import page_markdown
    from pagemill.documents.office.source import visible_pages
    from pagemill.jobs.options import JobOptions
    from pagemill.settings import LimitSettings

    options = JobOptions()
    read_options = options.read_options()
    with path.open("rb") as handle:
        kind = sniff_file(handle)
    document = read_office(path, kind, read_options, LimitSettings())
    return "\n\n".join(
        page_markdown(page, options.table_format.value) for page in visible_pages(document, read_options)
    )


def pagemill_readers_missing() -> list[str]:
    """The DOCX, PPTX and XLSX reader modules that are not there yet."""
    folder = REPO / "pagemill" / "documents" / "office"
    return [name for name in ("docx", "pptx", "xlsx") if not (folder / f"{name}.py").exists()]


# --------------------------------------------------------------------------------------------------
# markitdown


def markitdown_converter() -> Convert:
    """markitdown's converter (one instance: its file-type model loads once)."""
    try:
        from markitdown import MarkItDown
    except ImportError:
        raise SystemExit(
            "markitdown is not installed: .venv/bin/pip install 'markitdown[docx,pptx,xlsx]'"
        ) from None

    converter = MarkItDown()

    def convert(path: Path) -> str:
        text: str = converter.convert(str(path)).text_content
        return text

    return convert


# --------------------------------------------------------------------------------------------------
# docling (subprocess in its venv)


def docling_unavailable() -> str | None:
    """Why docling cannot run here (None when it can)."""
    python = PEERS_VENV / "bin" / "python"
    if not python.exists():
        return f"no {PEERS_VENV.name} venv: run scripts/install-office-peers.sh"
    return None


def run_docling(files: list[Path], rounds: int, timeout: float = 900) -> dict[str, Any]:
    """Markdown and per-round seconds of each file from docling's office backends (see the runner)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONPATH": ""}
    done = subprocess.run(
        [str(PEERS_VENV / "bin" / "python"), str(DOCLING_RUNNER), "--rounds", str(rounds), *map(str, files)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"docling runner exited {done.returncode}: {done.stderr[-1500:]}")
    answer: dict[str, Any] = json.loads(done.stdout)
    return answer


# --------------------------------------------------------------------------------------------------
# The files: which, and their pages independent of any tool


def corpus_files(corpus: Path) -> list[Path]:
    """The corpus' DOCX, PPTX and XLSX files that have a ``.gt.md`` reference."""
    folder = corpus / "office"
    return sorted(
        path
        for path in folder.glob("*")
        if path.suffix.lower() in (".docx", ".pptx", ".xlsx") and Path(f"{path}.gt.md").exists()
    )


def count_pages(path: Path) -> int:
    """A DOCX is one page; a PPTX its slides that are not hidden; an XLSX its visible sheets."""
    suffix = path.suffix.lower()
    if suffix == ".pptx":
        from pptx import Presentation

        return sum(1 for slide in Presentation(str(path)).slides if slide._element.get("show") != "0")
    if suffix == ".xlsx":
        from openpyxl import load_workbook

        book = load_workbook(path, read_only=True)
        try:
            return sum(1 for sheet in book.worksheets if sheet.sheet_state == "visible")
        finally:
            book.close()
    return 1


# --------------------------------------------------------------------------------------------------
# Tables back out of markdown

_SEPARATOR_CELL = re.compile(r"^:?-+:?$")
_UNESCAPED_PIPE = re.compile(r"(?<!\\)\|")


def _cell(text: str) -> str:
    text = html.unescape(text)
    text = re.sub(r"<br\s*/?>", " ", text)
    text = re.sub(r"\\([^\sa-zA-Z0-9])", r"\1", text)  # markdown escapes: \| \_ \*
    text = " ".join(text.split())
    return re.sub(r"^(\*\*|__|\*|_)(.*)\1$", r"\2", text)


def _pipe_tables(markdown: str) -> list[list[list[str]]]:
    tables: list[list[list[str]]] = []
    current: list[list[str]] = []
    for line in [*markdown.splitlines(), ""]:
        stripped = line.strip()
        if stripped.startswith("|"):
            cells = [_cell(cell) for cell in _UNESCAPED_PIPE.split(stripped.strip("|"))]
            if not all(_SEPARATOR_CELL.match(cell) for cell in cells):
                current.append(cells)
            continue
        if current:
            tables.append(current)
            current = []
    return tables


class _HtmlTables(HTMLParser):
    """Grids of the ``<table>`` elements (rowspan/colspan spread over the positions they cover)."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self._stack: list[dict[tuple[int, int], str]] = []
        self._row = -1
        self._cell: list[str] | None = None
        self._span = (1, 1)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self._stack.append({})
            self._row = -1
        elif tag == "tr" and self._stack:
            self._row += 1
        elif tag in ("td", "th") and self._stack:
            values = dict(attrs)
            self._span = (int(values.get("rowspan") or 1), int(values.get("colspan") or 1))
            self._cell = []
        elif tag == "br" and self._cell is not None:
            self._cell.append(" ")

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None and self._stack:
            grid = self._stack[-1]
            col = 0
            while (self._row, col) in grid:
                col += 1
            for r in range(self._row, self._row + self._span[0]):
                for c in range(col, col + self._span[1]):
                    grid[(r, c)] = _cell("".join(self._cell))
            self._cell = None
        elif tag == "table" and self._stack:
            grid = self._stack.pop()
            if grid:
                rows = 1 + max(r for r, _ in grid)
                cols = 1 + max(c for _, c in grid)
                self.tables.append([[grid.get((r, c), "") for c in range(cols)] for r in range(rows)])


def tables_in(markdown: str) -> list[list[list[str]]]:
    """Every table in the markdown: pipe tables and HTML tables, as rows of cell texts."""
    parser = _HtmlTables()
    parser.feed(markdown)
    return _pipe_tables(markdown) + parser.tables


def _matches(found: list[list[str]], known: KnownTable) -> bool:
    if found and not any(found[0]):
        found = found[1:]  # an empty header row that markdown needs above a table without one
    for skip in range(known.title_rows + 1):  # a title row may stand outside the table
        rows = known.rows[skip:]
        if len(found) != len(rows) or any(len(a) != len(b) for a, b in zip(found, rows, strict=True)):
            continue
        if all(
            cell == want or ((r + skip, c) in known.covered and cell == "")
            for r, (row, wanted) in enumerate(zip(found, rows, strict=True))
            for c, (cell, want) in enumerate(zip(row, wanted, strict=True))
        ):
            return True
    return False


def tables_round_trip(markdown: str, known: list[KnownTable]) -> int:
    """How many of the known tables appear in the markdown with every cell equal (whitespace folded,
    escapes and surrounding emphasis dropped; a covered position may be empty, a title row may be
    outside; one empty header row on top is allowed)."""
    found = tables_in(markdown)
    return sum(1 for table in known if any(_matches(candidate, table) for candidate in found))


def numbers_kept(markdown: str, numbered: list[tuple[str, str]]) -> int:
    """How many ordered items show the document's number before their text (``3. Book the vehicles``)."""
    lines = [_cell(line.strip()) for line in markdown.splitlines()]
    return sum(1 for number, text in numbered if f"{number} {text}" in lines)
