"""A GPU worker's render processes: pages are rendered and encoded outside the worker process.

A GPU worker keeps many pages in flight in threads of one process; rendering in those threads meant
taking turns at pdfium (not thread-safe: :data:`~pagemill.documents.source.PDFIUM_LOCK`) and at the GIL,
and one worker process topped out near 10 pages/s of rendering. With a pool, a thread sends the page's
document path and number to a render process (``worker.render_processes`` of them, by default one per core)
and waits, without holding the GIL, for the encoded image bytes the engine sends
(:class:`~pagemill.engines.page_image.EncodedImage`); the threads only wait on I/O.

The processes are started lazily, one at a time as pages need them, and are plain ``python -m`` children
(no fork of a threaded process) speaking JSON lines plus raw bytes (:mod:`pagemill.documents.render_child`).
What can go wrong with a page stays with that page:

* the process dies while rendering it (a segfault on a poison page, the kernel's OOM killer): the page is
  tried once more in a fresh process; a second death fails the page ``WORKER_CRASHED``; the worker and the
  other pages go on;
* it takes longer than ``limits.probe_timeout_s``, or than what is left of the page's time limit
  (pagemill.deadlines): the process is killed and the page fails ``PROCESSING_TIMEOUT``;
* it needs more memory than ``limits.probe_memory_mb`` (each process caps its own address space): the page
  fails ``PROCESSING_FAILED``;
* the document's own errors (a damaged page, a pixel cap) come back as the same errors as in-thread rendering;
* the document's file is no longer at its path (a worker-local copy of an S3 original that was evicted for
  newer ones while the page waited): :class:`SourceMissing`, and the thread renders the page itself from the
  document it has open.

The processes leave with the worker: at exit, when their stdin closes (also after a kill -9 of the worker),
or when they see their parent gone.
"""

from __future__ import annotations

import atexit
import logging
import os
import signal
import threading
import time
from dataclasses import dataclass
from typing import Any, Final

from pagemill import deadlines
from pagemill.documents.render_process import ProcessDied, RenderProcess
from pagemill.documents.source import SourceOrigin
from pagemill.engines.page_image import EncodedImage, ImageSpec
from pagemill.errors import (
    CorruptFile,
    EncryptedFile,
    ImageTooLarge,
    InvalidPageRange,
    PagemillError,
    ProcessingError,
    ProcessingTimeout,
    TooManyPages,
    TransientError,
    WorkerCrashed,
    WrongPassword,
)
from pagemill.settings import LimitSettings

log = logging.getLogger(__name__)

_TRIES: Final = 2
"""A page is rendered at most this often: a process that died on it once may have died of something else."""
_STOP_GRACE_S: Final = 2.0
# Only these errors may come back from a render process; any other code becomes ProcessingError.
_CHILD_ERRORS: Final[dict[str, type[PagemillError]]] = {
    cls.code: cls
    for cls in (
        CorruptFile,
        EncryptedFile,
        ImageTooLarge,
        InvalidPageRange,
        ProcessingError,
        TooManyPages,
        WrongPassword,
    )
}


@dataclass(frozen=True, slots=True)
class RenderedPage:
    """A page rendered and encoded by a render process, and what it cost there."""

    image: EncodedImage
    render_ms: float
    encode_ms: float


class SourceMissing(Exception):
    """The document's file is gone from its path (a worker-local copy made room for others): the caller,
    which still has it open, renders the page itself."""


