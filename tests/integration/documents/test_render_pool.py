"""The GPU worker's render processes: a page rendered there is the page rendered in a thread, and whatever
happens to a render process stays with its page (a retry, or a clean page error), never a hung thread."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pagemill.documents.kinds import DocumentKind
from pagemill.documents.render_pool import RenderedPage, RenderPool, SourceMissing
from pagemill.documents.source import DocumentSource, open_source
from pagemill.engines.base import PageResult
from pagemill.engines.page_image import EncodedImage, ImageSpec, encode_image
from pagemill.errors import EngineFailed, InvalidPageRange, ProcessingError, ProcessingTimeout, WorkerCrashed
from pagemill.jobs import reading
from pagemill.settings import LimitSettings, Settings
from tests.support.documents import make_scanned_pdf, make_text_image

pytestmark = pytest.mark.integration

LIMITS = LimitSettings()
JPEG = ImageSpec(max_side=1600)
PNG_28 = ImageSpec(max_side=900, multiple=28, format="png")
REPO_ROOT = Path(__file__).resolve().parents[3]


def make_slow_pdf(path: Path, segments: int) -> Path:
    """One page of ``segments`` random hairlines: a second or more for pdfium to render at 1,600 px."""
    rng = random.Random(1)
    ops = [b"0.2 w"]
    for _ in range(segments):
        ops.append(b"%.1f %.1f m %.1f %.1f l S" % tuple(rng.uniform(0, 600) for _ in range(4)))
    content = b"\n".join(ops)
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R >>",
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
    ]
    out = bytearray(b"%PDF-1.7\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref_at = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{offset:010d} 00000 n \n".encode() for offset in offsets)
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref_at}\n%%EOF\n".encode()
    path.write_bytes(bytes(out))
    return path


@pytest.fixture
def pool() -> Iterator[RenderPool]:
    render_pool = RenderPool(2, memory_mb=LIMITS.probe_memory_mb)
    try:
        yield render_pool
    finally:
        render_pool.close()


@pytest.fixture
def scan(tmp_path: Path) -> Iterator[DocumentSource]:
    path = make_scanned_pdf(tmp_path / "scan.pdf", ["The first page of a scan.", "And its second page."])
    with open_source(path, DocumentKind.PDF, password=None, limits=LIMITS) as source:
        yield source


def render(pool: RenderPool, source: DocumentSource, index: int = 0, spec: ImageSpec = JPEG) -> RenderedPage:
    assert source.origin is not None
    return pool.render(source.origin, index, dpi=300, spec=spec, limits=LIMITS)


def in_background(call: Callable[[], RenderedPage]) -> tuple[threading.Thread, dict[str, object]]:
    outcome: dict[str, object] = {}

    def run() -> None:
        try:
            outcome["page"] = call()
        except Exception as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


def running(pid: int) -> bool:
    """True while ``pid`` runs (a zombie waiting for its new parent to reap it has left)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def open_pdf(path: Path, limits: LimitSettings = LIMITS) -> DocumentSource:
    return open_source(path, DocumentKind.PDF, password=None, limits=limits)


