"""Inspect an untrusted document in a throwaway child process before anything else touches it.

The parsers (pdfium, libpng, libjpeg, libtiff, libwebp) are C code fed hostile bytes. The child is forked
(no interpreter start-up, no re-imports: a few milliseconds) and runs under a CPU-time cap, a wall-clock
deadline and a memory budget of ``probe_memory_mb``: RLIMIT_AS stops new mappings beyond the budget at once,
and the parent watches the memory the child makes its own (private pages, which also catches reuse of heap
inherited from the parent). Whatever happens inside (a segfault, an allocation failure, a loop) comes back
to the caller as a typed error, never as a dead worker.

The child answers with one line of JSON, never a pickle: a parser that was subverted by the file must not be
able to run code in the parent through the answer.
"""

from __future__ import annotations

import faulthandler
import json
import logging
import math
import os
import resource
import select
import signal
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final, NoReturn

from PIL import Image

from pagemill.documents.audio.cutting import AudioCut, cut_recording
from pagemill.documents.kinds import DocumentKind
from pagemill.documents.office.document import ReadOptions
from pagemill.documents.office.readers import read_office
from pagemill.documents.office.source import visible_pages
from pagemill.documents.source import (
    check_frame_size,
    check_page_count,
    frame_count,
    is_encrypted,
    open_image,
    open_pdf,
)
from pagemill.errors import (
    ArchiveBomb,
    AudioTooLong,
    CorruptFile,
    EmptyFile,
    EncryptedFile,
    ImageTooLarge,
    PagemillError,
    ProcessingError,
    ProcessingTimeout,
    TooManyCells,
    TooManyPages,
    TransientError,
    UnsupportedCodec,
    UnsupportedType,
    WrongPassword,
)
from pagemill.settings import LimitSettings

logger = logging.getLogger(__name__)

_MB: Final = 1024 * 1024
_MAX_ANSWER_BYTES: Final = 64 * 1024
_WATCH_INTERVAL_S: Final = 0.01
# Only these errors may cross from the child; anything else it claims becomes CorruptFile.
_CHILD_ERRORS: Final[dict[str, type[PagemillError]]] = {
    cls.code: cls
    for cls in (
        ArchiveBomb,
        AudioTooLong,
        CorruptFile,
        EmptyFile,
        EncryptedFile,
        ImageTooLarge,
        ProcessingError,
        ProcessingTimeout,
        TooManyCells,
        TooManyPages,
        TransientError,
        UnsupportedCodec,
        UnsupportedType,
        WrongPassword,
    )
}


@dataclass(frozen=True, slots=True)
class DocumentInfo:
    """What the probe learned about a document that opened and passed every limit."""

    kind: DocumentKind
    page_count: int
    encrypted: bool
    """True when the PDF has a security handler, including owner-password-only files that open freely."""
    peak_rss_bytes: int | None = None
    """Peak resident memory of the probe child (includes pages shared copy-on-write with the parent)."""
    duration_s: float | None = None
    """A recording's length in seconds (its pieces are the pages)."""


def probe_document(
    path: Path,
    kind: DocumentKind,
    *,
    password: str | None,
    limits: LimitSettings,
    office: ReadOptions | None = None,
    audio: AudioCut | None = None,
    on_wait: Callable[[], None] | None = None,
) -> DocumentInfo:
    """Open and fully check ``path`` in a sandboxed child; return its page count or raise a typed error.

    Raises CorruptFile, EncryptedFile, WrongPassword, TooManyPages, ImageTooLarge or ProcessingTimeout.
    Images are decoded completely (every TIFF frame), so truncated or broken data is found here.
    ``on_wait`` is called in this process every few milliseconds while the child works (a recording's
    pieces are stored and started as they are cut); whatever it raises kills the child and is raised here.
    """
    if audio is not None:
        # Decoding and cutting a long recording takes longer than opening a document: a second of time
        # per two minutes of audio on top (an hour of Opus decodes in about 12 s on one core).
        limits = limits.model_copy(
            update={"probe_timeout_s": limits.probe_timeout_s + math.ceil(audio.max_seconds / 120)}
        )
    answer, peak_rss = _run_in_child(path, kind, password, limits, office, audio, on_wait)
    if "internal" in answer:
        logger.info("document probe: parser raised %s", str(answer["internal"])[:300])
    if "error" in answer:
        raise _error_from_child(answer["error"])
    result = answer.get("ok")
    if not isinstance(result, dict):
        raise CorruptFile(reason="probe_answer")
    return DocumentInfo(
        kind=kind,
        page_count=int(result["page_count"]),
        encrypted=bool(result["encrypted"]),
        peak_rss_bytes=peak_rss,
        duration_s=float(result["duration_s"]) if "duration_s" in result else None,
    )


