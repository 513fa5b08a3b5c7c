"""Time limits of page work on every reading path that exists: the text layer (a chunk's soft limit, a page's
hard alarm), CPU OCR (Tesseract's process killed at the page's budget) and model-server OCR (the vLLM
simulator made slow). Real databases (SQLite and Postgres), the embedded broker, the worker's own code run
in this process (its main thread, as a prefork pool process runs a task); limits of a fraction of a second.

A page over its limit is retried while it has attempts; on its last it fails PROCESSING_TIMEOUT and becomes a
dead letter of category ``timeout``; each time counts in pagemill_processing_timeouts_total{kind}.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import delete, select

from pagemill import db, deadlines, queue
from pagemill.engines.base import PageResult
from pagemill.engines.registry import clear_engines
from pagemill.engines.tesseract import run_tesseract
from pagemill.errors import ProcessingTimeout
from pagemill.jobs import claims, page_work, processing, reading
from pagemill.jobs import repository as repo
from pagemill.models import DeadLetter, Job, JobState, Page, PageState
from pagemill.settings import Settings, get_settings
from pagemill.storage import get_blob_store
from tests.support.documents import make_scanned_pdf, make_text_image, make_text_pdf, render_text_page
from tests.support.factories import make_job
from tests.support.simulator import SimulatorHandle, vllm_simulator

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy:DeprecationWarning"),
]

SLOW_MARK = "SLOW-PAGE-TAKES-FOREVER"


@pytest.fixture(autouse=True)
def process_state(database: str) -> Iterator[None]:
    """Empty tables, and a broker, blob store, settings and engines of this module's data folder."""
    queue.get_celery.cache_clear()
    get_blob_store.cache_clear()
    with db.session_scope() as session:
        session.execute(delete(DeadLetter))
        session.execute(delete(Page))
        session.execute(delete(Job))
    yield
    if queue.get_celery.cache_info().currsize:
        queue.get_celery().close()
    queue.get_celery.cache_clear()
    get_blob_store.cache_clear()
    get_settings.cache_clear()
    clear_engines()


@pytest.fixture(scope="module")
def slow_model_server() -> Iterator[SimulatorHandle]:
    """A vLLM simulator that answers every page 3 s late."""
    with vllm_simulator(max_num_seqs=4, prefill_ms=5, ms_per_token=0.1, tokens=20, slow_ms=3000) as sim:
        yield sim


def configure(monkeypatch: pytest.MonkeyPatch, **variables: str) -> Settings:
    """Settings with these PAGEMILL_* variables on top of the module's database and data folder."""
    for name, value in variables.items():
        monkeypatch.setenv(f"PAGEMILL_{name}", value)
    get_settings.cache_clear()
    clear_engines()
    return get_settings()


def submitted(path: Path, **options: str) -> str:
    """A queued job of ``path`` with its original stored, planned by the ingest task; its id."""
    job_id = str(uuid.uuid4())
    with path.open("rb") as handle:
        get_blob_store().put_file(f"jobs/{job_id}/source", handle)
    kind = "png" if path.suffix == ".png" else "pdf"
    with db.session_scope() as session:
        repo.add_job(
            session,
            make_job(job_id, kind=kind, options={"formats": ["text"], **options}),
        )
    processing.ingest_job(job_id)
    return job_id


def work_until_final(job_id: str, queue_name: str, timeout: float = 60) -> Job:
    """Run page tasks on ``queue_name`` in this process until the job ends."""
    deadline = time.monotonic() + timeout
    while True:
        page_work.read_next(queue_name)
        with db.session_scope() as session:
            job = repo.get_job(session, job_id)
            assert job is not None
            session.expunge(job)
        if JobState(job.state).is_final:
            return job
        assert time.monotonic() < deadline, f"job {job_id} still {job.state}"


def pages(job_id: str) -> dict[int, tuple[str, int, str | None]]:
    with db.session_scope() as session:
        return {p.index: (p.state, p.attempts, p.error_code) for p in repo.iter_pages(session, job_id)}


def timeouts(kind: str) -> float:
    return REGISTRY.get_sample_value("pagemill_processing_timeouts_total", {"kind": kind}) or 0.0


def dead_letters(job_id: str) -> list[DeadLetter]:
    with db.session_scope() as session:
        rows = list(session.scalars(select(DeadLetter).where(DeadLetter.job_id == job_id)))
        session.expunge_all()
        return rows


