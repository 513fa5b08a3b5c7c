"""Schemathesis against the API's own OpenAPI schema: no 500, no undocumented status code, one error shape,
responses that match their schemas, correct Allow headers (reliability scenario 10, without load)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.stack import Stack, running_stack
from tests.support.services import embedded_env

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(embedded_env(tmp_path_factory.mktemp("fuzz-data"))) as stack:
        yield stack


def test_schemathesis_finds_no_failure(embedded: Stack, tmp_path: Path) -> None:
    cli = Path(sys.executable).with_name("schemathesis")
    result = subprocess.run(
        [
            str(cli),
            "run",
            f"{embedded.base_url}/api/v1/openapi.json",
            "--checks",
            "all",
            # "Schema-valid request rejected" does not apply to uploads: the schema can only say "binary",
            # and Pagemill decides by content (random bytes are UNSUPPORTED_TYPE, empty ones EMPTY_FILE).
            "--exclude-checks",
            "positive_data_acceptance",
            "--max-examples",
            "30",
            "--seed",
            "20261122",
            "--workers",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert " passed" in result.stdout
