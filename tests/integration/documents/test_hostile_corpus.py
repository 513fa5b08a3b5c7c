"""Every file of the hostile corpus goes through sniff -> probe -> render and ends as the table says.

The corpus lives outside the repository (``PAGEMILL_CORPUS``, default ``<repo>/../shared/corpus``). A file
in its ``hostile/`` folder that the table below does not classify fails the run: someone must decide what it
should do before it counts as covered.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from pagemill.documents.kinds import SNIFF_BYTES, DocumentKind, sniff
from pagemill.documents.probe import probe_document
from pagemill.documents.source import open_source
from pagemill.errors import PagemillError
from pagemill.settings import LimitSettings

pytestmark = [pytest.mark.integration, pytest.mark.corpus]

REPO_ROOT = Path(__file__).resolve().parents[3]
CORPUS = Path(os.environ.get("PAGEMILL_CORPUS") or REPO_ROOT / ".." / "shared" / "corpus").resolve()
HOSTILE = CORPUS / "hostile"
if not HOSTILE.is_dir():
    pytest.skip(f"hostile corpus not found at {HOSTILE} (set PAGEMILL_CORPUS)", allow_module_level=True)

OK = "OK"
MB = 1024 * 1024


@dataclass(frozen=True)
class Case:
    """One file (with one password) and what must happen: an error code, or OK with its kind and pages."""

    file: str
    expected: str
    password: str | None = None
    kind: DocumentKind | None = None
    pages: int | None = None


def _ok(file: str, kind: DocumentKind, pages: int = 1, password: str | None = None) -> Case:
    return Case(file, OK, password, kind, pages)


PDF, PNG, JPEG = DocumentKind.PDF, DocumentKind.PNG, DocumentKind.JPEG
CASES: list[Case] = [
    # Not a PDF inside, whatever the name: content decides.
    Case("docling__corrupted.pdf", "UNSUPPORTED_TYPE"),
    Case("qpdf__bad1.pdf", "UNSUPPORTED_TYPE"),
    Case("qpdf__issue-147.pdf", "UNSUPPORTED_TYPE"),
    Case("qpdf__issue-150.pdf", "UNSUPPORTED_TYPE"),
    Case("gen__docx_zip_bomb_300MB.docx", "ARCHIVE_BOMB"),  # refused from its zip directory, never inflated
    Case("gen__empty.pdf", "EMPTY_FILE"),
    _ok("gen__pdf_named_as.png", PDF),
    # Passwords (README): user passwords open, none or a wrong one are told apart.
    Case("docling__pw1234_2206.01062_pg3.pdf", "ENCRYPTED_FILE"),
    Case("docling__pw1234_2206.01062_pg3.pdf", "WRONG_PASSWORD", password="4321"),
    _ok("docling__pw1234_2206.01062_pg3.pdf", PDF, password="1234"),
    Case("pysf__libreoffice-writer-password.pdf", "ENCRYPTED_FILE"),
    Case("pysf__libreoffice-writer-password.pdf", "WRONG_PASSWORD", password="closedpassword"),
    _ok("pysf__libreoffice-writer-password.pdf", PDF, password="openpassword"),
    _ok("pypdf__r4-owner-password.pdf", PDF),
    # Size bombs: refused from the header, or rendered within the pixel budget.
    Case("gen__png_bomb_60000x60000.png", "IMAGE_TOO_LARGE"),
    Case("gen__jpeg_header_65500x65500.jpg", "IMAGE_TOO_LARGE"),
    Case("gen__pdf_10000_pages.pdf", "TOO_MANY_PAGES"),
    _ok("gen__pdf_huge_mediabox.pdf", PDF),
    # Damaged images: found by decoding in the probe child.
    Case("pillow__broken.png", "CORRUPT_FILE"),
    Case("pillow__broken_data_stream.png", "CORRUPT_FILE"),
    Case("pillow__truncated_end_chunk.png", "CORRUPT_FILE"),
    Case("pillow__libtiff_segfault.tif", "CORRUPT_FILE"),
    Case("pillow__oom-225817ca0f8c663be7ab4b9e717b02c661e66834.tif", "CORRUPT_FILE"),
    _ok("pillow__junk_jpeg_header.jpg", JPEG),
    # Damaged PDFs that pdfium repairs: they must still give a page.
    _ok("qpdf__bad-xref.pdf", PDF),
    _ok("qpdf__broken-lzw.pdf", PDF),
    _ok("qpdf__damaged-stream.pdf", PDF),
]


def _outcome(
    path: Path, password: str | None, limits: LimitSettings
) -> tuple[str, DocumentKind | None, int | None]:
    """Run the pipeline's document steps; return (error code or OK, kind, pages)."""
    try:
        with path.open("rb") as file:
            kind = sniff(file.read(SNIFF_BYTES))
        info = probe_document(path, kind, password=password, limits=limits)
        with open_source(path, kind, password=password, limits=limits) as source:
            assert source.page_count == info.page_count
            page = source.render(0, 300)
            assert page.mode in ("RGB", "L")
            if kind is DocumentKind.PDF:
                assert page.width * page.height <= limits.render_max_pixels
    except PagemillError as exc:
        return exc.code, None, None
    return OK, kind, info.page_count


