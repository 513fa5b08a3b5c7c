"""docling's office backends on files, in docling's own venv: markdown and timings as one JSON document.

    .venv-peers/bin/python bench/docling_office_runner.py [--rounds N] FILE...

Run by ``bench.office_quality`` (``scripts/install-office-peers.sh`` makes the venv). Imports only the
standard library and docling: it does not run in Pagemill's venv. The backends are called as docling's
SimplePipeline calls them for DOCX, PPTX and XLSX (``InputDocument`` + ``backend.convert()``, then
``export_to_markdown()``); ``docling.document_converter`` cannot be imported without torch. One warm-up
pass over the files, then ``--rounds`` timed passes; the markdown is the warm-up pass's.

Output: ``{"versions": {...}, "files": [{"path", "markdown", "seconds", "cpu_seconds", "error"}]}``, seconds
(wall) and CPU seconds of this process per round.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import logging
import sys
import time
import warnings
from pathlib import Path
from typing import Any


def _backends() -> dict[str, tuple[Any, Any]]:
    from docling.backend.msexcel_backend import MsExcelDocumentBackend
    from docling.backend.mspowerpoint_backend import MsPowerpointDocumentBackend
    from docling.backend.msword_backend import MsWordDocumentBackend
    from docling.datamodel.base_models import InputFormat

    return {
        ".docx": (InputFormat.DOCX, MsWordDocumentBackend),
        ".pptx": (InputFormat.PPTX, MsPowerpointDocumentBackend),
        ".xlsx": (InputFormat.XLSX, MsExcelDocumentBackend),
    }


def convert(path: Path, backends: dict[str, tuple[Any, Any]]) -> str:
    """The file's markdown as docling writes it."""
    from docling.datamodel.document import InputDocument

    fmt, backend = backends[path.suffix.lower()]
    document = InputDocument(path_or_stream=path, format=fmt, backend=backend)
    if not document.valid:
        raise RuntimeError(f"docling refused the file: {getattr(document, '_rejection', None)}")
    markdown: str = document._backend.convert().export_to_markdown()
    return markdown


def main() -> None:
    """Convert the files, print the JSON document."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("files", nargs="+", type=Path)
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    warnings.simplefilter("ignore")
    answer, sys.stdout = sys.stdout, sys.stderr  # whatever docling prints must not mix with the JSON
    backends = _backends()
    results: list[dict[str, Any]] = []
    for path in args.files:
        entry: dict[str, Any] = {"path": str(path), "markdown": None, "seconds": [], "cpu_seconds": []}
        entry["error"] = None
        try:
            entry["markdown"] = convert(path, backends)
        except Exception as exc:  # a file docling cannot read is reported, not fatal
            entry["error"] = f"{type(exc).__name__}: {exc}"[:300]
        results.append(entry)
    for _ in range(args.rounds):
        for entry in results:
            if entry["error"]:
                continue
            started, cpu = time.perf_counter(), time.process_time()
            convert(Path(entry["path"]), backends)
            entry["seconds"].append(time.perf_counter() - started)
            entry["cpu_seconds"].append(time.process_time() - cpu)
    versions = {name: importlib.metadata.version(name) for name in ("docling-slim", "docling-core")}
    json.dump({"versions": versions, "files": results}, answer)


if __name__ == "__main__":
    main()
