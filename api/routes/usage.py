"""A tenant's own usage and limits."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from api.auth import AUTH_ERRORS, CurrentPrincipal
from api.deps import SessionDep, SettingsDep
from api.rate_limits import rate_limited
from pagemill.models.base import utcnow
from pagemill.tenancy import usage
from pagemill.tenancy.schemas import PeriodUsageOut, TierLimitsOut, UsageOut

router = APIRouter(prefix="/api/v1", tags=["usage"], responses=AUTH_ERRORS)


@router.get("/usage", response_model=UsageOut, summary="Usage and limits of the caller's tenant")
@rate_limited
def get_usage(
    request: Request,
    response: Response,
    principal: CurrentPrincipal,
    session: SessionDep,
    settings: SettingsDep,
) -> UsageOut:
    """Documents counted today and this month against the tier's quotas, pages read this month, documents
    answered from the result cache this month, and what the tier allows (request rate, file size, pages,
    priority, batch size, retention). Days and months are UTC."""
    tier = settings.tiers.get(principal.tier)
    day, month, pages = usage.usage_of(session, principal.tenant_id, tier, utcnow())
    return UsageOut(
        tenant=principal.tenant_id,
        tier=principal.tier,
        limits=TierLimitsOut(**tier.model_dump()),
        day=PeriodUsageOut.from_usage(day),
        month=PeriodUsageOut.from_usage(month),
        pages_this_month=pages,
        cached_this_month=usage.cached_documents(session, principal.tenant_id, utcnow()),
    )