def test_every_hostile_file_is_classified() -> None:
    on_disk = {path.name for path in HOSTILE.iterdir() if path.is_file()}
    classified = {case.file for case in CASES}
    assert not on_disk - classified, (
        f"classify these new hostile files in CASES: {sorted(on_disk - classified)}"
    )
    assert not classified - on_disk, f"gone from {HOSTILE}: {sorted(classified - on_disk)}"


@pytest.mark.parametrize(
    "case", CASES, ids=[f"{c.file}:{c.password}" if c.password else c.file for c in CASES]
)
def test_hostile_file(case: Case) -> None:
    expected = (case.expected, case.kind, case.pages)
    assert _outcome(HOSTILE / case.file, case.password, LimitSettings()) == expected


def test_owner_password_file_reports_encryption() -> None:
    info = probe_document(
        HOSTILE / "pypdf__r4-owner-password.pdf", DocumentKind.PDF, password=None, limits=LimitSettings()
    )
    assert info.encrypted


def test_ten_thousand_pages_open_with_a_higher_limit(record_property: Callable[[str, object], None]) -> None:
    limits = LimitSettings(max_pages=10_000)
    path = HOSTILE / "gen__pdf_10000_pages.pdf"
    assert _outcome(path, None, limits) == (OK, DocumentKind.PDF, 10_000)
    info = probe_document(path, DocumentKind.PDF, password=None, limits=limits)
    assert info.peak_rss_bytes is not None
    # Recorded only: the child's peak includes pages it shares copy-on-write with this (pytest) process.
    record_property("probe_child_peak_rss_mb", round(info.peak_rss_bytes / MB, 1))


def test_ten_thousand_pages_worker_memory(record_property: Callable[[str, object], None]) -> None:
    """A fresh process (like a worker) probes, opens and renders page 0 within the 500 MB target."""
    script = textwrap.dedent(
        """
        import json, sys
        from pathlib import Path
        from pagemill.documents.kinds import DocumentKind
        from pagemill.documents.probe import probe_document
        from pagemill.documents.source import open_source
        from pagemill.settings import LimitSettings
        path, limits = Path(sys.argv[1]), LimitSettings(max_pages=10_000)
        info = probe_document(path, DocumentKind.PDF, password=None, limits=limits)
        with open_source(path, DocumentKind.PDF, password=None, limits=limits) as source:
            source.render(0, 300)
            source.render(source.page_count - 1, 300)
        # VmHWM, not ru_maxrss: after fork+exec ru_maxrss still carries the forking parent's (pytest's) peak.
        status = Path("/proc/self/status").read_text()
        worker_kb = int(status.split("VmHWM:")[1].split()[0])
        print(json.dumps({"worker_kb": worker_kb, "child_bytes": info.peak_rss_bytes}))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(HOSTILE / "gen__pdf_10000_pages.pdf")],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    usage = json.loads(done.stdout.strip().splitlines()[-1])
    worker_mb, child_mb = usage["worker_kb"] / 1024, usage["child_bytes"] / MB
    record_property("worker_peak_rss_mb", round(worker_mb, 1))
    record_property("probe_child_peak_rss_mb_fresh", round(child_mb, 1))
    print(f"10,000-page PDF: worker peak RSS {worker_mb:.0f} MB, probe child peak RSS {child_mb:.0f} MB")
    assert worker_mb < 500
    assert child_mb < 500
