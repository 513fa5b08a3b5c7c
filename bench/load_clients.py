"""The clients of ``bench.load``: what one realistic client does, the driver processes that run them, and
what they measure (see ``bench/load.py`` for the model and the stacks).
"""

from __future__ import annotations

import asyncio
import collections
import multiprocessing
import random
import struct
import time
import zlib
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path

import httpx

from bench.common import FINAL_STATES, tree_cpu_seconds
from bench.stacks import auth_headers
from tests.support.documents import make_padded_pdf

RAMP_S = 5.0
DRIVER_PROCESSES = 4
DOCUMENT_BYTES = 1_000_000
LIST_SHARE = 0.25
POLL_S = (0.5, 1.0)
THINK_S = (0.5, 2.0)
POLL_GIVE_UP_S = 60.0
REQUEST_TIMEOUT_S = 30.0
KINDS = ("submit", "status", "list", "result")


@dataclass
class Stack:
    """A running API: its URL, keys, and the processes whose CPU is the API's."""

    base_url: str
    keys: list[str]
    api_root: int

    def api_cpu_seconds(self) -> float:
        """CPU seconds of the API processes so far."""
        return tree_cpu_seconds(self.api_root)


@dataclass
class Tally:
    """What one level saw: latencies per request kind and answers counted by kind and outcome."""

    seconds: dict[str, list[float]] = field(default_factory=lambda: {kind: [] for kind in KINDS})
    outcomes: collections.Counter[str] = field(default_factory=collections.Counter)
    jobs_final: int = 0
    jobs_given_up: int = 0
    measure_from: float = 0.0
    api_cpu_s: float = 0.0
    driver_cpu_s: float = 0.0

    def record(self, kind: str, started: float, seconds: float, outcome: str) -> None:
        """One answered (or failed) request; those sent during the ramp are not counted."""
        if started < self.measure_from:
            return
        self.seconds[kind].append(seconds)
        self.outcomes[f"{kind} {outcome}"] += 1

    def errors(self) -> dict[str, int]:
        """Every outcome that is not a 2xx and not a 429 (the tier's rate limit)."""
        return {
            key: n for key, n in self.outcomes.items() if not key.split(" ", 1)[1].startswith(("2", "429"))
        }


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def make_padded_png(text: str, size: int) -> bytes:
    """A PNG of one line of ``text`` grown to about ``size`` bytes by a private ancillary chunk of random
    bytes (decoders skip it), so the upload is 1 MB while the OCR stays cheap."""
    from PIL import Image, ImageDraw

    image = Image.new("L", (1200, 160), 255)
    ImageDraw.Draw(image).text((40, 60), text, fill=0)
    buffer = BytesIO()
    image.save(buffer, "PNG")
    png = buffer.getvalue()
    filler = random.Random(text).randbytes(max(0, size - len(png) - 12))
    # Before IEND (the last 12 bytes): a chunk after the end marker would be outside the image.
    return png[:-12] + _png_chunk(b"pmPd", filler) + png[-12:]


def classify(response: httpx.Response) -> str:
    """The status, with the error code for errors (and ``+RA`` when a 503 carries Retry-After)."""
    if response.status_code < 400:
        return str(response.status_code)
    try:
        code = response.json()["error"]["code"]
    except (ValueError, KeyError, TypeError):
        code = response.text[:40]
    retry = "+Retry-After" if response.status_code == 503 and response.headers.get("retry-after") else ""
    return f"{response.status_code} {code}{retry}"


