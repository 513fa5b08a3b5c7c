"""tus upload vs. one multipart POST of the same file to S3 (moto): throughput ratio and API memory.

``python -m bench tus_upload`` or ``python -m bench.tus_upload [--mib 1024] [--chunk-mib 8]``

``pagemill api`` alone (distributed mode: Postgres, Redis, moto's S3 server; no worker, the jobs stay
queued) receives, in one run, the same document twice: once as one ``POST /api/v1/documents`` (multipart,
Content-Length set), once as a tus upload (``POST /api/v1/uploads``, then ``PATCH`` chunks of
``--chunk-mib`` in order, the last one making the job). The body is a PDF header then padding, generated
in 1 MiB (POST) or chunk-sized (tus) pieces, so the client never holds the file. Both end in a job whose
original is in S3 (the POST: spooled to disk by the API, hashed, sent to S3; tus: each chunk streamed to an
S3 multipart part as it arrives, hashed on the way). Timed from the first byte sent to the answer
carrying the job. The API process's RSS is sampled every 50 ms during each.

Targets: tus throughput >= 0.8 x the POST's; API RSS growth < 50 MB during each.
"""

from __future__ import annotations

import argparse
import contextlib
import secrets
import time
from collections.abc import Iterator

import httpx

from bench.common import RssSampler, fmt, log, mib, run_and_record, run_stamp, table, verdict
from bench.memory import multipart_stream
from bench.stacks import auth_headers, create_key, migrate
from tests.support.services import (
    distributed_env,
    pagemill_api,
    postgres_url,
    redis_server,
    s3_server,
)

MIB = 1024 * 1024
RATIO_TARGET = 0.8
GROWTH_TARGET_MB = 50
TUS = {"Tus-Resumable": "1.0.0"}


def _tus_chunks(size: int, chunk: int) -> Iterator[bytes]:
    """The same document as the multipart body's part: a PDF header, then spaces."""
    first = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n"
    padding = b" " * chunk
    sent = 0
    while sent < size:
        piece = padding[: min(chunk, size - sent)]
        if sent == 0:
            piece = first + piece[len(first) :]
        yield piece
        sent += len(piece)


def _post(client: httpx.Client, size: int) -> tuple[float, str]:
    boundary = secrets.token_hex(16)
    stream, length = multipart_stream(boundary, size)
    started = time.perf_counter()
    response = client.post(
        "/api/v1/documents",
        content=stream,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}", "Content-Length": str(length)},
    )
    seconds = time.perf_counter() - started
    if response.status_code != 202:
        raise RuntimeError(f"POST answered {response.status_code}: {response.text[:300]}")
    return seconds, str(response.json()["id"])


def _tus(client: httpx.Client, size: int, chunk: int) -> tuple[float, str, int]:
    started = time.perf_counter()
    created = client.post(
        "/api/v1/uploads",
        headers={**TUS, "Upload-Length": str(size), "Upload-Metadata": "ocr_mode dGV4dF9sYXllcg=="},
    )
    if created.status_code != 201:
        raise RuntimeError(f"tus creation answered {created.status_code}: {created.text[:300]}")
    path = created.headers["location"]
    offset, patches, job_id = 0, 0, ""
    for piece in _tus_chunks(size, chunk):
        response = client.patch(
            path,
            content=piece,
            headers={**TUS, "Content-Type": "application/offset+octet-stream", "Upload-Offset": str(offset)},
        )
        if response.status_code != 204:
            raise RuntimeError(f"PATCH at {offset} answered {response.status_code}: {response.text[:300]}")
        offset = int(response.headers["upload-offset"])
        job_id = response.headers.get("pagemill-job-id", job_id)
        patches += 1
    seconds = time.perf_counter() - started
    if not job_id:
        raise RuntimeError("the last PATCH carried no Pagemill-Job-Id")
    return seconds, job_id, patches


@contextlib.contextmanager
def _distributed_api(size: int) -> Iterator[tuple[int, str, str]]:
    """Postgres, Redis, moto S3 and `pagemill api`; yields the API pid, its URL and a key."""
    with postgres_url() as pg, redis_server() as redis, s3_server() as s3:
        env = {
            **distributed_env(pg, redis.url, s3, bucket="pagemill-bench"),
            "PAGEMILL_LIMITS__MAX_UPLOAD_BYTES": str(size + 64 * MIB),
            "PAGEMILL_TIERS__ENTERPRISE__MAX_FILE_BYTES": str(size + 64 * MIB),
            "PAGEMILL_LOG_LEVEL": "WARNING",
        }
        migrate(env)
        key = create_key(env)
        with pagemill_api(env, timeout=60) as (api, base_url):
            yield api.pid, base_url, key


