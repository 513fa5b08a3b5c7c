"""Every ORM model, on one metadata (Alembic's target)."""

from pagemill.models.base import Base
from pagemill.models.job import Job, JobState, Page, PageState

__all__ = ["Base", "Job", "JobState", "Page", "PageState"]
