"""Every ORM model, on one metadata (Alembic's target)."""

from pagemill.models.base import Base
from pagemill.models.batch import Batch, BatchItem
from pagemill.models.dead_letter import DeadLetter, DeadLetterCategory, DeadLetterState
from pagemill.models.event import Event
from pagemill.models.job import Job, JobState, Page, PageState
from pagemill.models.tenancy import DEFAULT_TENANT, ApiKey, AuditEvent, Tenant, UsageCounter
from pagemill.models.upload import Upload, UploadState
from pagemill.models.webhook import (
    CallbackSecret,
    DeliveryState,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)

__all__ = [
    "DEFAULT_TENANT",
    "ApiKey",
    "AuditEvent",
    "Base",
    "Batch",
    "BatchItem",
    "CallbackSecret",
    "DeadLetter",
    "DeadLetterCategory",
    "DeadLetterState",
    "DeliveryState",
    "Event",
    "Job",
    "JobState",
    "Page",
    "PageState",
    "Tenant",
    "Upload",
    "UploadState",
    "UsageCounter",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookEndpoint",
]
