"""`pagemill convert`: documents converted with :func:`pagemill.conversion.convert_document`, in this process
or in ``--parallel`` worker processes, each with its own engines, as the server's workers have."""

from __future__ import annotations

import multiprocessing
import queue
import signal
import threading
import time
from collections import Counter
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from pagemill.bulk.display import BulkDisplay, FileOutcome, Stopwatch, Summary
from pagemill.bulk.inputs import Inputs, output_stems, result_stems, results_exist
from pagemill.conversion import ConvertedPage, JobOptions, NoProgress, convert_document
from pagemill.errors import PagemillError

__all__ = ["ConvertTask", "convert_inputs", "convert_task", "output_stems"]


@dataclass(frozen=True, slots=True)
class ConvertTask:
    """One document to convert and where its results go (plain data: it is sent to pool processes)."""

    key: str
    path: Path
    stem: Path
    options: JobOptions
    password: str | None


def convert_inputs(
    inputs: Inputs,
    *,
    out: Path | None,
    options: JobOptions,
    password: str | None,
    parallel: int,
    force: bool,
    console: Console,
) -> Summary:
    """Convert every document of ``inputs`` whose results are not all there yet (all of them with
    ``force``), ``parallel`` at a time, showing progress on ``console``; the summary of the run."""
    clock = Stopwatch()
    stems = result_stems(inputs.files, out)
    outcomes: dict[str, FileOutcome] = {}
    tasks: list[ConvertTask] = []
    for number, item in enumerate(inputs.files):
        key = str(number)
        if not force and results_exist(stems[item.path], options.formats):
            outcomes[key] = FileOutcome(source=str(item.path), state="skipped")
        else:
            tasks.append(ConvertTask(key, item.path, stems[item.path], options, password))
            outcomes[key] = FileOutcome(source=str(item.path), state="failed", code="NOT_RUN")
    with BulkDisplay(len(inputs.files), console) as display:
        for key, outcome in outcomes.items():
            if outcome.state == "skipped":
                display.finished(key, outcome)
        if parallel <= 1 or len(tasks) <= 1:
            for task in tasks:
                outcomes[task.key] = convert_task(task, _DisplayProgress(display, task))
                display.finished(task.key, outcomes[task.key])
        else:
            outcomes.update(_convert_in_pool(tasks, parallel, display))
    return Summary(list(outcomes.values()), clock.seconds, ignored=len(inputs.ignored))


def convert_task(task: ConvertTask, progress: NoProgress) -> FileOutcome:
    """Convert one document and write its results; its outcome (a failed document writes nothing)."""
    started = time.monotonic()
    source = str(task.path)
    try:
        result = convert_document(task.path, task.options, password=task.password, progress=progress)
    except PagemillError as exc:
        return FileOutcome(source, "failed", code=exc.code, message=exc.message, seconds=_since(started))
    except OSError as exc:  # unreadable, or gone since it was found
        return FileOutcome(
            source, "failed", code="FILE_UNREADABLE", message=exc.strerror, seconds=_since(started)
        )
    page_errors = dict(Counter(page.error.code for page in result.pages if page.error is not None))
    if not result.ok:
        # As a job whose every page failed: failed with its first page's error, and no result.
        first = next(page.error for page in result.pages if page.error is not None)
        return FileOutcome(
            source,
            "failed",
            pages_failed=result.pages_failed,
            page_errors=page_errors,
            code=first.code,
            message=f"No page could be read: {first.message}",
            seconds=_since(started),
        )
    written = result.write(task.stem, task.options.formats)
    return FileOutcome(
        source,
        "done",
        pages_done=result.pages_done,
        pages_failed=result.pages_failed,
        page_errors=page_errors,
        outputs=[str(path) for path in written],
        seconds=_since(started),
    )


class _DisplayProgress(NoProgress):
    """Page events of a document converted in this process, to its bar."""

    def __init__(self, display: BulkDisplay, task: ConvertTask) -> None:
        self._display = display
        self._task = task
        self._done = 0

    def page_started(self, number: int, total: int) -> None:
        if self._done == 0:
            self._display.started(self._task.key, self._task.path.name, total)

    def page_completed(self, page: ConvertedPage, total: int) -> None:
        self._done += 1
        self._display.advanced(self._task.key, self._done, total)


# --- --parallel: worker processes ----------------------------------------------------------------------

_events: Any = None  # a pool process's queue of page events to the parent, set by its initializer


class _QueueProgress(NoProgress):
    """Page events of a document converted in a pool process, sent to the parent's display."""

    def __init__(self, key: str, name: str) -> None:
        self._key = key
        self._name = name
        self._done = 0

    def page_started(self, number: int, total: int) -> None:
        if self._done == 0:
            _events.put(("started", self._key, self._name, total))

    def page_completed(self, page: ConvertedPage, total: int) -> None:
        self._done += 1
        _events.put(("advanced", self._key, self._done, total))


def _init_pool_process(events: Any) -> None:
    global _events
    _events = events
    # Ctrl-C goes to the whole process group: the parent stops the pool; a traceback from each pool
    # process would only bury its message.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _convert_in_pool_process(task: ConvertTask) -> FileOutcome:
    return convert_task(task, _QueueProgress(task.key, task.path.name))


def _convert_in_pool(tasks: list[ConvertTask], parallel: int, display: BulkDisplay) -> dict[str, FileOutcome]:
    """Convert ``tasks`` in ``parallel`` processes started by forkserver (never a fork of this process, whose
    threads and engines must not be copied): each makes its own engines on first use and keeps them."""
    context = multiprocessing.get_context("forkserver")
    events = context.Queue()
    relay = threading.Thread(target=_relay_events, args=(events, display), name="progress", daemon=True)
    relay.start()
    outcomes: dict[str, FileOutcome] = {}
    pool = ProcessPoolExecutor(
        max_workers=min(parallel, len(tasks)),
        mp_context=context,
        initializer=_init_pool_process,
        initargs=(events,),
    )
    try:
        futures: dict[Future[FileOutcome], ConvertTask] = {
            pool.submit(_convert_in_pool_process, task): task for task in tasks
        }
        for future in as_completed(futures):
            task = futures[future]
            try:
                outcome = future.result()
            except Exception as exc:  # the process died (killed, out of memory): the pool is broken
                outcome = FileOutcome(
                    str(task.path),
                    "failed",
                    code="WORKER_CRASHED",
                    message=f"The conversion process died ({exc}).",
                )
            outcomes[task.key] = outcome
            display.finished(task.key, outcome)
    except KeyboardInterrupt:
        for process in list(getattr(pool, "_processes", {}).values()):  # stop work in progress now
            process.terminate()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        events.put(None)
        relay.join(timeout=5)
    return outcomes


def _relay_events(events: Any, display: BulkDisplay) -> None:
    while True:
        try:
            message = events.get(timeout=1)
        except queue.Empty:
            continue
        except (EOFError, OSError):
            return
        if message is None:
            return
        if message[0] == "started":
            display.started(message[1], message[2], message[3])
        else:
            display.advanced(message[1], message[2], message[3])


def _since(started: float) -> float:
    return round(time.monotonic() - started, 3)