def test_a_text_chunk_past_its_soft_limit_gives_its_unread_pages_back(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    settings = configure(monkeypatch, WORKER__TIME_LIMITS__TEXT_CHUNK__SOFT_S="0.000001")
    job_id = submitted(make_text_pdf(tmp_path / "text.pdf", [f"Born-digital page {n}" for n in range(1, 6)]))
    before = timeouts("text_chunk")

    claim = claims.claim_next(queue.CPU_QUEUE, settings)
    assert claim is not None and len(claim.indices) == 5
    with claims.holding(claim, settings):
        page_work.read_claim(claim, settings)

    # The first page of a chunk is always read; the rest went back unread, their attempt not counted.
    assert pages(job_id) == {
        0: (PageState.DONE, 1, None),
        **{index: (PageState.PENDING, 0, None) for index in range(1, 5)},
    }
    assert timeouts("text_chunk") == before + 1
    job = work_until_final(job_id, queue.CPU_QUEUE)
    assert (job.state, job.pages_done, job.pages_failed) == (JobState.SUCCEEDED, 5, 0)
    assert dead_letters(job_id) == []


def test_a_text_page_that_hangs_is_interrupted_retried_then_failed_and_dead_lettered(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    configure(
        monkeypatch,
        WORKER__TIME_LIMITS__TEXT_CHUNK__SOFT_S="0.2",
        WORKER__TIME_LIMITS__TEXT_CHUNK__HARD_S="0.5",
        WORKER__MAX_ATTEMPTS="2",
    )
    real = reading.read_page_text_layer

    def hanging_on_the_marked_page(source: object, index: int, settings: Settings) -> PageResult | None:
        # Fault injection around the real reader: pdfium stuck on one page (no timeout can be handed to it).
        result = real(source, index, settings)  # type: ignore[arg-type]
        if result is not None and SLOW_MARK in result.text:
            time.sleep(30)
        return result

    monkeypatch.setattr(reading, "read_page_text_layer", hanging_on_the_marked_page)
    job_id = submitted(
        make_text_pdf(
            tmp_path / "hang.pdf",
            ["A quick first page of born-digital text", f"{SLOW_MARK} on the second page"],
        )
    )
    before = timeouts("text_chunk")
    started = time.monotonic()

    job = work_until_final(job_id, queue.CPU_QUEUE)

    assert time.monotonic() - started < 10, "two tries of half a second, not 30 s each"
    assert (job.state, job.pages_done, job.pages_failed) == (JobState.SUCCEEDED, 1, 1)
    assert pages(job_id)[1] == (PageState.FAILED, 2, "PROCESSING_TIMEOUT")
    assert timeouts("text_chunk") == before + 2, "the retried try and the last one"
    [letter] = dead_letters(job_id)
    assert (letter.category, letter.pages, letter.attempts) == ("timeout", [2], 2)
    assert letter.error_details == {"kind": "text_chunk", "limit_s": 0.5, "page": 2}


def test_tesseract_is_killed_at_what_is_left_of_the_page(tmp_path: Path) -> None:
    page = render_text_page("A dense page " * 200)
    started = time.monotonic()
    with deadlines.limited("document_page", 0.05, 30), pytest.raises(ProcessingTimeout) as raised:
        run_tesseract(page, ["-l", "eng", "--psm", "3", "tsv"], timeout_s=180)
    assert time.monotonic() - started < 5
    assert raised.value.details == {"kind": "document_page", "limit_s": 0.05}


def test_a_cpu_ocr_page_over_its_limit_fails_processing_timeout(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    configure(
        monkeypatch,
        WORKER__TIME_LIMITS__DOCUMENT_PAGE__SOFT_S="0.2",
        WORKER__TIME_LIMITS__DOCUMENT_PAGE__HARD_S="20",
        WORKER__MAX_ATTEMPTS="1",
        ENGINES__DEFAULT="tesseract",
    )
    job_id = submitted(make_scanned_pdf(tmp_path / "scan.pdf", ["A scanned page " * 20]), ocr_mode="ocr")
    before = timeouts("document_page")

    job = work_until_final(job_id, queue.CPU_QUEUE)

    assert (job.state, job.error_code) == (JobState.FAILED, "PROCESSING_TIMEOUT")
    assert timeouts("document_page") == before + 1
    [letter] = dead_letters(job_id)
    assert letter.category == "timeout" and letter.error_details is not None
    assert letter.error_details["kind"] == "document_page" and letter.error_details["limit_s"] == 0.2


def test_a_model_server_page_over_its_limit_is_not_waited_for(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, slow_model_server: SimulatorHandle
) -> None:
    configure(
        monkeypatch,
        WORKER__TIME_LIMITS__IMAGE_PAGE__SOFT_S="0.4",
        WORKER__TIME_LIMITS__IMAGE_PAGE__HARD_S="20",
        WORKER__MAX_ATTEMPTS="1",
        ENGINES__DEFAULT="vllm",
        ENGINES__VLLM__BASE_URL=slow_model_server.base_url,
    )
    job_id = submitted(make_text_image(tmp_path / "photo.png", "A photographed page"))
    assert {p.queue for p in _page_rows(job_id)} == {queue.GPU_QUEUE}
    before = timeouts("image_page")
    started = time.monotonic()

    job = work_until_final(job_id, queue.GPU_QUEUE)

    assert time.monotonic() - started < 3, "the 3 s answer was not waited for"
    assert (job.state, job.error_code) == (JobState.FAILED, "PROCESSING_TIMEOUT")
    assert timeouts("image_page") == before + 1
    [letter] = dead_letters(job_id)
    assert letter.category == "timeout" and letter.error_details is not None
    assert (letter.error_details["kind"], letter.error_details["limit_s"]) == ("image_page", 0.4)


def _page_rows(job_id: str) -> list[Page]:
    with db.session_scope() as session:
        rows = list(session.scalars(select(Page).where(Page.job_id == job_id)))
        session.expunge_all()
        return rows
