"""A poison page becomes a dead letter; once the fix is in, a replay through the admin API reads it.

Whole stack (API and prefork worker on Postgres, Redis and S3). The poison (tests/support/poison) kills the
pool process that reads the page, as a parser segfault or the OOM killer would, while its flag file exists;
deleting the file is the fix deployed.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from tests.e2e.stack import running_stack
from tests.support import documents
from tests.support.event_streams import read_stream
from tests.support.poison.sitecustomize import POISON_FLAG_ENV, POISON_MARK
from tests.support.services import REPO_ROOT, RedisServer, S3Server, distributed_env

pytestmark = pytest.mark.e2e

POISON_DIR = Path(__file__).resolve().parents[1] / "support" / "poison"


def test_poison_page_dead_letter_fix_replay_succeeds(
    pg_url: str, private_redis: RedisServer, s3: S3Server, docs: Path, tmp_path: Path
) -> None:
    flag = tmp_path / "poison-is-live"
    flag.touch()
    env = distributed_env(pg_url, private_redis.url, s3, bucket="pagemill-dead-letters")
    env["PYTHONPATH"] = os.pathsep.join([str(POISON_DIR), str(REPO_ROOT)])
    env[POISON_FLAG_ENV] = str(flag)
    env["PAGEMILL_WORKER__MAX_ATTEMPTS"] = "2"  # two crashes make the point; each costs seconds
    pdf = documents.make_text_pdf(docs / "poison.pdf", [f"{POISON_MARK}: the only page of this report"])
    with running_stack(env) as stack:
        job_id = stack.submit_ok(pdf, formats="text")
        failed = stack.wait(job_id, timeout=120)
        assert (failed["state"], failed["error"]["code"]) == ("failed", "WORKER_CRASHED"), failed

        listed = stack.client.get(
            "/api/v1/admin/dead-letters", params={"category": "crash", "job_id": job_id}
        )
        assert listed.status_code == 200, listed.text
        [letter] = listed.json()["items"]
        assert (letter["state"], letter["pages"], letter["attempts"]) == ("open", [1], 2)
        assert (letter["error"]["code"], letter["task"]["name"]) == ("WORKER_CRASHED", "pagemill.read_pages")
        gauge = re.search(
            r'^pagemill_dead_letters\{category="crash"\} (\S+)$', stack.client.get("/metrics").text, re.M
        )
        assert gauge is not None and float(gauge.group(1)) >= 1

        flag.unlink()  # the fix is deployed
        replayed = stack.client.post(f"/api/v1/admin/dead-letters/{letter['id']}/replay")
        assert replayed.status_code == 202, replayed.text
        assert (replayed.json()["state"], replayed.json()["replay_count"]) == ("replayed", 1)

        job = stack.wait(job_id, timeout=60)
        assert (job["state"], job["pages"], job["error"]) == (
            "succeeded",
            {"total": 1, "done": 1, "failed": 0},
            None,
        ), job
        assert POISON_MARK in stack.result(job_id, "text").text

        events = [event.event for event in read_stream(stack.client, f"/api/v1/jobs/{job_id}/events").events]
        assert events.count("job.failed") == 1, events
        assert events[-1] == "job.succeeded", events
        restarted = len(events) - 1 - events[::-1].index("job.started")
        assert events.index("job.failed") < restarted, f"job.started again after the replay: {events}"

        again = stack.client.post(f"/api/v1/admin/dead-letters/{letter['id']}/replay")
        assert again.status_code == 409 and again.json()["error"]["code"] == "REPLAY_NOT_ALLOWED", again.text
