"""Typed factories for rows the tests insert directly (not through the API)."""

from __future__ import annotations

import uuid
from typing import Any

from pagemill.models import DEFAULT_TENANT, Job, JobState


def make_job(job_id: str | None = None, **fields: Any) -> Job:
    """An unsaved queued PDF job of the default tenant asking for every format; ``fields`` override."""
    job_id = job_id or str(uuid.uuid4())
    values: dict[str, Any] = {
        "tenant_id": DEFAULT_TENANT,
        "state": JobState.QUEUED,
        "filename": "doc.pdf",
        "kind": "pdf",
        "size_bytes": 1024,
        "sha256": "0" * 64,
        "source_key": f"jobs/{job_id}/source",
        "options": {"formats": ["markdown", "text", "json"]},
    }
    return Job(id=job_id, **{**values, **fields})
