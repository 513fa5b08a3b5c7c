"""GPU transcription path: does the service keep a Whisper server saturated? Pieces/s against its capacity.

``python -m bench audio_gpu``

A long recording of known speech (``make_long_speech``, FLAC) goes through the distributed stack (Postgres,
Redis, moto S3): ``pagemill api``, a CPU worker (``ingest,cpu``, concurrency 1: it decodes and cuts the
recording into pieces of at most 30 s and stores them) and a GPU worker (``gpu``, threads, a fresh one per
round) whose audio engine is ``whisper-vllm`` pointed at the vLLM simulator serving
``openai/whisper-large-v3-turbo``. A piece holds one of the simulator's ``max_num_seqs`` slots for::

    slot_ms = prefill_ms + ms_per_audio_s * seconds of the piece

so the capacity for this recording's speech pieces is exactly ``max_num_seqs * 1000 / mean(slot_ms)``
pieces/s. The simulator's texts come from its known-text map, filled before the first job for every piece
(keyed by SHA-256 of the 16-bit samples the engine sends, computed from the pieces the service cuts: the
recording is cut here too with ``cut_recording``, the probe's own function, and each piece decoded from its
FLAC as the GPU worker decodes it), with ``fallback=none``: the simulator never runs tiny.en on its CPU
during a measure (checked: every answer came from the map).

Compared (``--in-flight``), alternating, each round on a fresh GPU worker:
``audio.whisper_vllm.max_in_flight`` at its default and at twice the server's slots. The GPU worker's
threads (chosen for OCR pages: 64 without an OCR server) each hold a claimed piece, but the engine's
connection pool (``max_in_flight`` + 4) bounds the requests actually in flight.

Per round, medians over rounds: steady-state pieces/s (least-squares slope of the simulator's completed
count between the first ``max(max_num_seqs, 10%)`` and ``min(90%, all - max_num_seqs)`` completions, as in
``gpu_saturation``) divided by the capacity (target >= 0.95); mean ``vllm:num_requests_running`` over that
window divided by the slots (the same measure, independent of the pieces' lengths); end to end, POST to
``succeeded``, split into the upload and the cutting (to the job's page count known, client-side polls;
pieces are transcribed from the first one cut, so the pieces done by then are counted too).
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.common import fmt, log, median, run_and_record, table, tree_cpu_seconds, verdict
from bench.jobs import timed_job
from bench.report import Measure, measure_rows, results_block
from bench.sim_sampling import SimSampler, analyse, percentile
from bench.stacks import GpuStack, distributed_gpu_stack
from pagemill.engines.audio_base import SAMPLE_RATE
from tests.support.audio_pieces import spoken_pieces
from tests.support.simulator import SimulatorHandle, vllm_simulator
from tests.support.speech import SpeechFile, make_long_speech
from tests.support.vllm_audio import AudioSimClient

WHISPER = "openai/whisper-large-v3-turbo"
MINUTES = 100.0
ROUNDS = 3
SLOTS = 32
PREFILL_MS = 600.0
MS_PER_AUDIO_S = 60.0
"""A 30 s piece holds its slot 2.4 s: with 32 slots (as in ``gpu_saturation``) about 14 pieces/s, some 380
audio seconds a second, which 2 cores can feed (the GPU worker needs ~50 CPU ms a piece)."""
IN_FLIGHT = ("default", str(2 * SLOTS))
"""Compared by default: ``audio.whisper_vllm.max_in_flight`` left at its default (16), and set to twice the
server's slots (the rule the GPU worker applies to OCR pages, pagemill.engines.capacity)."""
STEADY_TARGET = 0.95
E2E_REFERENCE = 0.90
JOB_TIMEOUT_S = 900.0
"""How long a job may take before the benchmark gives up, as in ``audio_cpu``."""


@dataclass
class Piece:
    """One speech piece as the simulator sees it: its map key, seconds and the text it answers."""

    key: str
    seconds: float
    text: str


