"""`pagemill submit` and `pagemill backfill` against a running stack (embedded: API + worker processes), as
an operator runs them: real `python -m pagemill` processes, the key in the environment, a folder and an S3
bucket (moto's server) as sources.

Every test makes its own tenant, so counting the tenant's jobs over the API says exactly how many documents
reached the server: a resumed backfill must not have sent any twice.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.stack import Stack, running_stack
from tests.support import documents
from tests.support.services import PYTHON, REPO_ROOT, S3Server, embedded_env

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """One embedded stack for the module. Listings of at most 3 jobs: the backfill follower asks for 100
    jobs a request, is told the server's limit (422, details.max) and goes on 3 at a time."""
    env = {**embedded_env(tmp_path_factory.mktemp("bulk-data")), "PAGEMILL_API__PAGE_SIZE_MAX": "3"}
    with running_stack(env) as running:
        yield running


def tenant_env(stack: Stack, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a CLI run for a new tenant of its own: the server's URL and a key, nothing else
    of Pagemill's."""
    key = stack.create_key(f"bulk-{secrets.token_hex(4)}")["secret"]
    env = {name: value for name, value in os.environ.items() if not name.startswith("PAGEMILL_")}
    env.update(
        {
            "PYTHONPATH": str(REPO_ROOT),
            "NO_COLOR": "1",
            "PAGEMILL_API_URL": stack.base_url,
            "PAGEMILL_API_KEY": key,
            **(extra or {}),
        }
    )
    return env


def pagemill(*args: str, env: dict[str, str], timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """Run ``python -m pagemill ARGS`` to the end."""
    return subprocess.run(
        [PYTHON, "-m", "pagemill", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def report_of(done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    """The ``--json`` report a run printed on stdout."""
    assert done.stdout.strip(), f"exit {done.returncode}, no report\nstderr:\n{done.stderr}"
    report: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return report


def tenant_jobs(stack: Stack, env: dict[str, str]) -> list[dict[str, Any]]:
    """Every job of the env's tenant, read over the API."""
    jobs: list[dict[str, Any]] = []
    cursor: str | None = None
    with stack.client_for(env["PAGEMILL_API_KEY"]) as client:
        while True:
            params: dict[str, Any] = {"limit": 100, **({"cursor": cursor} if cursor else {})}
            page = client.get("/api/v1/jobs", params=params)
            assert page.status_code == 200, page.text
            jobs += page.json()["items"]
            cursor = page.json().get("next_cursor")
            if not cursor:
                return jobs


def checkpoint_lines(path: Path) -> list[dict[str, Any]]:
    """The checkpoint's complete lines."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")]


def test_submit_follows_each_job_live_downloads_results_and_skips_them_next_time(
    stack: Stack, tmp_path: Path
) -> None:
    folder = tmp_path / "inbox"
    (folder / "scans").mkdir(parents=True)
    documents.make_text_pdf(folder / "minutes.pdf", ["Minutes of the meeting", "Second page of minutes"])
    documents.make_text_pdf(folder / "scans" / "memo.pdf", ["A short memo about the budget"])
    documents.make_text_image(folder / "scans" / "note.png", "Handwritten note", fmt="PNG")
    documents.make_corrupt_pdf(folder / "broken.pdf")
    (folder / "readme.txt").write_text("not a document")
    out = tmp_path / "out"
    env = tenant_env(stack)

    done = pagemill("submit", str(folder), "--out", str(out), "--engine", "tesseract", "--json", env=env)
    assert done.returncode == 1, done.stderr  # the broken PDF failed
    report = report_of(done)
    assert report["files"] == {"total": 4, "done": 3, "skipped": 0, "failed": 1, "ignored": 1}, report
    items = {Path(item["source"]).name: item for item in report["items"]}
    assert items["broken.pdf"]["code"] == "CORRUPT_FILE" and items["broken.pdf"]["job_id"]
    for name in ("minutes.pdf", "memo.pdf", "note.png"):
        assert items[name]["state"] == "done" and items[name]["followed"] == "events", items[name]
    assert items["minutes.pdf"]["pages_done"] == 2
    assert (out / "minutes.txt").read_text().split("\f") == [
        "Minutes of the meeting",
        "Second page of minutes",
    ]
    assert "handwritten note" in (out / "scans" / "note.txt").read_text().lower()
    assert json.loads((out / "scans" / "memo.json").read_text())["pages"][0]["engine"] == "text_layer"
    assert "CORRUPT_FILE" in done.stderr and "broken.pdf" in done.stderr
    assert env["PAGEMILL_API_KEY"] not in done.stderr + done.stdout, "the key is never printed"

    again = pagemill("submit", str(folder), "--out", str(out), "--json", env=env)
    report = report_of(again)
    assert report["files"]["skipped"] == 3 and report["files"]["failed"] == 1, report
    # Only the document without results went to the server again.
    assert len(tenant_jobs(stack, env)) == 5


def test_a_killed_backfill_resumes_from_its_checkpoint_without_sending_anything_twice(
    stack: Stack, tmp_path: Path
) -> None:
    archive = tmp_path / "archive"
    (archive / "2024").mkdir(parents=True)
    names = [f"2024/letter-{n:02d}.pdf" for n in range(8)]
    for name in names:
        documents.make_text_pdf(archive / name, [f"Letter {name}"])
    (archive / "2024" / "index.txt").write_text("a list of the letters")
    checkpoint = tmp_path / "backfill.jsonl"
    env = tenant_env(stack)
    args = ["backfill", "--from", str(archive), "--checkpoint", str(checkpoint), "--rate", "2/s"]

    # A crash (SIGKILL, no clean-up) once a few documents are in: the server may have accepted one more
    # than the checkpoint says, which the re-run's Idempotency-Key turns into a replay, not a second job.
    log = tmp_path / "killed.log"
    with log.open("w") as output:
        process = subprocess.Popen(
            [PYTHON, "-m", "pagemill", *args], cwd=REPO_ROOT, env=env, stdout=output, stderr=subprocess.STDOUT
        )
        try:
            deadline = time.monotonic() + 60
            while len(checkpoint_lines(checkpoint)) < 3:
                assert process.poll() is None, log.read_text()
                assert time.monotonic() < deadline, "the backfill sent nothing"
                time.sleep(0.05)
            process.send_signal(signal.SIGKILL)
        finally:
            process.kill()
            process.wait(timeout=10)
    sent_before = {line["key"] for line in checkpoint_lines(checkpoint)}
    assert 3 <= len(sent_before) < len(names), sent_before

    resumed = pagemill(*args, "--wait", "--json", env=env)
    assert resumed.returncode == 0, resumed.stderr
    report = report_of(resumed)
    assert report["filtered"] == {"type": 1}
    assert report["already_sent"] == len(sent_before)
    assert report["submitted"] == len(names) - len(sent_before), report
    assert report["jobs"] == {"succeeded": len(names)}, report
    jobs = tenant_jobs(stack, env)
    assert sorted(job["filename"] for job in jobs) == sorted(Path(name).name for name in names), "none twice"
    final = {}
    for line in checkpoint_lines(checkpoint):
        final[line["key"]] = line
    assert {key: line["state"] for key, line in final.items()} == dict.fromkeys(names, "succeeded")

    # Nothing is left to do: a third run sends nothing and says so.
    third = pagemill(*args, "--json", env=env)
    assert third.returncode == 0 and report_of(third)["already_sent"] == len(names), third.stderr
    assert len(tenant_jobs(stack, env)) == len(names)


def test_backfill_from_s3_with_filters_dry_run_limit_and_results(
    stack: Stack, s3: S3Server, tmp_path: Path
) -> None:
    bucket = f"archive-{secrets.token_hex(4)}"
    client = s3.client()
    client.create_bucket(Bucket=bucket)
    made = tmp_path / "made"
    made.mkdir()
    objects = {
        "scans/2024/a.pdf": documents.make_text_pdf(made / "a.pdf", ["Alpha report"]),
        "scans/2024/b.pdf": documents.make_text_pdf(made / "b.pdf", ["Bravo report"]),
        "scans/2024/c.png": documents.make_text_image(made / "c.png", "Charlie", fmt="PNG"),
        "scans/2024/big.pdf": documents.make_padded_pdf(made / "big.pdf", ["Big report"], 300_000),
        "scans/2024/notes.txt": made / "a.pdf",  # a PDF under another name: not sent (types go by name)
        "other/d.pdf": made / "a.pdf",  # outside the prefix
    }
    for key, path in objects.items():
        client.upload_file(str(path), bucket, key)
    env = tenant_env(stack, s3.aws_env())
    checkpoint = tmp_path / "s3.jsonl"
    out = tmp_path / "results"
    source = ["backfill", "--from", f"s3://{bucket}/scans/2024", "--type", "pdf", "--max-size", "100k"]

    dry = pagemill(*source, "--checkpoint", str(checkpoint), "--dry-run", "--json", env=env)
    assert dry.returncode == 0, dry.stderr
    report = report_of(dry)
    assert report["would_send"] == ["2024/a.pdf", "2024/b.pdf"], report
    assert report["filtered"] == {"type": 2, "size": 1} and report["scanned"] == 5
    assert not checkpoint.exists() and tenant_jobs(stack, env) == [], "a dry run sends and writes nothing"

    first = pagemill(*source, "--checkpoint", str(checkpoint), "--limit", "1", "--json", env=env)
    assert first.returncode == 0, first.stderr
    assert report_of(first)["submitted"] == 1 and report_of(first)["beyond_limit"] == 1

    rest = pagemill(*source, "--checkpoint", str(checkpoint), "--out", str(out), "--json", env=env)
    assert rest.returncode == 0, rest.stderr
    report = report_of(rest)
    assert (report["already_sent"], report["submitted"], report["downloaded"]) == (1, 1, 2), report
    assert (out / "2024" / "a.pdf.txt").read_text() == "Alpha report"
    assert json.loads((out / "2024" / "b.pdf.json").read_text())["filename"] == "b.pdf"
    assert len(tenant_jobs(stack, env)) == 2

    gone = pagemill("backfill", "--from", f"s3://{bucket}-gone/scans", "--json", env=env)
    assert gone.returncode == 1 and "Traceback" not in gone.stderr, gone.stderr
    assert f"error: s3://{bucket}-gone/scans could not be listed: NoSuchBucket" in gone.stderr

    # A new checkpoint, but the results are there: --only-missing sends nothing.
    missing = pagemill(
        *source,
        "--checkpoint",
        str(tmp_path / "new.jsonl"),
        "--out",
        str(out),
        "--only-missing",
        "--json",
        env=env,
    )
    assert missing.returncode == 0, missing.stderr
    assert (report_of(missing)["have_results"], report_of(missing)["submitted"]) == (2, 0)
    assert len(tenant_jobs(stack, env)) == 2


def test_a_wrong_key_stops_the_backfill_and_records_nothing(stack: Stack, tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    documents.make_text_pdf(tmp_path / "docs" / "a.pdf", ["Text"])
    env = {**tenant_env(stack), "PAGEMILL_API_KEY": "pm_live_" + "x" * 38}
    checkpoint = tmp_path / "cp.jsonl"
    done = pagemill(
        "backfill", "--from", str(tmp_path / "docs"), "--checkpoint", str(checkpoint), "--json", env=env
    )
    assert done.returncode == 1
    assert report_of(done)["stopped"].startswith("UNAUTHORIZED"), done.stdout
    assert checkpoint_lines(checkpoint) == []
