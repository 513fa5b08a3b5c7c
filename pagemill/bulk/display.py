"""Progress and summary of a bulk command: a bar per document at work and one overall (in a terminal),
a line per finished document, and a summary (files, pages, failures by code, pages per second)."""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from types import TracebackType
from typing import Any, Literal, Self

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

OutcomeState = Literal["done", "failed", "skipped"]


@dataclass(slots=True)
class FileOutcome:
    """How one document went. Plain data: it crosses from pool processes and goes into ``--json``."""

    source: str
    state: OutcomeState
    pages_done: int = 0
    pages_failed: int = 0
    page_errors: dict[str, int] = field(default_factory=dict)
    """Failed pages per error code (the document still has results: its other pages)."""
    code: str | None = None
    """Why the document failed (``CORRUPT_FILE``, ...); None unless ``state == "failed"``."""
    message: str | None = None
    outputs: list[str] = field(default_factory=list)
    seconds: float = 0.0
    job_id: str | None = None
    followed: Literal["events", "polling"] | None = None
    """How a server job's progress was followed (`pagemill submit`)."""


@dataclass(slots=True)
class Summary:
    """Every document's outcome and the run's wall time."""

    outcomes: list[FileOutcome]
    seconds: float
    ignored: int = 0
    """Files found in folders or by patterns that are not a supported kind."""
    interrupted: bool = False

    def count(self, state: OutcomeState) -> int:
        """Documents that ended in ``state``."""
        return sum(1 for outcome in self.outcomes if outcome.state == state)

    @property
    def pages_done(self) -> int:
        """Pages read in this run."""
        return sum(outcome.pages_done for outcome in self.outcomes)

    @property
    def pages_failed(self) -> int:
        """Pages that failed in this run."""
        return sum(outcome.pages_failed for outcome in self.outcomes)

    @property
    def pages_per_second(self) -> float:
        """Pages read (or failed) per second of wall time."""
        return (self.pages_done + self.pages_failed) / self.seconds if self.seconds > 0 else 0.0

    @property
    def exit_code(self) -> int:
        """130 when interrupted; 1 when any document failed, else 0 (documents with some failed pages
        have results: 0)."""
        if self.interrupted:
            return 130
        return 1 if self.count("failed") else 0

    def to_json(self) -> dict[str, Any]:
        """The summary as `--json` prints it."""
        return {
            "files": {
                "total": len(self.outcomes),
                "done": self.count("done"),
                "skipped": self.count("skipped"),
                "failed": self.count("failed"),
                "ignored": self.ignored,
            },
            "pages": {"done": self.pages_done, "failed": self.pages_failed},
            "failures": dict(Counter(o.code for o in self.outcomes if o.code is not None)),
            "seconds": round(self.seconds, 3),
            "pages_per_second": round(self.pages_per_second, 2),
            "items": [asdict(outcome) for outcome in self.outcomes],
        }


class BulkDisplay:
    """Live progress of documents worked on at once, safe to call from several threads. In a terminal:
    an overall bar (documents) and one bar per document at work (pages); elsewhere (a log, a pipe): one
    line per finished document only."""

    def __init__(self, total: int, console: Console) -> None:
        self.console = console
        self.total = total
        self._finished = 0
        self._lock = threading.Lock()
        self._tasks: dict[str, TaskID] = {}
        self._ended: set[str] = set()
        self._progress: Progress | None = None
        if console.is_terminal:
            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=console,
                transient=True,
            )
            self._overall = self._progress.add_task("[bold]all documents", total=total)

    def __enter__(self) -> Self:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if self._progress is not None:
            self._progress.stop()

    def started(self, key: str, label: str, pages: int | None) -> None:
        """Document ``key`` is at work (``pages`` selected, when known)."""
        with self._lock:
            # A pool process's "started" may arrive after its document's outcome: no bar for it then.
            if self._progress is not None and key not in self._tasks and key not in self._ended:
                self._tasks[key] = self._progress.add_task(escape(label), total=pages)

    def advanced(self, key: str, done: int, total: int | None) -> None:
        """Document ``key`` has ``done`` of ``total`` pages finished."""
        with self._lock:
            if self._progress is not None and key in self._tasks:
                self._progress.update(self._tasks[key], completed=done, total=total)

    def finished(self, key: str, outcome: FileOutcome) -> None:
        """Document ``key`` ended: drop its bar, print its line."""
        with self._lock:
            self._finished += 1
            self._ended.add(key)
            if self._progress is not None:
                task = self._tasks.pop(key, None)
                if task is not None:
                    self._progress.remove_task(task)
                self._progress.advance(self._overall)
            where = "" if self._progress is not None else f"[{self._finished}/{self.total}] "
            self.console.print(where + outcome_line(outcome), highlight=False, soft_wrap=True)


