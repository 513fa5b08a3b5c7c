"""Logging setup: text or JSON lines, one format for API and workers."""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar

from pagemill.settings import Settings

request_id_var: ContextVar[str | None] = ContextVar("pagemill_request_id", default=None)
"""The id of the HTTP request being served, set by the API's request-id middleware."""


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        # An explicit ``extra={"request_id": ...}`` wins: code that runs after the request's context has
        # ended (Starlette's last-resort 500 handler, the HTTP server's own refusals) passes the id that way.
        if getattr(record, "request_id", None) is None:
            record.request_id = request_id_var.get() or "-"
        return True


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload = {
            "ts": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None),
        }
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        return json.dumps(payload)


def configure_logging(settings: Settings) -> None:
    """Configure the root logger once per process."""
    root = logging.getLogger()
    if getattr(root, "_pagemill_configured", False):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        _JsonFormatter()
        if settings.log_json
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s")
    )
    handler.addFilter(_RequestIdFilter())
    root.addHandler(handler)
    root.setLevel(settings.log_level.upper())
    root._pagemill_configured = True  # type: ignore[attr-defined]