def inspect_document(
    path: Path,
    kind: DocumentKind,
    password: str | None,
    limits: LimitSettings,
    office: ReadOptions | None = None,
    audio: AudioCut | None = None,
) -> dict[str, Any]:
    """The probe's work, run inside the child: open, count pages, check sizes, decode images; an office
    file is read whole (with ``office``, the job's reading options) and its pages counted; a recording is
    decoded and cut into pieces written to ``audio.folder`` (its pages)."""
    if kind.is_audio:
        if audio is None:
            raise ProcessingError("A recording is cut only where its pieces can be written.")
        return cut_recording(path, kind.value, audio)
    if kind.is_office:
        options = replace(office or ReadOptions(), password=password)
        document = read_office(path, kind, options, limits)
        page_count = len(visible_pages(document, options))
        check_page_count(page_count, limits)
        return {"page_count": page_count, "encrypted": kind is DocumentKind.ENCRYPTED_OOXML}
    if kind is DocumentKind.PDF:
        pdf = open_pdf(path, password)
        try:
            page_count, encrypted = len(pdf), is_encrypted(pdf)
        finally:
            pdf.close()
        check_page_count(page_count, limits)
        return {"page_count": page_count, "encrypted": encrypted}
    with open_image(path, kind, limits) as image:
        page_count = frame_count(image)
        check_page_count(page_count, limits)
        try:
            # Every frame's declared size is checked before any frame is decoded.
            for index in range(page_count):
                image.seek(index)
                check_frame_size(image, limits)
            for index in range(page_count):
                image.seek(index)
                image.load()
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise ImageTooLarge(max_pixels=limits.max_image_pixels) from None
        except (OSError, SyntaxError, ValueError, EOFError):
            # Truncated files, broken data streams, frames that cannot be reached.
            raise CorruptFile("The image data is damaged.", reason="image_data") from None
    return {"page_count": page_count, "encrypted": False}


def _run_in_child(
    path: Path,
    kind: DocumentKind,
    password: str | None,
    limits: LimitSettings,
    office: ReadOptions | None,
    audio: AudioCut | None,
    on_wait: Callable[[], None] | None = None,
) -> tuple[dict[str, Any], int | None]:
    """Fork, run :func:`inspect_document` in the child, and return its answer and peak RSS."""
    read_fd, write_fd = os.pipe()
    try:
        # os.fork, not multiprocessing: Celery's pool processes are daemonic and may not start
        # multiprocessing children, and fork skips the interpreter start-up a subprocess would pay.
        pid = os.fork()
    except OSError:
        os.close(read_fd)
        os.close(write_fd)
        # Out of processes or memory on this worker: not the document's fault, worth retrying.
        raise TransientError("The document could not be inspected right now.") from None
    if pid == 0:  # pragma: no cover - runs in the child, which leaves through os._exit
        os.close(read_fd)
        _child_main(write_fd, path, kind, password, limits, office, audio)
    os.close(write_fd)
    # A legacy file is converted by LibreOffice (itself held to probe_timeout_s) before it is read: the
    # child gets the conversion's time and the reading's.
    deadline = time.monotonic() + limits.probe_timeout_s * (2 if kind.is_legacy else 1)
    try:
        raw, failure = _read_answer(read_fd, pid, deadline, limits, on_wait)
    except BaseException:
        _reap(pid, time.monotonic())  # on_wait failed: the child's work is of no use now
        raise
    finally:
        os.close(read_fd)
    status, usage = _reap(pid, deadline if failure is None else time.monotonic())
    peak_rss = usage.ru_maxrss * 1024 if usage is not None else None
    if failure is not None:
        raise failure
    if raw:
        try:
            answer = json.loads(raw)
        except ValueError:
            answer = None
        if isinstance(answer, dict):
            return answer, peak_rss
    raise _error_from_exit(status, usage, limits)


def _child_main(
    write_fd: int,
    path: Path,
    kind: DocumentKind,
    password: str | None,
    limits: LimitSettings,
    office: ReadOptions | None,
    audio: AudioCut | None,
) -> NoReturn:
    """Entry point of the forked child; never returns."""
    exit_code = 70
    try:
        # The parent's handlers (Celery's, pytest's) must not run here; a plain kill must just end us.
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        # A crash here is expected and reported by the parent; a Python traceback of it is only noise.
        faulthandler.disable()
        _apply_limits(limits)
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        answer = _answer(path, kind, password, limits, office, audio)
        data = json.dumps(answer).encode() + b"\n"
        view = memoryview(data)
        while view:
            view = view[os.write(write_fd, view) :]
        exit_code = 0
    finally:
        # os._exit: no atexit handlers, no flushing of the parent's buffered streams, no finalizers.
        os._exit(exit_code)


def _answer(
    path: Path,
    kind: DocumentKind,
    password: str | None,
    limits: LimitSettings,
    office: ReadOptions | None,
    audio: AudioCut | None,
) -> dict[str, Any]:
    try:
        return {"ok": inspect_document(path, kind, password, limits, office, audio)}
    except PagemillError as exc:
        return {"error": exc.to_dict()}
    except MemoryError:
        return {"error": CorruptFile(reason="memory_limit").to_dict()}
    except Exception as exc:  # on hostile bytes, any parser failure means a bad file
        return {"error": CorruptFile(reason="parser_error").to_dict(), "internal": repr(exc)[:300]}


