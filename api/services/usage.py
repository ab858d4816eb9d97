"""The usage log (one row per finished job) and the limits computed from it."""

from __future__ import annotations

import uuid
from datetime import datetime, time, timedelta

from api.services import caps
from config.settings import get_settings
from core.db import db
from core.errors import TooManyRequests
from core.models.base import utcnow
from core.repositories import jobs as jobs_repo
from core.repositories import usage as usage_repo


def check_submission_allowed(user_id: uuid.UUID) -> None:
    """429 when the user has too many jobs in flight or has used up today's tokens.

    Locks the user's row until the submission commits, so concurrent submissions of one
    user are counted one after the other and the cap is exact.
    """
    settings = get_settings()
    cap = settings.limits.max_jobs_in_flight
    if cap:
        caps.lock_account(user_id)
        in_flight = jobs_repo.count_in_flight(user_id)
        if in_flight >= cap:
            raise TooManyRequests(
                f"You have {in_flight} jobs queued or running (the limit is {cap}); "
                "wait for one to finish.",
                code="too_many_jobs_in_flight",
                details={"in_flight": in_flight, "limit": cap},
                headers={"Retry-After": "5"},
            )
    check_daily_quota(user_id)


def check_daily_quota(user_id: uuid.UUID) -> None:
    """429 when the user has used up today's generated tokens."""
    quota = get_settings().limits.daily_token_quota
    if quota:
        now = utcnow()
        midnight = datetime.combine(now.date(), time.min, tzinfo=now.tzinfo)
        used = usage_repo.tokens_generated_since(user_id, midnight)
        if used >= quota:
            reset_in = int((midnight + timedelta(days=1) - now).total_seconds()) + 1
            raise TooManyRequests(
                f"Today's token quota ({quota}) is used up; it resets at 00:00 UTC.",
                code="daily_token_quota_exceeded",
                details={"used": used, "quota": quota},
                headers={"Retry-After": str(reset_in)},
            )


def cleanup(days: int | None = None) -> int:
    """Delete usage rows older than `days` (default USAGE_RETENTION_DAYS); how many."""
    days = get_settings().limits.usage_retention_days if days is None else days
    deleted = usage_repo.delete_before(utcnow() - timedelta(days=days))
    db.session.commit()
    return deleted