def wait_for(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


@pytest.mark.parametrize("spec", [JPEG, PNG_28], ids=["jpeg", "png-multiple-of-28"])
def test_a_page_from_the_pool_is_the_page_rendered_in_thread(
    pool: RenderPool, scan: DocumentSource, spec: ImageSpec
) -> None:
    for index in (1, 0):
        page = render(pool, scan, index, spec)
        assert page.image == encode_image(scan.render(index, dpi=300, max_side=spec.max_side), spec)
        assert page.render_ms > 0 and page.encode_ms > 0
    assert max(page.image.size) <= spec.max_side


def test_images_go_through_the_pool_too(pool: RenderPool, tmp_path: Path) -> None:
    path = make_text_image(tmp_path / "page.png", "A photographed page.", fmt="PNG")
    with open_source(path, DocumentKind.PNG, password=None, limits=LIMITS) as source:
        assert render(pool, source).image == encode_image(source.render(0, dpi=300, max_side=1600), JPEG)


def test_document_errors_come_back_as_the_same_errors(pool: RenderPool, scan: DocumentSource) -> None:
    with pytest.raises(InvalidPageRange) as raised:
        render(pool, scan, index=7)
    assert raised.value.details == {"page": 7, "page_count": 2}
    render(pool, scan)  # the process that answered the error goes on


def test_a_render_process_killed_mid_page_is_replaced_and_the_page_read(
    pool: RenderPool, scan: DocumentSource, tmp_path: Path
) -> None:
    render(pool, scan)  # a process is up, past its start-up
    (victim,) = pool.pids()
    with open_pdf(make_slow_pdf(tmp_path / "slow.pdf", 20_000)) as slow:
        thread, outcome = in_background(lambda: render(pool, slow))
        time.sleep(0.3)
        os.kill(victim, signal.SIGKILL)
        thread.join(60)
        page = outcome.get("page")
        assert isinstance(page, RenderedPage), outcome
        assert page.image == encode_image(slow.render(0, dpi=300, max_side=1600), JPEG)
    assert victim not in pool.pids()


def test_a_page_that_kills_every_render_process_fails_worker_crashed(
    pool: RenderPool, scan: DocumentSource, tmp_path: Path
) -> None:
    with open_pdf(make_slow_pdf(tmp_path / "slow.pdf", 60_000)) as slow:
        thread, outcome = in_background(lambda: render(pool, slow))
        killed: set[int] = set()
        while thread.is_alive() and len(killed) < 5:
            for pid in set(pool.pids()) - killed:
                time.sleep(0.3)  # let it start on the page
                os.kill(pid, signal.SIGKILL)
                killed.add(pid)
            time.sleep(0.02)
        thread.join(60)
    error = outcome.get("error")
    assert isinstance(error, WorkerCrashed), outcome
    assert error.details == {"page": 1, "attempts": 2}
    assert len(killed) == 2
    render(pool, scan)  # the pool serves the next page


def test_a_page_over_the_time_limit_fails_and_its_process_is_killed(
    pool: RenderPool, scan: DocumentSource, tmp_path: Path
) -> None:
    limits = LimitSettings(probe_timeout_s=1)
    with open_pdf(make_slow_pdf(tmp_path / "slow.pdf", 60_000), limits) as slow:
        assert slow.origin is not None
        started = time.monotonic()
        with pytest.raises(ProcessingTimeout) as raised:
            pool.render(slow.origin, 0, dpi=300, spec=JPEG, limits=limits)
    assert time.monotonic() - started < 10
    assert raised.value.details == {"page": 1, "timeout_s": 1}
    assert pool.pids() == []
    render(pool, scan)


def test_a_page_over_the_memory_cap_fails_and_the_pool_goes_on(scan: DocumentSource) -> None:
    small = RenderPool(1, memory_mb=64)
    try:
        # Unscaled 600 DPI: a 100 MB bitmap does not fit in 64 MB.
        assert scan.origin is not None
        with pytest.raises(ProcessingError) as raised:
            small.render(scan.origin, 0, dpi=600, spec=ImageSpec(max_side=100_000), limits=LIMITS)
        assert type(raised.value) is ProcessingError
        assert render(small, scan).image.size == (1237, 1600)
    finally:
        small.close()


def test_render_processes_leave_when_their_worker_is_killed(scan: DocumentSource) -> None:
    assert scan.origin is not None
    script = textwrap.dedent(
        f"""
        import os, signal
        from pathlib import Path
        from pagemill.documents.kinds import DocumentKind
        from pagemill.documents.render_pool import start_render_pool
        from pagemill.documents.source import SourceOrigin
        from pagemill.engines.page_image import ImageSpec
        from pagemill.settings import LimitSettings

        pool = start_render_pool(2, LimitSettings())
        origin = SourceOrigin(Path({str(scan.origin.path)!r}), DocumentKind.PDF)
        pool.render(origin, 0, dpi=300, spec=ImageSpec(1600), limits=LimitSettings())
        print(" ".join(map(str, pool.pids())), flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    worker = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=REPO_ROOT, check=False
    )
    assert worker.returncode == -signal.SIGKILL, worker.stderr
    pids = [int(pid) for pid in worker.stdout.split()]
    assert len(pids) == 1
    wait_for(lambda: not any(running(pid) for pid in pids), timeout=10)


class ModelEngine:
    """A model-server engine that records the encoded pages it is sent (and fails, when told to)."""

    name = "vllm"
    image_spec = PNG_28

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.seen: list[EncodedImage] = []

    def recognize_encoded(self, image: EncodedImage, *, encode_ms: float | None = None) -> PageResult:
        self.seen.append(image)
        if self.fail:
            raise EngineFailed(reason="truncated")
        return PageResult(text="model text", markdown="model text", engine=self.name)

    def recognize(self, image: Any) -> PageResult:
        raise AssertionError("a process with a render pool sends model engines encoded pages")


class CpuEngine:
    name = "tesseract"

    def __init__(self) -> None:
        self.sizes: list[tuple[int, int]] = []

    def recognize(self, image: Any) -> PageResult:
        self.sizes.append(image.size)
        return PageResult(text="cpu text", markdown="cpu text", engine=self.name)


def use(monkeypatch: pytest.MonkeyPatch, pool: RenderPool, *engines: Any) -> None:
    by_name = {engine.name: engine for engine in engines}
    monkeypatch.setattr(reading, "get_engine", lambda name, _settings: by_name[name])
    monkeypatch.setattr(reading, "active_render_pool", lambda: pool)


def test_reading_sends_model_engines_the_pools_page_and_cpu_engines_a_full_render(
    pool: RenderPool, scan: DocumentSource, monkeypatch: pytest.MonkeyPatch
) -> None:
    model, cpu = ModelEngine(fail=True), CpuEngine()
    use(monkeypatch, pool, model, cpu)
    result = reading.ocr_page(scan, 1, ["vllm", "tesseract"], Settings())
    assert result.engine == "tesseract" and result.settings["fallbacks"][0]["engine"] == "vllm"
    assert model.seen == [encode_image(scan.render(1, dpi=300, max_side=PNG_28.max_side), PNG_28)]
    assert cpu.sizes == [(2550, 3300)]  # unchanged: the full ocr.dpi render, in this thread


def test_a_document_gone_from_its_path_is_rendered_by_the_reading_thread(
    pool: RenderPool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = make_scanned_pdf(tmp_path / "evicted.pdf", ["A page whose local copy was evicted."])
    with open_pdf(path) as source:
        path.unlink()  # what local_copy does to its oldest file when more documents need room
        with pytest.raises(SourceMissing):
            render(pool, source)
        model = ModelEngine()
        use(monkeypatch, pool, model)
        result = reading.ocr_page(source, 0, ["vllm"], Settings())
        assert result.text == "model text"
        assert model.seen == [encode_image(source.render(0, dpi=300, max_side=PNG_28.max_side), PNG_28)]