def run(size_mib: int, chunk_mib: int) -> str:
    """Both uploads against one API; the Markdown block."""
    size, chunk = size_mib * MIB, chunk_mib * MIB
    with (
        _distributed_api(size) as (pid, base_url, key),
        httpx.Client(base_url=base_url, timeout=600, headers=auth_headers(key)) as client,
    ):
        # Warm-up: lazy imports, the S3 bucket, the first multipart parse and tus PATCH.
        _post(client, 2 * MIB)
        _tus(client, 2 * MIB, MIB)
        time.sleep(0.5)
        # tus first: its RSS growth is judged from the warm API's baseline, before the POST (whose S3
        # transfer threads hold parts in memory) has raised the process's RSS for good.
        log(f"tus_upload: tus upload of {size_mib} MiB in {chunk_mib} MiB chunks")
        with RssSampler(pid, interval=0.05) as tus_rss:
            tus_s, tus_job, patches = _tus(client, size, chunk)
        time.sleep(0.5)
        log(f"tus_upload: multipart POST of {size_mib} MiB")
        with RssSampler(pid, interval=0.05) as post_rss:
            post_s, post_job = _post(client, size)
        jobs = [client.get(f"/api/v1/jobs/{job}").json() for job in (post_job, tus_job)]
    if jobs[0]["sha256"] != jobs[1]["sha256"]:
        raise RuntimeError(f"the two jobs' originals differ: {jobs[0]['sha256']} vs {jobs[1]['sha256']}")
    post_rate, tus_rate = size_mib / post_s, size_mib / tus_s
    ratio = tus_rate / post_rate
    post_growth = (post_rss.peak_total - post_rss.first_total) / 1024
    tus_growth = (tus_rss.peak_total - tus_rss.first_total) / 1024
    log(f"  POST {post_rate:.0f} MiB/s, tus {tus_rate:.0f} MiB/s, ratio {ratio:.2f}")
    return "\n".join(
        [
            "### tus upload vs. multipart POST (`python -m bench tus_upload`)",
            "",
            run_stamp(),
            "",
            "One `pagemill api` process (distributed: Postgres, Redis, moto S3; no worker) receives the same "
            f"{size_mib:,} MiB document as one multipart `POST /api/v1/documents` and as a tus upload in "
            f"{chunk_mib} MiB PATCHes ({patches} of them, after one creation request), one after the other "
            "in one run, tus first. Each is timed from its first request to the answer naming its job; both "
            f"jobs' originals hash the same (`{jobs[1]['sha256'][:12]}...`). API RSS sampled every 50 ms.",
            "",
            table(
                ["upload", "seconds", "MiB/s", "API RSS before (MiB)", "peak (MiB)", "growth (MB)"],
                [
                    [
                        "multipart POST",
                        fmt(post_s, 2),
                        fmt(post_rate, 0),
                        mib(post_rss.first_total),
                        mib(post_rss.peak_total),
                        f"{fmt(post_growth, 1)} ({verdict(post_growth < GROWTH_TARGET_MB)})",
                    ],
                    [
                        f"tus, {chunk_mib} MiB chunks",
                        fmt(tus_s, 2),
                        fmt(tus_rate, 0),
                        mib(tus_rss.first_total),
                        mib(tus_rss.peak_total),
                        f"{fmt(tus_growth, 1)} ({verdict(tus_growth < GROWTH_TARGET_MB)})",
                    ],
                ],
            ),
            "",
            f"Throughput ratio tus / POST: **{ratio:.2f}** ({verdict(ratio >= RATIO_TARGET)}, target >= "
            f"{RATIO_TARGET}); RSS growth target < {GROWTH_TARGET_MB} MB during each.",
        ]
    )


def main(argv: list[str] | None = None) -> str:
    """Command line: run, print, record in docs/benchmarks.md."""
    parser = argparse.ArgumentParser(prog="python -m bench.tus_upload", description=__doc__)
    parser.add_argument("--mib", type=int, default=1024, help="size of the document (default 1024 MiB)")
    parser.add_argument("--chunk-mib", type=int, default=8, help="tus PATCH size (default 8 MiB)")
    parser.add_argument("--no-record", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = parser.parse_args(argv)
    if args.no_record:
        block = run(args.mib, args.chunk_mib)
        print(block)
        return block
    return run_and_record("tus_upload", lambda: run(args.mib, args.chunk_mib))


if __name__ == "__main__":
    main()