def cut_for_simulator(recording: SpeechFile, folder: Path, audio: AudioSimClient) -> tuple[list[Piece], int]:
    """The speech pieces the service will send (map keys, seconds, known text), each put in the
    simulator's known-text map, and the number of pieces."""
    spoken, count = spoken_pieces(recording, folder, 30.0)
    pieces = [Piece(audio.add_text(pcm, text), len(pcm) / SAMPLE_RATE, text) for pcm, text in spoken]
    return pieces, count


def capacity_of(pieces: list[Piece], slots: int, prefill_ms: float, ms_per_audio_s: float) -> float:
    """Pieces/s the simulator completes at most on these pieces: slots over the mean slot time."""
    slot_s = statistics.fmean(prefill_ms + ms_per_audio_s * p.seconds for p in pieces) / 1000.0
    return slots / slot_s


@dataclass
class Round:
    """What one measured job showed."""

    seconds: float
    upload_s: float
    cut_s: float
    done_when_cut: int
    steady: float
    running: float
    waiting_share: float
    latency_median_ms: float
    latency_p95_ms: float
    worker_cpu_ms: float
    completed: int
    errors: int


@dataclass
class Config:
    """One ``max_in_flight`` setting and its rounds."""

    in_flight: str
    threads: int = 0
    rounds: list[Round] = field(default_factory=list)


def measure(stack: GpuStack, sim: SimulatorHandle, audio: AudioSimClient, path: Path, count: int) -> Round:
    """One measured job, the simulator's statistics reset first."""
    assert stack.gpu_worker is not None
    sim.reset()
    before = audio.stats()
    cpu_before = tree_cpu_seconds(stack.gpu_worker.pid)
    with SimSampler(sim.base_url) as sampler:
        timed = timed_job(
            stack.client, path, timeout=JOB_TIMEOUT_S, fetch=False, logs=stack.logs, formats="markdown,json"
        )
    cpu = tree_cpu_seconds(stack.gpu_worker.pid) - cpu_before
    after, stats = audio.stats(), sim.stats()
    records = timed.pages
    engines = {str(r.get("engine")) for r in records if r.get("text")}
    mapped = int(after["answered_from"].get("map", 0)) - int(before["answered_from"].get("map", 0))
    done = int(after["completed"]) - int(before["completed"])
    if len(records) != count or engines != {"whisper-vllm"} or mapped != done:
        raise RuntimeError(
            f"expected {count} pieces by whisper-vllm from the map: {len(records)}, {engines}, {after}"
        )
    durations = [float(r["duration_ms"]) for r in records if r.get("duration_ms") is not None]
    found = analyse(sampler.samples, SLOTS)
    return Round(
        seconds=timed.succeeded_s,
        upload_s=timed.upload_s,
        cut_s=timed.planned_s - timed.upload_s,
        done_when_cut=timed.done_when_planned,
        steady=found.get("slope", float("nan")),
        running=found.get("mean_running_steady", float("nan")),
        waiting_share=found.get("waiting_share_steady", float("nan")),
        latency_median_ms=percentile(durations, 0.5),
        latency_p95_ms=percentile(durations, 0.95),
        worker_cpu_ms=1000 * cpu / max(done, 1),
        completed=done,
        errors=int(stats["errors"]),
    )


