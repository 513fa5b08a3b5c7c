"""Logging: one structlog formatter for Pagemill's loggers, uvicorn's and Celery's, as JSON lines or text.

Code logs through the standard library (``logging.getLogger(__name__)``; ``structlog.get_logger()`` works
too). One handler on the root logger, on stderr, formats every record with structlog's
``ProcessorFormatter``, whoever wrote it (uvicorn and Celery are told not to install handlers of their
own). Each line has:

* ``ts`` (UTC, ISO 8601), ``level``, ``logger``, ``message``, and ``exc`` (the traceback) when there is one;
* ``request_id``: the HTTP request being served (set by the API's request-id middleware in
  :data:`request_id_var`, or passed as ``extra={"request_id": ...}`` after the request's context ended);
* what is bound to the context (:func:`bound`, :func:`bind`): ``tenant`` while a request or a job is
  served, ``job_id`` while a job is worked, ``task_id`` and ``task`` while a Celery task runs;
* the fields of :data:`EXTRA_FIELDS` a call passes in ``extra`` (the access log's method, path, status...).

``log_format``: ``json`` (one object per line), ``text`` (structlog's console renderer: readable, with the
fields as ``key=value``) or ``auto``: text when stderr is a terminal, JSON otherwise. The older ``log_json``
wins when it is set, so settings written for earlier releases keep their meaning.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from pagemill.settings import Settings

request_id_var: ContextVar[str | None] = ContextVar("pagemill_request_id", default=None)
"""The id of the HTTP request being served, set by the API's request-id middleware."""

EXTRA_FIELDS = ("tenant", "job_id", "method", "path", "status", "duration_ms", "client", "delivery_id")
"""Keys of a call's ``extra`` that become fields of its line (others stay on the record only: Celery passes
whole task contexts there)."""


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        # An explicit ``extra={"request_id": ...}`` wins: code that runs after the request's context has
        # ended (Starlette's last-resort 500 handler, the HTTP server's own refusals) passes the id that way.
        if getattr(record, "request_id", None) is None:
            record.request_id = request_id_var.get() or "-"
        return True


def _add_request_id(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """The request id from the record (see _RequestIdFilter) or the context; none outside a request."""
    if "request_id" not in event_dict:
        record = event_dict.get("_record")
        request_id = getattr(record, "request_id", None) or request_id_var.get()
        if request_id and request_id != "-":
            event_dict["request_id"] = request_id
    return event_dict


def _rename_exception(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    # ``exc`` is the key JSON lines of earlier releases carried their tracebacks under.
    if "exception" in event_dict:
        event_dict["exc"] = event_dict.pop("exception")
    return event_dict


def _shared_processors() -> list[Processor]:
    """What every line gets, from a structlog logger or a standard one."""
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        _add_request_id,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="ts"),
    ]


def wants_json(settings: Settings, stream: TextIO) -> bool:
    """Whether lines written to ``stream`` are JSON under ``settings`` (see the module docstring)."""
    if settings.log_json is not None:
        return settings.log_json
    if settings.log_format != "auto":
        return settings.log_format == "json"
    return not _is_terminal(stream)


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or unusual stream
        return False


def make_formatter(settings: Settings, stream: TextIO) -> structlog.stdlib.ProcessorFormatter:
    """The one formatter: JSON lines or console text for ``stream``, as ``settings`` ask."""
    tail: list[Processor]
    if wants_json(settings, stream):
        tail = [
            structlog.processors.format_exc_info,
            _rename_exception,
            structlog.processors.EventRenamer("message"),
            structlog.processors.JSONRenderer(ensure_ascii=False),
        ]
    else:
        colors = _is_terminal(stream) and "NO_COLOR" not in os.environ
        # Plain tracebacks: the default (rich) prints local variables, and those can hold secrets.
        tail = [
            structlog.dev.ConsoleRenderer(
                colors=colors, timestamp_key="ts", exception_formatter=structlog.dev.plain_traceback
            )
        ]
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.stdlib.ExtraAdder(EXTRA_FIELDS), *_shared_processors()],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *tail],
    )


def make_handler(settings: Settings, stream: TextIO | None = None) -> logging.Handler:
    """A handler writing to ``stream`` (stderr) through :func:`make_formatter`."""
    stream = stream or sys.stderr
    handler = logging.StreamHandler(stream)
    handler.setFormatter(make_formatter(settings, stream))
    handler.addFilter(_RequestIdFilter())
    return handler


def configure_logging(settings: Settings) -> None:
    """Configure the root logger (and structlog) once per process: API, workers and the CLI."""
    root = logging.getLogger()
    if getattr(root, "_pagemill_configured", False):
        return
    configure_structlog()
    root.addHandler(make_handler(settings))
    root.setLevel(settings.log_level.upper())
    # Alembic announces each of its plugins at INFO whenever a migration context opens (every CLI command
    # that checks the schema): noise, not news.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    root._pagemill_configured = True  # type: ignore[attr-defined]


def configure_structlog() -> None:
    """Send ``structlog.get_logger()`` lines through the standard library, to the one formatter."""
    structlog.configure(
        processors=[*_shared_processors(), structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


def bind(**fields: Any) -> None:
    """Add ``fields`` to every line this thread or task logs from now on (until :func:`clear`)."""
    structlog.contextvars.bind_contextvars(**fields)


@contextmanager
def bound(**fields: Any) -> Iterator[None]:
    """Add ``fields`` to every line logged inside the block (earlier values come back after it)."""
    with structlog.contextvars.bound_contextvars(**fields):
        yield


def clear() -> None:
    """Drop everything bound to this context (a Celery task's end: the next task starts clean)."""
    structlog.contextvars.clear_contextvars()
