"""Which limit a claim reads under, and what a page over it becomes (retried, or failed on its last try)."""

from __future__ import annotations

from prometheus_client import REGISTRY

from pagemill import deadlines
from pagemill.deadlines import HardTimeLimitExceeded
from pagemill.documents.kinds import DocumentKind
from pagemill.errors import ProcessingTimeout
from pagemill.jobs.page_limits import page_timed_out, work_kind
from pagemill.settings import Settings, WorkerSettings
from pagemill.settings.time_limits import WorkKind


def _timeouts(kind: str) -> float:
    return REGISTRY.get_sample_value("pagemill_processing_timeouts_total", {"kind": kind}) or 0.0


def test_each_claim_has_its_kind_of_work() -> None:
    assert work_kind(DocumentKind.PDF, ocr=False) == WorkKind.TEXT_CHUNK
    assert work_kind(DocumentKind.PDF, ocr=True) == WorkKind.DOCUMENT_PAGE
    assert work_kind(DocumentKind.PNG, ocr=True) == WorkKind.IMAGE_PAGE
    assert work_kind(DocumentKind.TIFF, ocr=True) == WorkKind.IMAGE_PAGE


def test_a_page_over_its_limit_is_retried_until_its_last_attempt_then_failed() -> None:
    settings = Settings(worker=WorkerSettings(max_attempts=3))
    before = _timeouts("image_page")
    with deadlines.limited("image_page", 0.5, 1.0) as deadline:
        alarm = HardTimeLimitExceeded("image_page")
        assert page_timed_out(deadline, "job", 4, 1, settings, alarm) is None
        assert page_timed_out(deadline, "job", 4, 2, settings, alarm) is None
        failed = page_timed_out(deadline, "job", 4, 3, settings, alarm)
    assert isinstance(failed, ProcessingTimeout)
    assert failed.details == {"kind": "image_page", "limit_s": 1.0, "page": 5}
    assert failed.__cause__ is alarm
    assert _timeouts("image_page") == before + 3, "every time over counts, retried or not"


def test_a_calls_own_timeout_is_kept_with_the_kind_added() -> None:
    settings = Settings(worker=WorkerSettings(max_attempts=1))
    own = ProcessingTimeout("OCR of a page took longer than allowed.", timeout_s=60)
    with deadlines.limited("document_page", 150, 180) as deadline:
        failed = page_timed_out(deadline, "job", 0, 1, settings, own)
    assert failed is own
    assert own.details == {"timeout_s": 60, "kind": "document_page", "page": 1}
