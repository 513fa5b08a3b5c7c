"""Every ORM model, on one metadata (Alembic's target)."""

from pagemill.models.base import Base
from pagemill.models.job import Job, JobState, Page, PageState
from pagemill.models.tenancy import DEFAULT_TENANT, ApiKey, AuditEvent, Tenant, UsageCounter

__all__ = [
    "DEFAULT_TENANT",
    "ApiKey",
    "AuditEvent",
    "Base",
    "Job",
    "JobState",
    "Page",
    "PageState",
    "Tenant",
    "UsageCounter",
]