async def client_loop(
    base_url: str, key: str, documents: list[tuple[str, bytes, str]], tally: Tally, deadline: float, seed: int
) -> None:
    """One realistic client until ``deadline`` (see the module docstring)."""
    rng = random.Random(seed)
    await asyncio.sleep(rng.uniform(0, RAMP_S))
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    async with httpx.AsyncClient(
        base_url=base_url, headers=auth_headers(key), timeout=REQUEST_TIMEOUT_S, limits=limits
    ) as http:

        async def call(kind: str, method: str, url: str, **kwargs: object) -> httpx.Response | None:
            began, started = time.monotonic(), time.perf_counter()
            try:
                response = await http.request(method, url, **kwargs)  # type: ignore[arg-type]
                outcome = classify(response)
            except httpx.TimeoutException:
                response, outcome = None, "client timeout"
            except httpx.TransportError as exc:  # reset, refused, closed mid-request
                response, outcome = None, f"transport error ({type(exc).__name__})"
            tally.record(kind, began, time.perf_counter() - started, outcome)
            return response

        while time.monotonic() < deadline:
            name, body, media_type = rng.choice(documents)
            fields = {"ocr_mode": "text_layer"}
            if media_type.startswith("image/"):
                fields["engine"] = "tesseract"
            submitted = await call(
                "submit", "POST", "/api/v1/documents", files={"file": (name, body, media_type)}, data=fields
            )
            if submitted is None or submitted.status_code != 202:
                await asyncio.sleep(rng.uniform(*THINK_S))
                continue
            job_id = submitted.json()["id"]
            give_up = time.monotonic() + POLL_GIVE_UP_S
            listed = rng.random() >= LIST_SHARE
            state = "queued"
            while time.monotonic() < min(deadline, give_up) and state not in FINAL_STATES:
                await asyncio.sleep(rng.uniform(*POLL_S))
                if not listed:
                    listed = True
                    await call("list", "GET", "/api/v1/jobs", params={"limit": 20})
                polled = await call("status", "GET", f"/api/v1/jobs/{job_id}")
                if polled is not None and polled.status_code == 200:
                    state = polled.json()["state"]
            if state in FINAL_STATES:
                tally.jobs_final += 1
                if state == "succeeded" and time.monotonic() < deadline:
                    await call(
                        "result", "GET", f"/api/v1/jobs/{job_id}/result", params={"format": "markdown"}
                    )
            elif time.monotonic() >= give_up:
                tally.jobs_given_up += 1
            await asyncio.sleep(rng.uniform(*THINK_S))


async def _clients(
    base_url: str,
    keys: list[str],
    documents: list[tuple[str, bytes, str]],
    indices: list[int],
    tally: Tally,
    deadline: float,
) -> None:
    async def driver_cpu() -> None:
        await asyncio.sleep(max(0.0, tally.measure_from - time.monotonic()))
        cpu0 = time.process_time()
        await asyncio.sleep(max(0.0, deadline - time.monotonic()))
        tally.driver_cpu_s = time.process_time() - cpu0

    await asyncio.gather(
        driver_cpu(),
        *(client_loop(base_url, keys[i % len(keys)], documents, tally, deadline, i) for i in indices),
    )


def _drive(
    base_url: str,
    keys: list[str],
    documents: list[tuple[str, bytes, str]],
    indices: list[int],
    measure_from: float,
    deadline: float,
) -> Tally:
    """One driver process: its share of the clients (CLOCK_MONOTONIC is the same in every process)."""
    tally = Tally(measure_from=measure_from)
    asyncio.run(_clients(base_url, keys, documents, indices, tally, deadline))
    return tally


def run_level(stack: Stack, documents: list[tuple[str, bytes, str]], clients: int, window_s: float) -> Tally:
    """``clients`` clients in up to ``DRIVER_PROCESSES`` processes (one event loop would itself become the
    bottleneck at 200 clients): a ramp of ``RAMP_S`` (not counted), then ``window_s`` seconds measured; the
    API's CPU is read at both ends of the measured window."""
    measure_from = time.monotonic() + RAMP_S
    deadline = measure_from + window_s
    processes = max(1, min(DRIVER_PROCESSES, clients // 10))
    shares = [list(range(clients))[n::processes] for n in range(processes)]
    # Forked, not spawned: the children need nothing but these arguments and the module's functions.
    with ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("fork")) as pool:
        futures = [
            pool.submit(_drive, stack.base_url, stack.keys, documents, share, measure_from, deadline)
            for share in shares
        ]
        time.sleep(max(0.0, measure_from - time.monotonic()))
        cpu0 = stack.api_cpu_seconds()
        time.sleep(max(0.0, deadline - time.monotonic()))
        api_cpu_s = stack.api_cpu_seconds() - cpu0
        tallies = [future.result() for future in futures]
    total = Tally(measure_from=measure_from, api_cpu_s=api_cpu_s)
    for part in tallies:
        for kind, values in part.seconds.items():
            total.seconds[kind] += values
        total.outcomes.update(part.outcomes)
        total.jobs_final += part.jobs_final
        total.jobs_given_up += part.jobs_given_up
        total.driver_cpu_s += part.driver_cpu_s
    return total


def make_documents(workdir: Path) -> list[tuple[str, bytes, str]]:
    """Four padded PDFs and one padded PNG: one in five submissions is an image."""
    pdfs = [
        (
            f"doc-{i}.pdf",
            make_padded_pdf(
                workdir / f"doc-{i}.pdf", [f"document {i}", "page two"], DOCUMENT_BYTES
            ).read_bytes(),
            "application/pdf",
        )
        for i in range(4)
    ]
    return [*pdfs, ("scan.png", make_padded_png("Pagemill load test image 42", DOCUMENT_BYTES), "image/png")]
