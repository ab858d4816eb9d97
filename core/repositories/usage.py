from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import delete, func, select

from core.db import db
from core.models import UsageRecord, User
from core.models.usage import EMBEDDINGS_TIER
from core.statuses import JobStatus


def add(record: UsageRecord) -> UsageRecord:
    db.session.add(record)
    return record


def tokens_generated_since(user_id: uuid.UUID, since: datetime) -> int:
    """Tokens the model server produced for the user; cached answers cost it nothing, and
    embeddings generate none."""
    query = select(
        func.coalesce(func.sum(UsageRecord.prompt_tokens + UsageRecord.completion_tokens), 0)
    ).where(
        UsageRecord.user_id == user_id,
        UsageRecord.created_at >= since,
        UsageRecord.cached.is_(False),
        UsageRecord.tier != EMBEDDINGS_TIER,
    )
    return int(db.session.scalar(query) or 0)


def delete_before(cutoff: datetime) -> int:
    result = db.session.execute(delete(UsageRecord).where(UsageRecord.created_at < cutoff))
    return result.rowcount or 0


def _figures() -> list:
    generated = UsageRecord.cached.is_(False)
    return [
        func.count().label("requests"),
        # Embeddings are answered in the API, without a job.
        func.count().filter(generated, UsageRecord.tier != EMBEDDINGS_TIER).label("jobs"),
        func.count().filter(UsageRecord.status == JobStatus.FAILED).label("errors"),
        func.count().filter(UsageRecord.cached.is_(True)).label("cache_hits"),
        func.coalesce(func.sum(UsageRecord.prompt_tokens).filter(generated), 0).label(
            "prompt_tokens"
        ),
        func.coalesce(func.sum(UsageRecord.completion_tokens).filter(generated), 0).label(
            "completion_tokens"
        ),
    ]


def _aggregate(since: datetime, until: datetime, *group_by) -> list[dict]:
    """Usage figures of [since, until) per `group_by` columns (one row when none)."""
    query = (
        select(*group_by, *_figures())
        .select_from(UsageRecord)
        .join(User, User.id == UsageRecord.user_id)  # for grouping by email
        .where(UsageRecord.created_at >= since, UsageRecord.created_at < until)
    )
    if group_by:
        query = query.group_by(*group_by)
    return [dict(row._mapping) for row in db.session.execute(query)]


def totals(since: datetime, until: datetime) -> dict:
    return _aggregate(since, until)[0]


def per_user(since: datetime, until: datetime) -> list[dict]:
    return _aggregate(since, until, UsageRecord.user_id, User.email)


def per_model(since: datetime, until: datetime) -> list[dict]:
    return _aggregate(since, until, UsageRecord.model, UsageRecord.tier)
