"""The chaos suite (issue 9, reliability scenarios 1-3 and 10), bounded to run in ``make test``.

A distributed stack of its own (Postgres, Redis, two APIs, two workers of two pool processes on
ingest,cpu, moto S3) takes about 80 jobs (born-digital PDFs of 3-12 pages and scanned ones read with
``ocr_mode=ocr``) through both APIs while, in a seeded random order, pool processes and whole workers are
killed with SIGKILL (and restarted), Redis is restarted empty, Postgres is stopped for 10 s and one API is
killed (and restarted). Then: every accepted job ends succeeded with the clean run's output, every 202's
job is found via GET, no 500 (503 + Retry-After while a dependency is down), connection errors only from
the killed API, and no page read to the end twice without a kill or an outage to explain it. The longer
mode is ``python -m bench chaos``. Select this test with ``-m chaos``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.chaos import ChaosStack, chaos_stack
from tests.support.chaos_report import problems, report
from tests.support.chaos_run import (
    Action,
    ChaosPlan,
    ChaosResult,
    ChaosRun,
    Document,
    Submission,
    make_documents,
)
from tests.support.chaos_watch import Read
from tests.support.services import S3Server

pytestmark = [pytest.mark.e2e, pytest.mark.chaos]


@pytest.fixture
def stack(s3: S3Server, tmp_path: Path) -> Iterator[ChaosStack]:
    """The chaos run's own services; process logs under the test's tmp_path."""
    with chaos_stack(s3, tmp_path / "logs", bucket="pagemill-chaos") as running:
        yield running


@pytest.mark.timeout(480)
def test_chaos_loses_nothing_and_never_answers_500(stack: ChaosStack, tmp_path: Path) -> None:
    run = ChaosRun(stack, ChaosPlan(), make_documents(tmp_path / "docs"))
    try:
        result = run.run()
    finally:
        run.close()
    summary = report(result)
    print(summary)
    found = problems(result)
    assert not found, "\n".join([*found[:40], "", summary, f"logs: {stack.log_dir}"])
    assert len(result.actions) == sum(result.plan.actions.values())
    kills = [action for action in result.actions if action.kind in ("pool_kill", "worker_kill")]
    assert any(action.in_flight for action in kills), "no kill caught a page being read"


def _result(**changes: object) -> ChaosResult:
    """A clean run's result with nothing wrong in it, then ``changes``."""
    doc = Document("a.pdf", b"%PDF", {"formats": "text"}, 1)
    result = ChaosResult(
        plan=ChaosPlan(),
        started=1000.0,
        clean={"a.pdf": "text"},
        submissions=[Submission("a.pdf", "k1", job_id="j1", tries=1)],
        actions=[Action("pool_kill", 1010.0, "pool pid 7", back_at=1010.0, killed_pids={7})],
        final_jobs={"j1": {"state": "succeeded"}},
        outputs={"j1": "text"},
        reads=[Read("j1", 0, 7, 1009.0, None, "cut"), Read("j1", 0, 8, 1020.0, 1021.0, "end")],
        timelines={"j1": [(1001.0, "queued", 0), (1021.5, "succeeded", 1)]},
        answers=[(1002.0, "api1", "submit", 202, None), (1012.0, "api2", "job", 503, "5")],
        api_down={"api1": [(1030.0, 1035.0)], "api2": []},
        chaos_started=1001.0,
        chaos_ended=1040.0,
        finished=1050.0,
        violations=[],
        documents={"a.pdf": doc},
    )
    for name, value in changes.items():
        setattr(result, name, value)
    return result


def test_the_chaos_checks_catch_each_broken_promise() -> None:
    """The checks behind the chaos test, on made-up runs: each broken promise is reported."""
    assert problems(_result()) == []
    ok_answers = _result().answers
    broken = {
        "500 from api1": _result(answers=[*ok_answers, (1015.0, "api1", "job", 500, None)]),
        "503 without Retry-After": _result(answers=[*ok_answers, (1015.0, "api1", "job", 503, None)]),
        "connection error from api2 (not killed)": _result(
            answers=[*ok_answers, (1031.0, "api2", "job", None, None)]
        ),
        "ended failed": _result(final_jobs={"j1": {"state": "failed", "error": {"code": "X"}}}),
        "not found via GET": _result(final_jobs={}),
        "differs from the clean run": _result(outputs={"j1": "other text"}),
        "never accepted": _result(submissions=[Submission("a.pdf", "k2", refused="500")]),
        "read to the end twice with nothing to explain it": _result(
            reads=[Read("j1", 0, 8, 1020.0, 1021.0, "end"), Read("j1", 0, 9, 1020.5, 1022.0, "end")]
        ),
    }
    for expected, result in broken.items():
        found = problems(result)
        assert any(expected in problem for problem in found), (expected, found)
    # Allowed: a connection error from the API while it was killed, a page read again after its reader died.
    allowed = _result(
        answers=[*ok_answers, (1031.0, "api1", "job", None, None)],
        reads=[Read("j1", 0, 7, 1005.0, 1008.0, "end"), Read("j1", 0, 8, 1020.0, 1021.0, "end")],
    )
    assert problems(allowed) == []
