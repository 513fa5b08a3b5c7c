"""Asking the dependencies and engines whether they answer: for readiness, the detailed health and the
``pagemill_dependency_up`` gauge. Each check returns nothing or raises; :func:`run_checks` times them, side
by side, each bounded."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass

from sqlalchemy import text

from pagemill.db import get_engine
from pagemill.errors import PagemillError
from pagemill.migrate import require_migrated
from pagemill.queue import get_celery
from pagemill.settings import Settings, get_settings
from pagemill.storage import get_blob_store

CHECK_TIMEOUT_S = 5.0
"""Longest a check may take before it counts as down (a scrape must answer within Prometheus's timeout)."""


def check_database() -> None:
    """The database answers a query."""
    with get_engine().connect() as conn:
        conn.execute(text("SELECT 1"))


def check_database_migrated() -> None:
    """The database answers and is migrated to this release (a database behind this code would fail every
    request)."""
    check_database()
    require_migrated(get_settings(), get_engine())


def check_broker() -> None:
    """The broker accepts a connection."""
    with get_celery().connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=3)


def check_storage() -> None:
    """The blob store answers."""
    get_blob_store().check()


def check_ocr() -> None:
    """The tesseract binary is installed on this host."""
    if shutil.which("tesseract") is None:
        raise RuntimeError("tesseract is not installed")


DEPENDENCIES: dict[str, Callable[[], None]] = {
    "database": check_database,
    "broker": check_broker,
    "storage": check_storage,
}
"""The dependencies ``pagemill_dependency_up`` and the detailed health report, by component name."""


@dataclass(frozen=True)
class CheckResult:
    """One check's outcome: ``ok`` and how long it took, or why not."""

    ok: bool
    latency_ms: float
    error: str | None = None


def describe_failure(exc: BaseException) -> str:
    """What to show about a failed check: a Pagemill error's message, else only the exception's type (its
    text may hold a URL with a password)."""
    return exc.message if isinstance(exc, PagemillError) else type(exc).__name__


def timed(check: Callable[[], None]) -> CheckResult:
    """Run ``check``; ok and its latency, or the failure (never raises)."""
    started = time.perf_counter()
    try:
        check()
    except Exception as exc:  # a check reports; it never raises
        return CheckResult(False, _ms_since(started), describe_failure(exc))
    return CheckResult(True, _ms_since(started))


def run_checks(
    checks: Mapping[str, Callable[[], None]], timeout_s: float = CHECK_TIMEOUT_S
) -> dict[str, CheckResult]:
    """Run ``checks`` side by side; each result, a check still running after ``timeout_s`` counting as
    down (its thread is left to finish: nothing waits for it)."""
    if not checks:
        return {}
    pool = ThreadPoolExecutor(max_workers=len(checks), thread_name_prefix="pagemill-check")
    try:
        futures = {name: pool.submit(timed, check) for name, check in checks.items()}
        deadline = time.monotonic() + timeout_s
        results: dict[str, CheckResult] = {}
        for name, future in futures.items():
            try:
                results[name] = future.result(timeout=max(0.0, deadline - time.monotonic()))
            except FutureTimeout:
                results[name] = CheckResult(False, timeout_s * 1000, f"no answer within {timeout_s:g} s")
        return results
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def engine_checks(settings: Settings) -> dict[str, Callable[[], None]]:
    """A check per engine of the configured chain: model servers are asked (``/v1/models``, the answer
    cached for ``engines.health_cache_s``), tesseract must be installed, RapidOCR ships in the wheel."""
    from pagemill.engines.registry import MODEL_ENGINES, engine_healthy
    from pagemill.jobs.reading import configured_engines

    def model_server(name: str) -> Callable[[], None]:
        def check() -> None:
            if not engine_healthy(name, settings):
                raise RuntimeError("unavailable")

        return check

    checks: dict[str, Callable[[], None]] = {}
    for name in configured_engines(settings):
        if name in MODEL_ENGINES:
            checks[name] = model_server(name)
        elif name == "tesseract":
            checks[name] = check_ocr
        else:
            checks[name] = lambda: None
    return checks


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)