def run(minutes: float = MINUTES, rounds: int = ROUNDS, in_flight: tuple[str, ...] = IN_FLIGHT) -> str:
    """Run the benchmark; return the Markdown block for docs/benchmarks.md."""
    configs = [Config(value) for value in in_flight]
    with contextlib.ExitStack() as outer:
        tmp = Path(outer.enter_context(tempfile.TemporaryDirectory(prefix="pagemill-bench-audio-gpu-")))
        made = time.perf_counter()
        recording = make_long_speech(tmp / "meeting.flac", minutes=minutes, container="flac")
        warmup = make_long_speech(tmp / "warmup.flac", minutes=2, container="flac")
        size_mb = recording.path.stat().st_size / 1e6
        sim = outer.enter_context(vllm_simulator(model=WHISPER, max_num_seqs=SLOTS, prefill_ms=PREFILL_MS))
        audio = AudioSimClient(sim.base_url)
        # fallback none: a piece missing from the map would be answered empty, never by tiny.en on the CPU.
        audio.configure(ms_per_audio_s=MS_PER_AUDIO_S, fallback="none")
        pieces, count = cut_for_simulator(recording, tmp / "pieces", audio)
        cut_for_simulator(warmup, tmp / "warmup-pieces", audio)
        capacity = capacity_of(pieces, SLOTS, PREFILL_MS, MS_PER_AUDIO_S)
        mean_s = statistics.fmean(p.seconds for p in pieces)
        log(
            f"audio_gpu: {recording.duration_s:.0f} s recording ({size_mb:.0f} MB), {len(pieces)} speech "
            f"pieces of {count} (mean {mean_s:.1f} s), made and cut in {time.perf_counter() - made:.1f}s; "
            f"capacity {capacity:.2f} pieces/s"
        )
        engine_env = {
            "PAGEMILL_AUDIO__DEFAULT_ENGINE": "whisper-vllm",
            "PAGEMILL_AUDIO__FALLBACK": "[]",
            "PAGEMILL_AUDIO__WHISPER_VLLM__BASE_URL": sim.base_url,
            "PAGEMILL_AUDIO__WHISPER_VLLM__MODEL": WHISPER,
        }
        stack = outer.enter_context(distributed_gpu_stack(engine_env))
        log(f"  stack up; simulator {SLOTS} slots, {PREFILL_MS:g} ms + {MS_PER_AUDIO_S:g} ms per audio s")
        for number in range(rounds):
            for config in configs:
                extra = (
                    {}
                    if config.in_flight == "default"
                    else {"PAGEMILL_AUDIO__WHISPER_VLLM__MAX_IN_FLIGHT": config.in_flight}
                )
                with stack.gpu("auto", extra) as (_, config.threads, _why):
                    timed_job(stack.client, warmup.path, timeout=JOB_TIMEOUT_S, fetch=False, logs=stack.logs)
                    found = measure(stack, sim, audio, recording.path, count)
                config.rounds.append(found)
                log(
                    f"  round {number + 1}, max_in_flight {config.in_flight}: steady {found.steady:.2f} "
                    f"pieces/s ({found.steady / capacity:.3f} of capacity), running {found.running:.1f} of "
                    f"{SLOTS}; e2e {len(pieces) / found.seconds:.2f} pieces/s in {found.seconds:.1f}s "
                    f"(upload {found.upload_s:.1f}s, cut {found.cut_s:.1f}s); GPU worker "
                    f"{found.worker_cpu_ms:.0f} CPU ms/piece"
                )
    return report(configs, recording, size_mb, (len(pieces), count, mean_s), capacity)


