"""Settings with a tier changed, for tests of per-tier rules (quotas, retention)."""

from __future__ import annotations

from pagemill.settings import Settings, get_settings


def with_free_tier(**fields: object) -> Settings:
    """The process's settings with the free tier's ``fields`` replaced."""
    base = get_settings()
    tiers = base.tiers.model_copy(update={"free": base.tiers.free.model_copy(update=fields)})
    return base.model_copy(update={"tiers": tiers})
