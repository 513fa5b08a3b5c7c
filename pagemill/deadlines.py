"""The time limit of the page work under way in this thread: a soft deadline every call made for it
respects, and a hard alarm for work that cannot be given a timeout.

The page worker opens a :func:`limited` block per claim (one OCR page, or one chunk of text-layer pages)
with the limits of its kind (``worker.time_limits``). Inside it:

* **soft**: engines and helpers ask :func:`budget` for their timeout (their own setting, but never more than
  what is left of the soft limit) and :func:`check` before starting anything; a spent budget raises the
  deadline's PROCESSING_TIMEOUT. Cooperative: it works in threads too (a GPU worker's pages).
* **hard**: :meth:`Deadline.alarm` arms ``SIGALRM`` for what is left of the hard limit around in-process
  work that takes no timeout (pdfium text extraction and rendering, RapidOCR). It can only do so in a
  process's main thread (a prefork pool process runs its task there); elsewhere the soft limit and the
  calls' own timeouts bound the work. The alarm raises :class:`HardTimeLimitExceeded`, a BaseException so
  that no ``except Exception`` on the way swallows it; the page loop turns it into PROCESSING_TIMEOUT. An
  alarm armed already (pytest-timeout's, say) that would go off first is left alone, and restored after.

No database and no settings here: engines and documents import it without depending on the jobs package.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from types import FrameType

from pagemill.errors import ProcessingTimeout

_CURRENT: ContextVar[Deadline | None] = ContextVar("pagemill_deadline", default=None)


class HardTimeLimitExceeded(BaseException):
    """The hard limit's alarm went off in the middle of a page. Internal to the worker process: the page loop
    catches it and records PROCESSING_TIMEOUT; it is never a client's error."""


@dataclass
class Deadline:
    """The time limits of one unit of page work, from its start (monotonic clock)."""

    kind: str
    soft_s: float
    hard_s: float
    started: float = field(default_factory=time.monotonic)

    def remaining(self) -> float:
        """Seconds left of the soft limit (0 when spent)."""
        return max(0.0, self.started + self.soft_s - time.monotonic())

    def spent(self) -> bool:
        """Whether the soft limit has passed."""
        return self.remaining() <= 0

    def elapsed(self) -> float:
        """Seconds since the work started."""
        return time.monotonic() - self.started

    def error(self, *, page: int | None = None, hard: bool = False) -> ProcessingTimeout:
        """The PROCESSING_TIMEOUT of work over this deadline (``page``: 1-based, if one page is at fault)."""
        limit = self.hard_s if hard else self.soft_s
        details: dict[str, object] = {"kind": self.kind, "limit_s": limit}
        if page is not None:
            details["page"] = page
        what = "the page" if page is not None or "page" in self.kind else "this work"
        return ProcessingTimeout(f"Reading {what} took longer than allowed ({limit:g} s).", **details)

    @contextmanager
    def alarm(self) -> Iterator[None]:
        """Raise HardTimeLimitExceeded in this block when the hard limit passes (main thread only)."""
        left = self.started + self.hard_s - time.monotonic()
        if left <= 0:
            raise HardTimeLimitExceeded(self.kind)
        if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
            yield
            return
        previous_delay, previous_interval = signal.getitimer(signal.ITIMER_REAL)
        if previous_delay and previous_delay <= left:
            yield  # someone else's alarm goes off first: theirs decides
            return
        armed = True

        def _on_alarm(signum: int, frame: FrameType | None) -> None:
            if armed:
                raise HardTimeLimitExceeded(self.kind)

        previous_handler = signal.signal(signal.SIGALRM, _on_alarm)
        armed_at = time.monotonic()
        signal.setitimer(signal.ITIMER_REAL, left)
        try:
            yield
        finally:
            armed = False
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous_handler)
            if previous_delay:
                spent = time.monotonic() - armed_at
                signal.setitimer(signal.ITIMER_REAL, max(previous_delay - spent, 0.001), previous_interval)


@contextmanager
def limited(kind: str, soft_s: float, hard_s: float) -> Iterator[Deadline]:
    """Run the block under a new deadline of ``kind`` (the calls it makes see it through :func:`current`)."""
    deadline = Deadline(kind, soft_s, hard_s)
    token = _CURRENT.set(deadline)
    try:
        yield deadline
    finally:
        _CURRENT.reset(token)


def current() -> Deadline | None:
    """The deadline of the work under way in this thread, if any."""
    return _CURRENT.get()


def check() -> None:
    """Raise the current deadline's PROCESSING_TIMEOUT if its soft limit has passed."""
    deadline = _CURRENT.get()
    if deadline is not None and deadline.spent():
        raise deadline.error()


def budget(timeout_s: float) -> float:
    """``timeout_s``, or less: what is left of the current soft limit. PROCESSING_TIMEOUT if nothing is."""
    deadline = _CURRENT.get()
    if deadline is None:
        return timeout_s
    left = deadline.remaining()
    if left <= 0:
        raise deadline.error()
    return min(timeout_s, left)


def spent() -> bool:
    """Whether the current deadline (if any) has passed: a call that timed out ran out of the page's time,
    not its own."""
    deadline = _CURRENT.get()
    return deadline is not None and deadline.spent()


def timed_out() -> ProcessingTimeout:
    """The current deadline's PROCESSING_TIMEOUT (call only when :func:`spent`)."""
    deadline = _CURRENT.get()
    assert deadline is not None
    return deadline.error()
