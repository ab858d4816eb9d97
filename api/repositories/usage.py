from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import delete, func, select

from api.extensions import db
from api.models import UsageRecord


def add(record: UsageRecord) -> UsageRecord:
    db.session.add(record)
    return record


def tokens_since(user_id: uuid.UUID, since: datetime) -> int:
    query = select(
        func.coalesce(func.sum(UsageRecord.prompt_tokens + UsageRecord.completion_tokens), 0)
    ).where(UsageRecord.user_id == user_id, UsageRecord.created_at >= since)
    return int(db.session.scalar(query) or 0)


def delete_before(cutoff: datetime) -> int:
    result = db.session.execute(delete(UsageRecord).where(UsageRecord.created_at < cutoff))
    return result.rowcount or 0
