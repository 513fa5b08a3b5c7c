"""Schemathesis against the API's own OpenAPI schema: no 500, no undocumented status code, one error shape,
responses that match their schemas, correct Allow headers (reliability scenario 10, without load).

Requests carry an API key of the stack (enterprise tier, admin scope), so every operation is reached, the
admin ones included; the `ignored_auth` check also sends them without or with a wrong key and expects a
401. Schemathesis learns ids from responses (a key's id is in the audit log) and would revoke the very key
it runs with, after which every request is a 401 and nothing past authentication is tested. So it runs
twice: every operation but revoking a key, with the stack's key (which must still work afterwards); then
the key operations, revoking included, with a key of their own.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from tests.e2e.stack import Stack, running_stack
from tests.support.services import embedded_env

pytestmark = pytest.mark.e2e

REVOKE_PATH = "/api/v1/admin/keys/{key_id}"
# Signed download links: no key is checked there, a signature is; fuzzed signatures are all refused (403).
RESULT_LINK_PATH = "/api/v1/result-links/{job_id}/{format}"
# Event streams (SSE) stay open for as long as their job runs, the tenant's for ever: a fuzzer waiting for
# their end would hang. tests/e2e/test_event_streams.py covers them, refusals included.
STREAM_PATHS = ["--exclude-path", "/api/v1/events", "--exclude-path", "/api/v1/jobs/{job_id}/events"]


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(embedded_env(tmp_path_factory.mktemp("fuzz-data"))) as stack:
        yield stack


def schemathesis(stack: Stack, key: str, filters: Sequence[str], cwd: Path) -> str:
    """Run schemathesis with ``key`` on the operations ``filters`` select; its output (asserts it passed)."""
    cli = Path(sys.executable).with_name("schemathesis")
    result = subprocess.run(
        [
            str(cli),
            "run",
            f"{stack.base_url}/api/v1/openapi.json",
            "--checks",
            "all",
            # "Schema-valid request rejected" does not apply to uploads: the schema can only say "binary",
            # and Pagemill decides by content (random bytes are UNSUPPORTED_TYPE, empty ones EMPTY_FILE).
            "--exclude-checks",
            "positive_data_acceptance",
            # 15 examples an operation, with a fixed seed: the same requests every run, in about half the time
            # that 30 took (52 s of the suite's two workers' time).
            "--max-examples",
            "15",
            "--seed",
            "20261122",
            "--workers",
            "1",
            "--header",
            f"Authorization: Bearer {key}",
            *filters,
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        cwd=cwd,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert " passed" in result.stdout
    return result.stdout


def test_schemathesis_finds_no_failure(embedded: Stack, tmp_path: Path) -> None:
    output = schemathesis(
        embedded,
        embedded.key,
        ["--exclude-path", REVOKE_PATH, "--exclude-path", RESULT_LINK_PATH, *STREAM_PATHS],
        tmp_path,
    )
    # Every operation was reached with a valid key, not only answered 401.
    assert "Authentication failed" not in output, output[-6000:]
    assert embedded.client.get("/api/v1/usage").status_code == 200


def test_schemathesis_finds_no_failure_on_signed_result_links(embedded: Stack, tmp_path: Path) -> None:
    """Forged and malformed links are refused (403/404/422), never a server error."""
    schemathesis(embedded, embedded.key, ["--include-path", RESULT_LINK_PATH], tmp_path)


def test_schemathesis_finds_no_failure_managing_keys(embedded: Stack, tmp_path: Path) -> None:
    key = str(embedded.create_key("fuzz-admin", "enterprise", admin=True)["secret"])
    schemathesis(embedded, key, ["--include-path-regex", r"^/api/v1/admin/keys"], tmp_path)