class RenderPool:
    """At most ``processes`` render processes, shared by the threads of one worker process."""

    def __init__(self, processes: int, *, memory_mb: int) -> None:
        if processes < 1:
            raise ValueError("a render pool needs at least one process")
        self.processes = processes
        self._memory_mb = memory_mb
        self._idle: list[RenderProcess] = []
        self._running = 0
        self._closed = False
        self._ready = threading.Condition()
        self._all: set[RenderProcess] = set()

    def pids(self) -> list[int]:
        """The ids of the render processes running now (operations, tests)."""
        with self._ready:
            return [process.pid for process in self._all if process.alive()]

    def render(
        self, origin: SourceOrigin, index: int, *, dpi: int, spec: ImageSpec, limits: LimitSettings
    ) -> RenderedPage:
        """Render page ``index`` of ``origin`` at ``dpi`` (within ``spec.max_side``) and encode it as
        ``spec`` says, in a render process. Raises the document's errors as in-thread rendering does, and
        WorkerCrashed, ProcessingTimeout or TransientError for the render process (see the module)."""
        request = {
            "path": str(origin.path),
            "kind": origin.kind.value,
            "password": origin.password,
            "index": index,
            "dpi": dpi,
            "spec": spec.to_dict(),
            "limits": limits.model_dump(mode="json"),
        }
        # Base64 of the largest image that may be sent, uncompressed: no honest answer is larger.
        max_bytes = max(limits.render_max_pixels, spec.max_side**2) * 4 + (1 << 20)
        for attempt in range(1, _TRIES + 1):
            deadlines.check()  # the page's time is spent (waiting for a process, say): no render
            process = self._acquire()
            # Its own limit, or what is left of the page's time (pagemill.deadlines) if that is less.
            page = deadlines.current()
            allowed = float(limits.probe_timeout_s)
            if page is not None:
                allowed = min(allowed, page.remaining())
            if allowed <= 0:  # spent waiting for a free process: give it back unused
                self._release(process)
                raise deadlines.timed_out()
            deadline = time.monotonic() + allowed
            try:
                header, payload = process.ask(request, deadline, max_bytes)
            except ProcessDied:
                self._discard(process, kill=False)
                status = process.popen.returncode
                log.warning(
                    "render process %s died on page %d (%s); %s",
                    process.pid,
                    index + 1,
                    _describe_exit(status),
                    "trying a fresh one" if attempt < _TRIES else "giving the page up",
                )
                continue
            except TimeoutError:
                self._discard(process, kill=True)
                if deadlines.spent():
                    raise deadlines.timed_out() from None
                raise ProcessingTimeout(
                    "The page took longer to render than allowed.",
                    page=index + 1,
                    timeout_s=limits.probe_timeout_s,
                ) from None
            except (ValueError, OSError) as exc:
                # A garbled answer: this process cannot be trusted with another page.
                self._discard(process, kill=True)
                log.warning("render process %s answered page %d unreadably: %s", process.pid, index + 1, exc)
                raise ProcessingError("The page could not be rendered.", page=index + 1) from None
            except BaseException:
                # Interrupted half-way (a soft time limit, shutdown): the pipe may hold half an answer.
                self._discard(process, kill=True)
                raise
            if "ok" in header:
                self._release(process)
                return _rendered(header["ok"], payload)
            if header.get("missing"):
                self._release(process)
                raise SourceMissing(str(origin.path))
            error = _error_from_child(header.get("error"), index)
            if error.details.get("reason") == "memory_limit":
                self._discard(process, kill=False)  # it leaves by itself after a MemoryError
            else:
                self._release(process)
            raise error
        raise WorkerCrashed(
            "Rendering this page crashed its render process twice; it was given up.",
            page=index + 1,
            attempts=_TRIES,
        )

    def _acquire(self) -> RenderProcess:
        with self._ready:
            while True:
                if self._closed:
                    raise TransientError("The worker is stopping; the page will be read again.")
                while self._idle:
                    process = self._idle.pop()
                    if process.alive():
                        return process
                    process.kill()  # died while idle (killed from outside): reap it, close its pipes
                    self._forget(process)
                if self._running < self.processes:
                    self._running += 1
                    break
                self._ready.wait()
        try:
            process = RenderProcess(self._memory_mb)
        except OSError:
            with self._ready:
                self._running -= 1
                self._ready.notify()
            # Out of processes or memory on this worker: not the page's fault, worth retrying.
            raise TransientError("The page could not be rendered right now.") from None
        with self._ready:
            self._all.add(process)
        return process

    def _release(self, process: RenderProcess) -> None:
        with self._ready:
            if not self._closed:
                self._idle.append(process)
                self._ready.notify()
                return
            self._forget(process)
        process.stop(_STOP_GRACE_S)

    def _discard(self, process: RenderProcess, *, kill: bool) -> None:
        if kill:
            process.kill()
        else:
            process.stop(_STOP_GRACE_S)
        with self._ready:
            self._forget(process)

    def _forget(self, process: RenderProcess) -> None:
        """Drop a process from the books (the caller holds the lock); a slot opens for a new one."""
        if process in self._all:
            self._all.discard(process)
            self._running -= 1
        self._ready.notify()

    def close(self) -> None:
        """Stop every idle render process; busy ones are stopped when their page is done."""
        with self._ready:
            self._closed = True
            idle, self._idle = self._idle, []
            for process in idle:
                self._forget(process)
            self._ready.notify_all()
        for process in idle:
            process.stop(_STOP_GRACE_S)


def _rendered(header: dict[str, Any], payload: bytes) -> RenderedPage:
    mime = header.get("mime")
    width, height = header.get("width"), header.get("height")
    if mime not in ("image/jpeg", "image/png") or not (isinstance(width, int) and isinstance(height, int)):
        raise ProcessingError("The page could not be rendered.")
    return RenderedPage(
        image=EncodedImage(mime=str(mime), base64=payload, size=(width, height)),
        render_ms=float(header.get("render_ms") or 0.0),
        encode_ms=float(header.get("encode_ms") or 0.0),
    )


def _error_from_child(error: object, index: int) -> PagemillError:
    if not isinstance(error, dict):
        return ProcessingError("The page could not be rendered.", page=index + 1)
    cls = _CHILD_ERRORS.get(str(error.get("code")), ProcessingError)
    message = error.get("message")
    details = error.get("details")
    return cls(
        message if isinstance(message, str) and len(message) < 500 else None,
        **(details if isinstance(details, dict) else {}),
    )


def _describe_exit(status: int | None) -> str:
    if status is not None and status < 0:
        return f"signal {signal.Signals(-status).name}"
    return f"exit status {status}"


# --- The process's pool ------------------------------------------------------------------------------------

_pool_lock = threading.Lock()
_pool: RenderPool | None = None


def default_render_processes() -> int:
    """One render process per core this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def start_render_pool(processes: int | None, limits: LimitSettings) -> RenderPool | None:
    """Give this process a render pool of ``processes`` (None: one per core; 0: none, pages are rendered
    in the threads that read them). Its processes start as pages need them and stop at exit."""
    global _pool
    count = default_render_processes() if processes is None else processes
    with _pool_lock:
        if _pool is not None or count < 1:
            return _pool
        _pool = RenderPool(count, memory_mb=limits.probe_memory_mb)
    atexit.register(stop_render_pool)
    log.info("render pool: up to %d render processes", count)
    return _pool


def active_render_pool() -> RenderPool | None:
    """This process's render pool, if it has one."""
    return _pool


def stop_render_pool() -> None:
    """Stop this process's render pool (at exit; tests)."""
    global _pool
    with _pool_lock:
        pool, _pool = _pool, None
    if pool is not None:
        pool.close()