def _apply_limits(limits: LimitSettings) -> None:
    """Cap the child's memory, CPU time and core dumps."""
    # The fork inherits the parent's whole address space (shared copy-on-write, not new memory), so the
    # budget is added on top of it; a flat cap below the parent's size would make every allocation fail.
    inherited = _address_space_bytes()
    _lower_limit(resource.RLIMIT_AS, inherited + limits.probe_memory_mb * _MB, 0)
    # SIGXCPU at the soft limit, SIGKILL one second later: a parser spinning in C cannot outlive its budget.
    _lower_limit(resource.RLIMIT_CPU, limits.probe_timeout_s, 1)
    _lower_limit(resource.RLIMIT_CORE, 0, 0)


def _lower_limit(which: int, soft: int, hard_extra: int) -> None:
    """Set a limit, never above a hard limit the container already imposes (raising it would fail)."""
    _, hard = resource.getrlimit(which)
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
        resource.setrlimit(which, (soft, min(soft + hard_extra, hard)))
    else:
        resource.setrlimit(which, (soft, soft + hard_extra))


def _address_space_bytes() -> int:
    """Size of this process's address space (VmSize), 0 where /proc is missing."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[0]) * resource.getpagesize()
    except OSError:
        return 0


def _read_answer(
    fd: int, pid: int, deadline: float, limits: LimitSettings, on_wait: Callable[[], None] | None = None
) -> tuple[bytes, PagemillError | None]:
    """Read one newline-terminated answer (or EOF) while watching the child's time and memory (and calling
    ``on_wait`` between looks).

    Returns the bytes read, or the error to raise after killing the child.
    """
    budget = limits.probe_memory_mb * _MB
    chunks: list[bytes] = []
    size = 0
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return b"", ProcessingTimeout(timeout_s=limits.probe_timeout_s)
        ready, _, _ = select.select([fd], [], [], min(remaining, _WATCH_INTERVAL_S))
        if not ready:
            # RLIMIT_AS cannot see the child reusing heap the parent had already mapped; the memory
            # the child writes to becomes private to it, so that is what is held against the budget.
            if _private_bytes(pid) > budget:
                return b"", CorruptFile(reason="memory_limit")
            if on_wait is not None:
                on_wait()
            continue
        chunk = os.read(fd, 65536)
        if not chunk:
            return b"".join(chunks), None
        chunks.append(chunk)
        size += len(chunk)
        # Stop at the newline rather than EOF: a process forked elsewhere may hold a copy of the write end.
        if chunk.endswith(b"\n") or size > _MAX_ANSWER_BYTES:
            return b"".join(chunks), None


def _private_bytes(pid: int) -> int:
    """Memory only this process holds (written or allocated since the fork); 0 where Linux cannot say."""
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as rollup:
            lines = rollup.read().splitlines()
    except OSError:
        return 0
    kib = sum(
        int(line.split()[1]) for line in lines if line.startswith((b"Private_Clean:", b"Private_Dirty:"))
    )
    return kib * 1024


def _reap(pid: int, deadline: float) -> tuple[int, resource.struct_rusage | None]:
    """Wait for the child until ``deadline``, then kill it; returns its wait status and resource usage."""
    try:
        while True:
            reaped, status, usage = os.wait4(pid, os.WNOHANG)
            if reaped:
                return status, usage
            if time.monotonic() >= deadline:
                os.kill(pid, signal.SIGKILL)
                _, status, usage = os.wait4(pid, 0)
                return status, usage
            time.sleep(0.0005)
    except ChildProcessError:
        # Someone else (a SIGCHLD handler) reaped it: the answer, if any, still stands.
        return 0, None


def _error_from_child(error: object) -> PagemillError:
    if not isinstance(error, dict):
        return CorruptFile(reason="probe_answer")
    cls = _CHILD_ERRORS.get(str(error.get("code")), CorruptFile)
    message = error.get("message")
    details = error.get("details")
    return cls(
        message if isinstance(message, str) and len(message) < 500 else None,
        **(details if isinstance(details, dict) else {}),
    )


def _error_from_exit(
    status: int, usage: resource.struct_rusage | None, limits: LimitSettings
) -> PagemillError:
    """The child died without answering: a crash, the memory cap, or the CPU cap."""
    cpu_s = usage.ru_utime + usage.ru_stime if usage is not None else 0.0
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        if sig == signal.SIGXCPU or (sig == signal.SIGKILL and cpu_s >= limits.probe_timeout_s):
            return ProcessingTimeout(timeout_s=limits.probe_timeout_s)
        logger.warning("document probe child killed by signal %s", signal.Signals(sig).name)
        return CorruptFile(reason="parser_crashed")
    logger.warning("document probe child exited with status %s without answering", status)
    return CorruptFile(reason="parser_crashed")
