"""The one log format: JSON lines or console text, with the request id, the bound context (job, tenant, task)
and the structured fields of a call, for our loggers and foreign ones (uvicorn, Celery) alike."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from pagemill import logging as pagemill_logging
from pagemill.logging import make_handler, request_id_var, wants_json
from pagemill.settings import Settings


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def logger() -> Iterator[logging.Logger]:
    """A logger of its own (no propagation to the root's handlers), with nothing bound around it."""
    log = logging.getLogger("pagemill.test_logging")
    log.propagate = False
    log.setLevel(logging.DEBUG)
    structlog.contextvars.clear_contextvars()
    yield log
    log.handlers.clear()
    structlog.contextvars.clear_contextvars()


def _capture(log: logging.Logger, settings: Settings, stream: io.StringIO | None = None) -> io.StringIO:
    stream = stream if stream is not None else io.StringIO()
    log.handlers.clear()
    log.addHandler(make_handler(settings, stream))
    return stream


def _json_lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


@pytest.mark.parametrize(
    ("fields", "terminal", "json_wanted"),
    [
        ({}, False, True),  # auto, no terminal: JSON for the log shipper
        ({}, True, False),  # auto, a terminal: text for a person
        ({"log_format": "json"}, True, True),
        ({"log_format": "text"}, False, False),
        # The older switch keeps its meaning either way, whatever log_format says.
        ({"log_json": True, "log_format": "text"}, True, True),
        ({"log_json": False}, False, False),
    ],
)
def test_the_format_follows_the_settings_and_the_terminal(
    clean_env: None, fields: dict[str, object], terminal: bool, json_wanted: bool
) -> None:
    stream = _Terminal() if terminal else io.StringIO()
    assert wants_json(Settings(**fields), stream) is json_wanted


def test_a_json_line_has_the_fields_and_the_bound_context(clean_env: None, logger: logging.Logger) -> None:
    stream = _capture(logger, Settings(log_format="json"))
    with pagemill_logging.bound(job_id="job-1", tenant="acme"):
        pagemill_logging.bind(task_id="task-9")
        logger.info("page %d of %s read", 3, "scan.pdf", extra={"status": 200, "not_a_field": "x"})
    logger.warning("after the block")
    first, second = _json_lines(stream)
    assert first["message"] == "page 3 of scan.pdf read"
    assert first["level"] == "info"
    assert first["logger"] == "pagemill.test_logging"
    assert str(first["ts"]).endswith("Z")
    assert (first["job_id"], first["tenant"], first["task_id"], first["status"]) == (
        "job-1",
        "acme",
        "task-9",
        200,
    )
    assert "not_a_field" not in first, "only the documented extra fields become fields"
    # The block's fields are gone after it; what was bound with bind() stays until clear().
    assert "job_id" not in second and "tenant" not in second
    assert second["task_id"] == "task-9"
    pagemill_logging.clear()
    logger.info("clean")
    assert "task_id" not in _json_lines(stream)[-1]


def test_a_json_line_carries_the_request_id_and_a_traceback(clean_env: None, logger: logging.Logger) -> None:
    stream = _capture(logger, Settings(log_format="json"))
    token = request_id_var.set("req-42")
    try:
        try:
            raise ValueError("boom")
        except ValueError:
            logger.exception("it failed")
    finally:
        request_id_var.reset(token)
    logger.info("outside any request")
    failed, outside = _json_lines(stream)
    assert failed["request_id"] == "req-42"
    assert "ValueError: boom" in str(failed["exc"])
    assert "request_id" not in outside


def test_an_explicit_request_id_wins_over_the_context(clean_env: None, logger: logging.Logger) -> None:
    # Starlette's last-resort 500 handler runs after the request's context ended and passes the id itself.
    stream = _capture(logger, Settings(log_format="json"))
    token = request_id_var.set("from-context")
    try:
        logger.error("unhandled", extra={"request_id": "passed"})
    finally:
        request_id_var.reset(token)
    assert _json_lines(stream)[0]["request_id"] == "passed"


def test_text_lines_are_readable_with_the_fields(clean_env: None, logger: logging.Logger) -> None:
    stream = _capture(logger, Settings(log_format="text"))
    with pagemill_logging.bound(job_id="job-7"):
        logger.info("job ended")
    line = stream.getvalue()
    assert "job ended" in line
    assert "job_id=job-7" in line
    assert "\x1b[" not in line, "no colour codes when the stream is not a terminal"
    assert not line.lstrip().startswith("{")


def test_structlog_loggers_use_the_same_format(clean_env: None, logger: logging.Logger) -> None:
    stream = _capture(logger, Settings(log_format="json"))
    saved = structlog.get_config()
    pagemill_logging.configure_structlog()
    try:
        with pagemill_logging.bound(tenant="acme"):
            structlog.get_logger("pagemill.test_logging").info("structured", pages=3)
    finally:
        structlog.configure(**saved)
    [line] = _json_lines(stream)
    assert (line["message"], line["pages"], line["tenant"], line["level"]) == (
        "structured",
        3,
        "acme",
        "info",
    )
