"""The backfill checkpoint: what counts as sent, lines a crash cut short, and idempotency keys."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from pagemill.bulk.backfill import TokenBucket, plan_backfill
from pagemill.bulk.checkpoint import Checkpoint, idempotency_key
from pagemill.bulk.sources import Filters, SourceObject
from pagemill.jobs.options import JobOptions, OutputFormat


def obj(key: str, size: int = 100, version: str = "v1") -> SourceObject:
    return SourceObject(
        key=key,
        location=f"/archive/{key}",
        size=size,
        modified=datetime(2024, 1, 1, tzinfo=UTC),
        version=version,
    )


def test_a_document_is_sent_once_per_version_and_refusals_are_tried_again(tmp_path: Path) -> None:
    path = tmp_path / "cp.jsonl"
    with Checkpoint(path) as checkpoint:
        checkpoint.record(obj("a.pdf"), job_id="job-a", state="submitted")
        checkpoint.record(obj("b.pdf"), job_id=None, state="refused", code="UNSUPPORTED_TYPE")
        submitted = checkpoint.record(obj("c.pdf"), job_id="job-c", state="submitted")
        checkpoint.record(submitted, job_id="job-c", state="succeeded")
    reread = Checkpoint(path, write=False)
    assert reread.sent(obj("a.pdf")) is not None
    assert reread.sent(obj("a.pdf", size=101)) is None, "another size: a changed document, sent again"
    assert reread.sent(obj("a.pdf", version="v2")) is None, "another mtime or ETag: sent again"
    assert reread.sent(obj("b.pdf")) is None, "a refusal made no job"
    assert reread.sent(obj("d.pdf")) is None
    assert [entry.key for entry in reread.open_jobs()] == ["a.pdf"], "c.pdf ended"
    assert json.loads(path.read_text().splitlines()[-1])["state"] == "succeeded"


def test_a_line_cut_short_is_ignored_and_not_glued_to_the_next(tmp_path: Path) -> None:
    path = tmp_path / "cp.jsonl"
    with Checkpoint(path) as checkpoint:
        checkpoint.record(obj("a.pdf"), job_id="job-a", state="submitted")
    with path.open("a") as f:
        f.write('{"source": "/archive/b.pdf", "key": "b.p')  # the process died mid-write
    with Checkpoint(path) as checkpoint:
        assert checkpoint.damaged_lines == 1
        checkpoint.record(obj("b.pdf"), job_id="job-b", state="submitted")
    reread = Checkpoint(path, write=False)
    assert reread.damaged_lines == 1
    assert reread.sent(obj("a.pdf")) is not None and reread.sent(obj("b.pdf")) is not None


def test_idempotency_keys_are_stable_and_change_with_the_document_or_options() -> None:
    options = JobOptions()
    key = idempotency_key(obj("a.pdf"), options)
    assert key == idempotency_key(obj("a.pdf"), JobOptions()) and key.startswith("backfill-")
    assert 1 <= len(key) <= 255 and key.isascii()
    assert key != idempotency_key(obj("a.pdf", version="v2"), options)
    assert key != idempotency_key(obj("a.pdf"), JobOptions(formats=[OutputFormat.TEXT]))


def test_the_plan_leaves_out_filtered_sent_and_done_documents_and_stops_at_the_limit(tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / "2024").mkdir(parents=True)
    for suffix in (".md", ".txt"):
        (out / "2024" / f"done.pdf{suffix}").write_text("x")
    checkpoint = Checkpoint(None)
    checkpoint.record(obj("2024/sent.pdf"), job_id="j", state="submitted")
    objects = [
        obj(f"2024/{name}") for name in ("sent.pdf", "done.pdf", "notes.txt", "a.pdf", "b.pdf", "c.pdf")
    ]
    options = JobOptions(formats=[OutputFormat.MARKDOWN, OutputFormat.TEXT])
    plan = plan_backfill(
        iter(objects), Filters(), checkpoint, out=out, only_missing=True, options=options, limit=2
    )
    assert [o.key for o in plan.to_send] == ["2024/a.pdf", "2024/b.pdf"]
    assert (plan.scanned, plan.already_sent, plan.have_results, plan.beyond_limit) == (6, 1, 1, 1)
    assert plan.filtered == {"type": 1}


def test_the_token_bucket_paces_acquisitions_and_stops_waiting_when_told() -> None:
    bucket = TokenBucket(20.0)
    never = threading.Event()
    started = time.monotonic()
    assert all(bucket.acquire(never) for _ in range(11))
    assert time.monotonic() - started >= 0.45, "the first is free, the next ten take 1/20 s each"
    slow = TokenBucket(0.01)
    slow.acquire(never)
    stop = threading.Event()
    threading.Timer(0.1, stop.set).start()
    assert slow.acquire(stop) is False
    assert TokenBucket(None).acquire(never), "no rate: no waiting"
