"""Every file of the hostile corpus through the running service: a specific error code or a correct
result, within a bounded time, and the worker keeps serving other jobs."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.stack import EMBEDDED_ONLY, Stack
from tests.integration.documents.test_hostile_corpus import CASES, HOSTILE, OK, Case
from tests.support import documents

pytestmark = [pytest.mark.e2e, pytest.mark.corpus]

# Refused while the upload is read, before any job exists: the client learns at once.
AT_SUBMISSION = {"UNSUPPORTED_TYPE": 415, "EMPTY_FILE": 422}


def _case_id(case: Case) -> str:
    return f"{case.file}[{case.password}]" if case.password else case.file


@EMBEDDED_ONLY
def test_hostile_corpus_through_the_service(stack: Stack, docs: Path) -> None:
    outcomes: dict[str, str] = {}
    jobs: dict[str, str] = {}
    for case in CASES:
        fields = {"password": case.password} if case.password else {}
        response = stack.submit(HOSTILE / case.file, **fields)
        if response.status_code == 202:
            jobs[_case_id(case)] = response.json()["id"]
        else:
            outcomes[_case_id(case)] = response.json()["error"]["code"]
            assert response.status_code == AT_SUBMISSION.get(case.expected), (case, response.text)
    for name, job_id in jobs.items():
        job = stack.wait(job_id, timeout=120)
        outcomes[name] = OK if job["state"] == "succeeded" else job["error"]["code"]
        if job["state"] == "failed":
            assert job["error"]["message"], job
    expected = {_case_id(case): case.expected for case in CASES}
    assert outcomes == expected
    # The worker survived all of it and still reads documents.
    assert stack.worker.is_running()
    after = stack.wait(
        stack.submit_ok(
            documents.make_text_pdf(docs / "after.pdf", ["Still serving after the hostile corpus"])
        )
    )
    assert after["state"] == "succeeded"
