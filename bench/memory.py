"""Memory: a worker's peak RSS on a 10,000-page PDF, and the API's RSS while a 1 GB upload streams in.

``python -m bench memory [--skip-worker] [--skip-upload] [--upload-mib N]``

(a) The corpus file ``hostile/gen__pdf_10000_pages.pdf`` (corpus at ``PAGEMILL_CORPUS``, default
``<repo>/../shared/corpus``; skipped with a note if absent) goes through an embedded stack (worker concurrency
2, ``PAGEMILL_LIMITS__MAX_PAGES=10000`` and the enterprise tier's ``max_pages`` raised to match,
``ocr_mode=text_layer``). The RSS of the worker's main process and
every descendant (pool processes, the probe sandbox) is read from /proc every 50 ms; the table gives each
process's peak and the peak of their sum. Target: under 500 MB per worker process.

(b) ``pagemill api`` alone (after ``migrate`` and ``keys create``; the upload cap and the enterprise tier's
``max_file_bytes`` set above the upload) receives one multipart upload of 1 GiB generated on the fly:
a PDF header, then padding, in 1 MiB chunks from a generator, so the client never holds the body. The API
process's RSS is sampled every 50 ms: before (after one small warm-up upload), peak during, and after.
The upload is expected to be accepted (or to fail as CORRUPT_FILE later); only memory is judged.
Target: growth under 50 MB.
"""

from __future__ import annotations

import argparse
import os
import secrets
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from bench.common import REPO, RssSampler, fmt, log, mib, run_and_record, run_stamp, table, verdict
from bench.stacks import auth_headers, create_key, migrate, running_stack, temp_data_dir
from tests.support.documents import make_text_pdf
from tests.support.services import pagemill_api

WORKER_TARGET_MB = 500
UPLOAD_GROWTH_TARGET_MB = 50
HOSTILE_FILE = "hostile/gen__pdf_10000_pages.pdf"
MIB = 1024 * 1024
UPLOAD_MIB = 1024
JOB_TIMEOUT_S = 300.0


def corpus_dir() -> Path:
    """The shared corpus folder."""
    return Path(os.environ.get("PAGEMILL_CORPUS") or REPO.parent / "shared" / "corpus")


# --------------------------------------------------------------------------------------------------
# (a) worker


