"""`pagemill submit` and `backfill` without a server to talk to: usage mistakes are one line and exit 2,
and a server that does not answer is a reported failure with its code, not a traceback."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.support import documents
from tests.support.services import PYTHON, REPO_ROOT, free_port

pytestmark = pytest.mark.integration


def pagemill(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {name: value for name, value in os.environ.items() if not name.startswith("PAGEMILL_")}
    full_env.update({"PYTHONPATH": str(REPO_ROOT), "NO_COLOR": "1", **(env or {})})
    return subprocess.run(
        [PYTHON, "-m", "pagemill", *args],
        cwd=REPO_ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=180,
    )


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--from", "/nonexistent/archive"], "'--from': '/nonexistent/archive' is not a folder"),
        (["--rate", "fast"], "'--rate': 'fast' is not a rate"),
        (["--only-missing"], "give --out too"),
    ],
)
def test_backfill_usage_mistakes_are_one_line(tmp_path: Path, args: list[str], named: str) -> None:
    done = pagemill("backfill", *(["--from", str(tmp_path)] if "--from" not in args else []), *args)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and named in lines[0], done.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_server_that_does_not_answer_is_a_failure_with_its_code(tmp_path: Path) -> None:
    documents.make_text_pdf(tmp_path / "a.pdf", ["Some text for the server"])
    env = {
        "PAGEMILL_API_URL": f"http://127.0.0.1:{free_port()}",
        "PAGEMILL_API_KEY": "pm_live_not_a_real_key",
    }
    done = pagemill("submit", str(tmp_path / "a.pdf"), "--json", env=env)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    item = json.loads(done.stdout)["items"][0]
    assert (item["state"], item["code"]) == ("failed", "API_UNREACHABLE")
    assert "pm_live_not_a_real_key" not in done.stdout + done.stderr