def report(
    configs: list[Config],
    recording: SpeechFile,
    size_mb: float,
    pieces: tuple[int, int, float],
    capacity: float,
) -> str:
    """The Markdown block: one column per configuration, medians with the rounds in brackets; ``pieces``:
    speech pieces, all pieces, mean seconds of a speech piece."""
    speech, count, mean_s = pieces
    measures: list[Measure[Round]] = [
        ("steady-state pieces/s (simulator completions)", lambda r: r.steady, 2),
        ("**steady-state pieces/s / capacity**", lambda r: r.steady / capacity, 3),
        (f"mean requests running, steady window / {SLOTS} slots", lambda r: r.running / SLOTS, 3),
        ("share of busy time with pieces waiting in the server, steady window", lambda r: r.waiting_share, 3),
        (
            "**end-to-end pieces/s / capacity** (POST to succeeded)",
            lambda r: speech / r.seconds / capacity,
            3,
        ),
        (
            "pieces transcribed when the cut ended (they start as they are cut)",
            lambda r: float(r.done_when_cut),
            0,
        ),
        ("job seconds (POST to succeeded)", lambda r: r.seconds, 1),
        ("of which upload (POST answered)", lambda r: r.upload_s, 1),
        ("of which cutting the whole recording (to page count known)", lambda r: r.cut_s, 1),
        ("piece latency median, ms", lambda r: r.latency_median_ms, 0),
        ("piece latency p95, ms", lambda r: r.latency_p95_ms, 0),
        ("GPU worker CPU ms/piece", lambda r: r.worker_cpu_ms, 1),
        ("simulator errors", lambda r: float(r.errors), 0),
    ]
    header = ["measure"] + [f"max_in_flight {c.in_flight} ({c.threads} worker threads)" for c in configs]
    rows = measure_rows(measures, [c.rounds for c in configs])
    verdicts = []
    for c in configs:
        steady = median([r.steady / capacity for r in c.rounds])
        e2e = median([speech / r.seconds / capacity for r in c.rounds])
        verdicts.append(
            f"max_in_flight {c.in_flight}: steady {verdict(steady >= STEADY_TARGET)}; end to end "
            f"{fmt(e2e, 3)} (no target for recordings; the GPU OCR path's is {E2E_REFERENCE})"
        )
    rounds = len(configs[0].rounds) if configs else 0
    return results_block(
        "### GPU transcription: service vs. the Whisper server's capacity (`python -m bench audio_gpu`)",
        f"Recording: {recording.duration_s:,.0f} s of espeak-ng speech (`make_long_speech`, FLAC, "
        f"{size_mb:.0f} MB), cut by the service into {count} pieces ({speech} with speech, the ones sent). "
        "Stack: distributed (Postgres, Redis, moto S3); `pagemill api`, a CPU worker (ingest,cpu; "
        "concurrency 1: decodes, cuts and stores the pieces) and a GPU worker (gpu; threads, started "
        "without `--concurrency`, a fresh one per round after a 2-minute warm-up recording) with "
        "`audio.default_engine=whisper-vllm`; its threads hold claimed pieces, the engine's connection pool "
        "(`audio.whisper_vllm.max_in_flight` + 4: 20 at the default 16) bounds the requests in flight. "
        f"Simulator: model `{WHISPER}`, max_num_seqs {SLOTS}, slot "
        f"{PREFILL_MS:g} ms + {MS_PER_AUDIO_S:g} ms per audio second: capacity = {SLOTS} x 1000 / mean slot "
        f"ms over these pieces (mean {mean_s:.1f} s) = **{capacity:.2f} pieces/s** ({capacity * mean_s:.0f} "
        "audio s/s); texts from its known-text map, every answer checked to come from it. "
        f"{rounds} rounds per configuration, medians, the rounds in brackets. Steady state as in "
        "`gpu_saturation`; cutting: from the POST answered to the first poll (every 50 ms) showing the "
        "page count (pieces are sent as they are cut, so transcription runs meanwhile); latency: the "
        "pieces' `duration_ms` (loading the stored piece, the request, queueing "
        "in the server included).",
        table(header, rows),
        f"Target steady >= {STEADY_TARGET}: {'; '.join(verdicts)}.",
    )


def main(argv: list[str] | None = None) -> str:
    """Command line: run, print, record."""
    parser = argparse.ArgumentParser(prog="python -m bench.audio_gpu", description=__doc__)
    parser.add_argument("--minutes", type=float, default=MINUTES)
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument(
        "--in-flight",
        nargs="+",
        default=list(IN_FLIGHT),
        help="audio.whisper_vllm.max_in_flight settings to compare (numbers, or default).",
    )
    args = parser.parse_args(argv)
    return run_and_record(
        "audio_gpu", lambda: run(minutes=args.minutes, rounds=args.rounds, in_flight=tuple(args.in_flight))
    )


if __name__ == "__main__":
    main()