def outcome_line(outcome: FileOutcome) -> str:
    """One document's line (rich markup; names escaped)."""
    source = escape(outcome.source)
    if outcome.state == "skipped":
        return f"[dim]skip[/] {source}: results exist (--force to redo)"
    if outcome.state == "failed":
        return f"[red]{outcome.code}[/] {source}: {escape(outcome.message or '')}"
    if outcome.job_id is not None and not outcome.outputs and outcome.followed is None:
        return f"[green]submitted[/] {source} -> job {outcome.job_id}"
    pages = f"{outcome.pages_done} page{'s' if outcome.pages_done != 1 else ''}"
    if outcome.pages_failed:
        codes = ", ".join(f"{code} x{n}" for code, n in sorted(outcome.page_errors.items()))
        pages += f", [yellow]{outcome.pages_failed} failed[/]" + (f" ({codes})" if codes else "")
    outputs = escape(", ".join(outcome.outputs))
    return f"[green]ok[/] {source} ({pages}) -> {outputs}"


def print_summary(summary: Summary, console: Console) -> None:
    """The run's summary: documents, pages, pages per second, and each failure with its code."""
    files = [f"{summary.count('done')} done"]
    if summary.count("skipped"):
        files.append(f"{summary.count('skipped')} skipped (results exist)")
    files.append(f"{summary.count('failed')} failed")
    if summary.ignored:
        files.append(f"{summary.ignored} ignored (not PDF or image)")
    pages = f"{summary.pages_done} read" + (
        f", {summary.pages_failed} failed" if summary.pages_failed else ""
    )
    console.print(
        f"[bold]files[/] {len(summary.outcomes)}: {', '.join(files)}; [bold]pages[/] {pages}; "
        f"{summary.seconds:.1f} s, {summary.pages_per_second:.1f} pages/s",
        highlight=False,
        soft_wrap=True,
    )
    failed = [outcome for outcome in summary.outcomes if outcome.state == "failed"]
    if failed:
        by_code = Counter(outcome.code for outcome in failed)
        console.print(
            "failures: " + ", ".join(f"{code} x{n}" for code, n in sorted(by_code.items())), soft_wrap=True
        )
        for outcome in failed:
            console.print(
                f"  [red]{outcome.code}[/] {escape(outcome.source)}", highlight=False, soft_wrap=True
            )


class Stopwatch:
    """Wall time since it was made."""

    def __init__(self) -> None:
        self._started = time.monotonic()

    @property
    def seconds(self) -> float:
        """Seconds since start."""
        return time.monotonic() - self._started


class ProgressLine:
    """One counter with a total (documents submitted, jobs ended): a bar in a terminal; elsewhere a line
    every tenth of the total or every 30 s, whichever comes first. Safe to advance from several threads."""

    def __init__(self, console: Console, what: str, total: int) -> None:
        self.console = console
        self.what = what
        self.total = total
        self.done = 0
        self._lock = threading.Lock()
        self._clock = Stopwatch()
        self._last_line = 0.0
        self._next_tenth = 1
        self._progress: Progress | None = None
        if console.is_terminal and total:
            self._progress = Progress(
                TextColumn(what),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.speed_text}"),
                TimeElapsedColumn(),
                console=console,
                transient=True,
            )
            self._task = self._progress.add_task(what, total=total)

    def __enter__(self) -> Self:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if self._progress is not None:
            self._progress.stop()

    def advance(self) -> None:
        """One more done."""
        with self._lock:
            self.done += 1
            if self._progress is not None:
                self._progress.advance(self._task)
                return
            seconds = self._clock.seconds
            tenth = self.done * 10 // max(self.total, 1)
            if tenth >= self._next_tenth or seconds - self._last_line >= 30 or self.done == self.total:
                self._next_tenth = tenth + 1
                self._last_line = seconds
                rate = self.done / seconds if seconds > 0 else 0.0
                self.console.print(f"{self.what} {self.done}/{self.total} ({rate:.1f}/s)", highlight=False)
