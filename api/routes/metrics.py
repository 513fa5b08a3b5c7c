"""``GET /metrics``: Prometheus metrics of this API process and the operations gauges (not in the schema)."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST

from pagemill.observability.collector import exposition

router = APIRouter()


@router.get("/metrics", include_in_schema=False)
def metrics() -> Response:
    """Prometheus text: HTTP metrics, the jobs counted here, queue depths and ages, workers per queue and
    dependencies (pagemill.observability.collector). Sync: the gauges may read the database."""
    return Response(content=exposition(), media_type=CONTENT_TYPE_LATEST)
