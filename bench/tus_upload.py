"""tus upload vs. one multipart POST of the same file to S3 (moto): throughput ratio and API memory.

``python -m bench tus_upload`` or ``python -m bench.tus_upload [--mib 1024] [--chunk-mib 8] [--rounds 3]``

``pagemill api`` alone (distributed mode: Postgres, Redis, moto's S3 server; no worker, the jobs stay
queued) receives, in one run, the same document twice: once as one ``POST /api/v1/documents`` (multipart,
Content-Length set), once as a tus upload (``POST /api/v1/uploads``, then ``PATCH`` chunks of
``--chunk-mib`` in order, the last one making the job). The body is a PDF header then padding, generated
in 1 MiB (POST) or chunk-sized (tus) pieces, so the client never holds the file. Both end in a job whose
original is in S3 (the POST: spooled to disk by the API, hashed, sent to S3; tus: each chunk streamed to an
S3 multipart part as it arrives, hashed on the way). Timed from the first byte sent to the answer
carrying the job; ``--rounds`` rounds, tus first in the first and alternating after, medians (each round's
originals are deleted from S3 after it). The API process's RSS is sampled every 50 ms during the first
round.

Targets: tus throughput >= 0.8 x the POST's; API RSS growth < 50 MB during each.
"""

from __future__ import annotations

import argparse
import contextlib
import secrets
import statistics
import time
from collections.abc import Iterator

import httpx

from bench.common import RssSampler, fmt, log, mib, run_and_record, run_stamp, table, verdict
from bench.memory import multipart_stream
from bench.stacks import auth_headers, create_key, migrate
from tests.support.services import (
    S3Server,
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
BUCKET = "pagemill-bench"


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
def _distributed_api(size: int) -> Iterator[tuple[int, str, str, S3Server]]:
    """Postgres, Redis, moto S3 and `pagemill api`; yields the API pid, its URL, a key and the S3 server."""
    with postgres_url() as pg, redis_server() as redis, s3_server() as s3:
        env = {
            **distributed_env(pg, redis.url, s3, bucket=BUCKET),
            "PAGEMILL_LIMITS__MAX_UPLOAD_BYTES": str(size + 64 * MIB),
            "PAGEMILL_TIERS__ENTERPRISE__MAX_FILE_BYTES": str(size + 64 * MIB),
            "PAGEMILL_LOG_LEVEL": "WARNING",
        }
        migrate(env)
        key = create_key(env)
        with pagemill_api(env, timeout=60) as (api, base_url):
            yield api.pid, base_url, key, s3


def _forget(s3: S3Server, job_ids: list[str]) -> None:
    """Delete the jobs' originals from moto (which holds objects in memory or temporary files)."""
    bucket = s3.client()
    for job_id in job_ids:
        bucket.delete_object(Bucket=BUCKET, Key=f"jobs/{job_id}/source")


def run(size_mib: int, chunk_mib: int, rounds: int = 3) -> str:
    """Both uploads against one API, ``rounds`` times; the Markdown block."""
    size, chunk = size_mib * MIB, chunk_mib * MIB
    seconds: dict[str, list[float]] = {"tus": [], "post": []}
    with (
        _distributed_api(size) as (pid, base_url, key, s3),
        httpx.Client(base_url=base_url, timeout=600, headers=auth_headers(key)) as client,
    ):
        # Warm-up: lazy imports, the S3 bucket, the first multipart parse and tus PATCH.
        _post(client, 2 * MIB)
        _tus(client, 2 * MIB, MIB)
        time.sleep(0.5)
        for round_ in range(rounds):
            # tus first in the first round: its RSS growth is judged from the warm API's baseline, before the
            # POST (whose S3 transfer threads hold parts in memory) has raised the process's RSS for good.
            order = ("tus", "post") if round_ % 2 == 0 else ("post", "tus")
            job_ids = []
            for upload in order:
                log(f"tus_upload: round {round_ + 1}, {upload} of {size_mib} MiB")
                with RssSampler(pid, interval=0.05) as rss:
                    if upload == "tus":
                        took, job_id, patches = _tus(client, size, chunk)
                    else:
                        took, job_id = _post(client, size)
                seconds[upload].append(took)
                job_ids.append(job_id)
                if round_ == 0:
                    if upload == "tus":
                        tus_rss = rss
                    else:
                        post_rss = rss
                time.sleep(0.5)
            jobs = [client.get(f"/api/v1/jobs/{job}").json() for job in job_ids]
            if jobs[0]["sha256"] != jobs[1]["sha256"]:
                raise RuntimeError(f"the two originals differ: {jobs[0]['sha256']} vs {jobs[1]['sha256']}")
            digest = str(jobs[0]["sha256"])
            _forget(s3, job_ids)
    post_s, tus_s = statistics.median(seconds["post"]), statistics.median(seconds["tus"])
    post_rate, tus_rate = size_mib / post_s, size_mib / tus_s
    ratio = tus_rate / post_rate
    post_growth = (post_rss.peak_total - post_rss.first_total) / 1024
    tus_growth = (tus_rss.peak_total - tus_rss.first_total) / 1024
    log(f"  POST {post_rate:.0f} MiB/s, tus {tus_rate:.0f} MiB/s, ratio {ratio:.2f}")

    def row(label: str, upload: str, took: float, rate: float, rss: RssSampler, growth: float) -> list[str]:
        return [
            label,
            fmt(took, 2),
            ", ".join(fmt(value, 2) for value in seconds[upload]),
            fmt(rate, 0),
            mib(rss.first_total),
            mib(rss.peak_total),
            f"{fmt(growth, 1)} ({verdict(growth < GROWTH_TARGET_MB)})",
        ]

    return "\n".join(
        [
            "### tus upload vs. multipart POST (`python -m bench tus_upload`)",
            "",
            run_stamp(),
            "",
            f"One `pagemill api` process (distributed: Postgres, Redis, moto S3 over HTTP; no worker) "
            f"receives the same {size_mib:,} MiB document as one multipart `POST /api/v1/documents` and as "
            f"a tus upload in {chunk_mib} MiB PATCHes ({patches} of them, after one creation request), "
            f"{rounds} rounds, tus first in the first and alternating after; medians. Each is timed from "
            "its first request to the answer naming its job; both jobs' originals hash the same "
            f"(`{digest[:12]}...`). Every S3 part carries its CRC32 (on a plain-HTTP endpoint tus parts "
            "are gathered from the PATCH and sent with it). API RSS sampled every 50 ms in the first round.",
            "",
            table(
                [
                    "upload",
                    "seconds (median)",
                    "rounds, s",
                    "MiB/s",
                    "API RSS before (MiB)",
                    "peak (MiB)",
                    "growth (MB)",
                ],
                [
                    row("multipart POST", "post", post_s, post_rate, post_rss, post_growth),
                    row(f"tus, {chunk_mib} MiB chunks", "tus", tus_s, tus_rate, tus_rss, tus_growth),
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
    parser.add_argument("--rounds", type=int, default=3, help="rounds of both uploads (default 3)")
    parser.add_argument("--no-record", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = parser.parse_args(argv)
    if args.no_record:
        block = run(args.mib, args.chunk_mib, args.rounds)
        print(block)
        return block
    return run_and_record("tus_upload", lambda: run(args.mib, args.chunk_mib, args.rounds))


if __name__ == "__main__":
    main()
