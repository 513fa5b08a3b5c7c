"""Which failures are dead letters, of which category, and their traceback fingerprint. Pure: no I/O.

A failure is a dead letter when the work may succeed if run again once something outside the document is
fixed (a worker, an engine, a limit, a parser): it spent its attempts. A failure the client caused, that no
replay can fix, is not. Decided by error class:

===============================================  ===========  ===============================================
error (class, code)                              category     why
===============================================  ===========  ===============================================
WorkerCrashed (WORKER_CRASHED)                   ``crash``    a page or document killed its worker (poison)
                                                              worker.max_attempts times
ProcessingTimeout (PROCESSING_TIMEOUT)           ``timeout``  a page, chunk or document over its time limit
                                                              once its attempts were spent, or a job past
                                                              worker.job_deadline_s
EngineFailed (ENGINE_FAILED),                    ``engine``   every engine of the chain failed the page, or
EngineUnavailable (ENGINE_UNAVAILABLE)                        its engines stayed down worker.max_deferrals
                                                              times
CorruptFile (CORRUPT_FILE), ProcessingError      ``decode``   the document or a page could not be decoded (a
(PROCESSING_FAILED, an unexpected exception)                  damaged file, or a parser bug a fix may read)
JobStalled (JOB_STALLED), any other              ``other``    e.g. no worker took the job's pages
ProcessingError or TransientError
every other InputError (EMPTY_FILE,              none         the client's document or request is at fault:
UNSUPPORTED_TYPE, ENCRYPTED_FILE,                             a replay would fail the same way
WRONG_PASSWORD, TOO_MANY_PAGES, IMAGE_TOO_LARGE,
INVALID_PAGE_RANGE, URL_* ...), AccessError
===============================================  ===========  ===============================================

Office and audio inputs will add their own decode categories when they exist.

The fingerprint groups failures that are the same problem: a hash of the error's code, the few details
that name its cause (engine, reason, kind, status) and, when there is one, the frames of the traceback that
raised it (file and function, no line numbers, so a fix elsewhere in a file does not change it); timeouts
and crashes leave the traceback out (where a timeout was noticed is not its cause). Pages of one job failing
with the same category and fingerprint are one dead letter.
"""

from __future__ import annotations

import hashlib
import traceback
from pathlib import PurePath
from types import TracebackType

from pagemill.errors import (
    CorruptFile,
    EngineFailed,
    EngineUnavailable,
    InputError,
    PagemillError,
    ProcessingError,
    ProcessingTimeout,
    TransientError,
    WorkerCrashed,
)
from pagemill.models import DeadLetterCategory

FINGERPRINT_CHARS = 16
_CAUSE_DETAILS = ("engine", "reason", "kind", "status")
_ORDER: tuple[tuple[type[PagemillError], DeadLetterCategory], ...] = (
    (WorkerCrashed, DeadLetterCategory.CRASH),
    (ProcessingTimeout, DeadLetterCategory.TIMEOUT),
    (EngineFailed, DeadLetterCategory.ENGINE),
    (EngineUnavailable, DeadLetterCategory.ENGINE),
    (CorruptFile, DeadLetterCategory.DECODE),
)


def category_of(error: PagemillError) -> DeadLetterCategory | None:
    """The dead letter category of ``error``, or None when it is not a dead letter (see the module)."""
    for cls, category in _ORDER:
        if isinstance(error, cls):
            return category
    if type(error) is ProcessingError:
        return DeadLetterCategory.DECODE
    if isinstance(error, ProcessingError | TransientError):
        return DeadLetterCategory.OTHER
    if isinstance(error, InputError):
        return None
    # AccessError never comes from a worker; the base PagemillError would be a bug in an error path.
    return DeadLetterCategory.OTHER if type(error) is PagemillError else None


def root_cause(error: BaseException) -> BaseException:
    """The innermost exception of ``error``'s chain that carries a traceback (or ``error`` itself)."""
    found = error
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if current.__traceback__ is not None:
            found = current
        current = current.__cause__ or current.__context__
    return found


def _frames(tb: TracebackType | None) -> list[str]:
    # The last two parts of a frame's path: the same in a virtualenv, a container or a checkout.
    return [
        f"{'/'.join(PurePath(frame.filename).parts[-2:])}:{frame.name}" for frame in traceback.extract_tb(tb)
    ]


def fingerprint(error: PagemillError) -> str:
    """A short stable hash that names the problem behind ``error`` (see the module)."""
    parts = [error.code]
    parts += [f"{key}={error.details[key]}" for key in _CAUSE_DETAILS if key in error.details]
    cause = root_cause(error)
    # Where a timeout was noticed, or how a crash was found, says nothing about the cause: their pages
    # group by code and kind alone.
    if cause.__traceback__ is not None and not isinstance(error, ProcessingTimeout | WorkerCrashed):
        parts.append(f"{type(cause).__module__}.{type(cause).__qualname__}")
        parts += _frames(cause.__traceback__)
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:FINGERPRINT_CHARS]


def traceback_text(error: BaseException, max_chars: int) -> str | None:
    """The formatted traceback of ``error`` with its causes (its end, at most ``max_chars``), or None when
    nothing in its chain was raised (an error made to record a crash has none)."""
    if max_chars <= 0 or root_cause(error).__traceback__ is None:
        return None
    text = "".join(traceback.format_exception(error))
    return text[-max_chars:]