def worker_peak() -> str:
    """Run part (a); return its Markdown."""
    path = corpus_dir() / HOSTILE_FILE
    heading = "#### (a) Worker peak RSS on a 10,000-page PDF"
    if not path.exists():
        return f"{heading}\n\nSkipped: {path} is absent (set PAGEMILL_CORPUS)."
    log(f"memory (a): {path.name}, {path.stat().st_size / 1e6:.1f} MB")
    # The bench tenant is on the enterprise tier, whose own page cap (5,000) would refuse the file.
    env = {"PAGEMILL_LIMITS__MAX_PAGES": "10000", "PAGEMILL_TIERS__ENTERPRISE__MAX_PAGES": "10000"}
    with temp_data_dir() as data_dir, running_stack({**env, "PAGEMILL_DATA_DIR": str(data_dir)}) as stack:
        with RssSampler(stack.worker.pid) as idle:
            time.sleep(0.3)
        with RssSampler(stack.worker.pid, interval=0.05) as sampler:
            job = stack.run_job(path, JOB_TIMEOUT_S, ocr_mode="text_layer")
        root = stack.worker.pid
    log(f"  {job.pages} pages in {job.seconds:.1f}s; peak total {mib(sampler.peak_total)} MiB")
    rows = []
    for pid, peak in sorted(sampler.peak_per_pid.items(), key=lambda item: (item[0] != root, item[0])):
        label = sampler.label_per_pid.get(pid, "?")
        if pid == root:
            role = "worker main process"
        elif sampler.parent_per_pid.get(pid) == root:
            role = "pool process"
        else:
            role = "child of a pool process (probe sandbox)"
        before = idle.peak_per_pid.get(pid)
        rows.append(
            [
                pid,
                role,
                f"`{label[:60]}`",
                mib(before) if before else "-",
                mib(peak),
                verdict(peak / 1024 < WORKER_TARGET_MB),
            ]
        )
    worst = max(sampler.peak_per_pid.values())
    lines = [
        heading,
        "",
        f"File: `{HOSTILE_FILE}` ({path.stat().st_size / 1e6:.1f} MB), `ocr_mode=text_layer`, "
        "`PAGEMILL_LIMITS__MAX_PAGES=10000` (and `PAGEMILL_TIERS__ENTERPRISE__MAX_PAGES`, the bench tenant's "
        f"tier), worker concurrency 2. Job: {job.pages:,} pages in "
        f"{job.seconds:.1f} s = **{job.pages / job.seconds:,.0f} pages/s** (POST to markdown result "
        "fetched). "
        f"RSS sampled every 50 ms ({sampler.samples} samples). RSS counts pages shared between the forked "
        "processes once per process, so the total overstates real use.",
        "",
        table(["pid", "process", "command", "idle MiB", "peak MiB", f"< {WORKER_TARGET_MB} MB"], rows),
        "",
        table(
            ["", "MiB"],
            [
                ["peak of the sum over all worker processes", mib(sampler.peak_total)],
                ["largest single process", f"{mib(worst)} ({verdict(worst / 1024 < WORKER_TARGET_MB)})"],
            ],
        ),
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------
# (b) API upload


def multipart_stream(boundary: str, size: int, chunk: int = MIB) -> tuple[Iterator[bytes], int]:
    """A multipart body: one ``file`` part of ``size`` bytes (PDF header, then padding); and its length."""
    head = (
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="file"; filename="big.pdf"\r\n'
        "Content-Type: application/pdf\r\n\r\n"
    ).encode()
    fields = (
        f"\r\n--{boundary}\r\n"
        'Content-Disposition: form-data; name="ocr_mode"\r\n\r\n'
        "text_layer"
        f"\r\n--{boundary}--\r\n"
    ).encode()
    first = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n"
    padding = b" " * chunk  # one buffer, yielded again and again: the client holds 1 MiB, not the body

    def body() -> Iterator[bytes]:
        yield head
        sent = 0
        yield first
        sent += len(first)
        while sent < size:
            piece = padding if size - sent >= chunk else padding[: size - sent]
            yield piece
            sent += len(piece)
        yield fields

    return body(), len(head) + size + len(fields)


def _describe(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return f"{response.status_code} {response.text[:80]!r}"
    if "state" in body:
        return f"{response.status_code}, job `{body['state']}`, size_bytes {body.get('size_bytes')}"
    error = body.get("error", body)
    return f"{response.status_code}, error `{error.get('code') if isinstance(error, dict) else error}`"


def upload_growth(upload_mib: int = UPLOAD_MIB) -> str:
    """Run part (b); return its Markdown."""
    size = upload_mib * MIB
    log(f"memory (b): streaming a {upload_mib} MiB upload to the API")
    with temp_data_dir() as data_dir, tempfile.TemporaryDirectory(prefix="pagemill-bench-up-") as tmp:
        env = {
            "PAGEMILL_DATA_DIR": str(data_dir),
            "PAGEMILL_LIMITS__MAX_UPLOAD_BYTES": str(size + 64 * MIB),
            # The tier's own cap (512 MiB on enterprise) applies too.
            "PAGEMILL_TIERS__ENTERPRISE__MAX_FILE_BYTES": str(size + 64 * MIB),
            "PAGEMILL_LOG_LEVEL": "INFO",
        }
        migrate(env)
        key = create_key(env)
        small = make_text_pdf(Path(tmp) / "small.pdf", ["warm-up page"])
        with (
            pagemill_api(env, timeout=60) as (api, base_url),
            httpx.Client(base_url=base_url, timeout=600, headers=auth_headers(key)) as client,
        ):
            start_rss = RssSampler(api.pid)
            start_rss.sample()
            with small.open("rb") as handle:  # warm-up: lazy imports, the first session, the multipart parser
                warm = client.post("/api/v1/documents", files={"file": ("small.pdf", handle)})
            time.sleep(0.5)
            boundary = secrets.token_hex(16)
            stream, length = multipart_stream(boundary, size)
            with RssSampler(api.pid, interval=0.05) as sampler:
                started = time.perf_counter()
                response = client.post(
                    "/api/v1/documents",
                    content=stream,
                    headers={
                        "Content-Type": f"multipart/form-data; boundary={boundary}",
                        "Content-Length": str(length),
                    },
                )
                seconds = time.perf_counter() - started
                time.sleep(1.0)
            status = _describe(response)
    growth_kib = sampler.peak_total - sampler.first_total
    log(
        f"  before {mib(sampler.first_total)} MiB, peak {mib(sampler.peak_total)} MiB, "
        f"after {mib(sampler.last_total)} MiB; {status}"
    )
    lines = [
        "#### (b) API RSS while streaming a 1 GiB upload",
        "",
        f"One `POST /api/v1/documents` of {upload_mib:,} MiB ({length:,} bytes of multipart body, generated "
        "in 1 MiB chunks, Content-Length set), `PAGEMILL_LIMITS__MAX_UPLOAD_BYTES` and "
        f"`PAGEMILL_TIERS__ENTERPRISE__MAX_FILE_BYTES` above it, with an enterprise key, to `pagemill "
        f"api` (1 uvicorn process) on an embedded data dir; no worker running. Upload took {seconds:.1f} s "
        f"({upload_mib / seconds:,.0f} MiB/s). Answer: {status}. Warm-up upload answered "
        f"{warm.status_code}. RSS of the API process tree sampled every 50 ms ({sampler.samples} samples).",
        "",
        table(
            ["API RSS", "MiB"],
            [
                ["at start (before the warm-up upload)", mib(start_rss.peak_total)],
                ["before the big upload (after warm-up)", mib(sampler.first_total)],
                ["peak during", mib(sampler.peak_total)],
                ["1 s after the answer", mib(sampler.last_total)],
                [
                    "growth (peak - before)",
                    f"{fmt(growth_kib / 1024, 1)} ({verdict(growth_kib / 1024 < UPLOAD_GROWTH_TARGET_MB)}, "
                    f"target < {UPLOAD_GROWTH_TARGET_MB} MB)",
                ],
            ],
        ),
    ]
    return "\n".join(lines)


def run(worker: bool = True, upload: bool = True, upload_mib: int = UPLOAD_MIB) -> str:
    """Run the selected parts; return the Markdown block."""
    parts = ["### Memory (`python -m bench memory`)", "", run_stamp()]
    if worker:
        parts += ["", worker_peak()]
    if upload:
        parts += ["", upload_growth(upload_mib)]
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> str:
    """Command line: run, print, record."""
    parser = argparse.ArgumentParser(prog="python -m bench.memory", description=__doc__)
    parser.add_argument("--skip-worker", action="store_true")
    parser.add_argument("--skip-upload", action="store_true")
    parser.add_argument("--upload-mib", type=int, default=UPLOAD_MIB)
    args = parser.parse_args(argv)
    return run_and_record(
        "memory",
        lambda: run(worker=not args.skip_worker, upload=not args.skip_upload, upload_mib=args.upload_mib),
    )


if __name__ == "__main__":
    main()
