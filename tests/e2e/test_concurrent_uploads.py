"""Many clients uploading at once, over real HTTP against real API and worker processes, in both modes: every
answer is 202, or 503 with Retry-After when the API sheds load; never a 500, a reset or a hang.

Not timed: latency is measured by ``python -m bench concurrent_uploads`` (docs/benchmarks.md).
"""

from __future__ import annotations

import collections
import threading
from pathlib import Path

import httpx
import pytest

from tests.e2e.stack import Stack
from tests.support.documents import make_padded_pdf
from tests.support.services import pagemill_api

pytestmark = pytest.mark.e2e

CLIENTS = 50
ROUNDS = 3


def _post_concurrently(
    base_url: str, key: str, documents: list[bytes], clients: int
) -> list[httpx.Response | str]:
    """``clients`` threads started together, each posting ``ROUNDS`` documents over its own connection; the
    responses, or the name of the transport error that replaced one."""
    answers: list[httpx.Response | str] = []
    lock = threading.Lock()
    start = threading.Barrier(clients)

    def client(index: int) -> None:
        body = documents[index % len(documents)]
        with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {key}"}, timeout=180) as http:
            start.wait()
            for round_number in range(ROUNDS):
                try:
                    answer: httpx.Response | str = http.post(
                        "/api/v1/documents",
                        files={"file": (f"c{index}-{round_number}.pdf", body, "application/pdf")},
                        data={"ocr_mode": "text_layer"},
                    )
                except httpx.TransportError as exc:
                    answer = type(exc).__name__
                with lock:
                    answers.append(answer)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers


def _outcomes(answers: list[httpx.Response | str]) -> collections.Counter[str]:
    counted: collections.Counter[str] = collections.Counter()
    for answer in answers:
        if isinstance(answer, str):
            counted[f"transport error {answer}"] += 1
        elif answer.status_code == 202:
            counted["202"] += 1
        elif answer.status_code == 503 and answer.headers.get("retry-after"):
            assert answer.json()["error"]["code"] == "SERVICE_UNAVAILABLE", answer.text
            counted["503 + Retry-After"] += 1
        else:
            try:
                code = answer.json()["error"]["code"]
            except (ValueError, KeyError, TypeError):
                code = answer.text[:80]
            counted[f"{answer.status_code} {code}"] += 1
    return counted


@pytest.fixture(scope="module")
def pdfs(tmp_path_factory: pytest.TempPathFactory) -> list[bytes]:
    """Ten different ~1 MB two-page PDFs."""
    folder: Path = tmp_path_factory.mktemp("concurrent")
    return [
        make_padded_pdf(folder / f"doc-{i}.pdf", [f"document {i}", "page two"], 1_000_000).read_bytes()
        for i in range(10)
    ]


def test_fifty_concurrent_uploads_are_accepted_or_shed_never_failed(stack: Stack, pdfs: list[bytes]) -> None:
    answers = _post_concurrently(stack.base_url, stack.key, pdfs, CLIENTS)
    outcomes = _outcomes(answers)
    assert set(outcomes) <= {"202", "503 + Retry-After"}, (
        f"{dict(outcomes)}\n--- API log ---\n{stack.api.log_tail(60)}"
    )
    accepted = [a for a in answers if isinstance(a, httpx.Response) and a.status_code == 202]
    assert len(accepted) + outcomes["503 + Retry-After"] == CLIENTS * ROUNDS
    assert accepted, dict(outcomes)
    # Accepted means stored and queued: each job is there to read.
    job = stack.job(accepted[-1].json()["id"])
    assert job["size_bytes"] > 900_000


def test_over_the_concurrency_limit_the_api_sheds_with_503_and_retry_after(
    stack: Stack, pdfs: list[bytes]
) -> None:
    # A second API process on the same database, broker and store, admitting only 4 requests at once.
    with pagemill_api({**stack.env, "PAGEMILL_API__MAX_CONCURRENT_REQUESTS": "4"}) as (api, base_url):
        answers = _post_concurrently(base_url, stack.key, pdfs, CLIENTS)
        log = api.log_tail(60)
    outcomes = _outcomes(answers)
    assert set(outcomes) <= {"202", "503 + Retry-After"}, f"{dict(outcomes)}\n--- API log ---\n{log}"
    assert outcomes["503 + Retry-After"] > 0, dict(outcomes)
    assert outcomes["202"] > 0, dict(outcomes)
