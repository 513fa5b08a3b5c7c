"""Test-only instrumentation, loaded by Python at start-up when this folder is on PYTHONPATH: every pool
process of a worker started with ``PAGEMILL_TEST_READ_LOG=<file>`` appends one line per page read to that
file, so a test can count the work done (not just the rows written) and see which reads a kill cut short.

Line format: ``<event> <job id> <page index> <pid> <unix time>``; events ``start`` (a read begins), ``end``
(it returned a result), ``none`` (the text pass found no usable text: the page goes to OCR), ``error`` (it
raised). A ``start`` with nothing after it from the same pid was cut short (a kill). Each line is one
``write`` on an ``O_APPEND`` descriptor, so lines from many processes never interleave. Nothing in the
product knows about it.
"""

import os
import sys
import time

READ_LOG_ENV = "PAGEMILL_TEST_READ_LOG"


def _job_id_of_caller() -> str:
    # The reading functions take a document, not a job: the job is a local of the function that calls them
    # (``job`` or ``job_id``), found a few frames up so a refactor of the caller does not break the log.
    frame = sys._getframe(2)
    for _ in range(6):
        if frame is None:
            break
        job = frame.f_locals.get("job")
        if job is not None and hasattr(job, "id"):
            return str(job.id)
        job_id = frame.f_locals.get("job_id")
        if isinstance(job_id, str):
            return job_id
        frame = frame.f_back
    return "?"


def _write(path: str, event: str, job_id: str, index: object) -> None:
    line = f"{event} {job_id} {index} {os.getpid()} {time.time():.3f}\n".encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def _logged(path: str, original):  # type: ignore[no-untyped-def]
    if getattr(original, "_read_logged", False):
        return original  # a prefork child inherits its parent's wrapping (see the signals below)

    def read(source, index, *args, **kwargs):  # type: ignore[no-untyped-def]
        job_id = _job_id_of_caller()
        _write(path, "start", job_id, index)
        try:
            result = original(source, index, *args, **kwargs)
        except BaseException:
            _write(path, "error", job_id, index)
            raise
        _write(path, "end" if result is not None else "none", job_id, index)
        return result

    read._read_logged = True  # type: ignore[attr-defined]
    return read


def _instrument_pool_process(**_: object) -> None:
    path = os.environ.get(READ_LOG_ENV)
    if not path:
        return
    from pagemill.jobs import reading

    reading.ocr_page = _logged(path, reading.ocr_page)
    reading.text_pass = _logged(path, reading.text_pass)


try:
    from celery.signals import worker_init, worker_process_init

    # Prefork pool processes read pages (worker_process_init); a threads pool (the GPU worker) reads them
    # in the main process, which only gets worker_init.
    worker_process_init.connect(_instrument_pool_process, weak=False)
    worker_init.connect(_instrument_pool_process, weak=False)
except ImportError:  # not a worker's environment
    pass
